"""Neural velocity fields ``v_theta(t, x)`` with a time embedding."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "TimeEmbedding", "VelocityDenoiserMLP", "VelocityMLP"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "relu": nn.ReLU,
}
"""Registry of activations by the name that the ``activation`` hyperparameter takes."""


class TimeEmbedding(nn.Module):
    """Fixed Fourier features of the time: ``[t, sin(2 pi k t), cos(2 pi k t)]`` for ``k = 1..K``.

    Sinusoidal features let a small network change its field quickly in ``t`` (Vaswani et al., 2017;
    Tancik et al., 2020) at no cost in parameters.

    Parameters
    ----------
    n_frequencies : int, default=8
        Number ``K`` of frequencies; the embedding has ``2 K + 1`` features.
    """

    def __init__(self, n_frequencies: int = 8) -> None:
        super().__init__()
        self.register_buffer(
            "frequencies", 2.0 * math.pi * torch.arange(1, n_frequencies + 1, dtype=torch.float32)
        )

    @property
    def n_features(self) -> int:
        """Width of the embedding."""
        return 2 * self.frequencies.numel() + 1

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Embed times of shape (n,) into features of shape (n, 2 K + 1)."""
        angles = t[:, None] * self.frequencies
        return torch.cat([t[:, None], torch.sin(angles), torch.cos(angles)], dim=1)


class VelocityMLP(nn.Module):
    """Multi-layer perceptron ``v_theta(t, x)`` taking ``[x, embed(t)]`` and returning a velocity.

    Parameters
    ----------
    n_features : int
        Dimension ``d`` of ``x`` and of the output.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer.
    activation : str
        Name of the activation in :data:`ACTIVATIONS`.
    """

    def __init__(
        self, n_features: int, hidden_layer_sizes: Sequence[int], activation: str
    ) -> None:
        super().__init__()
        self.time_embedding = TimeEmbedding()
        widths = [n_features + self.time_embedding.n_features, *hidden_layer_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], n_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity at times ``t`` (shape (n,)) and points ``x`` (shape (n, d))."""
        return self.layers(torch.cat([x, self.time_embedding(t).to(x.dtype)], dim=1))


class VelocityDenoiserMLP(nn.Module):
    """A velocity ``b(t, x)`` and a denoiser ``eta_z(t, x) = E[z | x_t = x]``, two :class:`VelocityMLP`.

    Calling the module returns the velocity alone, so every ODE and likelihood routine treats it as
    a velocity field; :meth:`denoiser` gives ``eta_z``, from which the score of the interpolant's
    density is ``s(t, x) = -eta_z(t, x) / gamma(t)`` (Albergo, Boffi & Vanden-Eijnden, 2023,
    eq. 2.14). The denoiser is learned rather than the score because its regression target ``z`` is
    bounded where ``gamma`` vanishes, and the score's ``-z / gamma`` is not.

    Parameters
    ----------
    n_features : int
        Dimension ``d`` of ``x`` and of both outputs.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer of each network.
    activation : str
        Name of the activation in :data:`ACTIVATIONS`.
    """

    def __init__(
        self, n_features: int, hidden_layer_sizes: Sequence[int], activation: str
    ) -> None:
        super().__init__()
        self.velocity = VelocityMLP(n_features, hidden_layer_sizes, activation)
        self.eta = VelocityMLP(n_features, hidden_layer_sizes, activation)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity ``b`` at times ``t`` (shape (n,)) and points ``x`` (shape (n, d))."""
        return self.velocity(t, x)

    def denoiser(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Denoiser ``eta_z`` at times ``t`` (shape (n,)) and points ``x`` (shape (n, d))."""
        return self.eta(t, x)

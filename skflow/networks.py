"""Neural velocity fields ``v_theta(t, x)`` with a time embedding."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "RestandardisedVelocity",
    "TimeEmbedding",
    "VelocityDenoiserMLP",
    "VelocityMLP",
]

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


class RestandardisedVelocity(nn.Module):
    """A velocity field re-expressed in new standardised coordinates, exactly.

    ``network`` is a field ``v(t, z)`` whose flow carries ``N(0, I)`` at ``t = 0`` to data
    standardised as ``z = (x - m) / s``. For other statistics ``(m', s')`` the data are
    ``z' = a z + b`` with ``a = s / s'`` and ``b = (m - m') / s'``. Moving along the flow by the
    time-dependent affine map ``z'(t) = A(t) z(t) + t b`` with ``A(t) = 1 + t (a - 1)`` keeps the
    base (``z'(0) = z(0)``) and ends at the re-standardised data (``z'(1) = a z(1) + b``); its
    velocity is

    .. math::

        v'(t, z') = (a - 1) z + A(t)\\, v(t, z) + b, \\qquad z = (z' - t b) / A(t).

    The model in the units of ``x`` is therefore unchanged: the same samples, the same maps, and
    log-densities whose divergence term gains
    ``int_0^1 sum_j (a_j - 1) / A_j(t) dt = sum_j log a_j``, which the new standardisation's
    ``-sum log s'`` cancels. ``A(t)`` lies between 1 and ``a > 0``,
    so the map is invertible at every time. Used by :meth:`skflow.FlowMatchingDensity.partial_fit`,
    whose standardisation moves as data arrive.

    Parameters
    ----------
    network : torch.nn.Module
        The field ``v(t, z)`` in the reference coordinates.
    n_features : int
        Dimension of ``z``; ``a`` starts at ones and ``b`` at zeros (the identity).
    """

    def __init__(self, network: nn.Module, n_features: int) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("a", torch.ones(n_features))
        self.register_buffer("b", torch.zeros(n_features))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity in the new coordinates at times ``t`` (shape (n,)) and points ``x`` (n, d)."""
        a, b = self.a.to(x.dtype), self.b.to(x.dtype)
        tt = t.to(x.dtype)[:, None]
        stretch = 1.0 + tt * (a - 1.0)
        z = (x - tt * b) / stretch
        return (a - 1.0) * z + stretch * self.network(t, z) + b

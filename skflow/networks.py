"""Neural velocity fields ``v_theta(t, x)`` with a time embedding."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "ClassConditionalVelocity",
    "ConditionedVelocity",
    "FourierFeatureVelocity",
    "MaskedVelocity",
    "RestandardisedVelocity",
    "TimeEmbedding",
    "VelocityBlockMLP",
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
        Dimension ``d`` of ``x`` and, by default, of the output.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer.
    activation : str
        Name of the activation in :data:`ACTIVATIONS`.
    n_outputs : int, optional
        Dimension of the output, when it is not ``d`` (behind :class:`FourierFeatureVelocity`).
    """

    def __init__(
        self,
        n_features: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        *,
        n_outputs: int | None = None,
    ) -> None:
        super().__init__()
        self.time_embedding = TimeEmbedding()
        widths = [n_features + self.time_embedding.n_features, *hidden_layer_sizes]
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], n_outputs or n_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity at times ``t`` (shape (n,)) and points ``x`` (shape (n, d))."""
        return self.layers(torch.cat([x, self.time_embedding(t).to(x.dtype)], dim=1))


class VelocityBlockMLP(nn.Module):
    """An MLP ``v_theta(t, x)`` whose hidden layers after the first are pre-normalised residual
    blocks that each see the time.

    The first layer maps ``[x, embed(t)]`` to the first width, ``h = act(W_0 [x, embed(t)])``. Every
    further hidden layer ``k`` is a block

    .. math::

        h \\leftarrow h + \\mathrm{act}\\bigl(W_k\\,[\\mathrm{LN}(h),\\ \\mathrm{embed}(t)]\\bigr),

    with layer normalisation ``LN`` (Ba, Kiros & Hinton, 2016) before the layer, as in
    pre-activation residual networks (He et al., 2016) and the tabular ResNet of Gorishniy et al.
    (NeurIPS 2021); the identity path is kept only where the block keeps the width. Handing
    ``embed(t)`` to every block, as diffusion networks condition every block on the noise level
    (Ho, Jain & Abbeel, 2020), keeps the time from fading with depth. A last linear layer gives
    the velocity.

    Parameters
    ----------
    n_features : int
        Dimension ``d`` of ``x`` and, by default, of the output.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer.
    activation : str
        Name of the activation in :data:`ACTIVATIONS`.
    n_outputs : int, optional
        Dimension of the output, when it is not ``d`` (behind :class:`FourierFeatureVelocity`).
    """

    def __init__(
        self,
        n_features: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        *,
        n_outputs: int | None = None,
    ) -> None:
        super().__init__()
        self.time_embedding = TimeEmbedding()
        n_time = self.time_embedding.n_features
        self.first = nn.Linear(n_features + n_time, hidden_layer_sizes[0])
        pairs = list(zip(hidden_layer_sizes[:-1], hidden_layer_sizes[1:]))
        self.blocks = nn.ModuleList(
            nn.Linear(fan_in + n_time, fan_out) for fan_in, fan_out in pairs
        )
        self.norms = nn.ModuleList(nn.LayerNorm(fan_in) for fan_in, _ in pairs)
        self.activation = ACTIVATIONS[activation]()
        self.last = nn.Linear(hidden_layer_sizes[-1], n_outputs or n_features)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity at times ``t`` (shape (n,)) and points ``x`` (shape (n, d))."""
        embedding = self.time_embedding(t).to(x.dtype)
        h = self.activation(self.first(torch.cat([x, embedding], dim=1)))
        for norm, linear in zip(self.norms, self.blocks):
            update = self.activation(linear(torch.cat([norm(h), embedding], dim=1)))
            h = h + update if update.shape == h.shape else update
        return self.last(h)


ARCHITECTURES: dict[str, type[nn.Module]] = {"mlp": VelocityMLP, "residual": VelocityBlockMLP}
"""Registry of velocity networks by the name that the ``architecture`` hyperparameter takes."""


class FourierFeatureVelocity(nn.Module):
    """A velocity network that sees random Fourier features of ``x`` beside ``x`` itself.

    .. math::

        v(t, x) = g\\bigl(t,\\ [x,\\ \\sin(x B),\\ \\cos(x B)]\\bigr), \\qquad
        B_{jk} \\sim N(0, \\sigma^2 / d) \\text{ drawn once and fixed,}

    with ``B`` of shape ``(d, m)`` and ``g`` a network of :data:`ARCHITECTURES` taking ``d + 2 m``
    inputs and returning ``d`` (or ``n_outputs``). A network of smooth activations fits low
    frequencies first and fine detail last (its spectral bias); features ``sin(x B)``,
    ``cos(x B)`` hand it that detail directly (for standardised ``x`` each phase ``x B_k`` has
    standard deviation ``sigma`` whatever ``d``), which is how Tancik et al. (*Fourier Features
    Let Networks Learn High Frequency Functions in Low Dimensional Domains*, NeurIPS 2020) made
    coordinate networks sharp. ``B`` is drawn from torch's global generator, which the estimators
    seed.

    Parameters
    ----------
    architecture : str
        Name of ``g``'s class in :data:`ARCHITECTURES`.
    n_features : int
        Dimension ``d`` of ``x`` and, by default, of the output.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer of ``g``.
    activation : str
        Name of the activation in :data:`ACTIVATIONS`.
    n_frequencies : int
        Number ``m`` of frequency vectors (columns of ``B``), at least 1.
    scale : float
        ``sigma``: the entries of ``B`` have standard deviation ``sigma / sqrt(d)``.
    n_outputs : int, optional
        Dimension of the output, when it is not ``d`` (inside :class:`ClassConditionalVelocity`,
        whose ``x`` carries the one-hot class).
    """

    def __init__(
        self,
        architecture: str,
        n_features: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        *,
        n_frequencies: int,
        scale: float,
        n_outputs: int | None = None,
    ) -> None:
        super().__init__()
        frequencies = scale / math.sqrt(n_features) * torch.randn(n_features, n_frequencies)
        self.register_buffer("frequencies", frequencies)
        self.network = ARCHITECTURES[architecture](
            n_features + 2 * n_frequencies,
            hidden_layer_sizes,
            activation,
            n_outputs=n_outputs or n_features,
        )

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity at times ``t`` (shape (n,)) and points ``x`` (shape (n, d))."""
        angles = x @ self.frequencies.to(x.dtype)
        return self.network(t, torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1))


class ClassConditionalVelocity(nn.Module):
    """One velocity field for every class: ``v(t, x | y) = g(t, [x, e_y])``.

    ``e_y`` is the one-hot vector of the class index ``y`` among ``K`` classes and ``g`` a network
    taking ``d + K`` inputs and returning ``d`` (a network of :data:`ARCHITECTURES` or a
    :class:`FourierFeatureVelocity`), so that the classes share every weight but those of the
    one-hot inputs: the class-conditional field of conditional flow matching (Zheng et al.,
    *Guided Flows for Generative Modeling and Decision Making*, 2023; Dao et al., *Flow Matching
    in Latent Space*, 2023). :class:`ConditionedVelocity` fixes the classes and gives a plain field
    ``(t, x) -> v`` for the ODE and likelihood routines.

    Parameters
    ----------
    network : torch.nn.Module
        ``g``: ``network(t, z)`` with ``z`` of shape (n, d + K), returning shape (n, d).
    n_classes : int
        Number ``K`` of classes.
    """

    def __init__(self, network: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.network = network
        self.n_classes = n_classes

    def forward(self, t: torch.Tensor, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Velocity at times ``t`` (shape (n,)) and points ``x`` (shape (n, d)) of the classes
        ``labels``: integer indices in ``[0, K)`` of shape (n,), or one index for every row."""
        one_hot = nn.functional.one_hot(labels.long(), self.n_classes).to(x.dtype)
        return self.network(t, torch.cat([x, one_hot.expand(x.shape[0], -1)], dim=1))


class ConditionedVelocity(nn.Module):
    """A conditional field ``network(t, x, condition)`` with its condition fixed: a plain field
    ``(t, x) -> v`` for :func:`~skflow.solvers.integrate` and :mod:`skflow.likelihood`.

    ``condition`` is not a weight (it is not in the ``state_dict``); the network is held, not
    copied.

    Parameters
    ----------
    network : torch.nn.Module
        A field called as ``network(t, x, condition)``, e.g. :class:`ClassConditionalVelocity`.
    condition : torch.Tensor
        The condition of every row (first axis over the rows) or of all rows (for
        :class:`ClassConditionalVelocity`, class indices).
    """

    def __init__(self, network: nn.Module, condition: torch.Tensor) -> None:
        super().__init__()
        self.network = network
        self.condition = condition

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Velocity at times ``t`` (shape (n,)) and points ``x`` (shape (n, d))."""
        return self.network(t, x, self.condition)


class MaskedVelocity(nn.Module):
    """A field over any subset of the coordinates given any other subset:
    ``v(t, x | k, g) = g * h(t, [x, k, g])``.

    ``k`` and ``g`` are 0/1 masks of the coordinates held fixed (known) and of those the field
    moves (generated); ``x`` holds the known values and the points of the path on the generated
    coordinates, and the network sees 0 on every other one, whatever ``x`` holds there.
    Multiplying by ``g`` keeps every other coordinate still, so the
    ODE carries only the generated coordinates and its divergence is theirs: the field is a flow
    of the conditional law of ``x_g`` given ``x_k`` for every pair of masks at once, as the
    arbitrary-conditional models of Ivanov, Figurnov & Vetrov (ICLR 2019) and Li, Akkaya &
    Oliva (ICML 2020) learn one model for every conditional. :class:`ConditionedVelocity` fixes
    both.

    With ``n_classes = K > 0`` the field is also class-conditional, ``g * h(t, [x, k, g, e_y])``
    with ``e_y`` the one-hot class (as :class:`ClassConditionalVelocity`).

    Parameters
    ----------
    network : torch.nn.Module
        ``h``: ``network(t, z)`` with ``z`` of shape (n, 3 d + K), returning shape (n, d).
    n_features : int
        Dimension ``d``.
    n_classes : int, default=0
        Number ``K`` of classes; 0 for no class.
    """

    def __init__(self, network: nn.Module, n_features: int, n_classes: int = 0) -> None:
        super().__init__()
        self.network = network
        self.n_features = n_features
        self.n_classes = n_classes

    def forward(self, t: torch.Tensor, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Velocity at times ``t`` (shape (n,)) and points ``x`` (shape (n, d)) given the
        ``condition`` ``[k, g]`` of shape (n, 2 d), both masks as 0/1, followed by the class
        index of each row (shape (n, 2 d + 1)) when there are classes."""
        d = self.n_features
        given = condition[:, : 2 * d].to(x.dtype)
        inputs = [x * (given[:, :d] + given[:, d:]), given]  # other cells are not seen
        if self.n_classes:
            labels = condition[:, 2 * d].long()
            inputs.append(nn.functional.one_hot(labels, self.n_classes).to(x.dtype))
        return given[:, d:] * self.network(t, torch.cat(inputs, dim=1))


class VelocityDenoiserMLP(nn.Module):
    """A velocity ``b(t, x)`` and a denoiser ``eta_z(t, x) = E[z | x_t = x]``, two networks of one
    architecture (:class:`VelocityMLP` by default).

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
    architecture : str, default="mlp"
        Name of both networks' class in :data:`ARCHITECTURES`.
    """

    def __init__(
        self,
        n_features: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        architecture: str = "mlp",
    ) -> None:
        super().__init__()
        network = ARCHITECTURES[architecture]
        self.velocity = network(n_features, hidden_layer_sizes, activation)
        self.eta = network(n_features, hidden_layer_sizes, activation)

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

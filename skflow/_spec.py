"""The velocity network of a flow as plain data: what to build, not a built module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .networks import (
    ARCHITECTURES,
    ClassConditionalVelocity,
    FourierFeatureVelocity,
    MaskedVelocity,
    VelocityDenoiserMLP,
)

__all__ = [
    "FOURIER_AUTO_FEATURES",
    "FOURIER_AUTO_MAX_DIMENSIONS",
    "FOURIER_AUTO_MIN_ROWS",
    "NetworkSpec",
    "check_hidden_layer_sizes",
    "fourier_features",
]

FOURIER_AUTO_MIN_ROWS = 10_000
FOURIER_AUTO_MAX_DIMENSIONS = 8
FOURIER_AUTO_FEATURES = 64
"""``n_fourier_features="auto"``: this many Fourier features from this many training rows, in up
to this many dimensions (where they resolve detail, as Tancik et al. found for low-dimensional
coordinates)."""


def check_hidden_layer_sizes(sizes) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple of positive ints, or a ValueError that names it."""
    array = np.atleast_1d(np.asarray(sizes))
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"hidden_layer_sizes must be a non-empty sequence of positive integers, got {sizes!r}."
        )
    if (array < 1).any():
        raise ValueError(f"hidden_layer_sizes must hold positive integers, got {sizes!r}.")
    return tuple(int(s) for s in array)


@dataclass(frozen=True)
class NetworkSpec:
    """A velocity network described by its settings; :meth:`build` makes a fresh one.

    The spec is what a fitted estimator keeps beside the weights (``network_spec_``), so a network
    can be rebuilt and loaded without the estimator that trained it.

    Parameters
    ----------
    architecture : str
        Name in :data:`skflow.networks.ARCHITECTURES`.
    hidden_layer_sizes : tuple of int
        Widths of the hidden layers.
    activation : str
        Name in :data:`skflow.networks.ACTIVATIONS`.
    n_fourier_features : int, default=0
        Random Fourier features of ``x`` that the network also sees
        (:class:`~skflow.networks.FourierFeatureVelocity`); 0 for none.
    fourier_scale : float, default=10.0
        Their scale; unused without them.
    denoiser : bool, default=False
        Whether a denoiser network is learned beside the velocity
        (:class:`~skflow.networks.VelocityDenoiserMLP`).
    n_classes : int, default=0
        Classes of a class-conditional field
        (:class:`~skflow.networks.ClassConditionalVelocity`: the network, and its Fourier
        features, also see the one-hot class); 0 for an unconditional one.
    masked : bool, default=False
        Whether the field is one of any coordinates given any others
        (:class:`~skflow.networks.MaskedVelocity`: the network also sees both masks).
    """

    architecture: str
    hidden_layer_sizes: tuple[int, ...]
    activation: str
    n_fourier_features: int = 0
    fourier_scale: float = 10.0
    denoiser: bool = False
    n_classes: int = 0
    masked: bool = False

    @property
    def width(self) -> int:
        """The widest hidden layer."""
        return max(self.hidden_layer_sizes)

    def build(self, n_features: int) -> torch.nn.Module:
        """A new network for ``n_features`` features, initialised from torch's global generator."""
        sizes: Sequence[int] = self.hidden_layer_sizes
        if self.denoiser:
            if self.n_classes or self.masked:
                raise ValueError("A denoiser network cannot be conditional.")
            return VelocityDenoiserMLP(n_features, sizes, self.activation, self.architecture)
        # x, then the one-hot class and the two masks
        n_inputs = n_features + self.n_classes + 2 * n_features * self.masked
        if self.n_fourier_features:
            network = FourierFeatureVelocity(
                self.architecture,
                n_inputs,
                sizes,
                self.activation,
                n_frequencies=self.n_fourier_features,
                scale=self.fourier_scale,
                n_outputs=n_features,
            )
        else:
            network = ARCHITECTURES[self.architecture](
                n_inputs, sizes, self.activation, n_outputs=n_features
            )
        if self.masked:
            return MaskedVelocity(network, n_features, self.n_classes)
        return ClassConditionalVelocity(network, self.n_classes) if self.n_classes else network


def fourier_features(
    n_fourier_features: int | str, n_train_rows: int | None, n_features: int
) -> int:
    """The Fourier features of a network for ``n_fourier_features``: its value, or for
    ``"auto"`` ``FOURIER_AUTO_FEATURES`` where ``n_train_rows`` (None: unknown) reach
    ``FOURIER_AUTO_MIN_ROWS`` in at most ``FOURIER_AUTO_MAX_DIMENSIONS`` features, else none."""
    if n_fourier_features != "auto":
        return n_fourier_features
    many_rows = n_train_rows is not None and n_train_rows >= FOURIER_AUTO_MIN_ROWS
    return FOURIER_AUTO_FEATURES if many_rows and n_features <= FOURIER_AUTO_MAX_DIMENSIONS else 0

"""The ``t = 0`` end of a flow: draws for training, log-densities for the likelihood."""

from __future__ import annotations

import numpy as np
import torch

from .likelihood import standard_normal_log_density

__all__ = ["SourceSample", "StandardNormal"]


class StandardNormal:
    """``N(0, I)`` in ``n_features`` dimensions: the base of the density estimator."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` rows on the generator's device."""
        return torch.randn(n, self.n_features, generator=generator, device=generator.device)

    def log_prob(self, z: np.ndarray) -> np.ndarray:
        """Log-density at each row of ``z``."""
        return standard_normal_log_density(torch.as_tensor(z)).numpy()


class SourceSample:
    """The source of :class:`~skflow.InterpolantTransport`: training draws its rows (with
    replacement, in proportion to their weights), the likelihood its fitted density.

    Parameters
    ----------
    density : estimator
        A fitted density estimator of the (standardised) source, with ``score_samples``.
    rows, weights : torch.Tensor, optional
        The source rows and their weights, on the training device; needed by :meth:`sample` only.
    """

    def __init__(
        self, density, rows: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> None:
        self.density = density
        self.rows = rows
        self.weights = weights

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` source rows drawn by weight, with replacement."""
        index = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.rows[index]

    def log_prob(self, z: np.ndarray) -> np.ndarray:
        """The source density's log-density at each row of ``z``."""
        return self.density.score_samples(z)

"""The ``t = 0`` end of a flow: draws for training, log-densities for the likelihood."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import torch
from sklearn.base import clone
from sklearn.mixture import GaussianMixture

from ._data import draw_seed
from .likelihood import standard_normal_log_density

__all__ = ["SourceSample", "StandardNormal", "fit_source_density"]


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


def fit_source_density(template, Z: np.ndarray, rng: np.random.RandomState):
    """A clone of the density estimator ``template`` (None:
    ``GaussianMixture(min(5, max(1, n // 50)), covariance_type="full")`` for ``n`` rows) fitted on
    the source rows ``Z``, its ``random_state`` drawn from ``rng`` where it has one."""
    if template is None:
        n_components = min(5, max(1, Z.shape[0] // 50))
        template = GaussianMixture(n_components=n_components, covariance_type="full")
    estimator = clone(template)
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=draw_seed(rng))
    return estimator.fit(Z)


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

    def draw(self, n: int, rng: np.random.RandomState) -> np.ndarray:
        """``n`` rows from the source density, in a random order, seeded by ``rng`` (the density
        itself is left as it is)."""
        density = copy.deepcopy(self.density)
        seed = draw_seed(rng)
        if "random_state" in density.get_params():
            density.set_params(random_state=seed)
        if "random_state" in inspect.signature(density.sample).parameters:
            draws = density.sample(n, random_state=seed)
        else:
            draws = density.sample(n)
        if isinstance(draws, tuple):  # GaussianMixture returns (X, labels), sorted by component
            draws = draws[0]
        return np.asarray(draws, dtype=np.float64)[rng.permutation(n)]

"""What a flow from the standard normal offers once fitted: its log-density, plain and blurred,
and samples."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._data import check_not_bool, validates_sample_arguments
from ._distributions import StandardNormal

__all__ = ["LatentFlowMixin"]


class LatentFlowMixin:
    """The inference methods of a fitted flow whose base at ``t = 0`` is ``N(0, I)``, for a
    :class:`~skflow._base.BaseFlow` that has ``mean_``, ``scale_`` and ``model_``."""

    def score_samples(self, X, return_std: bool = False):
        """Log-density of the model at each row of ``X``, in the units of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.
        return_std : bool, default=False
            Also return each log-density's standard error: 0 with the exact divergence; with
            Hutchinson's estimator, the standard deviation of the ``n_probes`` estimates over
            ``sqrt(n_probes)``.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``log p(x)``; higher means more typical of the training data.
        std : ndarray of shape (n_samples,)
            Only with ``return_std``.
        """
        return self.smoothed_score_samples(X, 0.0, return_std=return_std)

    def smoothed_score_samples(self, X, bandwidth: float, return_std: bool = False):
        """Log-density at each row of ``X`` of the model blurred by Gaussian noise of
        ``bandwidth`` standard deviations per feature, in the units of ``X``.

        The blurred model, the density convolved with ``N(0, diag((bandwidth scale_)^2))``, is
        the flow's own marginal at the time ``t`` where the path's relative noise is
        ``bandwidth`` (:meth:`skflow.paths.ProbabilityPath.noise_ratio`): with a standard normal
        base drawn independently of the data, ``x_t = beta(t) (x_1 + bandwidth e)``. Its score is
        ``log p_t(beta u) + d log beta - sum(log scale_)`` at the standardised row ``u``: exact
        for ``coupling="independent"``, and cheaper than :meth:`score_samples`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.
        bandwidth : float >= 0
            The blur, in standard deviations of each training feature; 0 gives
            :meth:`score_samples`.
        return_std : bool, default=False
            Also return the standard error of each log-density, as :meth:`score_samples` does.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        std : ndarray of shape (n_samples,)
            Only with ``return_std``.
        """
        check_not_bool(bandwidth, "bandwidth")
        if not (isinstance(bandwidth, Real) and bandwidth >= 0):
            raise ValueError(f"bandwidth must be a number >= 0, got {bandwidth!r}.")
        X = self._check_predict_data(X)
        path = self._make_path()
        t, shrink = path.t_max, 1.0
        if bandwidth > 0:
            t = path.time_of_noise_ratio(bandwidth)
            shrink = float(path.beta(torch.tensor(t, dtype=torch.float64)))
        log_jacobian = float(np.log(self.scale_).sum()) - X.shape[1] * math.log(shrink)

        def before(rows: np.ndarray) -> np.ndarray:
            standardised = self._standardise(rows)
            return standardised if shrink == 1.0 else shrink * standardised

        log_density, error = self._log_likelihood(
            X, path.t_min, t, StandardNormal(X.shape[1]).log_prob, before=before
        )
        log_density -= log_jacobian
        return (log_density, error) if return_std else log_density

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of ``X`` under the model, so that model selection needs no scorer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        float
            ``mean(score_samples(X))``.
        """
        return float(np.mean(self.score_samples(X)))

    @validates_sample_arguments
    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Draw new rows from the model by pushing standard normal draws through the flow.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows.
        random_state : int, RandomState instance or None, default=None
            Seeds the base draws.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
        """
        check_is_fitted(self, "model_")
        rng = check_random_state(random_state)
        z = rng.standard_normal((n_samples, self.n_features_in_))
        return self._latent_to_data(z)

    def _latent_to_data(self, Z: np.ndarray) -> np.ndarray:
        path = self._make_path()
        return self._fitted_network().carry(
            Z, path.t_min, path.t_max, self._solver(), after=self._unstandardise
        )

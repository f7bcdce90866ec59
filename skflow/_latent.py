"""Flows from the standard normal along a probability path: the model their hyperparameters
describe, and what such a flow offers once fitted (its log-density, plain and blurred, its
flow-matching loss at given rows, and samples)."""

from __future__ import annotations

import functools
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._data import check_not_bool, validates_sample_arguments
from ._distributions import StandardNormal
from ._masked import marginal_masks, with_labels
from ._spec import NetworkSpec, fourier_features
from .paths import PATHS, ProbabilityPath

__all__ = ["LatentFlowMixin", "PathFlowMixin"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class PathFlowMixin:
    """The path and the network of a :class:`~skflow._base.BaseFlow` from ``N(0, I)`` with the
    hyperparameters ``path``, ``sigma_min``, ``n_fourier_features``, ``fourier_scale`` and
    ``allow_missing``, and the masks of rows with missing cells (NaN in the flow's
    coordinates)."""

    hyperparameters = ("path", "sigma_min", "n_fourier_features", "fourier_scale", "allow_missing")
    """The names of those hyperparameters."""

    def _make_path(self) -> ProbabilityPath:
        return PATHS[self.path](sigma_min=self.sigma_min)

    def _network_for(self, n_train_rows: int | None) -> NetworkSpec:
        n_features = fourier_features(self.n_fourier_features, n_train_rows, self.columns_.width)
        return self._network_spec(
            n_fourier_features=n_features,
            fourier_scale=self.fourier_scale,
            masked=self.allow_missing,
        )

    def _check_missing_settings(self, warm: bool) -> None:
        """A ValueError where ``allow_missing`` cannot be fitted: with another coupling than the
        independent one, or changed since the fit that ``warm`` continues."""
        if warm and self.network_spec_.masked != self.allow_missing:
            raise ValueError(
                f"allow_missing={self.allow_missing} differs from the fit that warm_start would "
                "continue; refit with warm_start=False."
            )
        if self.allow_missing and self.coupling != "independent":
            raise ValueError(
                f'allow_missing=True needs coupling="independent", got {self.coupling!r}: rows '
                "with different missing cells cannot be paired by one transport plan."
            )

    def _fit_flow(
        self,
        Y: np.ndarray,
        weight: np.ndarray,
        codes: np.ndarray | None,
        labels: np.ndarray | None = None,
        stratify: np.ndarray | None = None,
    ) -> None:
        """Fit the flow on rows ``Y`` in the flow's coordinates (with their ``codes`` and class
        indices ``labels``, where they have them).

        With ``allow_missing`` and missing cells (NaN), in two stages of one masked field: the
        first learns, from the observed cells, the law of each row's observed cells and every
        conditional law of some of them given others; each missing cell is then drawn once
        from the first stage's law given its row's observed cells, and the second stage learns
        the law of each row's observed cells and, from the completed rows, the joint law of all
        columns (a stochastic EM step: the joint is learned from every row, not only from the
        complete ones)."""
        base = StandardNormal(Y.shape[1])
        observed = ~np.isnan(Y)
        X_std = self._standardise_observed(Y)
        given = with_labels(marginal_masks(observed) if self.allow_missing else None, labels)
        fit = functools.partial(self._fit_network, weight=weight, base=base, stratify=stratify)
        if observed.all():
            fit(X_std, condition=given, codes=codes)
            return
        fit(X_std, condition=given, codes=codes, tasks=(0.5, 0.0))
        if self.stop_reason_ == "interrupted":  # Ctrl-C ends the fit, as in one stage
            return
        rng = check_random_state(self.random_state)
        completed = self._draw_missing(X_std, observed, rng, labels=labels)[0]
        if codes is not None:
            rows = self._rows_from_flow(self._unstandardise(completed))
            codes = np.where(np.isnan(codes), self.columns_.encode(rows)[0], codes)
        fit(completed, condition=given, codes=codes, tasks=(0.0, 0.5), resume=True)

    def _generating(self, observed: np.ndarray) -> np.ndarray | None:
        """The condition of a masked network that moves the ``observed`` coordinates of each
        row and nothing else: the flow of their joint law (None for an unmasked network, whose
        rows are complete)."""
        return marginal_masks(observed) if self.network_spec_.masked else None

    def _marginal_offset(self, observed: np.ndarray) -> np.ndarray:
        """What turns the flow's log-likelihood of standardised rows, whose missing coordinates
        sit at 0 and do not move, into the log-density of their ``observed`` cells in the units
        of ``X``: the base density of the missing coordinates taken back out, less the
        standardisation's log-Jacobian over the observed ones."""
        return _HALF_LOG_2PI * (~observed).sum(axis=1) - observed @ np.log(self.scale_)

    @property
    def n_fourier_features_(self) -> int:
        """Fourier features of the fitted network."""
        return self.network_spec_.n_fourier_features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.allow_missing
        return tags


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
        Y, log_weight = self._flow_rows(X)
        observed = ~np.isnan(Y)
        path = self._make_path()
        t, shrink = path.t_max, 1.0
        if bandwidth > 0:
            t = path.time_of_noise_ratio(bandwidth)
            shrink = float(path.beta(torch.tensor(t, dtype=torch.float64)))

        def before(rows: np.ndarray) -> np.ndarray:
            standardised = self._standardise_observed(rows)
            return standardised if shrink == 1.0 else shrink * standardised

        log_density, error = self._log_likelihood(
            Y,
            path.t_min,
            t,
            StandardNormal(Y.shape[1]).log_prob,
            before=before,
            condition=self._generating(observed),
        )
        shrinking = observed.sum(axis=1) * math.log(shrink)
        log_density += log_weight + self._marginal_offset(observed) + shrinking
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

    def flow_matching_loss(
        self, X, n_times: int = 10, n_draws: int = 4, random_state=None
    ) -> np.ndarray:
        """The conditional flow-matching loss of the fitted velocity at each row of ``X``, at
        ``n_times`` times along the path.

        Training minimises the mean over data rows ``x_1``, base draws ``x_0 ~ N(0, I)`` and
        times ``t`` of ``|v(t, x_t) - u_t(x_0, x_1)|^2`` (:meth:`skflow.paths.ProbabilityPath.
        velocity`; Lipman et al., *Flow Matching for Generative Modeling*, ICLR 2023, eq. 9).
        Here ``x_1`` is each standardised row of ``X`` and the loss is averaged over
        ``n_draws`` base draws (and draws of the path's noise ``z``) at each time
        ``t_k = t_min + (k + 1/2) (t_max - t_min) / n_times``. Rows the model explains lose
        little at every time; a row far from the training rows, or between their clusters, is
        carried to a point whose velocity points elsewhere, and loses much. The cost is
        ``n_times n_draws`` evaluations of the network per row in float32, the precision of
        training, without an ODE solve, so it is much cheaper than :meth:`score_samples`; it is
        the score of :class:`~skflow.FlowMatchingOutlierDetector`.

        Every row gets the same draws, so a row's loss does not depend on the other rows (up to
        float32 rounding).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.
        n_times : int >= 1, default=10
            Number of times.
        n_draws : int >= 1, default=4
            Base draws per time.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; None uses the estimator's ``random_state``.

        Returns
        -------
        loss : ndarray of shape (n_samples, n_times)
            The loss at each row and time, in squared standard deviations of the training
            features.
        """
        for name, value in (("n_times", n_times), ("n_draws", n_draws)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        Y, log_weight = self._flow_rows(X)
        path = self._make_path()
        times = path.t_min + (np.arange(n_times) + 0.5) * (path.t_max - path.t_min) / n_times
        rng = check_random_state(self.random_state if random_state is None else random_state)
        # the base draw and the path's noise of each (time, draw), shared by every row
        draws = torch.as_tensor(rng.standard_normal((2, n_times, n_draws, Y.shape[1])))

        masked = self.network_spec_.masked

        def loss(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            x1 = x.repeat(n_draws, 1)
            if masked:  # a missing cell (NaN) neither moves nor counts
                seen = (~x1.isnan()).to(x.dtype)
                x1, given = x1.nan_to_num(0.0), torch.cat([torch.zeros_like(seen), seen], dim=1)
            out = torch.empty(n, n_times, dtype=x.dtype, device=x.device)
            for k, time in enumerate(times):
                t = torch.full((n * n_draws,), time, dtype=x.dtype, device=x.device)
                x0, z = (d[k].to(x.device, x.dtype).repeat_interleave(n, dim=0) for d in draws)
                xt, ut = path.interpolate(x0, x1, t, z), path.velocity(x0, x1, t, z)
                if masked:
                    error = net(t, seen * xt, given) - seen * ut
                else:
                    error = net(t, xt) - ut
                out[:, k] = (error**2).sum(dim=1).reshape(n_draws, n).mean(dim=0)
            return out

        # in float32, the precision the network was trained in: half the cost of float64
        losses = self._fitted_network(torch.float32).map_rows(Y, loss, before=self._standardise)
        losses[np.isneginf(log_weight)] = np.inf  # rows the model cannot hold
        return losses

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
        z = rng.standard_normal((n_samples, self.mean_.shape[0]))
        return self._latent_to_data(z)

    def _latent_to_data(self, Z: np.ndarray):
        path = self._make_path()
        Y = self._fitted_network().carry(
            Z,
            path.t_min,
            path.t_max,
            self._solver(),
            after=self._unstandardise,
            condition=self._generating(np.ones(Z.shape, dtype=bool)),
        )
        return self._rows_from_flow(Y)

"""FlowMatchingOutlierDetector: anomaly detection by the log-density of a density estimator, by
default a flow-matching one."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, OutlierMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, has_fit_parameter, validate_data

from ._base import keeps_state_on_error, was_interrupted
from ._data import validate_rows_and_weights
from ._thresholds import (
    ThresholdMixin,
    chi_squared_threshold,
    contamination_threshold,
    effective_rank,
    median_and_iqr,
)
from .density import FlowMatchingDensity

__all__ = ["BANDWIDTH", "DENSITY_DEFAULTS", "FlowMatchingOutlierDetector"]

DENSITY_DEFAULTS: dict[str, object] = {
    "architecture": "mlp",
    "time_distribution": "uniform",
    "step_exponent": 1.0,
    "n_fourier_features": 0,
    "n_steps": 8,
}
"""The hyperparameters of the :class:`~skflow.FlowMatchingDensity` that ``estimator=None`` stands
for, where they differ from its defaults. Eight solver steps instead of twenty make every score
2.5 times cheaper and leave the order of the rows, which is all a detector uses, as it was (rank
correlation above 0.998 with twenty steps; :ref:`User Guide <outliers>`)."""

BANDWIDTH = (0.0, 0.5, 1.0)
"""Default ``bandwidth``: the blurs, in standard deviations of each feature, of the multi-scale
score."""


class FlowMatchingOutlierDetector(ThresholdMixin, OutlierMixin, MetaEstimatorMixin, BaseEstimator):
    """Outlier detection by the log-density of a continuous normalizing flow.

    Each row is scored by its log-density under a density estimator fitted to the training rows,
    by default a :class:`~skflow.FlowMatchingDensity`: higher means more normal, as for
    :class:`~sklearn.ensemble.IsolationForest`, and a row is an outlier when
    ``decision_function(x) = score_samples(x) - offset_`` is negative.

    **Blurred and multi-scale scores.** A density estimator rates a tight cluster of training rows
    as normal however few rows it holds, so anomalies that come in a cluster are missed. The
    density blurred by ``N(0, h^2 sigma_j^2)`` per feature (``bandwidth=h``, ``sigma_j`` the
    standard deviation of feature ``j``) weighs a region by the share of rows within about ``h``
    standard deviations instead; a flow gives it without a second model
    (:meth:`FlowMatchingDensity.smoothed_score_samples`). With several bandwidths ``h_1, ...,
    h_K`` (the default), a row is as abnormal as it is at its most telling scale,

    .. math::

        s(x) = \\min_k \\frac{\\log \\hat p_{h_k}(x) - m_k}{w_k},

    with ``m_k`` and ``w_k`` the median and interquartile range of the held-out training scores at
    ``h_k``: the minimum of standardised scores combines detectors as the maximum of standardised
    outlier scores does in outlier ensembles (Aggarwal and Sathe, *Theoretical foundations and
    algorithms for outlier ensembles*, SIGKDD Explorations 17(1), 2015).

    **Fitting.** A density fitted on the training rows scores those rows higher than new rows of
    the same law, so :meth:`fit` first scores every training row *held out*: the rows are split
    at random into two halves, a clone of ``estimator`` is fitted on each, and each half is scored
    by the other half's model (``held_out_scores_``). The rows whose held-out score falls below
    the threshold are left out of the final fit (``trimmed_``), which is done on the other rows
    (``estimator_``). Fitting thus costs about two fits on all the rows and one pass of scoring.

    **Threshold.** For a float ``contamination``, ``offset_`` is the ``contamination`` quantile of
    the final model's scores of the training rows (scikit-learn's convention). For ``"auto"`` it
    is a chi-squared test fitted to the held-out scores ``s``,

    .. math::

        \\mathrm{offset} = \\mathrm{med}(s) - \\frac{q_{0.99} - q_{0.5}}{q_{0.75} - q_{0.25}}
            \\mathrm{IQR}(s),

    with ``q_p`` the quantiles of the chi-squared law whose degrees of freedom are the rank of the
    training data (``effective_rank_``). For Gaussian data and an exact density the score is
    ``c - M(x)^2 / 2`` with ``M`` the Mahalanobis distance, so this is the 1 % chi-squared test of
    ``M``; for other data it is that test with the location and scale of the scores matched by
    their median and quartiles, which the outliers among the training rows barely move.

    Read more in the :ref:`User Guide <outliers>`.

    Parameters
    ----------
    estimator : estimator, default=None
        The density estimator, cloned for each fit: any estimator with ``fit`` and
        ``score_samples`` (a log-density, or any score where higher is more normal), and
        ``smoothed_score_samples(X, bandwidth)`` where a bandwidth is positive. None means
        ``FlowMatchingDensity(architecture="mlp", time_distribution="uniform",
        step_exponent=1.0, n_fourier_features=0, n_steps=8)`` (:data:`DENSITY_DEFAULTS`).
    contamination : "auto" or float in (0, 0.5], default="auto"
        Share of outliers expected in the training data; sets ``offset_`` and the rows left out of
        the final fit.
    bandwidth : float >= 0 or sequence of floats >= 0, default=(0.0, 0.5, 1.0)
        Blur of the scored density, in standard deviations of each training feature: 0 scores the
        density itself, larger values rate small clusters of rows as abnormal; a sequence gives
        the multi-scale score. A number may be changed after fitting; a sequence is standardised
        by the fit, so changing it needs a new fit.
    random_state : int, RandomState instance or None, default=None
        Draws the split of the rows into halves, and is set as the ``random_state`` of every
        clone of ``estimator`` that has one (replacing the estimator's own). Pass an int for
        reproducible fits.

    Attributes
    ----------
    estimator_ : estimator
        The final model, fitted on the training rows that were not trimmed.
    offset_ : float
        Threshold of the scores: ``decision_function(X) = score_samples(X) - offset_``.
    held_out_scores_ : ndarray of shape (n_samples,) or None
        Score of each training row by the model fitted on the other half of the rows (NaN for rows
        of weight zero); None when fewer than four rows have a positive weight, in which case
        nothing is trimmed and ``offset_`` comes from the final model's scores.
    trimmed_ : ndarray of shape (n_samples,) of bool
        Training rows that the held-out scores flagged and the final fit left out.
    effective_rank_ : int
        Rank of the standardised training data, the degrees of freedom of
        ``contamination="auto"``.
    bandwidths_ : ndarray of shape (n_bandwidths,)
        ``bandwidth`` as an array.
    score_location_, score_scale_ : ndarray of shape (n_bandwidths,)
        Median and interquartile range of the held-out scores at each bandwidth; set only for
        several bandwidths.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in :meth:`fit`, when ``X`` had string column names.

    See Also
    --------
    FlowMatchingDensity : The default density estimator.
    SubspaceOutlierEnsemble : Detectors on random feature subsets, for many features.
    sklearn.ensemble.IsolationForest : Outlier detection by random isolation trees.

    Notes
    -----
    Far from the data the learned velocity is close to linear, so the flow's score falls
    quadratically with the distance: scores stay finite and ordered by distance.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> density = FlowMatchingDensity(hidden_layer_sizes=(32,), max_iter=5)
    >>> detector = FlowMatchingOutlierDetector(density, contamination=0.05, random_state=0)
    >>> detector = detector.fit(X)
    >>> int((detector.predict(X) == -1).sum())
    10
    >>> detector.predict([[0.0, 0.0], [8.0, 8.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "score_samples"]), None],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "bandwidth": [Interval(Real, 0, None, closed="left"), "array-like"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        contamination: str | float = "auto",
        bandwidth=BANDWIDTH,
        random_state=None,
    ) -> None:
        self.estimator = estimator
        self.contamination = contamination
        self.bandwidth = bandwidth
        self.random_state = random_state

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Score the training rows held out, fit the model without the rows they flag, and set
        ``offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows, mostly normal; at least two.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights, passed on to the estimator's ``fit`` (which must accept
            them). Rows of weight zero shape neither the model nor ``offset_``.

        Returns
        -------
        self : FlowMatchingOutlierDetector
            The fitted detector.
        """
        bandwidths = self._bandwidths()
        X, weight = validate_rows_and_weights(self, X, sample_weight, reset=True)
        template = self.estimator
        if template is None:
            template = FlowMatchingDensity(**DENSITY_DEFAULTS)
        _check_smoothing(template, bandwidths)
        if sample_weight is not None and not has_fit_parameter(template, "sample_weight"):
            raise TypeError(
                f"estimator {type(template).__name__} does not accept sample_weight in fit."
            )
        counted = weight > 0
        rank = effective_rank(X[counted])
        held_out = self._held_out_scores(template, X, weight, bandwidths)
        location = scale = None
        trimmed = np.zeros(X.shape[0], dtype=bool)
        if held_out is not None:
            if bandwidths.size > 1:
                location, scale = median_and_iqr(held_out[counted])
            held_out = _combine(held_out, location, scale)
            trimmed = counted & (held_out < self._threshold(held_out[counted], rank))
        estimator = self._fit_clone(template, X, np.where(trimmed, 0.0, weight))
        log_densities = None
        if held_out is None and bandwidths.size > 1:  # too few rows: standardise by the model
            log_densities = _log_densities(estimator, X, bandwidths)
            location, scale = median_and_iqr(log_densities[counted])
        if self.contamination == "auto" and held_out is not None:
            offset = self._threshold(held_out[counted], rank)
        else:  # the final model's scores of the training rows
            if log_densities is None:
                log_densities = _log_densities(estimator, X, bandwidths)
            offset = self._threshold(_combine(log_densities, location, scale)[counted], rank)
        self.estimator_ = estimator
        self.bandwidths_ = bandwidths
        self.effective_rank_ = rank
        if bandwidths.size > 1:
            self.score_location_, self.score_scale_ = location, scale
        else:  # drop what an earlier multi-scale fit set
            for name in ("score_location_", "score_scale_"):
                self.__dict__.pop(name, None)
        self.offset_ = offset
        self.held_out_scores_ = held_out
        self.trimmed_ = trimmed
        return self

    def _bandwidths(self) -> np.ndarray:
        """``bandwidth`` as a 1-D array of non-negative floats (one entry for a number)."""
        bandwidths = np.atleast_1d(np.asarray(self.bandwidth, dtype=np.float64))
        if bandwidths.ndim != 1 or bandwidths.size == 0 or not np.all(bandwidths >= 0):
            raise ValueError(
                "bandwidth must be a number >= 0 or a non-empty 1-D sequence of numbers >= 0, "
                f"got {self.bandwidth!r}."
            )
        return bandwidths

    def _fit_clone(self, template, X: np.ndarray, weight: np.ndarray):
        """A clone of ``template`` with the detector's ``random_state``, fitted on the rows of
        ``X`` with their weights (on the rows of positive weight, if it takes no weights)."""
        estimator = clone(template)
        if "random_state" in estimator.get_params(deep=False):
            estimator.set_params(random_state=self.random_state)
        if has_fit_parameter(estimator, "sample_weight"):
            return estimator.fit(X, sample_weight=weight)
        return estimator.fit(X[weight > 0])

    def _held_out_scores(
        self, template, X: np.ndarray, weight: np.ndarray, bandwidths: np.ndarray
    ) -> np.ndarray | None:
        """Each row's log-densities, one column per bandwidth, under a model fitted on the other
        half of the rows; None when fewer than four rows have a positive weight.

        A KeyboardInterrupt during either fit stops :meth:`fit` at once: there is no final model
        yet to keep.
        """
        rows = np.flatnonzero(weight > 0)
        if rows.size < 4:
            return None
        rows = check_random_state(self.random_state).permutation(rows)
        halves = np.array_split(rows, 2)
        scores = np.full((X.shape[0], bandwidths.size), np.nan)
        for train, test in ((halves[0], halves[1]), (halves[1], halves[0])):
            estimator = self._fit_clone(template, X[train], weight[train])
            if was_interrupted(estimator):
                raise KeyboardInterrupt(
                    "interrupted while fitting the held-out scores; the detector is left as it was"
                )
            scores[test] = _log_densities(estimator, X[test], bandwidths)
        return scores

    def _threshold(self, scores: np.ndarray, rank: int) -> float:
        if self.contamination == "auto":
            return chi_squared_threshold(scores, rank)
        return contamination_threshold(scores, self.contamination)

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each row: its log-density under the model blurred by ``bandwidth``,
        in the units of ``X``, or the multi-scale score of several bandwidths.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The lower, the more abnormal.
        """
        check_is_fitted(self, "estimator_")
        bandwidths = self._bandwidths()
        if bandwidths.size > 1 and not np.array_equal(bandwidths, self.bandwidths_):
            raise ValueError(
                f"bandwidth is {self.bandwidth!r}, but the detector was fitted with "
                f"{self.bandwidths_.tolist()}: several bandwidths are standardised by the "
                "training scores, so call fit again after changing them."
            )
        X = validate_data(self, X, dtype=np.float64, reset=False)
        location = getattr(self, "score_location_", None)
        scale = getattr(self, "score_scale_", None)
        return _combine(_log_densities(self.estimator_, X, bandwidths), location, scale)

    def score(self, X, y=None) -> float:
        """Mean score of the rows of ``X``, so that model selection needs no scorer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        float
            ``mean(score_samples(X))``: a mean log-likelihood for one bandwidth; in interquartile
            ranges of the training scores for several.
        """
        return float(np.mean(self.score_samples(X)))


def _log_densities(estimator, X: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """``(n_samples, n_bandwidths)``: the log-density at the rows of ``X`` of ``estimator``
    blurred by each bandwidth."""
    _check_smoothing(estimator, bandwidths)
    return np.column_stack(
        [
            estimator.score_samples(X) if h == 0 else estimator.smoothed_score_samples(X, h)
            for h in bandwidths
        ]
    )


def _check_smoothing(estimator, bandwidths: np.ndarray) -> None:
    if np.any(bandwidths > 0) and not hasattr(estimator, "smoothed_score_samples"):
        raise TypeError(
            f"bandwidth={bandwidths.tolist()} blurs the density, which needs an estimator with "
            f"smoothed_score_samples; {type(estimator).__name__} has none: set bandwidth=0."
        )


def _combine(log_densities: np.ndarray, location, scale) -> np.ndarray:
    """The score from the log-densities at the bandwidths (columns): the log-density itself for
    one; for several, the lowest of their values standardised by ``location`` and ``scale``."""
    if log_densities.shape[1] == 1:
        return log_densities[:, 0]
    return ((log_densities - location) / scale).min(axis=1)

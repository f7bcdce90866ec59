"""FlowMatchingOutlierDetector: anomaly detection by the log-density of a flow-matching model.

The detector is a :class:`~skflow.FlowMatchingDensity` with a threshold: it is trained by the same
training loop on the same standardised data, scores rows by the same exact log-likelihood, and adds
the outlier-detection API of :class:`sklearn.ensemble.IsolationForest` (``decision_function``,
``predict``, ``fit_predict``, ``contamination``, ``offset_``). Its hyperparameters are
FlowMatchingDensity's plus ``contamination`` and ``bandwidth``; they are read from
FlowMatchingDensity's signature and docstring, so the two cannot drift apart. The defaults are
FlowMatchingDensity's except those in :data:`OWN_DEFAULTS`.
"""

from __future__ import annotations

import inspect
import re
from numbers import Real

import numpy as np
from scipy.stats import chi2
from sklearn.base import OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import keeps_state_on_error, was_interrupted
from ._data import validate_rows_and_weights
from .density import FlowMatchingDensity

__all__ = ["OWN_DEFAULTS", "FlowMatchingOutlierDetector"]

OWN_DEFAULTS: dict[str, object] = {
    "architecture": "mlp",
    "time_distribution": "uniform",
    "step_exponent": 1.0,
    "n_fourier_features": 0,
}
"""FlowMatchingDensity's hyperparameters whose default differs here: the plain MLP, without Fourier
features, trained on uniform times and integrated with equal steps, with which the detection
benchmarks (``benchmarks/bench_outliers.py`` and the bandwidth study) were measured; the residual
network, the arcsine times, the grid that shortens its steps toward the data and the choice of
Fourier features on large data, the density's defaults since, have not been measured for
detection."""

AUTO_LEVEL = 0.01
"""Level of the chi-squared test that ``contamination="auto"`` is on Gaussian data."""

BANDWIDTH = (0.0, 0.5, 1.0)
"""Default ``bandwidth``: the blurs, in standard deviations of each feature, of the multi-scale
score (chosen on anomaly problems outside the outlier benchmark,
``benchmarks/results/outlier_bandwidth_detector.md``)."""


class ThresholdMixin:
    """``decision_function`` and ``predict`` of a detector with ``score_samples`` and ``offset_``,
    as in :class:`sklearn.ensemble.IsolationForest`."""

    def decision_function(self, X) -> np.ndarray:
        """Score shifted by the threshold: negative for outliers, non-negative for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            ``score_samples(X) - offset_``.
        """
        check_is_fitted(self, "offset_")
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """Label each row as an inlier (+1) or an outlier (-1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            ``+1`` where ``decision_function(X) >= 0``, ``-1`` elsewhere.
        """
        return np.where(self.decision_function(X) < 0, -1, 1)


class FlowMatchingOutlierDetector(ThresholdMixin, OutlierMixin, FlowMatchingDensity):
    # the docstring is assembled below the class, from _DOC and FlowMatchingDensity's sections

    _parameter_constraints: dict = {
        **FlowMatchingDensity._parameter_constraints,
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "bandwidth": [Interval(Real, 0, None, closed="left"), "array-like"],
    }

    # Whether the rows flagged by the held-out scores are left out of the final fit. A class
    # attribute, not a hyperparameter: the benchmark switches it off in a subclass (the ablation).
    _trim = True

    def __init__(self, *, contamination="auto", bandwidth=BANDWIDTH, **flow_params) -> None:
        self.contamination = contamination
        self.bandwidth = bandwidth
        # Every other hyperparameter, with its default, is FlowMatchingDensity's (an unknown name
        # is a TypeError there), except for OWN_DEFAULTS. scikit-learn reads the parameters from the
        # explicit signature that is set on this method below the class, built from
        # FlowMatchingDensity's.
        super().__init__(**{**OWN_DEFAULTS, **flow_params})

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Score the training rows by cross-fitting, fit the flow without the rows they flag, and
        set ``offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows, mostly normal; at least two.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights of the flow-matching loss and of the standardisation. Rows of
            weight zero shape neither the flow nor ``offset_``.

        Returns
        -------
        self : FlowMatchingOutlierDetector
            The fitted detector.
        """
        bandwidths = self._bandwidths()
        warm = self.warm_start and hasattr(self, "model_")
        X_checked, weight = validate_rows_and_weights(self, X, sample_weight, reset=not warm)
        counted = weight > 0
        self.effective_rank_ = _effective_rank(X_checked[counted])
        held_out = self._held_out_scores(X_checked, weight, bandwidths)
        if held_out is not None and bandwidths.size > 1:
            self._set_score_standardisation(held_out[counted])
        trimmed = np.zeros(X_checked.shape[0], dtype=bool)
        if held_out is not None:
            held_out = self._combine(held_out)
            if self._trim:
                trimmed = counted & (held_out < self._threshold(held_out[counted]))
        # the final flow: the same X as given (feature names included), flagged rows weighted out
        super().fit(X, sample_weight=np.where(trimmed, 0.0, weight))
        self.bandwidths_ = bandwidths
        if bandwidths.size == 1:  # unstandardised: drop what an earlier multi-scale fit set
            for name in ("score_location_", "score_scale_"):
                self.__dict__.pop(name, None)
        if held_out is None and bandwidths.size > 1:  # too few rows: standardise by the final flow
            self._set_score_standardisation(_log_densities(self, X_checked[counted], bandwidths))
        if self.contamination == "auto" and held_out is not None:
            self.offset_ = self._threshold(held_out[counted])
        else:  # a float: flag that share of the training rows (scikit-learn's convention)
            self.offset_ = self._threshold(self.score_samples(X)[counted])
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

    def _set_score_standardisation(self, log_densities: np.ndarray) -> None:
        """Median and interquartile range of training log-densities, one per bandwidth."""
        self.score_location_, self.score_scale_ = median_and_iqr(log_densities)

    def _combine(self, log_densities: np.ndarray) -> np.ndarray:
        """The score from the log-densities at the bandwidths: the log-density itself for one
        bandwidth; for several, the lowest of their standardised values (see the class docstring).
        """
        if log_densities.shape[1] == 1:
            return log_densities[:, 0]
        return ((log_densities - self.score_location_) / self.score_scale_).min(axis=1)

    def _held_out_scores(
        self, X: np.ndarray, weight: np.ndarray, bandwidths: np.ndarray
    ) -> np.ndarray | None:
        """Each row's log-densities, one column per bandwidth, under a flow fitted on the other
        half of the rows (two folds).

        Returns None when fewer than four rows have a positive weight. A KeyboardInterrupt
        during either fit stops :meth:`fit` at once: there is no final flow yet to keep.
        """
        rows = np.flatnonzero(weight > 0)
        if rows.size < 4:
            return None
        rows = check_random_state(self.random_state).permutation(rows)
        halves = np.array_split(rows, 2)
        params = {
            k: v for k, v in self.get_params().items() if k not in ("contamination", "bandwidth")
        }
        params["warm_start"] = False
        scores = np.full((X.shape[0], bandwidths.size), np.nan)
        for train, test in ((halves[0], halves[1]), (halves[1], halves[0])):
            flow = FlowMatchingDensity(**params).fit(X[train], sample_weight=weight[train])
            if was_interrupted(flow):
                raise KeyboardInterrupt(
                    "interrupted while fitting the held-out scores; the detector is left as it was"
                )
            scores[test] = _log_densities(flow, X[test], bandwidths)
        return scores

    def _threshold(self, scores: np.ndarray) -> float:
        """A threshold from training scores of the rows that count (see the class docstring)."""
        if self.contamination == "auto":
            # location and scale of a (chi2_r / 2) law matched to the median and the quartiles
            r = self.effective_rank_
            q25, q50, q75, q_tail = chi2.ppf([0.25, 0.5, 0.75, 1.0 - AUTO_LEVEL], r)
            s25, s50, s75 = np.percentile(scores, [25, 50, 75])
            return float(s50 - (q_tail - q50) / (q75 - q25) * (s75 - s25))
        return float(np.percentile(scores, 100.0 * self.contamination))

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each row: its log-density under the flow blurred by ``bandwidth``,
        in the units of ``X``, or the multi-scale score of several bandwidths.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``log p_h(x)`` for one bandwidth ``h``; for several, the lowest of their standardised
            log-densities (see the class docstring). The lower, the more abnormal. Far from the
            data the score falls quadratically with the distance: finite, and ordered by distance.
        """
        check_is_fitted(self, "bandwidths_")
        bandwidths = self._bandwidths()
        if bandwidths.size > 1 and not np.array_equal(bandwidths, self.bandwidths_):
            raise ValueError(
                f"bandwidth is {self.bandwidth!r}, but the detector was fitted with "
                f"{self.bandwidths_.tolist()}: several bandwidths are standardised by the "
                "training scores, so call fit again after changing them."
            )
        return self._combine(_log_densities(self, X, bandwidths))

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
            ``mean(score_samples(X))``: the mean log-likelihood for ``bandwidth=0``, of the
            blurred model for another number, and the mean multi-scale score (in interquartile
            ranges of the training scores, not a log-likelihood) for several bandwidths.
        """
        return super().score(X)


def median_and_iqr(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``scores`` (rows: training rows), the median and the interquartile range,
    the latter at least the smallest positive float: the robust location and scale that put
    scores of different units on one footing.

    Parameters
    ----------
    scores : ndarray of shape (n_rows, n_columns)
        Training scores, one column per score to standardise.

    Returns
    -------
    location, scale : ndarray of shape (n_columns,)
    """
    q25, q50, q75 = np.percentile(scores, [25, 50, 75], axis=0)
    return q50, np.maximum(q75 - q25, np.finfo(np.float64).tiny)


def _log_densities(flow: FlowMatchingDensity, X, bandwidths: np.ndarray) -> np.ndarray:
    """``(n_samples, n_bandwidths)``: the log-density at the rows of ``X`` of ``flow`` blurred by
    each bandwidth."""
    return np.column_stack([flow.smoothed_score_samples(X, h) for h in bandwidths])


def _effective_rank(X: np.ndarray) -> int:
    """Numerical rank of the centred, standardised rows (at least 1): constant and duplicated
    columns do not add to it."""
    centred = X - X.mean(axis=0)
    scale = np.sqrt((centred**2).mean(axis=0))
    varying = scale > 10 * np.finfo(np.float64).eps * np.maximum(np.abs(X).max(axis=0), 1.0)
    if not varying.any():
        return 1
    return max(1, int(np.linalg.matrix_rank(centred[:, varying] / scale[varying])))


# --------------------------------------------------------------------------------------------------
# FlowMatchingDensity's hyperparameters: signature and documentation, read from the one source


def _init_signature() -> inspect.Signature:
    """``(self, *, contamination="auto", bandwidth=BANDWIDTH, <FlowMatchingDensity's keyword-only
    parameters, with the defaults of OWN_DEFAULTS>)``."""
    self_, *density = inspect.signature(FlowMatchingDensity.__init__).parameters.values()
    density = [p.replace(default=OWN_DEFAULTS.get(p.name, p.default)) for p in density]
    own = [
        inspect.Parameter("contamination", inspect.Parameter.KEYWORD_ONLY, default="auto"),
        inspect.Parameter("bandwidth", inspect.Parameter.KEYWORD_ONLY, default=BANDWIDTH),
    ]
    return inspect.Signature([self_, *own, *density], return_annotation=None)


FlowMatchingOutlierDetector.__init__.__signature__ = _init_signature()


def _section(docstring: str, title: str) -> str:
    """The body of the numpydoc section ``title`` of a dedented docstring (without its header)."""
    match = re.search(
        rf"^{title}\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", docstring, flags=re.MULTILINE | re.DOTALL
    )
    return match.group(1).strip("\n") if match else ""


_DOC = """Outlier detection by the log-density of a continuous normalizing flow.

The detector fits a :class:`~skflow.FlowMatchingDensity` (the same training loop, standardisation
and likelihood) and scores each row by its log-density,

.. math::

    s(x) = \\log \\hat p(x) = \\log \\varphi_d(z) - \\int_0^1 \\nabla \\cdot v(t, x_t)\\, dt
           - \\sum_j \\log \\sigma_j,

where ``z`` is the latent point the learned ODE pulls ``x`` back to, ``\\varphi_d`` the standard
normal density and ``\\sigma_j`` the scales of the internal standardisation; with
``bandwidth = h > 0``, by the log-density blurred by Gaussian noise of ``h`` standard deviations
per feature; and by default, with several bandwidths, by the lowest of their standardised blurred
log-densities (below). Higher means more normal, as for
:class:`~sklearn.ensemble.IsolationForest`. A row is an outlier when
``decision_function(x) = s(x) - offset_`` is negative; ``predict`` returns -1 for those, +1 for
the others.

**Fitting.** A flow fitted on the training rows scores those rows higher than new rows from the
same distribution (it fits them; with few rows for the dimension, by tens of nats). So
:meth:`fit` first scores every training row *held out*: the rows are split at random into two
halves, a :class:`~skflow.FlowMatchingDensity` with the same hyperparameters is fitted on each,
and each half is scored by the other half's flow (``held_out_scores_``). The rows whose held-out
score falls below the threshold below (the ``contamination`` share, or the rows that the "auto"
rule flags) get weight zero (``trimmed_``), and the final flow is fitted on the others,
standardisation included. Fitting thus costs about two trainings on all the rows and one pass of
:meth:`score_samples` over them (two with a float ``contamination``).

``offset_`` is set from training scores:

- ``contamination=float``: the ``contamination`` quantile of the final flow's scores of the
  training rows, so that this share of the training rows is flagged (scikit-learn's convention).
  New inliers score lower than training rows, so more than this share of them is flagged.
- ``contamination="auto"``: the 1 % point of a chi-squared law fitted to the held-out scores ``s``,

  .. math::

      \\text{offset\\_} = \\operatorname{med}(s) - \\frac{q_{0.99} - q_{0.5}}{q_{0.75} - q_{0.25}}
          \\operatorname{IQR}(s),

  with ``med(s)`` and ``IQR(s)`` the median and interquartile range of the held-out scores,
  ``q_p`` the ``p``-quantile of the chi-squared law with ``r`` degrees of freedom, and ``r`` the
  rank of the standardised training data (constant and duplicated columns do not count). For
  Gaussian data and an exact flow, ``s(x) = c - M(x)^2 / 2`` with ``M`` the Mahalanobis distance
  and ``M^2 ~ chi2_r``: the rule is then the chi-squared test of ``M`` at level 1 %, the tail of
  the base distribution (whose latent norm is ``chi2_d``). For other data, and for the
  multi-scale score, which is not a log-density, it is that test with the location and scale of
  the score matched by the median and the quartiles, which the outliers among the training rows
  barely move. Held-out scores make it a threshold for new rows: the share of new
  inliers it flags is measured in ``benchmarks/results/outliers.md``. On clean data with light
  tails it may flag no training row.

**Contaminated training data.** Held-out scores rank training outliers as new rows would be
ranked, so gross errors among the training rows are flagged and left out of the final flow: with
5 % of rows 100 standard deviations away added to the training rows of two moons, the test
ROC-AUC of the default detector was 0.902 against 0.655 without trimming and 0.925 with clean
training rows (5 seeds).
Outliers that form a cluster of their own (a class of a data set) are a mode of the density, of
the half-flows too, and are seldom trimmed: they lower the ROC-AUC (see the benchmark).

**Blurred scores (``bandwidth``).** A density estimator rates a tight cluster of training rows
as normal, however few rows it holds; anomalies that come in such a cluster (a rare class) are
missed. The density blurred by ``N(0, h^2 \\sigma_j^2)`` per feature weighs a region by the share of
rows within about ``h`` standard deviations instead: a small cluster spreads its little mass over
the blur and scores low, the bulk of the data keeps its density. The flow gives the blurred
density without a second model. With a standard normal base drawn independently of the data,
the path's point at time ``t`` is ``x_t = beta(t) (x_1 + r(t) e)``, the data plus Gaussian noise of
relative scale ``r(t) = alpha(t) / beta(t)`` (:meth:`skflow.paths.ProbabilityPath.noise_ratio`),
so the model's own marginal at the time ``t_h`` with ``r(t_h) = h`` is the blurred model,

.. math::

    \\log \\hat p_h(x) = \\log \\hat p_{t_h}(\\beta(t_h)\\, u) + d \\log \\beta(t_h)
                        - \\sum_j \\log \\sigma_j, \\qquad u = (x - \\mu) / \\sigma,

scored by pulling ``beta(t_h) u`` back from ``t_h`` to 0: cheaper than the full score, since the
ODE is shorter. (This is exact for ``coupling="independent"``; with an OT coupling ``p_t`` is
another intermediate density.) On the outlier benchmark, ``bandwidth=1`` raised the mean test
ROC-AUC on wine, whose outlier class forms such a cluster, from 0.637 to 0.894, on breast_cancer
from 0.893 to 0.918 and on digits from 0.463 to 0.528, and lowered it on two moons, whose inliers
are thin curves that the blur smears together, from 0.902 to 0.755
(``benchmarks/results/outliers_bandwidth_0.md``, ``outliers_bandwidth_1.md``).

**Several bandwidths: the multi-scale score (the default).** No single bandwidth suits both
clustered anomalies and normal data of fine shape (``benchmarks/results/outlier_bandwidth.md``).
With a sequence of bandwidths ``h_1, ..., h_K``, a row is as abnormal as it is at its most
telling scale,

.. math::

    s(x) = \\min_k \\frac{\\log \\hat p_{h_k}(x) - m_k}{w_k},

where ``m_k`` and ``w_k`` are the median and the interquartile range of the held-out scores of
the training rows at ``h_k`` (``score_location_``, ``score_scale_``; the final flow's scores of
the training rows when there are too few rows to cross-fit). Standardising puts the scales on one
footing, and the minimum combines their detectors as the maximum of standardised outlier scores
does in outlier ensembles (Aggarwal and Sathe, "Theoretical foundations and algorithms for
outlier ensembles", ACM SIGKDD Explorations 17(1), 2015). The default ``(0, 0.5, 1)`` was chosen
on six anomaly problems that are not in the outlier benchmark
(``benchmarks/results/outlier_bandwidth_detector.md``, 5 seeds): its mean test ROC-AUC was 0.827
against 0.778 for the density alone (``bandwidth=0``), with the gains on clustered anomalies
(an 8-D cluster: 0.581 against 0.125; penguins: 0.923 against 0.900) and the losses on thin or
sharply bounded normal data (an S-shaped sheet: 0.764 against 0.819; outliers next to a dense
cluster: 0.717 against 0.890). Each bandwidth adds a pass of the (shorter) scoring ODE: scoring
costs about 2.5 times the density's. ``bandwidth=0`` scores the log-density itself.

Far from the data the learned velocity is close to linear in ``x``, so the latent point grows
linearly and the score falls quadratically with the distance: scores stay finite and ordered by
distance, with no saturation that would tie far outliers (tested from 10^3 to 10^6 standard
deviations).

Parameters
----------
contamination : "auto" or float in (0, 0.5], default="auto"
    Share of outliers expected in the training data; sets ``offset_`` and the rows left out of
    the final fit, as above.
bandwidth : float >= 0 or sequence of floats >= 0, default=(0.0, 0.5, 1.0)
    Blur of the scored density, in standard deviations of each feature (of the training rows):
    for a number, the score is the log-density of the model convolved with
    ``N(0, (bandwidth sigma_j)^2)`` per feature; 0 scores the model's density, larger values rate
    small clusters of rows as abnormal. For a sequence, the multi-scale score of those blurs
    (above). It applies to the held-out scores, and so to the trimming and to ``offset_``, too.
    A number may be changed after fitting; a sequence is standardised by the fit, so changing it
    needs a new fit.
{density_parameters}

Attributes
----------
offset_ : float
    Threshold of the scores: ``decision_function(X) = score_samples(X) - offset_``.
held_out_scores_ : ndarray of shape (n_samples,) or None
    Score of each training row under the flow fitted on the other half of the rows (NaN for
    rows of weight zero); None when fewer than four rows have a positive weight, in which case
    nothing is trimmed and ``offset_`` comes from the final flow's scores.
trimmed_ : ndarray of shape (n_samples,) of bool
    Training rows that the held-out scores flagged and the final fit left out.
effective_rank_ : int
    Rank of the standardised training data, the degrees of freedom of ``contamination="auto"``.
bandwidths_ : ndarray of shape (n_bandwidths,)
    The bandwidths of the fit, ``bandwidth`` as an array.
score_location_, score_scale_ : ndarray of shape (n_bandwidths,)
    Median and interquartile range of the training rows' held-out log-densities at each
    bandwidth, which standardise the multi-scale score; only set when ``bandwidth`` is a
    sequence of more than one value.
{density_attributes}

See Also
--------
FlowMatchingDensity : The density estimator whose log-density is the score.
sklearn.ensemble.IsolationForest : Outlier detection by random isolation trees.
sklearn.neighbors.LocalOutlierFactor : Outlier detection by relative local density.

Notes
-----
The exact divergence costs ``d`` backward passes per solver step, so scoring dominates the cost in
high dimension; ``divergence="hutchinson"`` is cheaper but noisy.

Examples
--------
>>> import numpy as np
>>> from skflow import FlowMatchingOutlierDetector
>>> X = np.random.default_rng(0).normal(size=(200, 2))
>>> detector = FlowMatchingOutlierDetector(
...     contamination=0.05, hidden_layer_sizes=(32,), max_iter=5, random_state=0
... ).fit(X)
>>> int((detector.predict(X) == -1).sum())
10
>>> detector.predict([[0.0, 0.0], [8.0, 8.0]])
array([ 1, -1])
>>> bool(detector.score_samples([[8.0, 8.0]])[0] < detector.offset_)
True
"""


def _docstring() -> str | None:
    density_doc = FlowMatchingDensity.__doc__
    if density_doc is None:  # python -OO strips docstrings
        return None
    density_doc = inspect.cleandoc(density_doc)
    parameters = _section(density_doc, "Parameters")
    for name, default in OWN_DEFAULTS.items():  # the entry's header line states the default
        shown = f'"{default}"' if isinstance(default, str) else repr(default)
        parameters = re.sub(
            rf"^({name} : .*, default=).*$",
            lambda match: (
                f"{match.group(1)}{shown} (FlowMatchingDensity's differs: see"
                " :data:`~skflow.outlier.OWN_DEFAULTS`)"
            ),
            parameters,
            count=1,
            flags=re.MULTILINE,
        )
    return _DOC.replace("{density_parameters}", parameters).replace(
        "{density_attributes}", _section(density_doc, "Attributes")
    )


FlowMatchingOutlierDetector.__doc__ = _docstring()

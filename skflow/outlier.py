"""FlowMatchingOutlierDetector: anomaly detection by how badly a flow-matching model explains each
row."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, OutlierMixin, _fit_context, clone
from sklearn.utils import _safe_indexing, check_array, check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    has_fit_parameter,
)

from ._base import keeps_state_on_error
from ._cells import columns_of, is_frame, observed_counts
from ._data import draw_seed, row_weights
from ._kinds import categorical_by_dtype, two_valued_columns
from ._thresholds import (
    ThresholdMixin,
    chi_squared_threshold,
    contamination_threshold,
    effective_rank,
)
from .density import FlowMatchingDensity

__all__ = ["DENSITY_DEFAULTS", "RANKING_STEPS", "TRAINING_STEPS", "FlowMatchingOutlierDetector"]

DENSITY_DEFAULTS: dict[str, object] = {
    "architecture": "mlp",
    "hidden_layer_sizes": (64, 64),
    "batch_size": 256,
    "time_distribution": "uniform",
    "early_stopping": False,
    "n_fourier_features": 0,
    "n_steps": 8,
    "step_exponent": 1.0,
}
"""The hyperparameters of the :class:`~skflow.FlowMatchingDensity` that ``estimator=None`` stands
for, where they differ from its defaults: a small network trained on every row it is given with a
budget of ``TRAINING_STEPS`` minibatches (``RANKING_STEPS`` for the first of two fits), and eight
solver steps for ``method="log_density"``. The benchmark behind them is in the
:ref:`User Guide <outliers>`."""

TRAINING_STEPS = 300
"""Training budget of the fit of the default density that scores, in full minibatches:
``max_iter`` is ``ceil(TRAINING_STEPS b / n)`` epochs of the ``n`` rows of that fit in
minibatches of ``b = min(256, n)``, so the flow sees ``TRAINING_STEPS b`` rows or a few more.
That is as many optimiser steps where ``b`` divides ``n``, and more where an epoch ends with a
partial minibatch (at most twice as many, for ``n`` just above 256)."""

RANKING_STEPS = 100
"""Training budget of the first of the default density's two fits, in full minibatches as for
``TRAINING_STEPS``: that fit only ranks the training rows for the second, and a third of the
budget ranks them about as well (the :ref:`User Guide <outliers>`)."""

METHODS = ("flow_matching_loss", "log_density")


class FlowMatchingOutlierDetector(ThresholdMixin, OutlierMixin, MetaEstimatorMixin, BaseEstimator):
    """Outlier detection by a flow-matching model of the training rows.

    A :class:`~skflow.FlowMatchingDensity` (or another density estimator, ``estimator``) is fitted
    to the training rows, and each row is scored by how well the model explains it; higher means
    more normal, as for :class:`~sklearn.ensemble.IsolationForest`, and a row is an outlier when
    ``decision_function(x) = score_samples(x) - offset_`` is negative.

    **Scores.** ``method="flow_matching_loss"`` (the default) scores a row ``x`` by minus its
    flow-matching loss averaged over ten times ``t`` along the path and four base draws ``x_0``
    at each (:meth:`FlowMatchingDensity.flow_matching_loss`),

    .. math::

        s(x) = -\\frac{1}{K} \\sum_{k=1}^{K} \\mathbb{E}_{x_0}
            \\left| v(t_k, x_{t_k}) - u_{t_k}(x_0, x) \\right|^2 ,

    the loss that training minimises over the training rows. A row like the training rows is
    carried by the path to points whose learned velocity points back at it, at every noise level;
    an abnormal row is not, whether it lies far out (high noise levels see it) or in a gap between
    clusters (low ones do). This is the reconstruction score of diffusion-model detectors
    (Livernoche et al., *On Diffusion Modeling for Anomaly Detection*, ICLR 2024), taken over all
    noise levels at once; it costs forty evaluations of the network per row and no ODE solve.
    ``method="log_density"`` scores by the flow's log-density instead
    (:meth:`FlowMatchingDensity.score_samples`): a calibrated likelihood, in the units of ``X``,
    at the cost of an ODE solve with the divergence per row.

    **Training.** The estimator is fitted twice: on every training row, and again on the
    ``support_fraction`` of them that the first fit scores as most normal, which is the model
    that scores. A density partly learns the outliers it is fitted on, above all a small group of
    similar ones, which it takes for a mode; the second fit leaves them out. It is one
    concentration step of the minimum covariance determinant (Rousseeuw and Van Driessen, *A
    Fast Algorithm for the Minimum Covariance Determinant Estimator*, Technometrics 41, 1999),
    with a flow in place of the Gaussian. Every training row, in the support or not, is scored by
    the second fit for ``offset_`` and ``decision_scores_``. With the default density the first
    fit, which only ranks, has a third of the second's budget. An interrupt (Ctrl-C) in the
    first fit ends training there, and that fit scores.

    **Binary columns.** With the default density, a numeric column whose training values take
    exactly two distinct values is a categorical (Bernoulli) column of that density
    (``categorical_features``), in each fit where both values occur; a continuous density of a
    two-point column is a pair of spikes, whose height the fit, not the data, decides. A new row
    with a third value in such a column scores ``-inf``, as an unseen category does in
    :meth:`FlowMatchingDensity.score_samples`.

    **Threshold.** For a float ``contamination``, ``offset_`` is the ``contamination`` quantile of
    the scores of the training rows (scikit-learn's convention). For ``"auto"`` it is a
    chi-squared test fitted to those scores ``s``,

    .. math::

        \\mathrm{offset} = \\mathrm{med}(s) - \\frac{q_{0.99} - q_{0.5}}{q_{0.75} - q_{0.25}}
            \\mathrm{IQR}(s),

    with ``q_p`` the quantiles of the chi-squared law whose degrees of freedom are the rank of the
    training data (``effective_rank_``). For standard Gaussian data both scores are affine in the
    squared distance from the mean, which follows that law, so this is the 1 % chi-squared test
    of the distance; for other data it is that test with the location and scale of the scores
    matched by their median and quartiles, which the outliers among the training rows barely
    move. A training row that the second fit cannot hold (a category none of its rows has)
    scores ``-inf`` and is an outlier at any threshold; ``"auto"`` is fitted to the others.

    The fitted detector also has PyOD's names: ``decision_scores_``, ``threshold_``, ``labels_``
    and :meth:`predict_proba`. Read more in the :ref:`User Guide <outliers>`.

    Parameters
    ----------
    estimator : estimator, default=None
        The density estimator, cloned and fitted on the training rows: any estimator with ``fit``
        and ``score_samples`` (a log-density, or any score where higher is more normal), and
        ``flow_matching_loss`` for ``method="flow_matching_loss"``. None means
        ``FlowMatchingDensity(**DENSITY_DEFAULTS, max_iter=ceil(300 b / n))`` for the ``n`` rows
        of the fit that scores and minibatches of ``b = min(256, n)``: a small network trained
        on 300 minibatches' worth of rows, 100 for the first of two fits
        (:data:`~skflow.outlier.DENSITY_DEFAULTS`, :data:`~skflow.outlier.TRAINING_STEPS`,
        :data:`~skflow.outlier.RANKING_STEPS`), with the two-valued columns categorical (see
        "Binary columns" above).
    contamination : "auto" or float in (0, 0.5], default="auto"
        Share of outliers expected in the training data; sets ``offset_``.
    support_fraction : float in (0, 1], default=0.75
        Share of the training rows (of those with a positive weight) that the second fit is
        fitted on: those the first fit scores as most normal, and at least two. 1 fits once, on
        every row, as does a fraction that keeps every row (three rows or fewer at 0.75).
    method : {"flow_matching_loss", "log_density"}, default="flow_matching_loss"
        What a row is scored by (see above). May be changed after fitting, but ``offset_`` is
        on the scale of the score it was fitted with.
    random_state : int, RandomState instance or None, default=None
        Seeds the fits of the estimator (set as its ``random_state``, where it has one) and the
        draws of the flow-matching score. Pass an int for reproducible fits.
    allow_missing : bool, default=False
        Fit and score rows with missing cells (NaN): the default density is fitted with
        ``allow_missing=True`` (:class:`FlowMatchingDensity`), and a given ``estimator`` must
        accept NaN itself (its ``allow_nan`` tag). A row with missing cells is scored by its
        observed cells, times ``n_features_in_`` over their number, so that rows with and
        without holes are on one scale; a row without an observed cell scores 0.

    Attributes
    ----------
    estimator_ : estimator
        The density estimator that scores: the second fit, on the most normal training rows (the
        only one with ``support_fraction=1``).
    support_ : ndarray of shape (n_samples,), dtype=bool
        Mask of the training rows that ``estimator_`` was fitted on (every row of positive
        weight where it was fitted once), as :class:`~sklearn.covariance.MinCovDet` has it.
    offset_ : float
        Threshold of the scores: ``decision_function(X) = score_samples(X) - offset_``.
    decision_scores_ : ndarray of shape (n_samples,)
        Outlier score of each training row, ``-score_samples`` (higher = more abnormal; NaN for
        rows of weight zero), as PyOD's detectors have it.
    threshold_ : float
        ``-offset_``: the threshold of ``decision_scores_``.
    labels_ : ndarray of shape (n_samples,)
        1 for the training rows above ``threshold_``, 0 for the others (PyOD's labels).
    effective_rank_ : int
        Rank of the standardised training data, the degrees of freedom of
        ``contamination="auto"``.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in :meth:`fit`, when ``X`` had string column names.

    See Also
    --------
    FlowMatchingDensity : The default density estimator.
    sklearn.ensemble.IsolationForest : Outlier detection by random isolation trees.
    sklearn.covariance.MinCovDet : The Gaussian estimate that concentration steps come from.

    Notes
    -----
    The training rows are scored by a model fitted on most of them, so they look a little more
    normal than new rows of the same law, and that model has not seen the tails of the law: with
    ``contamination="auto"`` new inliers are flagged more often than the test's 1 % (2 % on
    standard Gaussian data in two dimensions; see the :ref:`User Guide <outliers>`).

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowMatchingOutlierDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> detector = FlowMatchingOutlierDetector(contamination=0.05, random_state=0).fit(X)
    >>> int(detector.labels_.sum())
    10
    >>> detector.predict([[0.0, 0.0], [8.0, 8.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "score_samples"]), None],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "support_fraction": [Interval(Real, 0, 1, closed="right")],
        "method": [StrOptions(set(METHODS))],
        "random_state": ["random_state"],
        "allow_missing": ["boolean"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        contamination: str | float = "auto",
        support_fraction: float = 0.75,
        method: str = "flow_matching_loss",
        random_state=None,
        allow_missing: bool = False,
    ) -> None:
        self.estimator = estimator
        self.contamination = contamination
        self.support_fraction = support_fraction
        self.method = method
        self.random_state = random_state
        self.allow_missing = allow_missing

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the density estimator to the training rows, then to the most normal of them
        (``support_fraction``), score them and set ``offset_``.

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
        # the estimator checks the values (and their column kinds); the detector the table's shape
        if not is_frame(X):
            X = check_array(X, dtype=None, ensure_all_finite=False, ensure_min_samples=2)
        _check_feature_names(self, X, reset=True)
        _check_n_features(self, X, reset=True)
        weight = row_weights(sample_weight, X)
        counted = weight > 0
        template = self.estimator
        n_counted = int(counted.sum())
        refit = _support_size(n_counted, self.support_fraction) < n_counted
        if template is None:
            binary = two_valued_columns(X, counted)
            steps = RANKING_STEPS if refit else TRAINING_STEPS
            template = _default_density(X, counted, binary, self.allow_missing, steps)
        elif self.allow_missing and not get_tags(template).input_tags.allow_nan:
            raise ValueError(
                f"allow_missing=True needs an estimator that accepts NaN (its allow_nan tag); "
                f"{type(template).__name__} with these parameters does not (for "
                "FlowMatchingDensity, set allow_missing=True on it)."
            )
        if sample_weight is not None and not has_fit_parameter(template, "sample_weight"):
            raise TypeError(
                f"estimator {type(template).__name__} does not accept sample_weight in fit."
            )
        _check_method(template, self.method)
        rng = check_random_state(self.random_state)
        estimator = _fit_clone(template, X, weight, rng)
        support = counted
        # an interrupt (Ctrl-C) in the first fit ends training: that fit is kept
        if refit and getattr(estimator, "stop_reason_", None) != "interrupted":
            support = _most_normal(
                _scores(estimator, X, self.method), counted, self.support_fraction
            )
            if self.estimator is None:  # a column two-valued in X is so in the support
                binary &= two_valued_columns(X, support)
                template = _default_density(X, support, binary, self.allow_missing, TRAINING_STEPS)
            estimator = _fit_clone(template, X, np.where(support, weight, 0.0), rng)
        scores = _scores(estimator, X, self.method)
        rank = effective_rank(_numeric_view(_safe_indexing(X, counted)))
        if self.contamination == "auto":
            # rows the scoring fit cannot hold (-inf: a category outside the support) are
            # outliers at any threshold; the law is fitted to the others
            offset = chi_squared_threshold(scores[counted & np.isfinite(scores)], rank)
        else:
            offset = contamination_threshold(scores[counted], self.contamination)
        self.estimator_ = estimator
        self.support_ = support
        self.effective_rank_ = rank
        self.offset_ = offset
        self.decision_scores_ = np.where(counted, -scores, np.nan)
        return self

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each row: minus its flow-matching loss, or its log-density in the
        units of ``X`` (``method``).

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
        _check_method(self.estimator_, self.method)
        if not is_frame(X):
            X = check_array(X, dtype=None, ensure_all_finite=False)
        _check_feature_names(self, X, reset=False)
        _check_n_features(self, X, reset=False)
        return _scores(self.estimator_, X, self.method)

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
            ``mean(score_samples(X))``.
        """
        return float(np.mean(self.score_samples(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.allow_missing
        return tags


def _default_density(
    X, rows: np.ndarray, binary: np.ndarray, allow_missing: bool, steps: int
) -> FlowMatchingDensity:
    """The density that ``estimator=None`` stands for, for a fit of ``steps`` minibatches on the
    ``rows`` of ``X`` (a boolean mask): the ``binary`` columns are categorical, with those
    categorical by dtype."""
    n_rows = int(rows.sum())
    batch = min(DENSITY_DEFAULTS["batch_size"], n_rows)
    categorical = "from_dtype"
    if binary.any():
        categorical = np.flatnonzero(binary | categorical_by_dtype(X)).tolist()
    return FlowMatchingDensity(
        **DENSITY_DEFAULTS,
        max_iter=math.ceil(steps * batch / n_rows),
        categorical_features=categorical,
        allow_missing=allow_missing,
    )


def _fit_clone(template, X, weight: np.ndarray, rng: np.random.RandomState):
    """A clone of ``template`` seeded from ``rng`` and fitted on the rows of positive ``weight``
    (with their weights, where its ``fit`` takes them)."""
    estimator = clone(template)
    if "random_state" in estimator.get_params(deep=False):
        estimator.set_params(random_state=draw_seed(rng))
    rows = weight > 0
    if not rows.all():
        X = _safe_indexing(X, rows)
    if has_fit_parameter(estimator, "sample_weight"):
        return estimator.fit(X, sample_weight=weight[rows])
    return estimator.fit(X)


def _most_normal(scores: np.ndarray, counted: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of the ``ceil(fraction n)`` (at least two) of the ``n`` ``counted`` rows with the
    highest scores; ties go to the earlier row."""
    rows = np.flatnonzero(counted)
    keep = _support_size(len(rows), fraction)
    order = np.argsort(-scores[rows], kind="stable")
    support = np.zeros(len(scores), dtype=bool)
    support[rows[order[:keep]]] = True
    return support


def _support_size(n_rows: int, fraction: float) -> int:
    """How many of ``n_rows`` rows the second fit is fitted on: ``ceil(fraction n)``, at least
    two (and at most ``n_rows``)."""
    return min(n_rows, max(2, math.ceil(fraction * n_rows)))


def _check_method(estimator, method: str) -> None:
    if method == "flow_matching_loss" and not hasattr(estimator, "flow_matching_loss"):
        raise TypeError(
            f'method="flow_matching_loss" needs an estimator with flow_matching_loss; '
            f'{type(estimator).__name__} has none: set method="log_density".'
        )


def _numeric_view(X) -> np.ndarray:
    """The rows as numbers, for the rank of ``contamination="auto"``: a column that is not
    numeric by the codes of its distinct values."""
    if not is_frame(X):
        try:
            return np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            pass
    view = []
    for values in columns_of(X):
        try:
            view.append(np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError):
            view.append(np.unique(values.astype(str), return_inverse=True)[1].astype(np.float64))
    return np.column_stack(view)


def _scores(estimator, X, method: str) -> np.ndarray:
    """Normality scores of the rows of ``X`` under the fitted ``estimator``; those of rows with
    missing cells times the number of columns over that of their observed cells."""
    if method == "log_density":
        scores = estimator.score_samples(X)
    else:
        scores = -estimator.flow_matching_loss(X).mean(axis=1)
    observed = observed_counts(X)
    return np.where(observed > 0, scores * X.shape[1] / np.maximum(observed, 1), 0.0)

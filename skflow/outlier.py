"""FlowMatchingOutlierDetector: anomaly detection by how badly a flow-matching model explains each
row."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, OutlierMixin, _fit_context, clone
from sklearn.utils import _safe_indexing, check_array, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    has_fit_parameter,
)

from ._base import keeps_state_on_error
from ._columns import is_frame
from ._data import draw_seed, row_weights
from ._thresholds import (
    ThresholdMixin,
    chi_squared_threshold,
    contamination_threshold,
    effective_rank,
)
from .density import FlowMatchingDensity

__all__ = ["DENSITY_DEFAULTS", "TRAINING_STEPS", "FlowMatchingOutlierDetector"]

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
for, where they differ from its defaults: a small network trained on every row with a budget of
``TRAINING_STEPS`` minibatches, and eight solver steps for ``method="log_density"``. The benchmark
behind them is in the :ref:`User Guide <outliers>`."""

TRAINING_STEPS = 600
"""Training budget of the default density, in full minibatches: ``max_iter`` is
``ceil(TRAINING_STEPS b / n)`` epochs of ``n`` training rows in minibatches of ``b = min(256, n)``,
so the flow sees ``TRAINING_STEPS b`` rows or a few more. That is as many optimiser steps where
``b`` divides ``n``, and more where an epoch ends with a partial minibatch (at most twice as many,
for ``n`` just above 256)."""

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
    move.

    The fitted detector also has PyOD's names: ``decision_scores_``, ``threshold_``, ``labels_``
    and :meth:`predict_proba`. Read more in the :ref:`User Guide <outliers>`.

    Parameters
    ----------
    estimator : estimator, default=None
        The density estimator, cloned and fitted on the training rows: any estimator with ``fit``
        and ``score_samples`` (a log-density, or any score where higher is more normal), and
        ``flow_matching_loss`` for ``method="flow_matching_loss"``. None means
        ``FlowMatchingDensity(**DENSITY_DEFAULTS, max_iter=ceil(600 b / n))`` for ``n`` training
        rows and minibatches of ``b = min(256, n)``: a small network trained on 600 minibatches'
        worth of rows (:data:`~skflow.outlier.DENSITY_DEFAULTS`,
        :data:`~skflow.outlier.TRAINING_STEPS`).
    contamination : "auto" or float in (0, 0.5], default="auto"
        Share of outliers expected in the training data; sets ``offset_``.
    method : {"flow_matching_loss", "log_density"}, default="flow_matching_loss"
        What a row is scored by (see above). May be changed after fitting, but ``offset_`` is
        on the scale of the score it was fitted with.
    random_state : int, RandomState instance or None, default=None
        Seeds the fit of the estimator (set as its ``random_state``, where it has one) and the
        draws of the flow-matching score. Pass an int for reproducible fits.

    Attributes
    ----------
    estimator_ : estimator
        The density estimator fitted on the training rows.
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

    Notes
    -----
    The training rows are scored by the model fitted on them, so they look a little more normal
    than new rows of the same law: with ``contamination="auto"`` new inliers are flagged a little
    more often than the test's 1 %.

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
        "method": [StrOptions(set(METHODS))],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        contamination: str | float = "auto",
        method: str = "flow_matching_loss",
        random_state=None,
    ) -> None:
        self.estimator = estimator
        self.contamination = contamination
        self.method = method
        self.random_state = random_state

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the density estimator to the training rows, score them and set ``offset_``.

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
        if template is None:
            n_rows = int(counted.sum())
            batch = min(DENSITY_DEFAULTS["batch_size"], n_rows)
            epochs = math.ceil(TRAINING_STEPS * batch / n_rows)
            template = FlowMatchingDensity(**DENSITY_DEFAULTS, max_iter=epochs)
        if sample_weight is not None and not has_fit_parameter(template, "sample_weight"):
            raise TypeError(
                f"estimator {type(template).__name__} does not accept sample_weight in fit."
            )
        _check_method(template, self.method)
        estimator = clone(template)
        if "random_state" in estimator.get_params(deep=False):
            seed = draw_seed(check_random_state(self.random_state))
            estimator.set_params(random_state=seed)
        if has_fit_parameter(estimator, "sample_weight"):
            estimator.fit(X, sample_weight=weight)
        else:
            estimator.fit(_safe_indexing(X, counted))
        scores = _scores(estimator, X, self.method)
        rank = effective_rank(_numeric_view(_safe_indexing(X, counted)))
        if self.contamination == "auto":
            offset = chi_squared_threshold(scores[counted], rank)
        else:
            offset = contamination_threshold(scores[counted], self.contamination)
        self.estimator_ = estimator
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
            X = np.asarray(X, dtype=object)
            columns = [X[:, j] for j in range(X.shape[1])]
    else:
        columns = [X.iloc[:, j].to_numpy() for j in range(X.shape[1])]
    view = []
    for values in columns:
        try:
            view.append(np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError):
            view.append(np.unique(values.astype(str), return_inverse=True)[1].astype(np.float64))
    return np.column_stack(view)


def _scores(estimator, X, method: str) -> np.ndarray:
    """Normality scores of the rows of ``X`` under the fitted ``estimator``."""
    if method == "log_density":
        return estimator.score_samples(X)
    return -estimator.flow_matching_loss(X).mean(axis=1)

"""SubspaceOutlierEnsemble: outlier detectors fitted on random subsets of the features, averaged.

A density estimator needs rows in proportion to the dimension; with a few hundred rows in 64
dimensions the flow's log-density ranks new rows poorly, while the same flow on a handful of
features at a time estimates each low-dimensional marginal well. The ensemble fits a clone of an
outlier detector (by default :class:`~skflow.FlowMatchingOutlierDetector`) on each of several
random feature subsets and averages their standardised scores (feature bagging).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, RealNotInt, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)

from ._base import keeps_state_on_error, was_interrupted
from ._thresholds import ThresholdMixin, contamination_threshold, median_and_iqr
from .outlier import FlowMatchingOutlierDetector

__all__ = ["SubspaceOutlierEnsemble", "subspace_size"]


def subspace_size(n_features: int) -> int:
    """Features per member for ``max_features="auto"``: ``min(d, 2 + ceil(sqrt(d) / 2))``.

    The subspace dimension of rotated bagging (Aggarwal and Sathe, "Theoretical foundations and
    algorithms for outlier ensembles", ACM SIGKDD Explorations 17(1), 2015; Aggarwal, "Outlier
    Analysis", 2nd ed., Springer, 2017, section 6.4): low enough that each member's density is
    estimated from few rows, and growing with ``d`` so that members see feature interactions.

    Parameters
    ----------
    n_features : int
        Number of features ``d`` of the data.

    Returns
    -------
    int
        6 features for ``d = 64``, 5 for 30, 4 for 13, all of them for ``d <= 3``.
    """
    return min(n_features, 2 + math.ceil(math.sqrt(n_features) / 2))


class SubspaceOutlierEnsemble(ThresholdMixin, OutlierMixin, BaseEstimator):
    """Outlier detection by an ensemble of detectors on random feature subsets (feature bagging).

    Each of ``n_estimators`` clones of ``estimator`` is fitted on its own random subset of
    ``max_features`` features, drawn without replacement (Lazarevic and Kumar, "Feature bagging
    for outlier detection", KDD 2005). The members' scores are put on one footing and averaged:

    .. math::

        s(x) = \\frac{1}{K} \\sum_{k=1}^{K} \\frac{s_k(x_{F_k}) - m_k}{w_k},

    where ``s_k`` is member ``k``'s ``score_samples`` on its features ``F_k``, and ``m_k``, ``w_k``
    are the median and the interquartile range of its scores of its training rows. Higher means
    more normal. The average lowers the variance of the members' scores, the gain that Aggarwal
    and Sathe's bias-variance analysis of outlier ensembles (2015) credits subspace ensembles
    with; a row is abnormal when it is abnormal in many subspaces.

    **Why subspaces help a density detector.** With few rows per feature, a density estimate in
    the full space is noisy, and so is its ranking of new rows; on a handful of features it is
    estimated from the same rows much better. So the default ``max_features="auto"`` takes the
    small subspaces of rotated bagging, :func:`~skflow.ensemble.subspace_size` (6 of 64
    features). Twelve members by default, because two ensembles that differ only in their random
    draws should rank new rows alike, and fewer members leave much of the ranking to the draw.
    The cost is that of ``n_estimators`` detectors on fewer features each. The measurements are
    in the :ref:`User Guide <outliers>`.

    **Threshold.** ``contamination`` is passed on to every member that has that parameter (it
    sets what each member trims from its fit) and sets ``offset_``: for a float, the
    ``contamination`` quantile of the ensemble's scores of the training rows, so that this share
    of them is flagged; for ``"auto"``, the mean of the members' standardised thresholds
    ``(offset_k - m_k) / w_k``: the score of a row that sits at every member's threshold. Since
    the average of disagreeing members varies less than one member, this flags fewer rows than
    each member would on its own.

    Parameters
    ----------
    estimator : outlier detector, default=None
        The member to clone: an estimator with ``fit`` and ``score_samples`` (higher = more
        normal), and ``offset_`` for ``contamination="auto"``. None means
        ``FlowMatchingOutlierDetector()`` with its defaults.
    n_estimators : int >= 1, default=12
        Number of members. More members make the score depend less on the random draw of the
        subsets and the seeds, at a cost in proportion.
    max_features : "auto", int >= 1 or float in (0, 1], default="auto"
        Features per member: ``"auto"`` for :func:`~skflow.ensemble.subspace_size` of the number
        of features, an int for that many (at most the number of features), a float for that
        share of them (at least one).
    contamination : "auto" or float in (0, 0.5], default="auto"
        Share of outliers expected in the training data (see above).
    n_jobs : int or None, default=None
        Members fitted and scored in parallel by joblib; None means one at a time, -1 all
        cores. The members' own threads are not limited by this.
    random_state : int, RandomState instance or None, default=None
        Draws the feature subsets and seeds the members (their ``random_state``, where they have
        one). Pass an int for reproducible fits.

    Attributes
    ----------
    estimators_ : list of fitted estimators
        The members.
    estimators_features_ : list of ndarray of shape (`max_features_`,)
        The sorted feature indices that each member was fitted on.
    max_features_ : int
        Features per member.
    score_location_, score_scale_ : ndarray of shape (n_estimators,)
        Median and interquartile range of each member's scores of its training rows, which
        standardise its scores.
    offset_ : float
        Threshold of the scores: ``decision_function(X) = score_samples(X) - offset_``.
    decision_scores_ : ndarray of shape (n_samples,)
        Outlier score of each training row, ``-score_samples`` (higher = more abnormal; NaN for
        rows of weight zero), as PyOD's detectors have it.
    threshold_ : float
        ``-offset_``: the threshold of ``decision_scores_``.
    labels_ : ndarray of shape (n_samples,)
        1 for the training rows above ``threshold_``, 0 for the others (PyOD's labels).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features seen during fit, when ``X`` has string column names.

    See Also
    --------
    FlowMatchingOutlierDetector : The default member.
    sklearn.ensemble.IsolationForest : An ensemble of random isolation trees.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector, SubspaceOutlierEnsemble
    >>> X = np.random.default_rng(0).normal(size=(200, 8))
    >>> density = FlowMatchingDensity(hidden_layer_sizes=(32,), max_iter=5)
    >>> member = FlowMatchingOutlierDetector(density)
    >>> ensemble = SubspaceOutlierEnsemble(
    ...     member, n_estimators=3, contamination=0.05, random_state=0
    ... ).fit(X)
    >>> ensemble.max_features_, len(ensemble.estimators_)
    (4, 3)
    >>> ensemble.predict(np.vstack([np.zeros(8), np.full(8, 6.0)]))
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "score_samples"]), None],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "max_features": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="right"),
        ],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        n_estimators: int = 12,
        max_features: str | int | float = "auto",
        contamination: str | float = "auto",
        n_jobs: int | None = None,
        random_state=None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.contamination = contamination
        self.n_jobs = n_jobs
        self.random_state = random_state

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, sample_weight=None):
        """Fit every member on its feature subset, standardise their scores and set ``offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows, mostly normal; at least two.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights, passed on to every member's ``fit`` (which must accept
            them); rows of weight zero do not shape the standardisation or ``offset_``.

        Returns
        -------
        self : SubspaceOutlierEnsemble
            The fitted ensemble.
        """
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        template = FlowMatchingOutlierDetector() if self.estimator is None else self.estimator
        fit_params = {}
        counted = np.ones(X.shape[0], dtype=bool)
        if sample_weight is not None:
            if not has_fit_parameter(template, "sample_weight"):
                raise TypeError(
                    f"estimator {type(template).__name__} does not accept sample_weight in fit."
                )
            weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
            fit_params["sample_weight"] = weight
            counted = weight > 0
        if self.contamination == "auto" and not hasattr(template, "decision_function"):
            raise TypeError(
                'contamination="auto" takes the threshold from the members\' offset_, but '
                f"estimator {type(template).__name__} is not an outlier detector; pass a float "
                "contamination."
            )
        size = self._max_features(X.shape[1])
        rng = check_random_state(self.random_state)
        features = [
            np.sort(rng.choice(X.shape[1], size, replace=False)) for _ in range(self.n_estimators)
        ]
        members = [self._member(template, rng) for _ in range(self.n_estimators)]
        fitted = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(member, X[:, columns], fit_params)
            for member, columns in zip(members, features)
        )
        # each member's scores of its training rows, one column per member
        training = np.column_stack(
            [_training_scores(member, X[:, columns]) for member, columns in zip(fitted, features)]
        )
        location, scale = median_and_iqr(training[counted])
        self.estimators_ = fitted
        self.estimators_features_ = features
        self.max_features_ = size
        self.score_location_ = location
        self.score_scale_ = scale
        scores = self._combine(training)
        if self.contamination == "auto":
            offsets = np.array([member.offset_ for member in fitted])
            self.offset_ = float(np.mean((offsets - location) / scale))
        else:  # a float: flag that share of the training rows (scikit-learn's convention)
            self.offset_ = contamination_threshold(scores[counted], self.contamination)
        self.decision_scores_ = np.where(counted, -scores, np.nan)
        return self

    def _max_features(self, n_features: int) -> int:
        """``max_features`` as a number of features, checked against ``n_features``."""
        if self.max_features == "auto":
            return subspace_size(n_features)
        if isinstance(self.max_features, Integral):
            if self.max_features > n_features:
                raise ValueError(
                    f"max_features={self.max_features} is more than the {n_features} features of X."
                )
            return int(self.max_features)
        return max(1, int(self.max_features * n_features))

    def _member(self, template, rng: np.random.RandomState):
        """An unfitted clone of ``template`` with the ensemble's contamination and a seed."""
        member = clone(template)
        params = member.get_params(deep=False)
        if "contamination" in params:
            member.set_params(contamination=self.contamination)
        if "random_state" in params:
            member.set_params(random_state=int(rng.randint(np.iinfo(np.int32).max)))
        return member

    def _combine(self, scores: np.ndarray) -> np.ndarray:
        """Mean over the members (columns) of their standardised scores."""
        return ((scores - self.score_location_) / self.score_scale_).mean(axis=1)

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each row: the mean of the members' standardised scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The lower, the more abnormal; in interquartile ranges of the members' training
            scores, 0 for a row at the median of every member.
        """
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = Parallel(n_jobs=self.n_jobs)(
            delayed(member.score_samples)(X[:, columns])
            for member, columns in zip(self.estimators_, self.estimators_features_)
        )
        return self._combine(np.column_stack(scores))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def _fit_member(member, X: np.ndarray, fit_params: dict):
    """``member`` fitted on ``X`` (its feature subset); a module function, for joblib.

    A flow whose training a KeyboardInterrupt stopped early keeps its partial model; here that
    ends the ensemble's fit instead of going on to the next member.
    """
    member.fit(X, **fit_params)
    if was_interrupted(member):
        raise KeyboardInterrupt(
            "interrupted while fitting a member; the ensemble is left as it was"
        )
    return member


def _training_scores(member, X: np.ndarray) -> np.ndarray:
    """The member's scores of its training rows ``X``: minus its ``decision_scores_`` where it
    has them (rows of weight zero scored afresh), else its ``score_samples``."""
    outlier_scores = getattr(member, "decision_scores_", None)
    if outlier_scores is None:
        return member.score_samples(X)
    scores = -np.asarray(outlier_scores, dtype=np.float64)
    unscored = ~np.isfinite(scores)
    if unscored.any():
        scores[unscored] = member.score_samples(X[unscored])
    return scores

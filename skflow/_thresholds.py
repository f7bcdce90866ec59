"""Thresholds of the outlier detector: ``contamination``, ``offset_``, ``decision_function`` and
``predict``, and PyOD's names for them."""

from __future__ import annotations

import numpy as np
from scipy.special import erf
from scipy.stats import chi2
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "AUTO_LEVEL",
    "ThresholdMixin",
    "chi_squared_threshold",
    "contamination_threshold",
    "effective_rank",
]

AUTO_LEVEL = 0.01
"""Level of the chi-squared test that ``contamination="auto"`` is on Gaussian data."""


PROBABILITY_METHODS = ("linear", "unify")


class ThresholdMixin:
    """``decision_function`` and ``predict`` of a detector with ``score_samples`` and ``offset_``,
    as in :class:`sklearn.ensemble.IsolationForest`, and the names of PyOD's detectors.

    A detector's ``fit`` sets ``offset_`` and ``decision_scores_`` (the outlier scores of the
    training rows, ``-score_samples``); ``threshold_``, ``labels_`` and :meth:`predict_proba`
    follow from them as in PyOD (Zhao, Nasrullah and Li, *PyOD: A Python Toolbox for Scalable
    Outlier Detection*, JMLR 20, 2019), where higher scores are more abnormal and 1 marks an
    outlier.
    """

    @property
    def threshold_(self) -> float:
        """Threshold of the outlier scores ``decision_scores_``: ``-offset_`` (PyOD's name)."""
        check_is_fitted(self, "offset_")
        return -self.offset_

    @property
    def labels_(self) -> np.ndarray:
        """Labels of the training rows as PyOD gives them: 1 for an outlier
        (``decision_scores_ > threshold_``), 0 for an inlier."""
        check_is_fitted(self, "decision_scores_")
        return (self.decision_scores_ > self.threshold_).astype(int)

    def predict_proba(self, X, method: str = "linear") -> np.ndarray:
        """Probability of each row being an inlier and an outlier, from its outlier score
        ``-score_samples(X)`` relative to those of the training rows, as PyOD's detectors give it.

        ``"linear"`` scales the score by the smallest and largest training scores,
        ``(s - min) / (max - min)`` clipped to ``[0, 1]``; ``"unify"`` is the Gaussian scaling
        of Kriegel et al. (*Interpreting and Unifying Outlier Scores*, SDM 2011),
        ``max(0, erf((s - mean) / (std sqrt 2)))`` with the training scores' mean and standard
        deviation. Either is a monotone map of the score, not a calibrated probability.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.
        method : {"linear", "unify"}, default="linear"
            The scaling of the score.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Column 0 the probability of an inlier, column 1 that of an outlier.
        """
        check_is_fitted(self, "decision_scores_")
        if method not in PROBABILITY_METHODS:
            raise ValueError(f"method must be one of {PROBABILITY_METHODS}, got {method!r}.")
        train = self.decision_scores_[np.isfinite(self.decision_scores_)]
        scores = -self.score_samples(X)
        if method == "linear":
            span = max(train.max() - train.min(), np.finfo(np.float64).tiny)
            outlier = np.clip((scores - train.min()) / span, 0.0, 1.0)
        else:
            spread = max(train.std(), np.finfo(np.float64).tiny) * np.sqrt(2.0)
            outlier = np.clip(erf((scores - train.mean()) / spread), 0.0, 1.0)
        return np.column_stack([1.0 - outlier, outlier])

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


def contamination_threshold(scores: np.ndarray, contamination: float) -> float:
    """The ``contamination`` quantile of training scores: that share of the rows falls below it
    (scikit-learn's convention for a float ``contamination``). Scores of ``-inf`` count as the
    lowest: where more than that share of rows have one, the threshold lies just above them."""
    finite = scores[np.isfinite(scores)]
    floor = finite.min() - 1.0 if finite.size else 0.0
    return float(np.percentile(np.maximum(scores, floor), 100.0 * contamination))


def chi_squared_threshold(scores: np.ndarray, rank: int) -> float:
    """``contamination="auto"``: the ``AUTO_LEVEL`` point of a ``chi2_rank / 2`` law whose median
    and interquartile range are matched to those of ``scores``.

    For Gaussian data scored by their exact log-density, ``s(x) = c - M(x)^2 / 2`` with ``M`` the
    Mahalanobis distance and ``M^2 ~ chi2_rank``, so the threshold is the chi-squared test of ``M``
    at level ``AUTO_LEVEL``; the median and quartiles barely move with outliers among the rows.
    """
    q25, q50, q75, q_tail = chi2.ppf([0.25, 0.5, 0.75, 1.0 - AUTO_LEVEL], rank)
    s25, s50, s75 = np.percentile(scores, [25, 50, 75])
    return float(s50 - (q_tail - q50) / (q75 - q25) * (s75 - s25))


def effective_rank(X: np.ndarray) -> int:
    """Numerical rank of the centred, standardised rows (at least 1): constant and duplicated
    columns do not add to it. A missing cell (NaN) counts at its column's mean."""
    centred = np.nan_to_num(X - np.nanmean(X, axis=0))
    scale = np.sqrt((centred**2).mean(axis=0))
    peak = np.nanmax(np.abs(X), axis=0)
    varying = scale > 10 * np.finfo(np.float64).eps * np.maximum(peak, 1.0)
    if not varying.any():
        return 1
    return max(1, int(np.linalg.matrix_rank(centred[:, varying] / scale[varying])))

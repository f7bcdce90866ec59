"""Thresholds of the outlier detectors: ``contamination``, ``offset_``, ``decision_function`` and
``predict``, with the robust standardisation that puts scores on one footing."""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "AUTO_LEVEL",
    "ThresholdMixin",
    "chi_squared_threshold",
    "contamination_threshold",
    "effective_rank",
    "median_and_iqr",
]

AUTO_LEVEL = 0.01
"""Level of the chi-squared test that ``contamination="auto"`` is on Gaussian data."""


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


def contamination_threshold(scores: np.ndarray, contamination: float) -> float:
    """The ``contamination`` quantile of training scores: that share of the rows falls below it
    (scikit-learn's convention for a float ``contamination``)."""
    return float(np.percentile(scores, 100.0 * contamination))


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


def effective_rank(X: np.ndarray) -> int:
    """Numerical rank of the centred, standardised rows (at least 1): constant and duplicated
    columns do not add to it."""
    centred = X - X.mean(axis=0)
    scale = np.sqrt((centred**2).mean(axis=0))
    varying = scale > 10 * np.finfo(np.float64).eps * np.maximum(np.abs(X).max(axis=0), 1.0)
    if not varying.any():
        return 1
    return max(1, int(np.linalg.matrix_rank(centred[:, varying] / scale[varying])))

"""Data on its way in: validation of rows and weights, and the standardisation's moments."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import (
    _check_sample_weight,
    _check_y,
    check_consistent_length,
    column_or_1d,
    validate_data,
)

__all__ = [
    "WeightedMoments",
    "can_stratify",
    "check_not_bool",
    "draw_seed",
    "label_indices",
    "row_weights",
    "split_two_samples",
    "two_sample_labels",
    "validate_rows_and_weights",
    "validates_sample_arguments",
]


def draw_seed(rng: np.random.RandomState) -> int:
    """A seed for another generator, drawn from ``rng``."""
    return int(rng.randint(np.iinfo(np.int32).max))


def check_not_bool(value, name: str) -> None:
    """Raise a TypeError if ``value`` is a bool: a number is expected, and bool is one to Python."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, not a bool; got {value!r}.")


def validates_sample_arguments(sample):
    """Decorate ``sample(self, n_samples=1, random_state=None)`` so that ``n_samples`` must be a
    positive int (not a bool) and ``random_state`` a seed, with errors that name them."""

    @validate_params(
        {
            "n_samples": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    @functools.wraps(sample)
    def wrapper(self, n_samples: int = 1, random_state=None):
        check_not_bool(n_samples, "n_samples")
        return sample(self, n_samples, random_state)

    return wrapper


def validate_rows_and_weights(
    estimator, X, sample_weight, *, reset: bool, min_samples: int = 2, allow_nan: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``X`` checked for fitting ``estimator`` (``n_features_in_`` set anew if ``reset``; NaN
    cells only if ``allow_nan``) and the row weights (ones when ``sample_weight`` is None), as
    float64 arrays that are never views of the input; the weights must be non-negative with a
    positive sum."""
    X = validate_data(
        estimator,
        X,
        dtype=np.float64,
        ensure_min_samples=min_samples,
        ensure_all_finite="allow-nan" if allow_nan else True,
        reset=reset,
    )
    return X, row_weights(sample_weight, X)


def row_weights(sample_weight, X: np.ndarray) -> np.ndarray:
    """The weights of the rows of ``X``: ones when ``sample_weight`` is None, else checked to be
    non-negative with a positive sum."""
    if sample_weight is None:
        return np.ones(X.shape[0])
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    if not weight.sum() > 0:
        raise ValueError("sample_weight must have a positive sum.")
    return weight


def two_sample_labels(
    estimator, y, weight: np.ndarray, *, fitted_classes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``y`` of rows of two samples (exactly two labels, at least two rows of positive
    ``weight`` on each side), checked for fitting ``estimator``: ``y`` and the sorted labels (the
    first one marks the source). With ``fitted_classes`` (a warm start) the labels must be those
    of the fitted model."""
    if y is None:
        raise ValueError(
            f"{type(estimator).__name__} requires y to be passed, but the target y is None."
        )
    y = column_or_1d(_check_y(y, estimator=estimator), warn=True)
    check_consistent_length(weight, y)
    try:
        classes = np.unique(y)
    except TypeError as error:  # labels that cannot be ordered, e.g. strings and numbers
        raise TypeError(
            f"y must hold labels of one kind that can be sorted (numbers or strings): {error}"
        ) from None
    if classes.size != 2:
        raise ValueError(
            f"{type(estimator).__name__}.fit needs y with exactly two distinct labels, one per "
            f"distribution (the smaller label is the source); got {classes.size} distinct "
            f"label(s): {classes[:5].tolist()}."
        )
    if fitted_classes is not None and not np.array_equal(classes, fitted_classes):
        raise ValueError(
            f"warm_start: y has labels {classes.tolist()}, the fitted model "
            f"{fitted_classes.tolist()}."
        )
    for label in classes:
        counted = np.count_nonzero(weight[y == label] > 0)
        if counted < 2:
            raise ValueError(
                f"{type(estimator).__name__} needs at least 2 rows (of positive weight) on each "
                f"side; label {label!r} has {counted}."
            )
    return y, classes


def split_two_samples(y, n_rows: int, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the source and target rows among ``n_rows`` labelled ``y``; every label must be
    one of ``classes`` and both must be present."""
    y = column_or_1d(y)
    if y.shape[0] != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {y.shape[0]}.")
    unknown = np.setdiff1d(y, classes)
    if unknown.size:
        raise ValueError(
            f"y has labels {unknown[:5].tolist()} that fit did not see; the labels are "
            f"{classes.tolist()}."
        )
    source, target = y == classes[0], y == classes[1]
    if not source.any() or not target.any():
        raise ValueError(
            f"score needs rows of both labels {classes.tolist()}; got labels "
            f"{np.unique(y).tolist()}."
        )
    return source, target


@dataclass(frozen=True)
class WeightedMoments:
    """Total weight, weighted mean and weighted (biased) standard deviation of each feature.

    Two sets of moments merge into those of the concatenated rows by the pairwise update of Chan,
    Golub & LeVeque (*Updating formulae and a pairwise algorithm for computing sample variances*,
    1979), weighted: with ``delta = mean_b - mean_a``, ``W = W_a + W_b`` and ``p = W_b / W``,

    ``mean = mean_a + p delta`` and ``std^2 = (1 - p) std_a^2 + p std_b^2 + p (1 - p) delta^2``.

    Each update costs one pass over the new chunk and is exact up to rounding: no row is stored.
    Squares are taken of quantities divided by their largest magnitude first, so that data near the
    float64 limit (beyond about 1e154, whose squares overflow) still have a finite spread.
    """

    weight: float
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, weight: np.ndarray) -> WeightedMoments:
        """The moments of rows ``X`` (n, d) with weights ``weight`` (n,) of positive sum; a NaN
        is a missing cell, and each feature's moments are those of its observed cells.

        Raises
        ------
        ValueError
            If the mean or the spread of ``X`` overflows float64, or a feature has no observed
            cell of positive weight.
        """
        missing = np.isnan(X)
        if missing.any():
            columns = []
            for j in range(X.shape[1]):
                seen = ~missing[:, j]
                if not weight[seen].sum() > 0:
                    raise ValueError(f"Feature {j} of X has no observed value of positive weight.")
                columns.append(cls.of(X[seen, j : j + 1], weight[seen]))
            return cls(
                float(weight.sum()),
                np.concatenate([m.mean for m in columns]),
                np.concatenate([m.std for m in columns]),
            )
        with np.errstate(over="ignore", invalid="ignore"):
            mean = np.average(X, axis=0, weights=weight)
            deviation = X - mean
            std = _root_sum_of_squares(deviation, weight / weight.sum())
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError(
                "X has values too large to standardise in float64 (their mean or spread "
                "overflows); rescale X."
            )
        return cls(float(weight.sum()), mean, std)

    def merge(self, other: WeightedMoments) -> WeightedMoments:
        """The moments of both sets of rows together."""
        total = self.weight + other.weight
        share = other.weight / total
        delta = other.mean - self.mean
        terms = np.stack([self.std, other.std, delta])
        weights = np.array([1.0 - share, share, share * (1.0 - share)])
        std = _root_sum_of_squares(terms, weights)
        return WeightedMoments(total, self.mean + delta * share, std)

    def scale(self) -> np.ndarray:
        """Weighted standard deviation of each feature; 1 for a feature that is constant (to
        rounding), so that it is centred but not blown up."""
        constant = self.std < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(self.mean), 1.0)
        return np.where(constant, 1.0, self.std)


def _root_sum_of_squares(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``sqrt(sum_i w_i v_i^2)`` over axis 0, with ``v`` divided by its largest magnitude before
    squaring, so that no square overflows."""
    peak = np.abs(values).max(axis=0)
    peak = np.where(peak == 0, 1.0, peak)
    return peak * np.sqrt(np.tensordot(weight, (values / peak) ** 2, axes=1))


def can_stratify(labels: np.ndarray, validation_fraction: float) -> bool:
    """Whether an early-stopping split of ``validation_fraction`` (rounded up, as
    :func:`~sklearn.model_selection.train_test_split` does) of rows with class indices
    ``labels`` can hold out a row of every class and keep one of each: every class has two rows
    and both sides as many rows as classes."""
    counts = np.bincount(labels)
    n_validation = math.ceil(validation_fraction * labels.size)
    fits = min(n_validation, labels.size - n_validation) >= counts.size
    return bool(counts.min() >= 2 and fits)


def label_indices(classes: np.ndarray, y) -> np.ndarray:
    """The indices in ``classes`` of the labels ``y``; a ValueError names any other label."""
    y = column_or_1d(check_array(y, ensure_2d=False, dtype=None, ensure_all_finite=False))
    index = {label: i for i, label in enumerate(classes.tolist())}
    unknown = [label for label in y.tolist() if label not in index]
    if unknown:
        raise ValueError(
            f"y has labels {unknown[:5]} that are not classes of the model; the classes are "
            f"{classes.tolist()}."
        )
    return np.array([index[label] for label in y.tolist()], dtype=np.int64)

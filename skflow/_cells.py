"""The cells of a table, before any column kind: whether the rows come as a DataFrame, which cells
are missing, and a numeric column's numbers, with errors that name the column."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = ["column_numbers", "columns_of", "is_frame", "missing_cells", "observed_counts"]


def is_frame(X) -> bool:
    """Whether ``X`` is a pandas DataFrame (told by its interface: pandas is not a dependency)."""
    return hasattr(X, "iloc") and hasattr(X, "dtypes") and hasattr(X, "columns")


def columns_of(X) -> Iterator[np.ndarray]:
    """Each column of ``X`` (a DataFrame or a 2-D array) as a 1-D array, in order."""
    if is_frame(X):
        for j in range(X.shape[1]):
            yield X.iloc[:, j].to_numpy()
    else:
        yield from np.asarray(X).T


def observed_counts(X) -> np.ndarray:
    """The number of observed (not missing) cells of each row of ``X``."""
    counts = np.zeros(X.shape[0], dtype=np.int64)
    for j, values in enumerate(columns_of(X)):
        counts += ~missing_cells(values, str(j), allowed=True)
    return counts


def missing_cells(
    values: np.ndarray, name: str, allowed: bool, placeholder: float = math.nan
) -> np.ndarray:
    """Mask of the missing cells of a column's ``values``: NaN, None, pandas' NA or NaT, or, for
    a number ``placeholder``, the cells equal to it (NaN is then an error). A ValueError naming
    the column if there is one and they are not ``allowed``."""
    if values.dtype.kind == "f":
        absent = np.isnan(values)
    elif values.dtype == object:
        absent = np.array([_is_missing(v) for v in values], dtype=bool)
    else:
        absent = np.zeros(values.shape[0], dtype=bool)
    if allowed and not math.isnan(placeholder):
        if absent.any():
            raise ValueError(
                f"Column {name!r} holds NaN, but missing cells are marked by "
                f"missing_values={placeholder!r}."
            )
        absent = np.asarray(values == placeholder, dtype=bool)
    if absent.any() and not allowed:
        raise ValueError(
            f"Column {name!r} holds NaN or another missing value; skflow needs a value in "
            "every cell (allow_missing=True learns from the observed ones, where the estimator "
            "has it)."
        )
    return absent


def _is_missing(value) -> bool:
    return (
        value is None
        or (isinstance(value, (float, np.floating)) and math.isnan(value))
        or type(value).__name__ in ("NAType", "NaTType")
    )


def column_numbers(values: np.ndarray, name: str, absent: np.ndarray | None = None) -> np.ndarray:
    """A numeric column as float64 (NaN in the ``absent`` cells), or a ValueError naming it."""
    if absent is not None and absent.any():
        values = np.where(absent, np.nan, values)
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_number(v))
        raise ValueError(
            f"Column {name!r} is numeric but holds {bad!r}; declare it in categorical_features "
            "if it is a category."
        ) from None
    present = numbers if absent is None else numbers[~absent]
    if not np.isfinite(present).all():
        raise ValueError(
            f"Column {name!r} holds NaN or infinity; skflow needs finite values in every column."
        )
    return numbers


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True

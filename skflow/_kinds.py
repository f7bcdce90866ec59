"""Which kind each column of a table is, and its bounds: read from a DataFrame's dtypes (or an
array's) and from the estimators' ``categorical_features``, ``integer_features`` and ``bounds``,
into the :class:`~skflow._columns.TableLayout` that :mod:`skflow._columns` maps into the flow."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _check_feature_names, _check_n_features

from ._cells import column_numbers, columns_of, is_frame, missing_cells
from ._columns import ONE_HOT_MAX, Column, TableLayout

__all__ = [
    "BOUND_MARGIN",
    "BOUND_SHORTCUTS",
    "COLUMN_CONSTRAINTS",
    "categorical_by_dtype",
    "fit_layout",
    "two_valued_columns",
]

BOUND_SHORTCUTS: dict[str, tuple[float, float]] = {
    "non-negative": (0.0, math.inf),
    "unit": (0.0, 1.0),
}
"""Names that ``bounds`` takes for a column instead of a ``(low, high)`` pair."""

BOUND_MARGIN = 1e-3
"""The margin ``delta`` of a bounded column's map, as a share of its range (of ``high - low``,
or of the training values' range where a side is open)."""

COLUMN_CONSTRAINTS: dict = {
    "categorical_features": [StrOptions({"from_dtype"}), "array-like", None],
    "integer_features": [StrOptions({"from_dtype"}), "array-like", None],
    "bounds": [dict, None],
}
"""Parameter constraints of the column-kind hyperparameters."""


def fit_layout(
    estimator,
    X,
    categorical_features,
    integer_features,
    bounds,
    missing: bool = False,
    placeholder: float = math.nan,
) -> TableLayout:
    """The layout of the training rows ``X`` (a DataFrame or a 2-D array) for ``estimator``,
    whose ``n_features_in_`` and ``feature_names_in_`` are set: the kinds from the dtypes of a
    DataFrame or of an array and from the explicit ``categorical_features``,
    ``integer_features`` and ``bounds``. With ``missing``, cells may be missing (NaN, or equal
    to a number ``placeholder``), but every column needs a value."""
    frame = is_frame(X)
    _check_feature_names(estimator, X, reset=True)
    _check_n_features(estimator, X, reset=True)
    n_features = X.shape[1]
    if not frame and X.dtype.kind == "f" and X.size:
        finite = np.isfinite(X) | (np.isnan(X) if missing and math.isnan(placeholder) else False)
        if not finite.all():
            column = int(np.flatnonzero(~finite.all(axis=0))[0])
            raise ValueError(
                f"Column {column} holds NaN or infinity; skflow needs finite values in every "
                "column."
            )
    names = [str(c) for c in X.columns] if frame else [str(j) for j in range(n_features)]
    dtypes = list(X.dtypes) if frame else [X.dtype] * n_features
    categorical = _selected(
        categorical_features, "categorical_features", names, frame, dtypes, _categorical_dtype
    )
    integer = _selected(integer_features, "integer_features", names, frame, dtypes, _integer_dtype)
    both = categorical & integer
    if both.any() and integer_features != "from_dtype":
        raise ValueError(
            f"Column {names[int(np.flatnonzero(both)[0])]!r} is in both categorical_features "
            "and integer_features."
        )
    declared = _bounds(bounds, names, frame)
    columns = []
    for j, (name, values) in enumerate(zip(names, columns_of(X))):
        dtype = str(dtypes[j])
        absent = missing_cells(values, name, missing, placeholder)
        if absent.all():
            raise ValueError(
                f"Column {name!r} of X has no observed value: nothing to learn it from; drop it."
            )
        if categorical[j]:
            if j in declared:
                raise ValueError(f"Column {name!r} is categorical and cannot have bounds.")
            series = X.iloc[:, j][~absent] if frame else None
            columns.append(_categorical_column(values[~absent], name, dtype, series))
            continue
        kind = "integer" if integer[j] else "continuous"
        low, high = declared.get(j, (-math.inf, math.inf))
        if frame or kind == "integer" or j in declared:  # an array's: checked as plain rows
            numbers = column_numbers(values[~absent], name)
        if kind == "continuous" and j not in declared:
            columns.append(Column(name, kind, dtype))
            continue
        margin = 0.0
        if j in declared:
            span = high - low if math.isfinite(high - low) else float(np.ptp(numbers))
            margin = BOUND_MARGIN * (span if span > 0 else 1.0)
        extremes = {}
        if kind == "integer":
            extremes = {"minimum": float(numbers.min()), "maximum": float(numbers.max())}
        columns.append(Column(name, kind, dtype, low=low, high=high, margin=margin, **extremes))
    return TableLayout(tuple(columns), frame)


def categorical_by_dtype(X) -> np.ndarray:
    """Mask of the columns that ``categorical_features="from_dtype"`` makes categorical: a
    DataFrame's categorical, boolean, object and string columns; none of an array's."""
    if not is_frame(X):
        return np.zeros(X.shape[1], dtype=bool)
    return np.array([_categorical_dtype(dtype) for dtype in X.dtypes], dtype=bool)


def two_valued_columns(X, rows: np.ndarray) -> np.ndarray:
    """Mask of the columns of ``X`` (a DataFrame or a 2-D array) not categorical by their dtype
    whose observed (not missing) cells in the ``rows`` (a boolean mask) are numbers that take
    exactly two distinct values."""
    mask = np.zeros(X.shape[1], dtype=bool)
    for j, (values, by_dtype) in enumerate(zip(columns_of(X), categorical_by_dtype(X))):
        if by_dtype:
            continue
        values = values[rows]
        observed = values[~missing_cells(values, str(j), allowed=True)]
        try:
            numbers = np.asarray(observed, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        mask[j] = np.unique(numbers).size == 2
    return mask


def _categorical_dtype(dtype) -> bool:
    import pandas as pd

    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dtype)
        or (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))
    )


def _integer_dtype(dtype) -> bool:
    return np.dtype(dtype).kind in "iu" if isinstance(dtype, np.dtype) else _pandas_integer(dtype)


def _pandas_integer(dtype) -> bool:
    import pandas as pd

    return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _selected(
    spec, parameter: str, names: list[str], frame: bool, dtypes, from_dtype
) -> np.ndarray:
    """A mask of the columns that ``spec`` selects: from the dtypes, none, or given by indices,
    names or a boolean mask."""
    n = len(names)
    if spec is None:
        return np.zeros(n, dtype=bool)
    if isinstance(spec, str):
        if spec != "from_dtype":
            raise ValueError(
                f"{parameter} must be 'from_dtype', None, or indices, names or a mask of columns; "
                f"got {spec!r}."
            )
        if frame:
            return np.array([from_dtype(d) for d in dtypes], dtype=bool)
        # an array's categories come only by name: an object array is converted to numbers
        return np.array(
            [parameter == "integer_features" and _integer_dtype(d) for d in dtypes], dtype=bool
        )
    spec = np.asarray(spec)
    if spec.dtype == bool:
        if spec.shape != (n,):
            raise ValueError(f"{parameter} as a mask must have {n} entries, got {spec.shape}.")
        return spec.copy()
    mask = np.zeros(n, dtype=bool)
    for entry in spec.ravel().tolist():
        mask[_column_index(entry, parameter, names, frame)] = True
    return mask


def _column_index(entry, parameter: str, names: list[str], frame: bool) -> int:
    if isinstance(entry, str):
        if not frame or entry not in names:
            where = "X has no column names" if not frame else f"X's columns are {names[:10]}"
            raise ValueError(f"{parameter} names the column {entry!r}, but {where}.")
        return names.index(entry)
    if (
        isinstance(entry, Integral)
        and not isinstance(entry, bool)
        and -len(names) <= entry < len(names)
    ):
        return int(entry) % len(names)
    raise ValueError(
        f"{parameter} has {entry!r}, which is not a column index below {len(names)} nor a name."
    )


def _bounds(bounds, names: list[str], frame: bool) -> dict[int, tuple[float, float]]:
    """``bounds`` as ``{column index: (low, high)}`` with infinite open sides."""
    out: dict[int, tuple[float, float]] = {}
    for key, value in (bounds or {}).items():
        j = _column_index(key, "bounds", names, frame)
        if isinstance(value, str):
            if value not in BOUND_SHORTCUTS:
                raise ValueError(
                    f"bounds of column {names[j]!r} must be (low, high) or one of "
                    f"{sorted(BOUND_SHORTCUTS)}; got {value!r}."
                )
            out[j] = BOUND_SHORTCUTS[value]
            continue
        try:
            low, high = value
        except (TypeError, ValueError):
            raise ValueError(
                f"bounds of column {names[j]!r} must be a pair (low, high), got {value!r}."
            ) from None
        sides = []
        for side, default in ((low, -math.inf), (high, math.inf)):
            if side is None:
                sides.append(default)
            elif isinstance(side, Real) and not isinstance(side, bool) and not math.isnan(side):
                sides.append(float(side))
            else:
                raise ValueError(
                    f"bounds of column {names[j]!r} must hold numbers or None, got {value!r}."
                )
        if not sides[0] < sides[1]:
            raise ValueError(f"bounds of column {names[j]!r} need low < high, got {value!r}.")
        out[j] = (sides[0], sides[1])
    return out


def _categorical_column(values: np.ndarray, name: str, dtype: str, series) -> Column:
    """The column of the categories in ``values`` (none missing)."""
    ordered = False
    if series is not None and str(series.dtype) == "category":
        categories = tuple(series.cat.categories.tolist())
        ordered = bool(series.cat.ordered)
    else:
        try:
            categories = tuple(np.unique(np.asarray(values)).tolist())
        except TypeError:
            raise ValueError(
                f"Column {name!r} mixes categories that cannot be sorted (e.g. strings and "
                "numbers); make them of one type."
            ) from None
    one_hot = 2 < len(categories) <= ONE_HOT_MAX
    return Column(
        name, "categorical", dtype, categories=categories, ordered=ordered, one_hot=one_hot
    )

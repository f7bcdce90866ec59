"""Column kinds of a table (continuous, integer, categorical, bounded) and the map between a
table's rows and the continuous coordinates in which a flow is trained.

A flow models a density on ``R^m``. The columns of a table reach it as follows:

- a **continuous** column as it is;
- an **integer** column by uniform dequantisation, ``x = k + u`` with ``u ~ U(-1/2, 1/2)``
  (Uria, Murray & Larochelle, NeurIPS 2013; Theis, van den Oord & Bethge, ICLR 2016): the
  flow's density ``p`` of ``x`` gives ``log P(k) >= E_u[log p(k + u)]``;
- a **categorical** column of ``K`` categories by a code of ``+-1`` bits, each bit ``b``
  dequantised onto a half-line, ``v = (2 b - 1) r`` with ``r ~ N(1, s^2)`` truncated to ``r > 0``
  (``s = BIT_SPREAD``): the signs of ``v`` are the code, as in argmax flows (Hoogeboom et al.,
  NeurIPS 2021), and with that density ``q(v | k)`` on the code's orthant,
  ``log P(k) >= E_q[log p(v) - log q(v | k)]``. Up to ``ONE_HOT_MAX`` categories the code is
  one-hot (``K`` coordinates; a sample decodes to its largest coordinate), so no category is
  nearer another than the rest; past that it is the binary code of the category's index on
  ``ceil(log2 K)`` coordinates (so a column of 1,000 categories takes 10 inputs, not 1,000), and
  a code past ``K - 1`` decodes to the category of the code without its highest bit. Either way
  every sampled value is a training category;
- a **bounded** column (after dequantisation, for an integer one) through a map onto the real
  line with a margin ``delta``: ``log(x - low + delta)``, ``-log(high - x + delta)``, or the logit
  of ``(x - low + delta) / (high - low + 2 delta)``, whose log-Jacobian is added to the
  log-density. ``delta`` (a thousandth of the column's range) lets values on a bound be fitted;
  samples that the flow puts past a bound are clipped onto it.

The dequantisation noise of training is drawn afresh for every minibatch; at inference each row
draws it from its own values (:func:`skflow.likelihood.row_uniforms`), so a row's score does not
depend on the other rows. How each column gets its kind and bounds (from a DataFrame's dtypes or
the estimators' parameters) is :mod:`skflow._kinds`'s.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch

from ._cells import column_numbers, columns_of, missing_cells

__all__ = [
    "BIT_SPREAD",
    "ONE_HOT_MAX",
    "Column",
    "TableLayout",
]

BIT_SPREAD = 0.5
"""The spread of a dequantised bit of a category's code: ``|v| ~ N(1, BIT_SPREAD^2)`` on its
half-line, so that the codes of two categories are far apart next to the spread of each."""

ONE_HOT_MAX = 8
"""The most categories a column may have to be coded one-hot; more take a binary code."""

_BIT_TAIL = 0.5 * math.erfc(1.0 / (BIT_SPREAD * math.sqrt(2.0)))  # N(1, spread^2) below 0

_CONTINUOUS, _INTEGER, _SIGN = 0, 1, 2


def _bit_log_density(magnitude: torch.Tensor) -> torch.Tensor:
    """``log q(v | b)`` of a dequantised bit at ``|v| = magnitude``."""
    z = (magnitude - 1.0) / BIT_SPREAD
    return -0.5 * z**2 - math.log(BIT_SPREAD * math.sqrt(2.0 * math.pi) * (1.0 - _BIT_TAIL))


@dataclass(frozen=True)
class Column:
    """One column of a fitted table.

    Parameters
    ----------
    name : str
        Its name in the training DataFrame, or its index as a string.
    kind : {"continuous", "integer", "categorical"}
    dtype : str
        The training column's dtype, given back to DataFrames that the estimator returns.
    categories : tuple, default=()
        The training categories (sorted unless the column is an ordered pandas categorical).
    ordered : bool, default=False
        Whether a pandas categorical column was ordered.
    low, high : float, default=-inf, inf
        Bounds of a continuous or integer column.
    margin : float, default=0.0
        The margin ``delta`` of the map of a bounded column.
    minimum, maximum : float, default=-inf, inf
        The smallest and largest training value of an integer column: samples are rounded and
        clipped into them.
    one_hot : bool, default=False
        Whether a categorical column is coded one-hot rather than by the binary code of the
        category's index.
    """

    name: str
    kind: str
    dtype: str
    categories: tuple = ()
    ordered: bool = False
    low: float = -math.inf
    high: float = math.inf
    margin: float = 0.0
    minimum: float = -math.inf
    maximum: float = math.inf
    one_hot: bool = False

    @property
    def width(self) -> int:
        """Coordinates of the column in the flow."""
        if self.kind != "categorical":
            return 1
        if self.one_hot:
            return len(self.categories)
        return max(1, math.ceil(math.log2(len(self.categories))))

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) or math.isfinite(self.high)


@dataclass(frozen=True)
class TableLayout:
    """The columns of a fitted table and whether it came as a pandas DataFrame.

    Parameters
    ----------
    columns : tuple of Column
    frame : bool
        Whether the training rows were a DataFrame: :meth:`decode` then returns one.
    """

    columns: tuple[Column, ...]
    frame: bool = False

    @property
    def plain(self) -> bool:
        """Whether every column is continuous and unbounded: the flow sees the rows as they are."""
        return all(c.kind == "continuous" and not c.bounded for c in self.columns)

    @property
    def width(self) -> int:
        """Coordinates of a row in the flow."""
        return sum(c.width for c in self.columns)

    @functools.cached_property
    def bounded(self) -> bool:
        """Whether a column is bounded, so that the flow's coordinates pass through a map."""
        return any(c.bounded for c in self.columns)

    @property
    def numeric(self) -> bool:
        """Whether every value of the table is a number (no category is a string)."""
        return all(c.kind != "categorical" or _numeric(c.categories) for c in self.columns)

    @property
    def starts(self) -> np.ndarray:
        """The first coordinate of each column in the flow."""
        return np.cumsum([0] + [c.width for c in self.columns[:-1]])

    # ----------------------------------------------------------------------------------------------
    # rows in

    def encode(
        self, X, *, fitting: bool = False, missing: bool = False, placeholder: float = math.nan
    ) -> tuple[np.ndarray, np.ndarray]:
        """The codes of the rows of ``X`` (``(n, width)`` floats: the values of continuous and
        integer columns, ``+-1`` bits of categories) and which rows the model can hold.

        A row is impossible under the model if it has a category not seen in training, a value
        outside a column's bounds or a fraction in an integer column; while ``fitting`` that is
        a ValueError naming the column instead. With ``missing``, a missing cell (NaN, None or
        pandas' NA; a cell equal to a number ``placeholder``) is NaN in every coordinate of its
        column; without, a ValueError.
        """
        n = X.shape[0]
        codes = np.empty((n, self.width))
        valid = np.ones(n, dtype=bool)
        start = 0
        for column, values in zip(self.columns, columns_of(X)):
            block = codes[:, start : start + column.width]
            absent = missing_cells(values, column.name, missing, placeholder)
            if column.kind == "categorical":
                seen = _category_index(values, column, fitting, absent)
                valid &= seen >= 0
                if column.one_hot:
                    bits = np.maximum(seen, 0)[:, None] == np.arange(column.width)
                else:
                    bits = (np.maximum(seen, 0)[:, None] >> np.arange(column.width)) & 1
                block[:] = np.where(absent[:, None], np.nan, 2.0 * bits - 1.0)
            else:
                numbers = column_numbers(values, column.name, absent)
                possible = absent | ((numbers >= column.low) & (numbers <= column.high))
                if column.kind == "integer":
                    possible &= absent | (numbers == np.round(numbers))
                if fitting and not possible.all():
                    bad = numbers[~possible][0]
                    if column.kind == "integer" and bad != np.round(bad):
                        raise ValueError(
                            f"Column {column.name!r} is an integer column but holds {bad!r}; "
                            "leave it out of integer_features if it is continuous."
                        )
                    raise ValueError(
                        f"Column {column.name!r} holds {bad!r}, outside its bounds "
                        f"[{column.low}, {column.high}]."
                    )
                valid &= possible
                block[:, 0] = numbers
            start += column.width
        return codes, valid

    # ----------------------------------------------------------------------------------------------
    # the flow's coordinates

    def _dims(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per coordinate: its kind, effective bounds and margin, as tensors like ``like``."""
        return tuple(
            torch.as_tensor(values, dtype=like.dtype, device=like.device)
            for values in self._coordinate_kinds
        )

    @functools.cached_property
    def _coordinate_kinds(self) -> tuple[np.ndarray, ...]:
        """Per coordinate: its kind, effective bounds (an integer column's widened by the
        half-step of its dequantisation) and margin; computed once, as every minibatch needs
        them."""
        kind, low, high, margin = [], [], [], []
        for column in self.columns:
            if column.kind == "categorical":
                kind += [_SIGN] * column.width
                low += [-math.inf] * column.width
                high += [math.inf] * column.width
                margin += [0.0] * column.width
            else:
                half = 0.5 if column.kind == "integer" else 0.0
                kind.append(_INTEGER if column.kind == "integer" else _CONTINUOUS)
                low.append(column.low - half)
                high.append(column.high + half)
                margin.append(column.margin)
        return tuple(np.asarray(values, dtype=np.float64) for values in (kind, low, high, margin))

    def to_flow(
        self, codes: torch.Tensor, uniform: torch.Tensor, *, log_weight: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The flow's coordinates of ``codes`` dequantised with ``uniform`` (draws of ``U(0, 1)``
        of the same shape), and each row's log-weight: the log-Jacobian of the bounding maps
        minus the log-density of the categories' dequantisation, to add to the flow's
        log-density. Missing codes (NaN) stay NaN and add nothing to the log-weight. Training
        needs the coordinates alone: ``log_weight=False`` gives None in its place."""
        kind = self._coordinate_kinds[0]
        x, log_q = codes, torch.zeros_like(codes)
        if (kind == _INTEGER).any():
            integer = torch.as_tensor(kind == _INTEGER, device=codes.device)
            x = torch.where(integer, codes + uniform - 0.5, codes)
        if (kind == _SIGN).any():
            # |v| ~ N(1, BIT_SPREAD^2) truncated to the positive half-line, by its inverse CDF
            share = _BIT_TAIL + uniform * (1.0 - _BIT_TAIL)
            magnitude = 1.0 + BIT_SPREAD * math.sqrt(2.0) * torch.erfinv(2.0 * share - 1.0)
            if log_weight:
                log_q = _bit_log_density(magnitude)
            if (kind == _SIGN).all():
                x = codes * magnitude
            else:
                sign = torch.as_tensor(kind == _SIGN, device=codes.device)
                x, log_q = torch.where(sign, codes * magnitude, x), torch.where(sign, log_q, 0.0)
        if self.bounded:
            _, low, high, margin = self._dims(codes)
            x, log_jacobian = _bound(x, low, high, margin)
            log_q = log_q - log_jacobian
        if not log_weight:
            return x, None
        return x, torch.where(codes.isnan(), 0.0, -log_q).sum(dim=1)

    def from_flow(self, y: np.ndarray) -> np.ndarray:
        """The inverse of the bounding maps: values on the columns' scales, per coordinate."""
        if not self.bounded:
            return np.array(y, dtype=np.float64)
        like = torch.as_tensor(y, dtype=torch.float64)
        _, low, high, margin = self._dims(like)
        return _unbound(like, low, high, margin).numpy()

    # ----------------------------------------------------------------------------------------------
    # rows out

    def decode(self, values: np.ndarray):
        """Rows from values per coordinate (:meth:`from_flow`'s output): categories from the
        signs, integers rounded and clipped into the training range, values clipped into bounds.
        A DataFrame with the training columns' names, dtypes and categories where the table was
        one; else a float array, or an object array if a category is not a number."""
        out = []
        start = 0
        for column in self.columns:
            block = values[:, start : start + column.width]
            start += column.width
            if column.kind == "categorical":
                index = _category_index_of_code(block, column)
                out.append(np.asarray(column.categories, dtype=object)[index])
            else:
                numbers = np.clip(block[:, 0], column.low, column.high)
                if column.kind == "integer":
                    numbers = np.clip(np.round(numbers), column.minimum, column.maximum)
                out.append(numbers)
        if self.frame:
            return self._frame(out)
        if self.numeric:
            return np.column_stack(out).astype(np.float64) if out else np.empty((0, 0))
        return np.column_stack(out)

    def _frame(self, out: list[np.ndarray]):
        import pandas as pd

        data = {}
        for column, values in zip(self.columns, out):
            if column.kind == "categorical" and column.dtype == "category":
                dtype = pd.CategoricalDtype(list(column.categories), ordered=column.ordered)
                data[column.name] = pd.Series(values, dtype=dtype)
            else:
                data[column.name] = pd.Series(values).astype(column.dtype)
        return pd.DataFrame(data)


# --------------------------------------------------------------------------------------------------
# helpers


def _category_index(
    values: np.ndarray, column: Column, fitting: bool, absent: np.ndarray
) -> np.ndarray:
    """Each value's index among the column's categories; -1 for a category not seen in fit, 0
    for an ``absent`` (missing) cell."""
    kind = _number_kind(values, column.categories)
    if kind is not None:  # numbers: one sorted search instead of a lookup per cell
        categories = np.asarray(column.categories, dtype=kind)
        order = np.argsort(categories, kind="stable")
        numbers = np.where(absent, categories[0], values).astype(kind)
        slot = np.minimum(np.searchsorted(categories[order], numbers), len(order) - 1)
        index = np.where(categories[order][slot] == numbers, order[slot], -1)
        index[absent] = 0
    else:
        lookup = {_key(c): i for i, c in enumerate(column.categories)}
        index = np.array(
            [0 if gone else lookup.get(_key(v), -1) for v, gone in zip(values, absent)],
            dtype=np.int64,
        )
    if fitting and (index < 0).any():
        raise ValueError(f"Column {column.name!r} holds a value outside its categories.")
    return index


def _number_kind(values: np.ndarray, categories: tuple) -> type | None:
    """The NumPy type in which ``values`` and ``categories`` compare exactly, when both are
    numbers: int64 for integers, float64 for floats or booleans; None otherwise."""
    small = values.dtype.kind == "i" or (values.dtype.kind == "u" and values.dtype.itemsize < 8)
    if small and all(isinstance(c, Integral) for c in categories):
        return np.int64
    if values.dtype.kind in "fb" and _numeric(categories):
        return np.float64
    return None


def _key(value):
    """A category as a dict key: NumPy scalars as Python ones, so that 1, 1.0 and np.int64(1)
    are one category."""
    return value.item() if isinstance(value, np.generic) else value


def _numeric(categories: tuple) -> bool:
    return all(isinstance(c, Real) for c in categories)


def _bound(x, low, high, margin) -> tuple[torch.Tensor, torch.Tensor]:
    """The bounding maps onto the real line, per coordinate, and their log-derivatives."""
    has_low, has_high = torch.isfinite(low), torch.isfinite(high)
    lo = torch.where(has_low, low, 0.0)
    hi = torch.where(has_high, high, 0.0)
    above = (x - lo + margin).clamp_min(torch.finfo(x.dtype).tiny)
    below = (hi - x + margin).clamp_min(torch.finfo(x.dtype).tiny)
    width = hi - lo + 2 * margin
    share = (above / torch.where(has_low & has_high, width, 1.0)).clamp(0.0, 1.0)
    logit = torch.log(share) - torch.log1p(-share)
    log_width = torch.log(torch.where(has_low & has_high, width, 1.0))
    y = torch.where(
        has_low & has_high,
        logit,
        torch.where(has_low, torch.log(above), torch.where(has_high, -torch.log(below), x)),
    )
    log_derivative = torch.where(
        has_low & has_high,
        -log_width - torch.log(share) - torch.log1p(-share),
        torch.where(has_low, -torch.log(above), torch.where(has_high, -torch.log(below), 0.0)),
    )
    return y, log_derivative


def _unbound(y, low, high, margin) -> torch.Tensor:
    """The inverse of :func:`_bound`."""
    has_low, has_high = torch.isfinite(low), torch.isfinite(high)
    lo = torch.where(has_low, low, 0.0)
    hi = torch.where(has_high, high, 0.0)
    return torch.where(
        has_low & has_high,
        lo - margin + torch.sigmoid(y) * (hi - lo + 2 * margin),
        torch.where(
            has_low,
            lo - margin + torch.exp(y),
            torch.where(has_high, hi + margin - torch.exp(-y), y),
        ),
    )


def _category_index_of_code(block: np.ndarray, column: Column) -> np.ndarray:
    """The category index of each row's coordinates of a categorical column: the largest
    coordinate of a one-hot code; else the binary code of the signs, less its highest bit when
    past the last category."""
    if column.one_hot:
        return block.argmax(axis=1)
    index = ((block > 0).astype(np.int64) << np.arange(column.width)).sum(axis=1)
    return np.where(index >= len(column.categories), index - (1 << (column.width - 1)), index)

"""The real tables of the synthetic-data benchmark, as pandas DataFrames with their column kinds.

Each table keeps its columns' nature in its dtypes: categorical columns (the class label of a
classification table included) are pandas ``category``, integer columns ``int64``, continuous ones
``float64``. A numeric column whose values are all whole numbers is an integer column; an R factor
whose levels are all numbers (a rating from 1 to 10, a gain setting) is one too; other factors are
categorical. Each table also declares the bounds its values cannot leave (measurements are
non-negative, ratings and percentages have their scale), which the benchmark's validity check
enforces and which the flow is given. Nothing is committed: the tables are read at run time from

* scikit-learn's bundled sets (``load_iris``, ``load_wine``, ``load_diabetes(scaled=False)``);
* the R package mlbench's data files, unpacked from the Debian package ``r-cran-mlbench`` and read
  with ``pyreadr`` by ``_outlier_data._rda`` (its cache folder, ``SKFLOW_DATA`` and
  ``SKFLOW_DEB_DIR`` apply).

Rows with a missing value are dropped. ``python benchmarks/_tables.py`` lists the tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import _outlier_data
import numpy as np
import pandas as pd

Bounds = dict[str, tuple[float | None, float | None]]


@dataclass
class Table:
    """A table of features and ``target``, with its task, declared bounds and origin."""

    name: str
    frame: pd.DataFrame
    target: str
    task: str  # "classification" or "regression"
    source: str
    bounds: Bounds = field(default_factory=dict)

    def kinds(self) -> dict[str, str]:
        """Each column's kind: "categorical", "integer" or "continuous"."""
        return {column: column_kind(values) for column, values in self.frame.items()}


def column_kind(values: pd.Series) -> str:
    """The kind of a column: "categorical", "integer" or "continuous", from its dtype."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return "categorical"
    return "integer" if pd.api.types.is_integer_dtype(values.dtype) else "continuous"


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Factors with numeric levels -> numbers, other factors and strings -> ``category`` (unused
    levels removed); numeric columns of whole numbers -> int64, other numbers -> float64."""
    columns = {}
    for column, values in frame.items():
        if isinstance(values.dtype, pd.CategoricalDtype):
            levels = pd.to_numeric(values.cat.categories.astype(str), errors="coerce")
            if levels.notna().all():
                values = values.cat.rename_categories(levels).astype(np.float64)
            else:
                columns[column] = values.cat.remove_unused_categories()
                continue
        elif not pd.api.types.is_numeric_dtype(values.dtype):
            columns[column] = values.astype(str).astype("category")
            continue
        values = values.astype(np.float64)
        whole = bool((values == np.round(values)).all())
        columns[column] = values.astype(np.int64) if whole else values
    return pd.DataFrame(columns).reset_index(drop=True)


def _non_negative(frame: pd.DataFrame, except_: tuple[str, ...] = ()) -> Bounds:
    """A lower bound of 0 on every numeric column but ``except_``."""
    return {
        column: (0.0, None)
        for column, values in frame.items()
        if column_kind(values) != "categorical" and column not in except_
    }


def _sklearn(name: str, target: str, task: str, categorical: tuple[str, ...] = ()) -> Table:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    bunch = loader(scaled=False) if name == "diabetes" else loader()
    frame = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    if task == "classification":
        frame[target] = pd.Categorical(np.asarray(bunch.target_names)[bunch.target])
    else:
        frame[target] = bunch.target
    frame = _typed(frame)
    for column in categorical:
        frame[column] = frame[column].astype(str).astype("category")
    call = f"load_{name}(scaled=False)" if name == "diabetes" else f"load_{name}()"
    return Table(name, frame, target, task, f"scikit-learn {call}", _non_negative(frame))


def _mlbench(
    name: str,
    rda_name: str,
    target: str,
    task: str,
    drop: tuple[str, ...] = (),
    categorical: tuple[str, ...] = (),
    bounds: Bounds | None = None,
    signed: tuple[str, ...] = (),
    note: str = "",
) -> Table:
    """An mlbench table: ``drop`` columns removed, rows with a missing value dropped, the factors
    ``categorical`` kept categorical even if their levels are numbers; every numeric column but
    ``signed`` non-negative, unless ``bounds`` says more."""
    features, labels, origin = _outlier_data._rda("mlbench", rda_name, target)
    raw = features.drop(columns=list(drop)).assign(**{target: labels})
    missing = int(raw.isna().any(axis=1).sum())
    raw = raw.dropna()
    if task == "classification":
        categorical = (*categorical, target)
    frame = _typed(raw.drop(columns=list(categorical)))
    for column in categorical:
        frame[column] = pd.Categorical(raw[column].astype(str).to_numpy())
    frame = frame[[column for column in raw.columns]]
    notes = [note] if note else []
    if missing:
        notes.append(f"{missing} rows with missing values dropped")
    declared = {**_non_negative(frame, signed), **(bounds or {})}
    return Table(name, frame, target, task, "; ".join([origin, *notes]), declared)


_BREASTW = [
    "Cl.thickness",
    "Cell.size",
    "Cell.shape",
    "Marg.adhesion",
    "Epith.c.size",
    "Bare.nuclei",
    "Bl.cromatin",
    "Normal.nucleoli",
    "Mitoses",
]
_PERCENT = (0.0, 100.0)

TABLES: dict[str, Callable[[], Table]] = {  # small to large
    "servo": partial(
        _mlbench,
        "servo",
        "Servo",
        "Class",
        "regression",
        categorical=("Motor", "Screw"),
        note="Motor and Screw categorical; gains Pgain, Vgain integer; Class (rise time) target",
    ),
    "iris": partial(_sklearn, "iris", "species", "classification"),
    "wine": partial(_sklearn, "wine", "class", "classification"),
    "ozone": partial(
        _mlbench,
        "ozone",
        "Ozone",
        "V4",
        "regression",
        drop=("V9",),
        categorical=("V1", "V3"),
        signed=("V11",),
        note="V1 month and V3 day of week categorical, V2 day of month integer; V4 (daily "
        "maximum ozone) target; V9 (Sandburg temperature, 139 missing) dropped; V11 (pressure "
        "gradient) may be negative",
    ),
    "glass": partial(
        _mlbench,
        "glass",
        "Glass",
        "Type",
        "classification",
        bounds={c: _PERCENT for c in ("Na", "Mg", "Al", "Si", "K", "Ca", "Ba", "Fe")},
        note="oxide weight percentages in [0, 100]",
    ),
    "votes": partial(
        _mlbench,
        "votes",
        "HouseVotes84",
        "Class",
        "classification",
        note="16 y/n votes, all categorical",
    ),
    "diabetes": partial(_sklearn, "diabetes", "target", "regression", categorical=("sex",)),
    "boston": partial(
        _mlbench,
        "boston",
        "BostonHousing",
        "medv",
        "regression",
        categorical=("chas",),
        bounds={"zn": _PERCENT, "age": _PERCENT, "lstat": _PERCENT},
        note="chas (on the Charles river) categorical; rad, tax integer; medv target",
    ),
    "breastw": partial(
        _mlbench,
        "breastw",
        "BreastCancer",
        "Class",
        "classification",
        drop=("Id",),
        bounds={c: (1.0, 10.0) for c in _BREASTW},
        note="nine ratings from 1 to 10 (integer), Id dropped",
    ),
    "pima": partial(
        _mlbench,
        "pima",
        "PimaIndiansDiabetes",
        "diabetes",
        "classification",
        note="zeros standing for missing measurements kept",
    ),
}

CATEGORICAL_FEATURE_TABLES = ("servo", "ozone", "votes", "diabetes", "boston")


def load(name: str) -> Table:
    """The table ``name`` (read from the cache of R data files or scikit-learn)."""
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    return TABLES[name]()


def describe(table: Table) -> dict[str, str | int]:
    """One row of the tables' listing: size, kinds of the feature columns, task and origin."""
    kinds = table.kinds()
    features = {c: k for c, k in kinds.items() if c != table.target}
    counts = {
        kind: sum(1 for k in features.values() if k == kind)
        for kind in ("continuous", "integer", "categorical")
    }
    target = table.frame[table.target]
    task = table.task
    if task == "classification":
        task += f" ({len(target.cat.categories)} classes)"
    return {
        "table": table.name,
        "rows": len(table.frame),
        "features": len(features),
        "continuous / integer / categorical": " / ".join(str(counts[k]) for k in counts),
        "categorical features": ", ".join(
            f"{c} ({len(table.frame[c].cat.categories)})"
            for c, k in features.items()
            if k == "categorical"
        ),
        "target": f"{table.target}: {task}",
        "source": table.source,
    }


if __name__ == "__main__":
    for name in TABLES:
        print(describe(load(name)))

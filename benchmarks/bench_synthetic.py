"""How close to real rows, and how far from the training rows, are the rows that skflow generates
from a mixed-type table, against ForestFlow, a Gaussian mixture and a kernel density?

The protocol of the ForestFlow paper (Jolicoeur-Martineau, Fatras and Kachman, *Generating and
Imputing Tabular Data via Diffusion and Flow-based Gradient-Boosted Trees*, AISTATS 2024): for
each seed, a train/test split of the table (80/20, stratified on the label of a classification
table); each method fitted on the training rows, and as many rows generated as there are
training rows. On a classification table every method generates the features given the class,
each class drawn from its share of the training rows (ForestFlow's ``label_y``, as the package's
own example does for a classification problem; skflow's ``FlowMatchingClassifier``, a generator
of ``(X, y)``); a regression table's target is one more column. Measured on every generated
table:

* **W1 ratio**: the Wasserstein-1 distance between the generated rows and the test rows, over the
  oracle's, the same distance between the training rows and the test rows (1 = as close as fresh
  real rows; lower is better). The rows are encoded as in the paper: numeric columns min-max scaled
  to [0, 1] with the training rows' minimum and maximum, each categorical column (label included)
  one-hot with one 0/1 indicator per training category, every indicator weighted 1 (two rows that
  differ in one category are sqrt(2) apart on it); the distance is the exact earth mover's distance
  (POT ``ot.emd2``, uniform weights, Euclidean cost).
* **coverage** (after Naeem et al., *Reliable Fidelity and Diversity Metrics for Generative
  Models*, ICML 2020, with k = 5): the share of test rows whose nearest generated row is closer
  than their 5th nearest training row, in the same encoding (higher is better; the training rows
  themselves would score 1).
* **distance to the closest record** (DCR, as in synthcity and SDV's privacy metrics): the
  median over the generated rows of the distance to their nearest training row, over the same
  median for the test rows, in the same encoding (1 = as far from the training rows as fresh real
  rows; well below 1 = the method reproduces its training rows, which lowers the W1 ratio without
  generalising and leaks them), and the share of generated rows that copy a training row exactly
  (against the share of test rows that do: on a table of few discrete values, real rows repeat).
* **train on synthetic, test on real**: a ``RandomForestClassifier`` / ``RandomForestRegressor``
  (100 trees, ``random_state=0``, categorical features one-hot) fitted on the generated rows
  predicts the label of the test rows; accuracy or R^2, against the same forest fitted on the
  training rows.
* **invalid rows**: generated rows with a value no real row could have: a category outside the
  training categories, a non-integer in an integer column, a value outside the table's declared
  bounds, NaN or infinity.
* **fit and sampling time**: CPU seconds of the process on one thread.

The methods, each with its defaults:

* ``flow``: ``FlowMatchingDensity(bounds=table_bounds, random_state=seed)`` fitted on the table
  itself: its ``category`` columns categorical and its integer columns integer (the defaults
  ``categorical_features="from_dtype"``, ``integer_features="from_dtype"``), its declared bounds
  given; its ``sample`` returns a table of the same columns and dtypes. On a classification
  table, ``FlowMatchingClassifier(bounds=feature_bounds, random_state=seed)`` fitted on the
  features and the label, sampled by its ``sample(n)``;
* ``forestflow``: ForestFlow, ``ForestDiffusionModel(diffusion_type="flow")`` of the
  ``forestdiffusion`` package with its defaults (XGBoost, 50 noise levels, 100 duplicates of each
  row, 100 trees of depth 7, seed 666) but ``n_jobs=1`` (its default -1 trains in worker processes
  whose CPU time this process cannot see); categorical columns as its ``cat_indexes`` (binary
  ones as ``bin_indexes``), integer columns as its ``int_indexes``, a classification table's
  label as its ``label_y``; it rounds integers and clips every column to its training range;
* ``gmm``: a ``GaussianMixture`` on the encoding above, the lowest BIC of 1, 2, 4, 8 and 16
  components with full or diagonal covariances (``reg_covar=1e-4``);
* ``kde``: a Gaussian ``KernelDensity`` on the encoding above, its bandwidth chosen among 9
  values from 0.01 to 1 (log-spaced) by 5-fold cross-validated likelihood.

On a classification table ``gmm`` and ``kde`` are fitted to each class's rows. Their encoded
samples are decoded the same way: each categorical column to the category of its largest
indicator, numeric columns unscaled, integer columns rounded, and every numeric column clipped
to its training range (which lies within the declared bounds).

ForestFlow is slow on one thread (minutes to tens of minutes a fit, growing with the square of
the number of encoded columns), and its runs do not depend on skflow: each one's generated rows and
times are kept in the cache folder of the data (``SKFLOW_DATA``, default
``~/.cache/skflow-benchmarks``, under ``synthetic-v1/``) and read back by later runs
(``--refit-forestflow`` ignores them); the result file says how many were read back.

Reproduce (from the repository root; needs the ``benchmarks`` extras, ``forestdiffusion``
included, and ``apt-get download`` or ``SKFLOW_DEB_DIR`` for the mlbench tables)::

    OMP_NUM_THREADS=1 python benchmarks/bench_synthetic.py
    OMP_NUM_THREADS=1 python benchmarks/bench_synthetic.py --quick    # 1 seed, 3 tables

``--label-as-column`` generates a classification table's label as one more column instead, for
every method (ForestFlow's runs of either kind are cached apart).

The first writes ``benchmarks/results/synthetic.md``; ``--quick`` only prints, unless ``--output``
names a file.
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import importlib.metadata
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import _outlier_data
import _tables
import numpy as np
import ot
import pandas as pd
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity, NearestNeighbors

from skflow import FlowMatchingClassifier, FlowMatchingDensity

METHODS = ("flow", "forestflow", "gmm", "kde")
QUICK_TABLES = ["iris", "servo", "breastw"]
CACHE_VERSION = 1  # bump when the tables, the splits or the ForestFlow call change
COVERAGE_K = 5


# --------------------------------------------------------------------------------------------------
# encoding


class Encoder:
    """Rows of a table as numbers: numeric columns min-max scaled to [0, 1] with the training rows'
    range, each categorical column one 0/1 indicator per training category; and back."""

    def __init__(self, train: pd.DataFrame) -> None:
        self.columns = list(train.columns)
        self.kinds = {c: _tables.column_kind(v) for c, v in train.items()}
        self.categories = {
            c: list(pd.unique(train[c].dropna()))
            for c, kind in self.kinds.items()
            if kind == "categorical"
        }
        numeric = [c for c in self.columns if c not in self.categories]
        self.low = train[numeric].min().astype(np.float64)
        self.span = (train[numeric].max() - self.low).astype(np.float64).replace(0.0, 1.0)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = []
        for column in self.columns:
            values = frame[column]
            if column in self.categories:
                indicators = [(values == c).to_numpy() for c in self.categories[column]]
                blocks.append(np.column_stack(indicators).astype(np.float64))
            else:
                scaled = (values.to_numpy(np.float64) - self.low[column]) / self.span[column]
                blocks.append(scaled[:, None])
        return np.hstack(blocks)

    def inverse_transform(self, Z: np.ndarray) -> pd.DataFrame:
        """Largest indicator -> its category; numbers unscaled, clipped to the training range and,
        in integer columns, rounded."""
        columns, start = {}, 0
        for column in self.columns:
            if column in self.categories:
                levels = self.categories[column]
                chosen = np.argmax(Z[:, start : start + len(levels)], axis=1)
                columns[column] = pd.Categorical(
                    np.asarray(levels, dtype=object)[chosen], categories=levels
                )
                start += len(levels)
                continue
            values = np.clip(Z[:, start], 0.0, 1.0) * self.span[column] + self.low[column]
            if self.kinds[column] == "integer":
                values = np.round(values).astype(np.int64)
            columns[column] = values
            start += 1
        return pd.DataFrame(columns)


# --------------------------------------------------------------------------------------------------
# methods


class EncodedDensity:
    """A density fitted on the encoded rows, its samples decoded into a table. ``make`` fits it on
    an array and returns its sampler, a function of the number of rows and a seed."""

    def __init__(self, make) -> None:
        self.make = make

    def fit(self, train: pd.DataFrame) -> EncodedDensity:
        self.encoder_ = Encoder(train)
        self.sampler_ = self.make(self.encoder_.transform(train))
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        return self.encoder_.inverse_transform(self.sampler_(n, seed))


class Flow:
    """``FlowMatchingDensity`` on the table itself, with the table's declared bounds; given the
    label ``target``, ``FlowMatchingClassifier`` on the other columns, sampling rows of classes
    drawn from the training shares. ``params`` changes its other hyperparameters."""

    def __init__(
        self, table: _tables.Table, seed: int, target: str | None, params: dict | None = None
    ) -> None:
        self.target = target
        bounds = {c: b for c, b in (table.bounds or {}).items() if c != self.target}
        model = FlowMatchingDensity if self.target is None else FlowMatchingClassifier
        self.model = model(bounds=bounds or None, random_state=seed, **(params or {}))

    def fit(self, train: pd.DataFrame) -> Flow:
        self.columns, self.label_type = list(train.columns), train.dtypes.get(self.target)
        if self.target is None:
            self.model.fit(train)
        else:
            self.model.fit(train.drop(columns=self.target), train[self.target])
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        if self.target is None:
            return self.model.sample(n, random_state=seed)
        rows, labels = self.model.sample(n, random_state=seed)
        return rows.assign(**{self.target: pd.Series(labels, dtype=self.label_type)})[self.columns]


class PerClass:
    """A method made by ``make`` fitted on the features of each class's training rows; the
    classes of the generated rows drawn from the training shares."""

    def __init__(self, make, target: str) -> None:
        self.make, self.target = make, target

    def fit(self, train: pd.DataFrame) -> PerClass:
        self.dtypes = train.dtypes
        labels = train[self.target]
        self.classes_ = list(pd.unique(labels))
        self.shares_ = np.array([np.mean(labels == c) for c in self.classes_])
        features = train.drop(columns=self.target)
        self.models_ = [self.make().fit(features[(labels == c).to_numpy()]) for c in self.classes_]
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        counts = np.random.default_rng(seed).multinomial(n, self.shares_)
        blocks = [
            model.sample(k, seed).assign(**{self.target: [label] * k})
            for model, label, k in zip(self.models_, self.classes_, counts)
            if k
        ]
        rows = pd.concat(blocks, ignore_index=True)  # categories differ between the classes
        return rows.astype(self.dtypes.to_dict())[list(self.dtypes.index)]


def _bic_mixture(seed: int):
    def make(Z: np.ndarray):
        candidates = [
            GaussianMixture(k, covariance_type=kind, reg_covar=1e-4, random_state=seed)
            for k in (1, 2, 4, 8, 16)
            for kind in ("full", "diag")
            if k < Z.shape[0]
        ]
        best = min((model.fit(Z) for model in candidates), key=lambda model: model.bic(Z))
        return lambda n, s: best.sample(n)[0][np.random.default_rng(s).permutation(n)]

    return make


def _kde(seed: int):
    def make(Z: np.ndarray):
        grid = {"bandwidth": np.logspace(-2, 0, 9)}
        best = GridSearchCV(KernelDensity(), grid, cv=5).fit(Z).best_estimator_
        return lambda n, s: best.sample(n, random_state=s)

    return make


def _forest_diffusion_model(*args, **kwargs):
    """``ForestDiffusionModel(*args, **kwargs)``, whose one-hot decoding returns a writable array
    (under pandas 3 its ``DataFrame.to_numpy()`` is read-only, and rounding it in place fails)."""
    from ForestDiffusion.diffusion_with_trees_class import ForestDiffusionModel

    class WritableDecoding(ForestDiffusionModel):
        def clean_onehot_data(self, X: np.ndarray) -> np.ndarray:
            return np.array(super().clean_onehot_data(X))

    return WritableDecoding(*args, **kwargs)


class ForestFlow:
    """ForestFlow (``forestdiffusion``'s ``ForestDiffusionModel(diffusion_type="flow")``) on a
    table: categorical columns as contiguous codes of their training categories; a
    classification table's label as its ``label_y`` (one model per class, classes drawn from the
    training shares)."""

    def __init__(self, target: str | None) -> None:
        self.target = target

    def fit(self, train: pd.DataFrame) -> ForestFlow:
        self.order = list(train.columns)
        label_y = None
        if self.target is not None:  # the label last: where ForestDiffusion puts it back
            train = train[[c for c in self.order if c != self.target] + [self.target]]
        self.columns, self.dtypes = list(train.columns), train.dtypes
        kinds = [_tables.column_kind(train[c]) for c in self.columns]
        self.levels = {}
        codes = []
        for column, kind in zip(self.columns, kinds):
            if kind == "categorical":
                self.levels[column] = sorted(pd.unique(train[column].dropna()), key=str)
                mapping = {level: i for i, level in enumerate(self.levels[column])}
                codes.append(train[column].map(mapping).to_numpy(np.float64))
            else:
                codes.append(train[column].to_numpy(np.float64))
        if self.target is not None:
            label_y = codes.pop()
        features = self.columns[: len(codes)]
        sizes = [len(self.levels.get(c, ())) for c in features]
        self.model_ = _forest_diffusion_model(
            np.column_stack(codes),
            label_y=label_y,
            diffusion_type="flow",
            cat_indexes=[i for i, k in enumerate(sizes) if k > 2],
            bin_indexes=[i for i, k in enumerate(sizes) if k == 2],
            int_indexes=[i for i, k in enumerate(kinds[: len(codes)]) if k == "integer"],
            n_jobs=1,
        )
        return self

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        """``n`` rows (ForestDiffusion draws from NumPy's global generator, seeded by its fit)."""
        generated = self.model_.generate(batch_size=n)
        columns = {}
        for j, column in enumerate(self.columns):
            values = generated[:, j]
            if column in self.levels:
                levels = np.asarray(self.levels[column], dtype=object)
                inside = (values >= 0) & (values < len(levels)) & (values == np.round(values))
                chosen = np.where(inside, values, 0).astype(int)
                labels = np.where(inside, levels[chosen], None)
                columns[column] = pd.Categorical(labels, categories=self.levels[column])
            elif self.dtypes[column].kind == "i" and np.all(values == np.round(values)):
                columns[column] = values.astype(np.int64)
            else:
                columns[column] = values
        return pd.DataFrame(columns)[self.order]


def given_label(table: _tables.Table, label_as_column: bool) -> str | None:
    """The label that the methods generate rows given: a classification table's, unless it is to
    be generated as one more column."""
    return table.target if table.task == "classification" and not label_as_column else None


def make_method(
    name: str, table: _tables.Table, seed: int, target: str | None, flow: dict | None = None
):
    """The method ``name``, unfitted, generating rows given the label ``target`` (if not None):
    ``fit(train_frame)``, then ``sample(n, seed)``; ``flow`` changes the flow's hyperparameters."""
    if name == "flow":
        return Flow(table, seed, target, flow)
    if name == "forestflow":
        return ForestFlow(target)
    make = {"gmm": _bic_mixture, "kde": _kde}[name]
    if target is None:
        return EncodedDensity(make(seed))
    return PerClass(lambda: EncodedDensity(make(seed)), target)


# --------------------------------------------------------------------------------------------------
# metrics


def invalid_rows(generated: pd.DataFrame, train: pd.DataFrame, bounds: _tables.Bounds) -> int:
    """How many generated rows hold a value no real row could have."""
    bad = np.zeros(len(generated), dtype=bool)
    for column, values in train.items():
        out = generated[column]
        kind = _tables.column_kind(values)
        if kind == "categorical":
            bad |= ~out.isin(pd.unique(values.dropna())).to_numpy()
            continue
        numbers = pd.to_numeric(out, errors="coerce").to_numpy(np.float64)
        bad |= ~np.isfinite(numbers)
        if kind == "integer":
            bad |= numbers != np.round(numbers)
        low, high = bounds.get(column, (None, None))
        if low is not None:
            bad |= numbers < low
        if high is not None:
            bad |= numbers > high
    return int(bad.sum())


def wasserstein(A: np.ndarray, B: np.ndarray) -> float:
    """Exact W1 between two uniform point clouds, Euclidean cost."""
    cost = ot.dist(A, B, metric="euclidean")
    return float(ot.emd2(ot.unif(len(A)), ot.unif(len(B)), cost, numItermax=10**7))


def coverage(test: np.ndarray, train: np.ndarray, fake: np.ndarray, k: int = COVERAGE_K) -> float:
    """The share of ``test`` rows whose nearest ``fake`` row is at most as far as their k-th
    nearest ``train`` row."""
    radii = NearestNeighbors(n_neighbors=k).fit(train).kneighbors(test)[0][:, -1]
    nearest = NearestNeighbors(n_neighbors=1).fit(fake).kneighbors(test)[0][:, 0]
    return float(np.mean(nearest <= radii))


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def closest_record(train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The distance of each of ``rows`` to its nearest ``train`` row."""
    return NearestNeighbors(n_neighbors=1).fit(train).kneighbors(rows)[0][:, 0]


def train_on(rows: pd.DataFrame, test: pd.DataFrame, table: _tables.Table) -> float:
    """Accuracy or R^2 on ``test`` of a random forest fitted on ``rows``."""
    features = Encoder(rows.drop(columns=table.target))
    if table.task == "classification":
        forest, score, kind = RandomForestClassifier(random_state=0), accuracy_score, str
    else:
        forest, score, kind = RandomForestRegressor(random_state=0), r2_score, float
    forest.fit(features.transform(rows), rows[table.target].to_numpy().astype(kind))
    predicted = forest.predict(features.transform(test))
    return float(score(test[table.target].to_numpy().astype(kind), predicted))


# --------------------------------------------------------------------------------------------------
# runs


def split(table: _tables.Table, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 80/20 split of ``seed`` (stratified on a classification table's label)."""
    labels = table.frame[table.target] if table.task == "classification" else None
    train, test = train_test_split(table.frame, test_size=0.2, stratify=labels, random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _cache_path(table: _tables.Table, seed: int, target: str | None) -> Path:
    version = importlib.metadata.version("forestdiffusion")
    folder = _outlier_data.cache_dir() / f"synthetic-v{CACHE_VERSION}"
    given = "" if target is None else "-given-label"
    return folder / f"forestflow-{version}-{table.name}-seed{seed}{given}.pkl"


def generate(
    name: str,
    train: pd.DataFrame,
    table: _tables.Table,
    seed: int,
    target: str | None,
    refit: bool,
    flow: dict | None = None,
):
    """``(rows, fit CPU s, sampling CPU s, read from the cache)`` of method ``name``, generating
    rows given the label ``target`` (if not None); ``flow`` changes the flow's hyperparameters."""
    path = _cache_path(table, seed, target)
    if name == "forestflow" and path.exists() and not refit:
        with open(path, "rb") as stored:
            return (*pickle.load(stored), True)
    method = make_method(name, table, seed, target, flow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GaussianMixture's and XGBoost's notes
        _, fit_s, _ = _common.timed(method.fit, train)
        rows, sample_s, _ = _common.timed(method.sample, len(train), seed)
    if name == "forestflow":
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".pkl", delete=False) as tmp:
            pickle.dump((rows, fit_s, sample_s), tmp)
        os.replace(tmp.name, path)
    return rows, fit_s, sample_s, False


def run(
    table: _tables.Table,
    seed: int,
    methods: list[str],
    label_as_column: bool,
    refit: bool,
    flow: dict | None = None,
) -> dict:
    """Every method on one split: {"oracle": {...}, method: {metric: value}}; ``flow`` changes the
    flow's hyperparameters."""
    target = given_label(table, label_as_column)
    train, test = split(table, seed)
    encoder = Encoder(train)
    test_z, train_z = encoder.transform(test), encoder.transform(train)
    oracle = wasserstein(train_z, test_z)
    test_record = closest_record(train_z, test_z)
    results = {
        "oracle": {
            "w1": oracle,
            "utility": train_on(train, test, table),
            "copies": float(np.mean(test_record == 0.0)),
        }
    }
    for name in methods:
        rows, fit_s, sample_s, cached = generate(name, train, table, seed, target, refit, flow)
        invalid = invalid_rows(rows, train, table.bounds)
        rows_z = encoder.transform(rows)
        w1 = wasserstein(rows_z, test_z)
        record = closest_record(train_z, rows_z)
        results[name] = {
            "w1": w1,
            "ratio": w1 / oracle,
            "coverage": coverage(test_z, train_z, rows_z),
            "dcr": _ratio(np.median(record), np.median(test_record)),
            "copies": float(np.mean(record == 0.0)),
            "utility": train_on(rows, test, table),
            "fit": fit_s,
            "sample": sample_s,
            "invalid": invalid,
            "cached": cached,
        }
    return results


# --------------------------------------------------------------------------------------------------
# tables


def _mean(found: list[dict], name: str, metric: str) -> float:
    return float(np.mean([r[name][metric] for r in found]))


def _cell(found: list[dict], name: str, metric: str, digits: int = 3) -> str:
    return _common.mean_and_spread([r[name][metric] for r in found], digits)


def tables(found: dict[str, list[dict]], methods: list[str]) -> str:
    """The summary and the per-table tables of W1 ratio, coverage, utility and times."""
    names = list(found)
    summary = []
    for m in methods:
        ratios = np.array([_mean(found[t], m, "ratio") for t in names])
        gaps = [_mean(found[t], m, "utility") - _mean(found[t], "oracle", "utility") for t in names]
        row = {
            "method": m,
            "mean W1 ratio": f"{ratios.mean():.3f}",
            "median W1 ratio": f"{np.median(ratios):.3f}",
            "mean coverage": f"{np.mean([_mean(found[t], m, 'coverage') for t in names]):.3f}",
            "median DCR ratio": f"{np.median([_mean(found[t], m, 'dcr') for t in names]):.3f}",
            "mean copies": f"{np.mean([_mean(found[t], m, 'copies') for t in names]):.3f}",
            "mean utility - real": f"{np.mean(gaps):+.3f}",
            "invalid rows": sum(r[m]["invalid"] for t in names for r in found[t]),
            "fit CPU s, total": f"{sum(r[m]['fit'] for t in names for r in found[t]):.0f}",
        }
        if "forestflow" in methods and m != "forestflow":
            theirs = np.array([_mean(found[t], "forestflow", "ratio") for t in names])
            time_ratio = [
                _mean(found[t], m, "fit") / _mean(found[t], "forestflow", "fit") for t in names
            ]
            row["W1 below ForestFlow's"] = f"{int((ratios < theirs).sum())}/{len(names)}"
            row["fit time / ForestFlow's, median"] = f"{np.median(time_ratio):.3g}"
        summary.append(row)

    def detail(metric: str, oracle: bool, digits: int = 3) -> str:
        columns = ["table", *(["oracle"] if oracle else []), *methods]
        rows = []
        for t in names:
            row = {"table": t, **{m: _cell(found[t], m, metric, digits) for m in methods}}
            if oracle:
                row["oracle"] = _cell(found[t], "oracle", metric, digits)
            rows.append(row)
        return _common.markdown_table(rows, columns)

    times = [
        {
            "table": t,
            **{
                m: f"{_mean(found[t], m, 'fit'):.1f} / {_mean(found[t], m, 'sample'):.2f}"
                for m in methods
            },
        }
        for t in names
    ]
    oracle_w1 = [{"table": t, "oracle W1": _cell(found[t], "oracle", "w1")} for t in names]
    return (
        "### Summary over the tables\n\n"
        + _common.markdown_table(summary, list(max(summary, key=len)))
        + "\n\n### W1 to the test rows over the oracle's (mean ± std over the seeds)\n\n"
        + detail("ratio", oracle=False)
        + "\n\n### Oracle W1 (training rows to test rows)\n\n"
        + _common.markdown_table(oracle_w1, ["table", "oracle W1"])
        + f"\n\n### Coverage of the test rows (k = {COVERAGE_K})\n\n"
        + detail("coverage", oracle=False)
        + "\n\n### Distance to the closest training row, over the test rows' (median)\n\n"
        + detail("dcr", oracle=False)
        + "\n\n### Share of rows that copy a training row (oracle: the test rows)\n\n"
        + detail("copies", oracle=True)
        + "\n\n### Train on synthetic, test on real: accuracy or R^2 (oracle: real rows)\n\n"
        + detail("utility", oracle=True)
        + "\n\n### CPU seconds: fit / sampling\n\n"
        + _common.markdown_table(times, ["table", *methods])
    )


def sources(names: list[str]) -> str:
    rows = [_tables.describe(_tables.load(name)) for name in names]
    return "### Tables\n\n" + _common.markdown_table(rows, list(rows[0]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", choices=list(_tables.TABLES), default=None)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 seed, three small tables; prints")
    parser.add_argument("--output", help="result file (default synthetic.md; none with --quick)")
    parser.add_argument(
        "--refit-forestflow", action="store_true", help="ignore ForestFlow's cached runs"
    )
    parser.add_argument(
        "--flow-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter of the flow, e.g. early_stopping=False (repeatable)",
    )
    parser.add_argument(
        "--label-as-column",
        action="store_true",
        help="generate a classification table's label as one more column, not rows given it",
    )
    args = parser.parse_args(argv)
    flow = _common.param_changes(args.flow_param)
    names = args.tables or (QUICK_TABLES if args.quick else list(_tables.TABLES))
    seeds = range(1 if args.quick else args.seeds)
    date, load_start = datetime.date.today().isoformat(), _common.load_average()
    code_at_start = _common.code_version()
    loaded = {name: _tables.load(name) for name in names}
    found = {name: [] for name in names}
    for seed in seeds:  # every table once before the next seed
        for name in names:
            result = run(
                loaded[name], seed, args.methods, args.label_as_column, args.refit_forestflow, flow
            )
            found[name].append(result)
            cells = ", ".join(
                f"{m} {v['ratio']:.3f} ({v['fit']:.1f} s)"
                for m, v in result.items()
                if m != "oracle"
            )
            print(f"{name} seed {seed}: W1 ratio {cells}", flush=True)

    cached = sum(r[m]["cached"] for rs in found.values() for r in rs for m in args.methods)
    header = (
        "## Synthetic-data benchmark\n\n"
        f"`{_common.command_line(argv, script=__file__)}`, {date}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}; "
        f"forestdiffusion {importlib.metadata.version('forestdiffusion')}. "
        f"1-minute load average {load_start} at the start, {_common.load_average()} at the end. "
        f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} (80/20 splits); "
        + (f"the flow's hyperparameters changed: {flow}; " if flow else "default hyperparameters; ")
        + (
            "a classification table's label generated as one more column"
            if args.label_as_column
            else "a classification table's rows generated given their class"
        )
        + (f"; {cached} ForestFlow runs read from the cache" if cached else "")
        + ".\n\n"
    )
    text = header + tables(found, args.methods) + "\n\n" + sources(names) + "\n"
    print(text)
    output = args.output or (None if args.quick else "synthetic.md")
    if output is not None:
        print(f"written to {_common.write_result(output, text)}")


if __name__ == "__main__":
    main()

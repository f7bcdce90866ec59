"""How well does skflow's ``FlowMatchingImputer`` fill missing cells, and how honest is its
uncertainty, against scikit-learn's imputers and ForestDiffusion?

The imputation protocol of the ForestDiffusion paper (Jolicoeur-Martineau, Fatras and Kachman,
*Generating and Imputing Tabular Data via Diffusion and Flow-based Gradient-Boosted Trees*,
AISTATS 2024): cells of a complete real table are removed, each imputer is fitted on the whole
incomplete table and fills it (transductive: ``fit_transform``), and the filled cells are compared
with the removed values. The tables (``--tables``) are the real tables of ``_tables.py``, by
default the eight with at least four numeric features (iris, wine, glass, ozone, diabetes, boston,
breastw, pima: 150 to 768 rows, 4 to 13 columns; servo, whose only numeric features are two gains,
on request; votes has none), and three more read here on request: scikit-learn's
``load_breast_cancer()`` and mlbench's Ionosphere and Sonar (30, 33 and 60 columns, left out of
the default for ForestDiffusion's cost: about 10 CPU min per run on breast_cancer). Of each table,
the numeric feature columns only (integer and continuous, as float; categorical features and
constant columns dropped; pima's zeros that stand for missing measurements are kept as values),
the table's ``target`` kept aside as the label of the downstream task (a categorical target makes
it a classification). No imputer sees the label.

Missingness, for each table, seed (``--seeds``, default 3) and setting (``--settings``), with
``numpy.random.default_rng([seed, crc32(table name), setting index])``; ``r`` is the missing rate
(``--missing-rate``, default 0.2):

* **mcar** (missing completely at random): every cell removed independently with probability
  ``r``; the whole mask is redrawn until no row and no column is entirely missing.
* **mar** (missing at random; the logistic mechanism of Muzellec et al., *Missing Data Imputation
  using Optimal Transport*, ICML 2020): ``floor(d / 2)`` of the ``d`` columns (at least one), chosen
  at random, stay fully observed. Each other column ``j`` gets random weights ``w_j`` (standard
  normal, one per observed column), scaled so that the logits ``z_i . w_j`` have standard deviation
  1 over the rows, where ``z_i`` is row ``i``'s observed columns standardised with the full table's
  mean and standard deviation; cell ``(i, j)`` is removed with probability
  ``sigmoid(z_i . w_j + b_j)``, the intercept ``b_j`` solved by bisection so that the column's mean
  probability is ``r d / (d - floor(d / 2))``: the expected share of removed cells over the whole
  table is ``r``. The draws are redrawn until no column is entirely missing (no row can be).

Measured on the removed cells, each value in units of its column's standard deviation in the full
table, pooled over all the removed cells of a table:

* **MAE** and **RMSE** of the point imputation (``fit_transform``);
* **draw MAE**: the MAE of one multiple imputation, averaged over the draws (the paper's AvgMAE);
* **coverage**: the share of removed cells whose true value lies within the 5 %-95 % quantile
  interval of ``k`` multiple imputations (``--n-imputations``, default 20), and the **width** of
  that interval, averaged over the cells. The quantiles are NumPy's ``method="weibull"``: the
  ``j``-th smallest of ``k`` draws lies below a new value of their law with probability
  ``j / (k + 1)``, so a perfectly calibrated imputer covers 90 % (with the default linear
  interpolation it would cover about 81 % with 20 draws). The header gives that expected coverage
  by Monte Carlo (a true value and ``k`` draws from the same normal law); a coverage well below it
  with a narrow width is overconfidence, above it with a wide width underconfidence. Only methods
  that draw imputations have them;
* **downstream**: the imputed table's rows split 70/30 (stratified on a classification label,
  ``random_state=seed``, the same split for every method), a ``RandomForestClassifier`` /
  ``RandomForestRegressor`` (100 trees, ``random_state=0``) fitted on the imputed training part
  with its labels, scored on the imputed test part (accuracy or R^2); "oracle" is the same on the
  complete table;
* **CPU seconds** of the process (one thread): ``point`` to get the point imputation (fit included),
  ``draws`` the extra time to get the ``k`` multiple imputations.

The methods (``--methods``, default all):

* ``mean``: ``SimpleImputer()`` (column means; no draws);
* ``knn``: ``KNNImputer()`` (5 neighbours) on the table standardised with the observed cells' mean
  and standard deviation (``StandardScaler``, which ignores missing cells; KNN's distances are in
  the columns' units otherwise), unscaled back; no draws;
* ``iterative_br``: ``IterativeImputer(BayesianRidge(), max_iter=10, random_state=seed)``, the
  point imputation with ``sample_posterior=False``; its draws are ``k`` runs with
  ``sample_posterior=True`` and ``random_state=1000 * seed + i`` (scikit-learn's multiple
  imputation, as MICE);
* ``iterative_et``: ``IterativeImputer(ExtraTreesRegressor(n_estimators=100, random_state=seed),
  max_iter=10, random_state=seed)``: MissForest's algorithm (Stekhoven and Buhlmann 2012: from a
  mean imputation, each column in turn regressed on the others by a forest, columns with the
  fewest missing cells first, up to 10 rounds) run by scikit-learn, as its documentation suggests,
  with extremely randomised trees for a random forest; no draws. The PyPI package ``MissForest``
  (4.2.3, one author) exists but is not used: its default regressor is LightGBM with linear trees,
  not a forest, its wheel declares none of the packages it imports (lightgbm, tqdm, pandas,
  scikit-learn) and installs a stray top-level ``__init__.py``; scikit-learn's estimator is
  maintained;
* ``forestdiffusion``: ForestDiffusion's imputer, ``ForestDiffusionModel(X_missing,
  diffusion_type="vp", n_t=10, duplicate_K=5, n_jobs=1, seed=seed)`` of the ``forestdiffusion``
  package (the VP diffusion: its flow variant cannot impute), then ``impute(k=k, repaint=True,
  r=10, j=0.1)`` (RePaint: each step redone 10 times, every ``ceil(0.1 n_t)`` steps; the package's
  default ``r`` is 5); its point imputation is the cell-wise median of the ``k`` draws, so its
  ``draws`` time is part of its ``point`` time. Its other settings are the package's defaults
  (XGBoost, 100 trees of depth 7, ``eta=0.3``, ``reg_lambda=0``, its data iterator). A table with
  missing cells gets one XGBoost model per column and noise level, and on one thread each takes
  0.5 to 1.5 s (more rows, more columns), so the paper's ``n_t=50, duplicate_K=100`` would take
  hours per table; ``n_t=10, duplicate_K=5`` cost 15 (iris) to 125 (boston) CPU s per run on the
  default tables, fit and 20 draws (9.6 CPU min on breast_cancer), and cost it some accuracy: on
  one MCAR mask of wine, MAE 0.65-0.69 with these settings, 0.61 with ``n_t=20, duplicate_K=20``
  (without RePaint; 3 CPU min), 0.84 with ``n_t=5``. ``--forestdiffusion-param NAME=VALUE``
  changes any of these settings. Its runs do not depend on skflow: each one's draws and times are
  kept in the cache folder of the data (``SKFLOW_DATA``, default ``~/.cache/skflow-benchmarks``,
  under ``imputation-v1/``), keyed by the table, setting, seed, a hash of the incomplete table and
  the settings, and read back by later runs (``--refit-forestdiffusion`` ignores them);
* ``flow``: ``FlowMatchingImputer(random_state=seed)`` of skflow (``--flow-param NAME=VALUE``
  changes its hyperparameters): the point imputation is ``fit_transform(X_missing)``, the draws
  ``sample_imputations(X_missing, n_imputations=k, random_state=seed)``.

Every method's output is checked to be finite, and its observed cells are put back to their
values (the result file names any method that changed them). The summary gives, per setting,
the means over the tables and seeds, and two counts over the tables (means over the seeds): on
how many a method's MAE is within 10 % of the best tree imputer's (the lower of ``iterative_et``
and ``forestdiffusion``), and on how many it is at most ``iterative_br``'s.

Reproduce (from the repository root; needs the ``benchmarks`` extras, ``forestdiffusion``
included, and ``apt-get download`` or ``SKFLOW_DEB_DIR`` for the mlbench tables)::

    OMP_NUM_THREADS=1 python benchmarks/bench_imputation.py --jobs 2
    OMP_NUM_THREADS=1 python benchmarks/bench_imputation.py --seeds 1 --tables iris wine \\
        --output /tmp/imputation.md

``--jobs N`` runs the (table, seed, setting) jobs N at a time, each in its own one-thread
process (joblib). The first writes ``benchmarks/results/imputation.md``. Without the flow, the
default tables and seeds took 66 min wall with ``--jobs 1`` the first time (ForestDiffusion's
runs 59 CPU min of it) and 10 min with its runs read from the cache.
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import hashlib
import importlib.metadata
import os
import pickle
import tempfile
import time
import warnings
import zlib
from functools import partial
from pathlib import Path

import _outlier_data
import _tables
import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.ensemble import (
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import BayesianRidge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

METHODS = ("mean", "knn", "iterative_br", "iterative_et", "forestdiffusion", "flow")
TREE_IMPUTERS = ("iterative_et", "forestdiffusion")
SETTINGS = ("mcar", "mar")
CACHE_VERSION = 1  # bump when the ForestDiffusion call or what its cache holds changes
FOREST_DIFFUSION = {"n_t": 10, "duplicate_K": 5, "repaint": True, "r": 10, "j": 0.1}
IMPUTE_ARGUMENTS = ("repaint", "r", "j")  # the rest go to ForestDiffusionModel(...)


# --------------------------------------------------------------------------------------------------
# tables


def _mlbench_table(name: str, rda_name: str, target: str) -> _tables.Table:
    """An mlbench classification table whose features are all numbers (factors with numeric
    levels become those numbers)."""
    features, labels, origin = _outlier_data._rda("mlbench", rda_name, target)
    frame = _tables._typed(features)
    frame[target] = pd.Categorical(labels.astype(str).to_numpy())
    return _tables.Table(name, frame, target, "classification", origin)


EXTRA_TABLES = {  # read here, not in _tables (no categorical columns to keep)
    "breast_cancer": partial(_tables._sklearn, "breast_cancer", "diagnosis", "classification"),
    "ionosphere": partial(_mlbench_table, "ionosphere", "Ionosphere", "Class"),
    "sonar": partial(_mlbench_table, "sonar", "Sonar", "Class"),
}
DEFAULT_TABLES = ["iris", "wine", "glass", "ozone", "diabetes", "boston", "breastw", "pima"]
# votes has no numeric column
TABLE_CHOICES = [n for n in _tables.TABLES if n != "votes"] + list(EXTRA_TABLES)


def load(name: str) -> _tables.Table:
    return EXTRA_TABLES[name]() if name in EXTRA_TABLES else _tables.load(name)


def numeric_features(table: _tables.Table) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """``(X, y, used columns, dropped columns)``: the numeric, non-constant feature columns as
    float, the label (strings for a classification, floats for a regression)."""
    features = table.frame.drop(columns=table.target)
    used, dropped = [], []
    for column, values in features.items():
        numeric = _tables.column_kind(values) != "categorical"
        (used if numeric and values.nunique() > 1 else dropped).append(column)
    labels = table.frame[table.target]
    if table.task == "classification":
        y = labels.astype(str).to_numpy()
    else:
        y = labels.to_numpy(np.float64)
    return features[used].to_numpy(np.float64), y, used, dropped


# --------------------------------------------------------------------------------------------------
# missingness


def _rng(name: str, setting: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), SETTINGS.index(setting)])


def mcar_mask(shape: tuple[int, int], rate: float, rng: np.random.Generator) -> np.ndarray:
    """Each cell missing with probability ``rate``, redrawn until no row or column is empty."""
    while True:
        mask = rng.random(shape) < rate
        if not mask.all(axis=1).any() and not mask.all(axis=0).any():
            return mask


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _intercept(logits: np.ndarray, share: float) -> float:
    """``b`` with ``mean(sigmoid(logits + b)) = share``, by bisection."""
    low, high = -50.0, 50.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        if _sigmoid(logits + middle).mean() < share:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def mar_mask(X: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Half the columns observed; the others missing by a logistic model of the observed ones,
    with an expected share ``rate`` of missing cells over the table (see the module docstring)."""
    n, d = X.shape
    n_observed = max(1, d // 2)
    observed = np.sort(rng.choice(d, n_observed, replace=False))
    prone = np.setdiff1d(np.arange(d), observed)
    share = rate * d / len(prone)
    if not 0.0 < share < 1.0:
        raise ValueError(f"a missing rate of {rate} cannot be reached with {len(prone)} of {d}")
    Z = X[:, observed]
    Z = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    logits = Z @ rng.standard_normal((n_observed, len(prone)))
    logits /= np.where(logits.std(axis=0) > 0, logits.std(axis=0), 1.0)
    p = np.column_stack([_sigmoid(z + _intercept(z, share)) for z in logits.T])
    while True:
        mask = np.zeros((n, d), dtype=bool)
        mask[:, prone] = rng.random(p.shape) < p
        if not mask[:, prone].all(axis=0).any():
            return mask


def remove(X: np.ndarray, name: str, setting: str, seed: int, rate: float) -> np.ndarray:
    """The mask of the cells removed from table ``name`` in ``setting`` at ``seed``."""
    rng = _rng(name, setting, seed)
    return mcar_mask(X.shape, rate, rng) if setting == "mcar" else mar_mask(X, rate, rng)


# --------------------------------------------------------------------------------------------------
# methods: each returns (point imputation, draws or None, point CPU s, draws CPU s, cached)


def _mean(X_missing, seed, k, params):
    point, point_s, _ = _common.timed(SimpleImputer().fit_transform, X_missing)
    return point, None, point_s, 0.0, False


def _knn(X_missing, seed, k, params):
    def impute(X):
        scaler = StandardScaler().fit(X)
        return scaler.inverse_transform(KNNImputer().fit_transform(scaler.transform(X)))

    point, point_s, _ = _common.timed(impute, X_missing)
    return point, None, point_s, 0.0, False


def _iterative_br(X_missing, seed, k, params):
    def imputer(posterior: bool, state: int) -> IterativeImputer:
        return IterativeImputer(
            BayesianRidge(), sample_posterior=posterior, max_iter=10, random_state=state
        )

    point, point_s, _ = _common.timed(imputer(False, seed).fit_transform, X_missing)

    def draw() -> np.ndarray:
        return np.stack([imputer(True, 1000 * seed + i).fit_transform(X_missing) for i in range(k)])

    draws, draws_s, _ = _common.timed(draw)
    return point, draws, point_s, draws_s, False


def _iterative_et(X_missing, seed, k, params):
    forest = ExtraTreesRegressor(n_estimators=100, random_state=seed)
    imputer = IterativeImputer(forest, max_iter=10, random_state=seed)
    point, point_s, _ = _common.timed(imputer.fit_transform, X_missing)
    return point, None, point_s, 0.0, False


def _forest_diffusion_settings(params: dict | None) -> dict:
    return {**FOREST_DIFFUSION, **(params or {})}


def _cache_path(X_missing: np.ndarray, seed: int, k: int, settings: dict, tag: str) -> Path:
    version = importlib.metadata.version("forestdiffusion")
    digest = hashlib.sha1(X_missing.tobytes())
    digest.update(repr(sorted(settings.items())).encode())
    folder = _outlier_data.cache_dir() / f"imputation-v{CACHE_VERSION}"
    return folder / f"forestdiffusion-{version}-{tag}-seed{seed}-k{k}-{digest.hexdigest()[:12]}.pkl"


def _forestdiffusion(X_missing, seed, k, params, tag="", refit=False):
    """ForestDiffusion's imputer: fitted on the incomplete table, ``k`` draws; its point
    imputation their median. Runs are read from, and written to, the cache."""
    settings = _forest_diffusion_settings(params)
    path = _cache_path(X_missing, seed, k, settings, tag)
    if path.exists() and not refit:
        with open(path, "rb") as stored:
            draws, fit_s, impute_s = pickle.load(stored)
        return np.median(draws, axis=0), draws, fit_s + impute_s, 0.0, True
    from ForestDiffusion.diffusion_with_trees_class import ForestDiffusionModel

    model_args = {n: v for n, v in settings.items() if n not in IMPUTE_ARGUMENTS}
    impute_args = {n: v for n, v in settings.items() if n in IMPUTE_ARGUMENTS}
    model, fit_s, _ = _common.timed(
        ForestDiffusionModel,
        X_missing,
        **{"diffusion_type": "vp", "n_jobs": 1, "seed": seed, **model_args},
    )
    draws, impute_s, _ = _common.timed(model.impute, k=k, **impute_args)
    draws = np.asarray(draws, dtype=np.float64).reshape(k, *X_missing.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".pkl", delete=False) as tmp:
        pickle.dump((draws, fit_s, impute_s), tmp)
    os.replace(tmp.name, path)
    return np.median(draws, axis=0), draws, fit_s + impute_s, 0.0, False


def _flow(X_missing, seed, k, params):
    from skflow import FlowMatchingImputer  # imported here: the other methods run without it

    imputer = FlowMatchingImputer(random_state=seed, **(params or {}))
    point, point_s, _ = _common.timed(imputer.fit_transform, X_missing)
    draws, draws_s, _ = _common.timed(
        imputer.sample_imputations, X_missing, n_imputations=k, random_state=seed
    )
    return np.asarray(point), np.asarray(draws), point_s, draws_s, False


IMPUTERS = {
    "mean": _mean,
    "knn": _knn,
    "iterative_br": _iterative_br,
    "iterative_et": _iterative_et,
    "forestdiffusion": _forestdiffusion,
    "flow": _flow,
}


# --------------------------------------------------------------------------------------------------
# metrics


def calibrated_coverage(k: int, reps: int = 100_000) -> float:
    """The expected coverage of the 5 %-95 % interval of ``k`` draws for a perfectly calibrated
    imputer: a true value and ``k`` draws from the same normal law (Monte Carlo, seed 0)."""
    rng = np.random.default_rng(0)
    draws, truth = rng.standard_normal((reps, k)), rng.standard_normal(reps)
    low, high = np.quantile(draws, [0.05, 0.95], axis=1, method="weibull")
    return float(np.mean((truth >= low) & (truth <= high)))


def cell_scores(X, mask, sd, point, draws) -> dict:
    """MAE and RMSE of the point imputation, and of the draws the draw MAE, coverage and width,
    on the removed cells, in units of each column's standard deviation."""
    errors = ((point - X) / sd)[mask]
    scores = {"mae": float(np.mean(np.abs(errors))), "rmse": float(np.sqrt(np.mean(errors**2)))}
    if draws is not None:
        low, high = np.quantile(draws, [0.05, 0.95], axis=0, method="weibull")
        inside = (X >= low) & (X <= high)
        scores["draw_mae"] = float(np.mean(np.abs((draws - X) / sd)[:, mask]))
        scores["coverage"] = float(np.mean(inside[mask]))
        scores["width"] = float(np.mean(((high - low) / sd)[mask]))
    return scores


def downstream(X: np.ndarray, y: np.ndarray, task: str, train, test) -> float:
    """Accuracy or R^2 on the rows ``test`` of a random forest fitted on the rows ``train``."""
    if task == "classification":
        forest, score = RandomForestClassifier(random_state=0), accuracy_score
    else:
        forest, score = RandomForestRegressor(random_state=0), r2_score
    forest.fit(X[train], y[train])
    return float(score(y[test], forest.predict(X[test])))


# --------------------------------------------------------------------------------------------------
# runs


def run_job(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    task: str,
    setting: str,
    seed: int,
    methods: list[str],
    rate: float,
    k: int,
    flow: dict | None = None,
    forest_diffusion: dict | None = None,
    refit: bool = False,
) -> dict:
    """Every method on one table, setting and seed: {"oracle": {...}, "missing": share,
    method: {metric: value}}."""
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IterativeImputer's convergence notes, XGBoost's
        mask = remove(X, name, setting, seed, rate)
        X_missing = np.where(mask, np.nan, X)
        sd = X.std(axis=0)
        rows = np.arange(len(X))
        stratify = y if task == "classification" else None
        train, test = train_test_split(rows, test_size=0.3, stratify=stratify, random_state=seed)
        results = {
            "oracle": {"score": downstream(X, y, task, train, test)},
            "missing": float(mask.mean()),
        }
        for method in methods:
            params = {"flow": flow, "forestdiffusion": forest_diffusion}.get(method)
            impute = IMPUTERS[method]
            if method == "forestdiffusion":
                impute = partial(impute, tag=f"{name}-{setting}", refit=refit)
            # a copy each: a method that wrote into its input would spoil the next ones
            point, draws, point_s, draws_s, cached = impute(X_missing.copy(), seed, k, params)
            point = np.asarray(point, dtype=np.float64)
            if point.shape != X.shape or not np.isfinite(point).all():
                raise RuntimeError(f"{method} returned a bad imputation of {name}")
            changed = bool(np.any(np.abs(point - X)[~mask] > 1e-8 * (1 + np.abs(X[~mask]))))
            point = np.where(mask, point, X)
            if draws is not None:
                draws = np.asarray(draws, dtype=np.float64)
                if draws.shape != (k, *X.shape) or not np.isfinite(draws).all():
                    raise RuntimeError(f"{method} returned bad draws for {name}")
                gap = np.abs(draws - X)[:, ~mask]
                changed |= bool(np.any(gap > 1e-8 * (1 + np.abs(X[~mask]))))
                draws = np.where(mask, draws, X)
            results[method] = {
                **cell_scores(X, mask, sd, point, draws),
                "score": downstream(point, y, task, train, test),
                "point_s": point_s,
                "draws_s": draws_s,
                "cached": cached,
                "changed": changed,
            }
    return results


# --------------------------------------------------------------------------------------------------
# tables of results


def _mean_over(found: list[dict], method: str, metric: str) -> float:
    return float(np.mean([r[method][metric] for r in found]))


def _cell(found: list[dict], method: str, metric: str, digits: int = 3) -> str:
    values = [r[method][metric] for r in found if metric in r[method]]
    return _common.mean_and_spread(values, digits)


def summary(found: dict[str, list[dict]], methods: list[str]) -> str:
    """Means over the tables and seeds, and the counts of tables against the references."""
    names = list(found)
    trees = [m for m in TREE_IMPUTERS if m in methods]
    mae = {m: np.array([_mean_over(found[t], m, "mae") for t in names]) for m in methods}
    best_tree = np.min([mae[m] for m in trees], axis=0) if trees else None
    rows = []
    for m in methods:
        every = [r[m] for t in names for r in found[t]]

        def mean(metric: str, digits: int = 3, every=every) -> str:
            values = [v[metric] for v in every if metric in v]
            return f"{np.mean(values):.{digits}f}" if values else "—"

        gaps = [r[m]["score"] - r["oracle"]["score"] for t in names for r in found[t]]
        row = {
            "method": m,
            "MAE": mean("mae"),
            "RMSE": mean("rmse"),
            "draw MAE": mean("draw_mae"),
            "coverage": mean("coverage"),
            "width": mean("width", 2),
            "downstream - oracle": f"{np.mean(gaps):+.3f}",
            "point CPU s": mean("point_s", 1),
            "draws CPU s": mean("draws_s", 1) if "coverage" in every[0] else "—",
        }
        if m == "forestdiffusion":
            row["draws CPU s"] = "in point"
        if best_tree is not None:
            close = int(np.sum(mae[m] <= 1.1 * best_tree))
            row["MAE within 10 % of the best tree imputer"] = f"{close}/{len(names)}"
        if "iterative_br" in methods:
            below = int(np.sum(mae[m] <= mae["iterative_br"]))
            row["MAE <= iterative_br"] = f"{below}/{len(names)}"
        rows.append(row)
    return _common.markdown_table(rows, list(rows[0]))


def detail(found: dict[str, list[dict]], methods: list[str], metric: str, oracle=False, digits=3):
    """One row per table: the metric's mean ± std over the seeds for each method."""
    columns = ["table", *(["oracle"] if oracle else []), *methods]
    rows = []
    for t, results in found.items():
        row = {"table": t, **{m: _cell(results, m, metric, digits) for m in methods}}
        if oracle:
            row["oracle"] = _cell(results, "oracle", metric, digits)
        rows.append(row)
    return _common.markdown_table(rows, columns)


def times(found: dict[str, list[dict]], methods: list[str]) -> str:
    rows = []
    for t, results in found.items():
        row = {"table": t}
        for m in methods:
            row[m] = f"{_mean_over(results, m, 'point_s'):.1f}"
            if "coverage" in results[0][m] and m != "forestdiffusion":
                row[m] += f" / {_mean_over(results, m, 'draws_s'):.1f}"
        rows.append(row)
    return _common.markdown_table(rows, ["table", *methods])


def setting_tables(found: dict[str, list[dict]], methods: list[str], setting: str) -> str:
    return "\n\n".join(
        [
            f"### {setting}: MAE of the point imputation (std units; mean ± std over the seeds)\n\n"
            + detail(found, methods, "mae"),
            f"### {setting}: RMSE of the point imputation\n\n" + detail(found, methods, "rmse"),
            f"### {setting}: draw MAE (one multiple imputation, averaged over the draws)\n\n"
            + detail(found, methods, "draw_mae"),
            f"### {setting}: coverage of the 5 %-95 % interval of the draws\n\n"
            + detail(found, methods, "coverage"),
            f"### {setting}: width of that interval (std units)\n\n"
            + detail(found, methods, "width", digits=2),
            f"### {setting}: downstream accuracy or R^2 (oracle: the complete table)\n\n"
            + detail(found, methods, "score", oracle=True),
            f"### {setting}: CPU seconds, point imputation (/ extra for the draws)\n\n"
            + times(found, methods),
        ]
    )


def sources(loaded: dict[str, _tables.Table], found: dict) -> str:
    rows = []
    for name, table in loaded.items():
        _, y, used, dropped = numeric_features(table)
        task = table.task
        if task == "classification":
            task += f" ({len(np.unique(y))} classes)"
        shares = {s: f"{np.mean([r['missing'] for r in found[s][name]]):.3f}" for s in found}
        rows.append(
            {
                "table": name,
                "rows": len(table.frame),
                "numeric features used": len(used),
                "columns dropped": ", ".join(map(str, dropped)) or "—",
                "target": f"{table.target}: {task}",
                **{f"{s} missing share": v for s, v in shares.items()},
                "source": table.source,
            }
        )
    return "### Tables\n\n" + _common.markdown_table(rows, list(rows[0]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", choices=TABLE_CHOICES, default=DEFAULT_TABLES)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--missing-rate", type=float, default=0.2)
    parser.add_argument("--n-imputations", type=int, default=20, help="draws per method")
    parser.add_argument("--jobs", type=int, default=1, help="jobs at once, one process each")
    parser.add_argument("--output", help="result file (default imputation.md)")
    parser.add_argument(
        "--refit-forestdiffusion", action="store_true", help="ignore ForestDiffusion's cache"
    )
    parser.add_argument(
        "--flow-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter of the flow, e.g. max_iter=2000 (repeatable)",
    )
    parser.add_argument(
        "--forestdiffusion-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"a ForestDiffusion setting (default {FOREST_DIFFUSION}; repeatable)",
    )
    args = parser.parse_args(argv)
    if args.n_imputations < 2:
        parser.error("--n-imputations must be at least 2")
    flow = _common.param_changes(args.flow_param)
    forest_diffusion = _common.param_changes(args.forestdiffusion_param)
    date, load_start = datetime.date.today().isoformat(), _common.load_average()
    code_at_start = _common.code_version()
    loaded = {name: load(name) for name in args.tables}
    data = {name: numeric_features(table) for name, table in loaded.items()}
    jobs = [
        (name, setting, seed)
        for seed in range(args.seeds)
        for name in args.tables
        for setting in args.settings
    ]

    def job(name: str, setting: str, seed: int):
        X, y, _, _ = data[name]
        return delayed(run_job)(
            name,
            X,
            y,
            loaded[name].task,
            setting,
            seed,
            args.methods,
            args.missing_rate,
            args.n_imputations,
            flow,
            forest_diffusion,
            args.refit_forestdiffusion,
        )

    found = {s: {name: [] for name in args.tables} for s in args.settings}
    wall = time.perf_counter()
    with parallel_config(backend="loky", inner_max_num_threads=1):
        results = Parallel(n_jobs=args.jobs, return_as="generator")(job(*j) for j in jobs)
        for (name, setting, seed), result in zip(jobs, results):
            found[setting][name].append(result)
            cells = ", ".join(
                f"{m} {result[m]['mae']:.3f} ({result[m]['point_s']:.1f} s)" for m in args.methods
            )
            print(f"{name} {setting} seed {seed}: MAE {cells}", flush=True)
    wall = time.perf_counter() - wall

    every = [r for s in found.values() for rs in s.values() for r in rs]
    cached = sum(r[m]["cached"] for r in every for m in args.methods)
    changed = sorted({m for r in every for m in args.methods if r[m]["changed"]})
    settings = _forest_diffusion_settings(forest_diffusion)
    header = (
        "## Imputation benchmark\n\n"
        f"`{_common.command_line(argv, script=__file__)}`, {date}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}; "
        f"forestdiffusion {importlib.metadata.version('forestdiffusion')}. "
        f"1-minute load average {load_start} at the start, {_common.load_average()} at the end; "
        f"{wall / 60:.1f} min wall with {args.jobs} job{'s' if args.jobs > 1 else ''} at once. "
        f"{args.seeds} seed{'s' if args.seeds > 1 else ''}, missing rate {args.missing_rate}, "
        f"{args.n_imputations} multiple imputations (a perfectly calibrated imputer's expected "
        f"coverage of their 5 %-95 % interval: {calibrated_coverage(args.n_imputations):.3f}); "
        + (f"ForestDiffusion {settings}; " if "forestdiffusion" in args.methods else "")
        + (f"the flow's hyperparameters changed: {flow}; " if flow else "")
        + f"methods that changed observed cells: {', '.join(changed) or 'none'}"
        + (f"; {cached} ForestDiffusion runs read from the cache" if cached else "")
        + "."
    )
    parts = [header]
    for setting in args.settings:
        parts.append(
            f"### {setting}: summary (means over the tables and seeds; MAE, RMSE, width in "
            "units of each column's std; downstream - oracle: accuracy or R^2 minus the complete "
            "table's)\n\n" + summary(found[setting], args.methods)
        )
    for setting in args.settings:
        parts.append(setting_tables(found[setting], args.methods, setting))
    parts.append(sources(loaded, found))
    text = "\n\n".join(parts) + "\n"
    print(text)
    print(f"written to {_common.write_result(args.output or 'imputation.md', text)}")


if __name__ == "__main__":
    main()

"""Which anomaly detector ranks outliers best? FlowMatchingOutlierDetector and
SubspaceOutlierEnsemble against scikit-learn's detectors.

The protocol of the public tabular anomaly-detection benchmarks (e.g. ADBench, Han et al.,
NeurIPS 2022): for each seed, a random stratified 60/40 split of the labelled rows; features
standardised with the mean and standard deviation of the training part; every detector fitted
**without labels** on the training part (which holds the data set's share of outliers, so training
is contaminated); ROC-AUC and average precision of the test part's scores (``-score_samples``:
higher = more abnormal), the shares of test inliers and outliers that ``predict`` flags, and the
CPU seconds of fitting and scoring. The tables give the mean and the standard deviation over the
seeds; the detectors are ranked on each data set by their mean ROC-AUC (1 = best) and the ranks
averaged over the data sets. Every detector runs with its default hyperparameters (no tuning on
the labels):

* ``flow``: ``FlowMatchingOutlierDetector(random_state=seed)``;
* ``flow subspaces``: ``SubspaceOutlierEnsemble(FlowMatchingOutlierDetector(),
  random_state=seed)``, twelve such detectors on random feature subsets of rotated bagging's size
  (6 of digits' 64 features, 5 of 30, 4 of 13, both of moons' 2), their standardised scores
  averaged;
* ``iforest``: ``IsolationForest(random_state=seed)``;
* ``lof``: ``LocalOutlierFactor(novelty=True)`` (20 neighbours);
* ``ocsvm``: ``OneClassSVM()`` (RBF kernel, ``gamma="scale"``, ``nu=0.5``);
* ``gmm``: ``GaussianMixture(random_state=seed)`` (one full-covariance Gaussian).

The data sets are fixed (sub-samples drawn once with seed 0); only the split changes with the seed:

* ``breast_cancer``: scikit-learn's Wisconsin breast cancer (30 features); the 357 benign rows are
  inliers, 21 malignant rows drawn at random the outliers (5.6 %), as in ODDS/ADBench's WBC.
* ``wine``: scikit-learn's wine (13 features); classes 1 and 2 (119 rows) are inliers, 10 rows of
  class 0 the outliers (7.8 %), as in ODDS's wine.
* ``digits``: scikit-learn's 8x8 digits (64 pixel features, several of them constant in the
  training part); 40 rows of each of the digits 1-9 are inliers, 11 zeros the outliers (3.0 %), as
  in ODDS's optdigits (sub-sampled to keep the run short).
* ``moons``: synthetic; 500 rows of two interleaved half-moons (noise 0.1) are inliers, 25 rows
  uniform on the box [-1.5, 2.5] x [-1, 1.5] the outliers (4.8 %): curved, non-elliptical inliers.

Reproduce (from the repository root; about 80 minutes with two processes)::

    OMP_NUM_THREADS=1 python benchmarks/bench_outliers.py --jobs 2
    OMP_NUM_THREADS=1 python benchmarks/bench_outliers.py --quick    # 2 seeds, max_iter=50

The first writes ``benchmarks/results/outliers.md``, whose reading is written by hand below the
tables after a run; ``--quick`` checks that the script runs and only prints, unless ``--output``
names a file.
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import multiprocessing
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_moons
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector, SubspaceOutlierEnsemble
from skflow.outlier import DENSITY_DEFAULTS

QUICK_FLOW = {"max_iter": 50}  # --quick: flows that train in seconds


# --------------------------------------------------------------------------------------------------
# data sets


@dataclass
class Dataset:
    """Rows and labels (1 = outlier)."""

    name: str
    X: np.ndarray
    y: np.ndarray


def _inliers_and_outliers(name, inliers, outliers) -> Dataset:
    X = np.vstack([inliers, outliers])
    y = np.r_[np.zeros(len(inliers), dtype=int), np.ones(len(outliers), dtype=int)]
    return Dataset(name, X, y)


def rare_class(name: str, X: np.ndarray, is_rare: np.ndarray, n_outliers: int) -> Dataset:
    """The rows outside a class as inliers, ``n_outliers`` of its rows (drawn with seed 0) as the
    outliers: the ODDS way of turning a classification set into an anomaly problem."""
    pick = np.random.default_rng(0).choice(is_rare.sum(), n_outliers, replace=False)
    return _inliers_and_outliers(name, X[~is_rare], X[is_rare][pick])


def breast_cancer() -> Dataset:
    data = load_breast_cancer()
    return rare_class("breast_cancer", data.data, data.target == 0, 21)  # malignant


def wine() -> Dataset:
    data = load_wine()
    return rare_class("wine", data.data, data.target == 0, 10)


def digits() -> Dataset:
    data = load_digits()
    rng = np.random.default_rng(0)
    inliers = np.vstack([rng.permutation(data.data[data.target == k])[:40] for k in range(1, 10)])
    zeros = rng.permutation(data.data[data.target == 0])[:11]
    return _inliers_and_outliers("digits", inliers, zeros)


def moons() -> Dataset:
    inliers, _ = make_moons(n_samples=500, noise=0.1, random_state=0)
    outliers = np.random.default_rng(0).uniform([-1.5, -1.0], [2.5, 1.5], size=(25, 2))
    return _inliers_and_outliers("moons", inliers, outliers)


DATASETS = {f.__name__: f for f in (breast_cancer, wine, digits, moons)}


# --------------------------------------------------------------------------------------------------
# detectors


def flow_detector(quick: bool, **params) -> FlowMatchingOutlierDetector:
    """The default detector; with ``quick``, its default density with ``QUICK_FLOW``."""
    density = FlowMatchingDensity(**DENSITY_DEFAULTS, **QUICK_FLOW) if quick else None
    return FlowMatchingOutlierDetector(density, **params)


def detectors(seed: int, quick: bool) -> dict:
    return {
        "flow": flow_detector(quick, random_state=seed),
        "flow subspaces": SubspaceOutlierEnsemble(flow_detector(quick), random_state=seed),
        "iforest": IsolationForest(random_state=seed),
        "lof": LocalOutlierFactor(novelty=True),
        "ocsvm": OneClassSVM(),
        "gmm": GaussianMixture(random_state=seed),
    }


# --------------------------------------------------------------------------------------------------
# one split


def split(dataset: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The stratified 60/40 split of ``seed``, standardised on its training part: ``X_train,
    X_test, y_train, y_test``."""
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.X, dataset.y, test_size=0.4, stratify=dataset.y, random_state=seed
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def run_seed(dataset: Dataset, seed: int, quick: bool) -> dict:
    """Fit every detector on one split (a task of the process pool); returns {detector: {metric:
    value}}."""
    X_train, X_test, y_train, y_test = split(dataset, seed)
    results = {}
    for name, detector in detectors(seed, quick).items():
        _, fit_s, _ = _common.timed(detector.fit, X_train)
        scores, score_s, _ = _common.timed(detector.score_samples, X_test)
        if not np.all(np.isfinite(scores)):
            raise RuntimeError(f"{name} gave non-finite scores on {dataset.name}")
        record = {
            "auc": roc_auc_score(y_test, -scores),
            "ap": average_precision_score(y_test, -scores),
            "fit_s": fit_s,
            "score_s": score_s,
        }
        if not isinstance(detector, GaussianMixture):  # GaussianMixture has no threshold
            flagged = detector.predict(X_test) == -1
            record["false_alarms"] = flagged[y_test == 0].mean()
            record["recall"] = flagged[y_test == 1].mean()
        if hasattr(detector, "trimmed_"):
            trimmed = detector.trimmed_
            record["trimmed"] = trimmed.mean()
            record["outliers_trimmed"] = trimmed[y_train == 1].mean()
        results[name] = record
    return results


# --------------------------------------------------------------------------------------------------
# tables


def _mean_std(values, digits=3, scale=1.0) -> str:
    v = np.asarray(values, dtype=float) * scale
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def summarise(dataset_name: str, per_seed: list[dict]) -> list[dict]:
    rows = []
    for name in per_seed[0]:
        values = {key: [r[name][key] for r in per_seed] for key in per_seed[0][name]}
        row = {
            "dataset": dataset_name,
            "detector": name,
            "ROC-AUC": _mean_std(values["auc"]),
            "AP": _mean_std(values["ap"]),
            "auc_mean": float(np.mean(values["auc"])),
            "ap_mean": float(np.mean(values["ap"])),
            "fit s": f"{np.mean(values['fit_s']):.1f}",
            "score s": f"{np.mean(values['score_s']):.2f}",
        }
        for key, label in [
            ("false_alarms", "false alarms %"),
            ("recall", "recall %"),
            ("trimmed", "trimmed % of train"),
            ("outliers_trimmed", "% of train outliers trimmed"),
        ]:
            if key in values:
                row[label] = _mean_std(values[key], 1, 100.0)
        rows.append(row)
    for metric in ("auc", "ap"):
        means = np.array([r[f"{metric}_mean"] for r in rows])
        for row, rank in zip(rows, _average_ranks(-means)):
            row[f"{metric} rank"] = rank
    return rows


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` in increasing order, ties sharing their mean rank."""
    return np.array([(values < v).sum() + ((values == v).sum() + 1) / 2 for v in values])


def comparison_tables(rows: list[dict]) -> str:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    names = list(dict.fromkeys(r["detector"] for r in rows))
    summary = []
    for metric, label in (("ROC-AUC", "auc"), ("AP", "ap")):
        for detector in names:
            entry = {"metric": metric, "detector": detector}
            mine = [r for r in rows if r["detector"] == detector]
            for row in mine:
                entry[row["dataset"]] = f"{row[metric]} ({row[f'{label} rank']:g})"
            entry["mean rank"] = f"{np.mean([r[f'{label} rank'] for r in mine]):.2f}"
            summary.append(entry)
    detail = [
        {k: v for k, v in r.items() if k not in ("auc_mean", "ap_mean", "auc rank", "ap rank")}
        for r in rows
    ]
    return (
        "### Test ROC-AUC and average precision (rank on the data set), mean rank\n\n"
        + _common.markdown_table(summary, ["metric", "detector", *datasets, "mean rank"])
        + "\n\n#### Thresholds and times\n\n"
        + _common.markdown_table(
            detail,
            [
                "dataset",
                "detector",
                "false alarms %",
                "recall %",
                "trimmed % of train",
                "% of train outliers trimmed",
                "fit s",
                "score s",
            ],
        )
    )


NOTES = """ROC-AUC / AP: of the test part, mean ± standard deviation over the seeds; in brackets
the rank of the mean among the six detectors on that data set (1 = best). False alarms / recall:
shares of the test inliers / outliers that `predict` flags (the flow, IsolationForest and
LocalOutlierFactor with `contamination="auto"`, OneClassSVM with `nu=0.5`; GaussianMixture has no
threshold). Trimmed: share of the training rows that the flow's held-out scores flagged and its
final fit left out, and the share of the training outliers among them. fit s / score s: CPU
seconds (one thread); the flow's fit includes the two half-size fits, the held-out scoring of the
training rows and the final fit.
"""


# --------------------------------------------------------------------------------------------------


def run(datasets: dict, seeds, quick: bool, jobs: int) -> list[dict]:
    """Every split of every data set, ``jobs`` at a time; the summary rows of every detector."""
    loaded = [load() for load in datasets.values()]
    tasks = [(dataset, seed, quick) for dataset in loaded for seed in seeds]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        found = pool.starmap(run_seed, tasks)
    rows = []
    for k, dataset in enumerate(loaded):
        per_seed = found[k * len(seeds) : (k + 1) * len(seeds)]
        for seed, results in zip(seeds, per_seed):
            aucs = ", ".join(f"{name} {v['auc']:.3f}" for name, v in results.items())
            print(f"{dataset.name} seed {seed}: {aucs}", flush=True)
        rows += summarise(dataset.name, per_seed)
    return rows


def _flow_settings(quick: bool) -> str:
    """The detector's settings and those of its density."""
    detector = flow_detector(quick)
    density = FlowMatchingDensity(**DENSITY_DEFAULTS, **(QUICK_FLOW if quick else {}))
    params = density.get_params()
    keys = [
        "architecture",
        "hidden_layer_sizes",
        "activation",
        "max_iter",
        "batch_size",
        "learning_rate_init",
        "learning_rate",
        "time_distribution",
        "early_stopping",
        "n_fourier_features",
        "path",
        "coupling",
        "solver",
        "n_steps",
        "step_exponent",
    ]
    return (
        f"contamination={detector.contamination!r}, bandwidth={detector.bandwidth!r}; its "
        "density FlowMatchingDensity(" + ", ".join(f"{k}={params[k]!r}" for k in keys) + ")"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="2 seeds, max_iter=50; prints unless --output is given"
    )
    parser.add_argument("--output", help="result file (default outliers.md; none with --quick)")
    parser.add_argument("--jobs", type=int, default=1, help="splits run at once, one per process")
    args = parser.parse_args(argv)
    seeds = range(2 if args.quick else args.seeds)
    date, load_start = datetime.date.today().isoformat(), _common.load_average()
    code_at_start = _common.code_version()

    datasets = {k: v for k, v in DATASETS.items() if k in args.datasets}
    rows = run(datasets, seeds, args.quick, args.jobs)

    header = (
        "## Outlier-detection benchmark\n\n"
        f"`{_common.command_line(argv, script=__file__)}`, {date}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}. "
        f"1-minute load average {load_start} at the start, "
        f"{_common.load_average()} at the end. {len(seeds)} seeds (stratified 60/40 splits), "
        "mean ± standard deviation over the seeds. "
        + ("Quick run (flows of max_iter=50)." if args.quick else "Default hyperparameters.")
        + f" The detector's: {_flow_settings(args.quick)}.\n\n"
    )
    text = header + comparison_tables(rows) + "\n\n" + NOTES
    print(text)
    output = args.output or (None if args.quick else "outliers.md")
    if output is not None:
        print(f"written to {_common.write_result(output, text)}")


if __name__ == "__main__":
    main()

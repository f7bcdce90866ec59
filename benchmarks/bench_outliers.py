"""Which anomaly detector ranks outliers best, and at what cost? FlowMatchingOutlierDetector
against scikit-learn's detectors and PyOD's strongest.

The protocol of the public tabular anomaly-detection benchmarks (ADBench, Han et al., NeurIPS
2022): for each seed, a stratified 60/40 split of the labelled rows; columns constant on the
training part dropped and the others standardised with its mean and standard deviation; every
detector fitted **without labels** on the training part (which holds the set's share of
outliers, so training is contaminated); ROC-AUC and average precision of the test part's outlier
scores; the shares of test inliers and outliers that each detector's own threshold flags; and
the CPU seconds of fitting plus scoring, also as a ratio to IsolationForest's on the same split.
Every detector runs with its default hyperparameters (no tuning on the labels):

* ``flow``: ``FlowMatchingOutlierDetector(random_state=seed)``;
* ``iforest``: ``IsolationForest(random_state=seed)``;
* ``lof``: ``LocalOutlierFactor(novelty=True)`` (20 neighbours);
* ``ocsvm``: ``OneClassSVM()`` (RBF kernel, ``gamma="scale"``, ``nu=0.5``);
* ``gmm``: ``GaussianMixture`` tuned without labels: the lowest BIC of 1, 2, 4 and 8 components
  with full or diagonal covariances (``reg_covar=1e-4``), scored by its log-density;
* ``ecod``, ``copod``, ``knn``: PyOD's ECOD, COPOD and KNN (5 neighbours, distance to the
  farthest) with their defaults, among the best unsupervised detectors of ADBench.

The 18 data sets are built offline (``_outlier_data.py``: scikit-learn's bundled sets and the
data files of the R packages mlbench and kernlab, from their Debian packages), each a
classification table turned into an outlier problem the ODDS way; their sources and rules are
listed in the result file.

Reproduce (from the repository root; about 20 minutes with two processes; needs PyOD and
pyreadr, the ``benchmarks`` extras, and ``apt-get download`` or ``SKFLOW_DEB_DIR``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_outliers.py --jobs 2
    OMP_NUM_THREADS=1 python benchmarks/bench_outliers.py --quick    # 1 seed, small sets

The first writes ``benchmarks/results/outliers.md``, whose reading is written by hand below the
tables after a run; ``--quick`` checks that the script runs and only prints, unless ``--output``
names a file.
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import math
import multiprocessing
import warnings

import _outlier_data
import numpy as np
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD
from pyod.models.knn import KNN
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector
from skflow.outlier import DENSITY_DEFAULTS, TRAINING_STEPS

QUICK_SETS = ["wine", "glass", "vote", "wbc", "pima"]


class BICGaussianMixture:
    """The GaussianMixture of lowest BIC among 1, 2, 4 and 8 components with full or diagonal
    covariances; ``score_samples`` is its log-density, and it has no threshold."""

    def __init__(self, random_state: int) -> None:
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> BICGaussianMixture:
        candidates = [
            GaussianMixture(k, covariance_type=kind, reg_covar=1e-4, random_state=self.random_state)
            for k in (1, 2, 4, 8)
            for kind in ("full", "diag")
            if k < X.shape[0]
        ]
        fitted = [model.fit(X) for model in candidates]
        self.model_ = min(fitted, key=lambda model: model.bic(X))
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.model_.score_samples(X)


class PyODDetector:
    """A PyOD detector behind scikit-learn's names: ``score_samples`` is minus its outlier score
    and ``predict`` is -1 where its own threshold flags a row."""

    def __init__(self, detector) -> None:
        self.detector = detector

    def fit(self, X: np.ndarray) -> PyODDetector:
        self.detector.fit(X)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return -self.detector.decision_function(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.where(self.detector.predict(X) == 1, -1, 1)


def flow_detector(seed: int, n_rows: int, flow: dict) -> FlowMatchingOutlierDetector:
    """The default flow detector with ``flow["detector"]`` parameters; with ``flow["density"]``
    parameters or ``flow["steps"]``, its default density written out with those changes. The
    written-out density's epochs are set for all ``n_rows`` training rows, so with
    ``support_fraction < 1`` its second fit, on fewer rows, takes fewer steps than the default's:
    compare written-out budgets with ``support_fraction=1``."""
    estimator = None
    if flow["density"] or flow["steps"] is not None:
        params = {**DENSITY_DEFAULTS, **flow["density"]}
        batch = min(params["batch_size"], n_rows)
        steps = TRAINING_STEPS if flow["steps"] is None else flow["steps"]
        estimator = FlowMatchingDensity(**params, max_iter=math.ceil(steps * batch / n_rows))
    return FlowMatchingOutlierDetector(estimator, random_state=seed, **flow["detector"])


def detectors(seed: int, n_rows: int, flow: dict) -> dict:
    return {
        "flow": flow_detector(seed, n_rows, flow),
        "iforest": IsolationForest(random_state=seed),
        "lof": LocalOutlierFactor(novelty=True),
        "ocsvm": OneClassSVM(),
        "gmm": BICGaussianMixture(random_state=seed),
        "ecod": PyODDetector(ECOD()),
        "copod": PyODDetector(COPOD()),
        "knn": PyODDetector(KNN()),
    }


def split(dataset, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The stratified 60/40 split of ``seed``, without the columns constant on its training part
    and standardised on it: ``X_train, X_test, y_train, y_test``."""
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.X, dataset.y, test_size=0.4, stratify=dataset.y, random_state=seed
    )
    varying = X_train.std(axis=0) > 0
    scaler = StandardScaler().fit(X_train[:, varying])
    return (
        scaler.transform(X_train[:, varying]),
        scaler.transform(X_test[:, varying]),
        y_train,
        y_test,
    )


def run_seed(name: str, seed: int, only: list[str] | None, flow: dict) -> dict:
    """Every detector on one split (a task of the process pool): {detector: {metric: value}}."""
    X_train, X_test, y_train, y_test = split(_outlier_data.load(name), seed)
    results = {}
    for detector_name, detector in detectors(seed, len(X_train), flow).items():
        if only and detector_name not in only and detector_name != "iforest":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyOD's and GaussianMixture's convergence notes
            _, fit_s, _ = _common.timed(detector.fit, X_train)
            scores, score_s, _ = _common.timed(detector.score_samples, X_test)
        if not np.all(np.isfinite(scores)):
            raise RuntimeError(f"{detector_name} gave non-finite scores on {name}")
        record = {
            "auc": roc_auc_score(y_test, -scores),
            "ap": average_precision_score(y_test, -scores),
            "seconds": fit_s + score_s,
        }
        if hasattr(detector, "predict"):
            flagged = detector.predict(X_test) == -1
            record["false_alarms"] = flagged[y_test == 0].mean()
            record["recall"] = flagged[y_test == 1].mean()
        results[detector_name] = record
    for record in results.values():
        record["time_ratio"] = record["seconds"] / results["iforest"]["seconds"]
    return results


# --------------------------------------------------------------------------------------------------
# tables


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` in decreasing order, ties sharing their mean rank."""
    return np.array([(values > v).sum() + ((values == v).sum() + 1) / 2 for v in values])


def tables(found: dict[str, list[dict]]) -> str:
    """The summary, the per-set tables of ROC-AUC and AP, and thresholds and times."""
    sets = list(found)
    names = list(found[sets[0]][0])

    def per_set(metric: str) -> np.ndarray:  # (sets, detectors) of seed means
        return np.array([[np.mean([r[n][metric] for r in found[s]]) for n in names] for s in sets])

    auc, ap = per_set("auc"), per_set("ap")
    auc_ranks = np.array([_average_ranks(row) for row in auc])
    ap_ranks = np.array([_average_ranks(row) for row in ap])
    ratio = per_set("time_ratio")
    iforest = names.index("iforest")
    summary = [
        {
            "detector": n,
            "mean ROC-AUC": f"{auc[:, j].mean():.3f}",
            "median ROC-AUC": f"{np.median(auc[:, j]):.3f}",
            "mean rank (AUC)": f"{auc_ranks[:, j].mean():.2f}",
            "mean AP": f"{ap[:, j].mean():.3f}",
            "mean rank (AP)": f"{ap_ranks[:, j].mean():.2f}",
            "worst AUC - iforest": f"{(auc[:, j] - auc[:, iforest]).min():+.3f} "
            f"({sets[int(np.argmin(auc[:, j] - auc[:, iforest]))]})",
            "sets ahead of iforest": f"{int((auc[:, j] > auc[:, iforest]).sum())}/{len(sets)}",
            "time / iforest, median (max)": (
                f"{np.median(ratio[:, j]):.1f} ({ratio[:, j].max():.1f})"
            ),
        }
        for j, n in enumerate(names)
    ]

    def detail(metric: str, values: np.ndarray, ranks: np.ndarray) -> list[dict]:
        rows = []
        for i, s in enumerate(sets):
            row = {"data set": s}
            for j, n in enumerate(names):
                spread = np.std([r[n][metric] for r in found[s]], ddof=1)
                row[n] = f"{values[i, j]:.3f} ± {spread:.3f} ({ranks[i, j]:g})"
            rows.append(row)
        return rows

    thresholds = []
    for s in sets:
        row = {"data set": s}
        for n in names:
            cells = found[s]
            text = f"{np.mean([r[n]['seconds'] for r in cells]):.2f} s"
            if "false_alarms" in cells[0][n]:
                alarms = 100 * np.mean([r[n]["false_alarms"] for r in cells])
                recall = 100 * np.mean([r[n]["recall"] for r in cells])
                text += f"; {alarms:.0f} / {recall:.0f} %"
            row[n] = text
        thresholds.append(row)
    return (
        "### Summary over the data sets\n\n"
        + _common.markdown_table(summary, list(summary[0]))
        + "\n\n### Test ROC-AUC per data set (mean ± std over the seeds; rank)\n\n"
        + _common.markdown_table(detail("auc", auc, auc_ranks), ["data set", *names])
        + "\n\n### Test average precision per data set (mean ± std over the seeds; rank)\n\n"
        + _common.markdown_table(detail("ap", ap, ap_ranks), ["data set", *names])
        + "\n\n### Seconds of fit + score; false alarms / recall of the threshold\n\n"
        + _common.markdown_table(thresholds, ["data set", *names])
    )


NOTES = """Ranks: 1 = best on the set (ties share their mean rank). Time / iforest: CPU seconds
of fitting plus scoring the split, over IsolationForest's on the same split, median and maximum
over the sets. False alarms / recall: shares of the test inliers / outliers that `predict`
flags (the flow with `contamination="auto"`, IsolationForest and
LocalOutlierFactor with `contamination="auto"`, OneClassSVM with `nu=0.5`, PyOD's detectors at
their default contamination 0.1; the Gaussian mixture has no threshold).
"""


def sources(names: list[str]) -> str:
    rows = []
    for name in names:
        data = _outlier_data.load(name)
        rows.append(
            {
                "data set": name,
                "rows": data.X.shape[0],
                "features": data.X.shape[1],
                "outliers %": f"{100 * data.y.mean():.1f}",
                "kind": data.kind,
                "source": data.source,
            }
        )
    return "### Data sets\n\n" + _common.markdown_table(rows, list(rows[0]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sets = list(_outlier_data.DATASETS)
    parser.add_argument("--datasets", nargs="+", choices=sets, default=None)
    parser.add_argument("--detectors", nargs="+", default=None, help="a subset (and iforest)")
    parser.add_argument(
        "--flow-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the flow detector, e.g. support_fraction=1 (repeatable)",
    )
    parser.add_argument(
        "--density-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a change to the detector's default density, e.g. 'hidden_layer_sizes=(128, 128)'",
    )
    parser.add_argument("--training-steps", type=int, help="the default density's budget")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 seed, five small sets; prints")
    parser.add_argument("--output", help="result file (default outliers.md; none with --quick)")
    parser.add_argument("--jobs", type=int, default=1, help="splits run at once, one per process")
    args = parser.parse_args(argv)
    names = args.datasets or (QUICK_SETS if args.quick else sets)
    seeds = range(1 if args.quick else args.seeds)
    date, load_start = datetime.date.today().isoformat(), _common.load_average()
    code_at_start = _common.code_version()
    for name in names:  # build the cache once, before the workers read it
        _outlier_data.load(name)
    flow = {
        "detector": _common.param_changes(args.flow_param),
        "density": _common.param_changes(args.density_param),
        "steps": args.training_steps,
    }
    tasks = [(name, seed, args.detectors, flow) for name in names for seed in seeds]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.starmap(run_seed, tasks, chunksize=1)
    found = {name: [] for name in names}
    for (name, seed, _, _), result in zip(tasks, results):
        found[name].append(result)
        aucs = ", ".join(f"{n} {v['auc']:.3f}" for n, v in result.items())
        print(f"{name} seed {seed}: {aucs}", flush=True)

    header = (
        "## Outlier-detection benchmark\n\n"
        f"`{_common.command_line(argv, script=__file__)}`, {date}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}. "
        f"1-minute load average {load_start} at the start, {_common.load_average()} at the end. "
        f"{len(seeds)} seeds (stratified 60/40 splits); default hyperparameters"
        + (f"; flow detector changes: {flow}" if args.flow_param or args.density_param else "")
        + (f", {args.training_steps} training steps" if args.training_steps else "")
        + ".\n\n"
    )
    text = header + tables(found) + "\n\n" + NOTES + "\n" + sources(names) + "\n"
    print(text)
    output = args.output or (None if args.quick else "outliers.md")
    if output is not None:
        print(f"written to {_common.write_result(output, text)}")


if __name__ == "__main__":
    main()

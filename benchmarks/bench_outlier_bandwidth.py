"""Which default ``bandwidth`` for FlowMatchingOutlierDetector? Test ROC-AUC against the bandwidth,
on anomaly problems that are not in the outlier benchmark.

Why: ``bandwidth=1`` lifted the flow's mean rank on ``bench_outliers.py``'s four data sets from
4.25 to 3.00, but picking a default on those sets would tune it on their test labels. This script
chooses on other problems, with the same protocol (``bench_outliers.split``: stratified 60/40
splits, standardised on the training part, unsupervised fit on the training part, which holds its
share of outliers; 5 seeds).

What is measured: per split, one ``FlowMatchingDensity(random_state=seed)`` with its defaults is
fitted on the training part and the test part is scored with the density blurred by each bandwidth
``h`` of the grid (the detector's ``score_samples``, without its trimmed refit, which would need
a fit per bandwidth). The table gives the test ROC-AUC, mean ± standard deviation over the seeds,
for each ``h`` and, for context, for IsolationForest, LocalOutlierFactor(novelty=True),
OneClassSVM and a one-component GaussianMixture with their defaults. The last rows average the
bandwidths' ROC-AUCs over the problems and rank them (1 = best) on each problem.

Problems (held out from ``bench_outliers.py``; fixed sub-samples drawn with seed 0):

* ``penguins``: Palmer penguins (``plotnine/data/penguins.csv``, 4 body measurements, rows with a
  missing measurement dropped); Adelie and Gentoo are inliers, 12 Chinstrap rows the outliers:
  anomalies that form a small cluster, as in the benchmark's wine.
* ``iris``: versicolor and virginica are inliers, 5 setosa rows the outliers (a far, tight cluster).
* ``blobs``: three Gaussian clusters in 5-D (134 rows each, standard deviations 0.5, 1 and 2) and
  20 rows uniform on their bounding box: scattered anomalies.
* ``s_curve``: 500 rows of scikit-learn's S-curve in 3-D (noise 0.1) and 25 rows uniform on its
  bounding box: inliers on a thin curved sheet, like the benchmark's moons.
* ``local_density``: a dense cluster (300 rows, standard deviation 0.2) and a sparse one (200 rows,
  standard deviation 1.5, 6 away) in 2-D; 15 outliers on the circle of radius 1 around the dense
  one, where the density is still higher than in the sparse cluster (the case LOF was built for).
* ``cluster_8d``: 400 standard normal rows in 8-D and a cluster of 12 outliers (standard deviation
  0.1) centred 4 from the origin, outside the shell where the inliers lie.

With ``--benchmark-sets`` the four data sets of ``bench_outliers.py`` get a second table, for
reference only: they play no part in the choice.

Reproduce (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_outlier_bandwidth.py --jobs 2   # ~10 min
    OMP_NUM_THREADS=1 python benchmarks/bench_outlier_bandwidth.py --jobs 2 --benchmark-sets

The tables are printed and written to ``benchmarks/results/outlier_bandwidth.md`` (``--output``
picks another file).
"""

from __future__ import annotations

import _common  # noqa: I001  (first: sets one thread before torch is imported)

import argparse
import datetime
import multiprocessing

import numpy as np
from sklearn.datasets import load_iris, make_s_curve
from sklearn.metrics import roc_auc_score

from bench_outliers import (
    DATASETS as BENCHMARK_SETS,
    Dataset,
    _average_ranks,
    _inliers_and_outliers,
    _mean_std,
    comparison_detectors,
    rare_class,
    split,
)
from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector, SubspaceOutlierEnsemble

BANDWIDTHS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0]
MULTI_SCALE = (0.0, 0.5, 1.0)
BASELINES = ["iforest", "lof", "ocsvm", "gmm"]
DETECTORS = [*(f"detector h={h}" for h in ("0", "(0, 0.5, 1)")), "subspace ensemble"]


# --------------------------------------------------------------------------------------------------
# problems outside the outlier benchmark


def penguins() -> Dataset:
    measures = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    table = _common.plotnine_csv("penguins", ["species", *measures]).dropna()
    is_chinstrap = (table["species"] == "Chinstrap").to_numpy()
    return rare_class("penguins", table[measures].to_numpy(float), is_chinstrap, 12)


def iris() -> Dataset:
    data = load_iris()
    return rare_class("iris", data.data, data.target == 0, 5)  # setosa


def blobs() -> Dataset:
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 3.0, size=(3, 5))
    inliers = np.vstack(
        [c + s * rng.standard_normal((134, 5)) for c, s in zip(centres, (0.5, 1.0, 2.0))]
    )
    outliers = rng.uniform(inliers.min(axis=0), inliers.max(axis=0), size=(20, 5))
    return _inliers_and_outliers("blobs", inliers, outliers)


def s_curve() -> Dataset:
    inliers, _ = make_s_curve(500, noise=0.1, random_state=0)
    rng = np.random.default_rng(0)
    outliers = rng.uniform(inliers.min(axis=0), inliers.max(axis=0), size=(25, 3))
    return _inliers_and_outliers("s_curve", inliers, outliers)


def local_density() -> Dataset:
    rng = np.random.default_rng(0)
    dense = 0.2 * rng.standard_normal((300, 2))
    sparse = np.array([6.0, 0.0]) + 1.5 * rng.standard_normal((200, 2))
    angle = rng.uniform(0.0, 2.0 * np.pi, 15)
    ring = np.column_stack([np.cos(angle), np.sin(angle)])
    return _inliers_and_outliers("local_density", np.vstack([dense, sparse]), ring)


def cluster_8d() -> Dataset:
    rng = np.random.default_rng(0)
    inliers = rng.standard_normal((400, 8))
    outliers = np.r_[4.0, np.zeros(7)] + 0.1 * rng.standard_normal((12, 8))
    return _inliers_and_outliers("cluster_8d", inliers, outliers)


VALIDATION_SETS = {
    f.__name__: f for f in (penguins, iris, blobs, s_curve, local_density, cluster_8d)
}


# --------------------------------------------------------------------------------------------------
# one split


def run_split(job: tuple[str, int]) -> tuple[str, int, dict]:
    """Test ROC-AUC of the flow at every bandwidth and of the baselines on one split."""
    name, seed = job
    dataset = {**VALIDATION_SETS, **BENCHMARK_SETS}[name]()
    X_train, X_test, _, y_test = split(dataset, seed)
    flow = FlowMatchingDensity(random_state=seed).fit(X_train)
    auc = {h: roc_auc_score(y_test, -flow._smoothed_log_density(X_test, h)) for h in BANDWIDTHS}
    detectors = [
        FlowMatchingOutlierDetector(bandwidth=0.0, random_state=seed),
        FlowMatchingOutlierDetector(bandwidth=MULTI_SCALE, random_state=seed),
        SubspaceOutlierEnsemble(random_state=seed),
    ]
    for key, detector in zip(DETECTORS, detectors):
        auc[key] = roc_auc_score(y_test, -detector.fit(X_train).score_samples(X_test))
    baselines = comparison_detectors(seed, {})
    for key in BASELINES:
        auc[key] = roc_auc_score(y_test, -baselines[key].fit(X_train).score_samples(X_test))
    return name, seed, auc


# --------------------------------------------------------------------------------------------------
# tables


def table(names: list[str], results: dict) -> str:
    """Rows: the problems, then the flow variants' mean ROC-AUC and mean rank over them."""
    columns = [*(f"h={h:g}" for h in BANDWIDTHS), *DETECTORS, *BASELINES]
    rows, means = [], []
    for name in names:
        per_seed = results[name]
        row = {"problem": name}
        for column, key in zip(columns, [*BANDWIDTHS, *DETECTORS, *BASELINES]):
            row[column] = _mean_std([r[key] for r in per_seed])
        rows.append(row)
        means.append([np.mean([r[key] for r in per_seed]) for key in [*BANDWIDTHS, *DETECTORS]])
    means = np.array(means)
    ranks = np.array([_average_ranks(-m) for m in means])
    for label, values, digits in (("mean ROC-AUC", means, 3), ("mean rank", ranks, 2)):
        rows.append(
            {"problem": f"**{label}**"}
            | {c: f"{v:.{digits}f}" for c, v in zip(columns, values.mean(axis=0))}
        )
    return _common.markdown_table(rows, ["problem", *columns])


NOTES = """ROC-AUC of the test part, mean ± standard deviation over the seeds. `h=...`: the flow's
density blurred by `h` standard deviations of each feature (`bandwidth=h`; `h=0` is the density
itself), one flow per split. `detector h=...`: `FlowMatchingOutlierDetector(bandwidth=...)`, the
whole detector (held-out scores, trimmed refit), with one bandwidth or with the multi-scale score
of several; `subspace ensemble`: `SubspaceOutlierEnsemble()`, twelve default detectors on random
feature subsets of rotated bagging's size (all features for d <= 3, 3 of 4, 4 of 5 and of 8);
iforest, lof, ocsvm, gmm: scikit-learn's detectors with their defaults, as in
`bench_outliers.py`. Mean ROC-AUC and mean rank: of the flow's variants (the bandwidths, the two
detectors and the ensemble), ranked by their mean ROC-AUC on each problem (1 = best, ties share
their mean rank), averaged over the problems.
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="splits fitted in parallel")
    parser.add_argument(
        "--benchmark-sets",
        action="store_true",
        help="also the four data sets of bench_outliers.py, in a second table",
    )
    parser.add_argument("--output", default="outlier_bandwidth.md")
    args = parser.parse_args(argv)
    date, load_start, version = (
        datetime.date.today().isoformat(),
        _common.load_average(),
        _common.code_version(),
    )

    groups = {"Problems outside the outlier benchmark (the choice)": list(VALIDATION_SETS)}
    if args.benchmark_sets:
        groups["The outlier benchmark's data sets (reference only)"] = list(BENCHMARK_SETS)
    names = [name for group in groups.values() for name in group]
    jobs = [(name, seed) for name in names for seed in range(args.seeds)]
    results: dict = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for name, seed, auc in pool.imap_unordered(run_split, jobs):
            results.setdefault(name, []).append(auc)
            aucs = ", ".join(f"{k} {v:.3f}" for k, v in auc.items())
            print(f"{name} seed {seed}: {aucs}", flush=True)

    header = (
        "## Outlier scores against the bandwidth\n\n"
        f"`{_common.command_line()}`, {date}; {_common.code_version_since(version)}; "
        f"{_common.machine_description()}. 1-minute load "
        f"average {load_start} at the start, {_common.load_average()} at the end. {args.seeds} "
        "seeds (stratified 60/40 splits). FlowMatchingDensity: defaults.\n\n"
    )
    sections = [f"### {title}\n\n{table(names, results)}" for title, names in groups.items()]
    text = header + "\n\n".join(sections) + "\n\n" + NOTES
    print(text)
    print(f"written to {_common.write_result(args.output, text)}")


if __name__ == "__main__":
    main()

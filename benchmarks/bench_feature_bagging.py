"""Exploration for the next step of the outlier detector: feature bagging on ``digits``.

Why: on ``bench_outliers.py``'s ``digits`` (64 pixels, about 220 training rows, the zeros as the
rare class) the flow's density is last (ROC-AUC 0.43-0.46) and no blur of it gets near
IsolationForest (0.725). Feature bagging (Lazarevic and Kumar, "Feature bagging for outlier
detection", KDD 2005) fits detectors on random subsets of the features and combines their scores.

What is measured: the splits of ``bench_outliers.py`` (``split``, 5 seeds); per split, six
``FlowMatchingDensity(random_state=seed)`` fits, each on 16 of the 64 standardised pixels drawn at
random (seed ``100 + seed``), scoring the test part by its log-density. The table gives each
subset's test ROC-AUC and that of two combinations of the six: the mean and the minimum of the
ranks of the test rows' scores. Ranking within the test part is a shortcut of this exploration
(a detector would standardise each subset's scores by its training rows' held-out scores, as the
multi-scale score does); ROC-AUC depends only on the order of the combined score.

Reproduce (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_feature_bagging.py --jobs 2   # ~5 min

The table is printed and written to ``benchmarks/results/feature_bagging_digits.md``.
"""

from __future__ import annotations

import _common  # noqa: I001  (first: sets one thread before torch is imported)

import argparse
import datetime
import multiprocessing

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from bench_outliers import DATASETS, _mean_std, split
from skflow import FlowMatchingDensity

N_SUBSETS = 6
SUBSET_SIZE = 16


def subset_size(rng: np.random.Generator, n_features: int, size: int | None) -> int:
    """``size``, or for None Lazarevic and Kumar's draw: uniform on [d // 2, d - 1] for
    ``d = n_features``."""
    if size is not None:
        return size
    return int(rng.integers(n_features // 2, n_features))


def run_split(seed: int, dataset: str = "digits", size: int | None = SUBSET_SIZE) -> dict:
    """Test ROC-AUC of each subset's flow and of the two rank combinations on one split."""
    X_train, X_test, _, y_test = split(DATASETS[dataset](), seed)
    rng = np.random.default_rng(100 + seed)
    auc, ranks = {}, []
    for k in range(N_SUBSETS):
        columns = rng.choice(
            X_train.shape[1], subset_size(rng, X_train.shape[1], size), replace=False
        )
        flow = FlowMatchingDensity(random_state=seed).fit(X_train[:, columns])
        scores = flow.score_samples(X_test[:, columns])
        ranks.append(rankdata(scores))
        auc[f"subset {k}"] = roc_auc_score(y_test, -scores)
    auc["mean of ranks"] = roc_auc_score(y_test, -np.mean(ranks, axis=0))
    auc["min of ranks"] = roc_auc_score(y_test, -np.min(ranks, axis=0))
    return auc


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument(
        "--subset-size",
        type=int,
        default=SUBSET_SIZE,
        help="features per subset; 0 draws each size uniformly on [d // 2, d - 1]",
    )
    args = parser.parse_args(argv)
    size = args.subset_size or None
    date, load_start, version = (
        datetime.date.today().isoformat(),
        _common.load_average(),
        _common.code_version(),
    )
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        per_seed = pool.starmap(
            run_split, [(seed, args.dataset, size) for seed in range(args.seeds)]
        )
    rows = [{"score": key, "ROC-AUC": _mean_std([r[key] for r in per_seed])} for key in per_seed[0]]
    text = (
        f"## Feature bagging of the flow's density on {args.dataset} (exploration)\n\n"
        f"`{_common.command_line()}`, {date}; {_common.code_version_since(version)}; "
        f"{_common.machine_description()}. 1-minute load average {load_start} at the start, "
        f"{_common.load_average()} at the end. {args.seeds} seeds (the splits of "
        f"`bench_outliers.py`), {N_SUBSETS} random subsets of "
        f"{size or 'd // 2 to d - 1'} features per split, "
        "FlowMatchingDensity defaults. Test ROC-AUC, mean ± standard deviation over the seeds.\n\n"
        + _common.markdown_table(rows, ["score", "ROC-AUC"])
        + "\n"
    )
    print(text)
    name = f"feature_bagging_{args.dataset}" + ("" if size == SUBSET_SIZE else f"_{size or 'lk'}")
    print(f"written to {_common.write_result(name + '.md', text)}")


if __name__ == "__main__":
    main()

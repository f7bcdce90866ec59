"""Exploration for #4: how the subspace ensemble's test ROC-AUC grows with its number of members.

Why: ``SubspaceOutlierEnsemble``'s six members were a choice of cost; feature bagging and rotated
bagging use tens of members (Lazarevic and Kumar, KDD 2005; Aggarwal and Sathe, SIGKDD
Explorations 2015), since the average over random subspaces only loses variance as members are
added. On ``bench_outliers.py`` the six-member ensemble is second to IsolationForest on
breast_cancer and digits by 0.003 and 0.022.

What is measured: on the splits of ``bench_outliers.py`` (``split``, 5 seeds), one
``SubspaceOutlierEnsemble(FlowMatchingOutlierDetector(), n_estimators=12, random_state=seed)`` per
split. The ensemble of its first ``k`` members averages the first ``k`` columns of the members'
standardised test scores (the ensemble's own ``_combine`` on fewer columns), so ``k = 12`` is
exactly ``n_estimators=12`` and ``k = 6`` has the same feature subsets as the default (the members'
seeds differ: they are drawn after all subsets). ``6 (2nd half)`` is members 6-11, a second draw
of six. IsolationForest and LocalOutlierFactor on the same splits are the references.

Reproduce (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_ensemble_size.py --jobs 2   # ~55 min

Written to ``benchmarks/results/ensemble_size.md``.
"""

from __future__ import annotations

import _common  # noqa: I001  (first: sets one thread before torch is imported)

import argparse
import datetime
import multiprocessing
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from bench_outliers import DATASETS, _mean_std, split
from skflow import FlowMatchingOutlierDetector, SubspaceOutlierEnsemble
from skflow.outlier import _log_densities

N_MEMBERS = 12
PREFIXES = {"1 (mean of single members)": None, "3": slice(0, 3), "6": slice(0, 6),
            "6 (2nd half)": slice(6, 12), "12": slice(0, 12)}


def run_split(dataset: str, seed: int, save_dir: str | None = None) -> dict:
    """Test ROC-AUC and AP of each prefix of the ensemble and of the references on one split."""
    X_train, X_test, _, y_test = split(DATASETS[dataset](), seed)
    start = time.process_time()
    ensemble = SubspaceOutlierEnsemble(
        FlowMatchingOutlierDetector(), n_estimators=N_MEMBERS, random_state=seed
    ).fit(X_train)
    fit_s = time.process_time() - start
    # per member, its test log-densities at each bandwidth standardised by its held-out median and
    # IQR (what its multi-scale score takes the minimum of), kept for the readings
    per_bandwidth = np.stack([
        (_log_densities(member, X_test[:, columns], member.bandwidths_)
         - member.score_location_) / member.score_scale_
        for member, columns in zip(ensemble.estimators_, ensemble.estimators_features_)
    ])
    standardised = (per_bandwidth.min(axis=2).T - ensemble.score_location_) / ensemble.score_scale_
    if save_dir is not None:
        np.savez_compressed(
            Path(save_dir) / f"{dataset}_{seed}.npz",
            per_bandwidth=per_bandwidth, y_test=y_test,
            ensemble_location=ensemble.score_location_, ensemble_scale=ensemble.score_scale_,
        )
    result = {}
    for name, members in PREFIXES.items():
        if members is None:
            aucs = [roc_auc_score(y_test, -column) for column in standardised.T]
            aps = [average_precision_score(y_test, -column) for column in standardised.T]
            result[name] = (float(np.mean(aucs)), float(np.mean(aps)))
        else:
            score = standardised[:, members].mean(axis=1)
            result[name] = (roc_auc_score(y_test, -score), average_precision_score(y_test, -score))
    assert np.allclose(standardised.mean(axis=1), ensemble.score_samples(X_test))
    for name, detector in {
        "IsolationForest": IsolationForest(random_state=seed),
        "LocalOutlierFactor": LocalOutlierFactor(novelty=True),
    }.items():
        score = detector.fit(X_train).score_samples(X_test)
        result[name] = (roc_auc_score(y_test, -score), average_precision_score(y_test, -score))
    result["fit s per member"] = (fit_s / N_MEMBERS,)
    return result


def table_rows(results: dict, datasets: list[str], seeds: int) -> list[dict]:
    """One row per prefix and reference: "ROC-AUC / AP" per data set; then fit time per member."""
    rows = []
    for name in [*PREFIXES, "IsolationForest", "LocalOutlierFactor"]:
        row = {"members": name}
        for dataset in datasets:
            per_seed = [results[dataset, seed][name] for seed in range(seeds)]
            row[dataset] = (
                f"{_mean_std([r[0] for r in per_seed])} / {_mean_std([r[1] for r in per_seed])}"
            )
        rows.append(row)
    fit_s = {
        dataset: np.mean([results[dataset, seed]["fit s per member"][0] for seed in range(seeds)])
        for dataset in datasets
    }
    rows.append({"members": "fit CPU s per member", **{k: f"{v:.1f}" for k, v in fit_s.items()}})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS),
                        default=["breast_cancer", "digits", "wine", "moons"])
    parser.add_argument("--save-scores", metavar="DIR", default=None,
                        help="also write each split's standardised member scores to DIR")
    args = parser.parse_args(argv)
    date, load_start, version = (
        datetime.date.today().isoformat(), _common.load_average(), _common.code_version()
    )
    tasks = [
        (dataset, seed, args.save_scores) for dataset in args.datasets for seed in range(args.seeds)
    ]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        per_split = pool.starmap(run_split, tasks)
    results = dict(zip([t[:2] for t in tasks], per_split))
    rows = table_rows(results, args.datasets, args.seeds)
    command = "OMP_NUM_THREADS=1 python benchmarks/bench_ensemble_size.py " + shlex.join(
        sys.argv[1:]
    )
    text = (
        "## Members of the subspace ensemble (exploration)\n\n"
        f"`{command.strip()}`, {date}; {_common.code_version_since(version)}; "
        f"{_common.machine_description()}. 1-minute load average {load_start} at the start, "
        f"{_common.load_average()} at the end. {args.seeds} seeds (the splits of "
        f"`bench_outliers.py`); one {N_MEMBERS}-member `SubspaceOutlierEnsemble` per split, "
        "defaults otherwise. Test ROC-AUC / average precision of the mean standardised score "
        "of the first k members, mean ± standard deviation over the seeds.\n\n"
        + _common.markdown_table(rows, ["members", *args.datasets])
        + "\n"
    )
    print(text)
    print(f"written to {_common.write_result('ensemble_size.md', text)}")


if __name__ == "__main__":
    main()

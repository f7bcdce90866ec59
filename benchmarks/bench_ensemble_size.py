"""Exploration for #4: how the subspace ensemble's test ROC-AUC grows with its number of members.

Why: ``SubspaceOutlierEnsemble``'s first default of six members was a choice of cost; feature
bagging and rotated bagging use tens of members (Lazarevic and Kumar, KDD 2005; Aggarwal and
Sathe, SIGKDD Explorations 2015), since the average over random subspaces only loses variance
as members are added. On ``bench_outliers.py`` the six-member ensemble was second to
IsolationForest on breast_cancer and digits by 0.003 and 0.022.

What is measured: on the splits of ``bench_outliers.py`` (``split``, 5 seeds), one
``SubspaceOutlierEnsemble(FlowMatchingOutlierDetector(), n_estimators=12, random_state=seed)`` per
split. The ensemble of its first ``k`` members averages the first ``k`` columns of the members'
standardised test scores (the ensemble's own ``_combine`` on fewer columns), so ``k = 12`` is
exactly ``n_estimators=12`` and ``k = 6`` has the same feature subsets as ``n_estimators=6`` (the
members' seeds differ: they are drawn after all subsets). ``6 (2nd half)`` is members 6-11, a
second draw of six. IsolationForest and LocalOutlierFactor on the same splits are the references.
What this run showed made twelve the default.

Reproduce (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_ensemble_size.py --jobs 2 --save-scores /tmp/ens
    OMP_NUM_THREADS=1 python benchmarks/bench_ensemble_size.py --agreement-from /tmp/ens

The first (~55 min) writes ``benchmarks/results/ensemble_size.md``; the second (seconds, no
fits) reads the scores the first kept and writes ``benchmarks/results/ensemble_agreement.md``:
how alike two ensembles with no member in common rank the test rows, a reading without labels.
"""

from __future__ import annotations

import _common  # noqa: I001  (first: sets one thread before torch is imported)

import argparse
import datetime
import itertools
import multiprocessing
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor

from bench_outliers import DATASETS, _mean_std, split
from skflow import FlowMatchingOutlierDetector, SubspaceOutlierEnsemble
from skflow.outlier import _log_densities

N_MEMBERS = 12
AGREEMENT_SIZES = (1, 3, 6)
PREFIXES = {
    "1 (mean of single members)": None,
    "3": slice(0, 3),
    "6": slice(0, 6),
    "6 (2nd half)": slice(6, 12),
    "12": slice(0, 12),
}


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
    per_bandwidth = np.stack(
        [
            (
                _log_densities(member, X_test[:, columns], member.bandwidths_)
                - member.score_location_
            )
            / member.score_scale_
            for member, columns in zip(ensemble.estimators_, ensemble.estimators_features_)
        ]
    )
    standardised = member_scores(per_bandwidth, ensemble.score_location_, ensemble.score_scale_)
    if save_dir is not None:
        np.savez_compressed(
            Path(save_dir) / f"{dataset}_{seed}.npz",
            per_bandwidth=per_bandwidth,
            y_test=y_test,
            ensemble_location=ensemble.score_location_,
            ensemble_scale=ensemble.score_scale_,
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


def member_scores(per_bandwidth: np.ndarray, location: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Each member's score as the ensemble averages it, shape (n_test, members).

    The minimum over bandwidths of the member's standardised log-densities (its multi-scale
    score), standardised again by the ensemble's location and scale for that member.
    """
    return (per_bandwidth.min(axis=2).T - location) / scale


def agreement(standardised: np.ndarray) -> dict[str, float]:
    """Spearman correlation of the test scores of two ensembles with disjoint members.

    For ``k`` in ``AGREEMENT_SIZES`` the members are cut into consecutive blocks of ``k``; each
    block's mean score is an ensemble of ``k``, and the correlation is averaged over all pairs of
    blocks. It uses no labels: it says how much the ranking of the rows depends on the random
    subsets and seeds. The last entry predicts two ensembles of ``N_MEMBERS`` from the two
    halves by the Spearman-Brown formula ``2 r / (1 + r)`` (exact for Pearson correlations of
    averages of exchangeable members, an approximation for ranks).
    """
    result = {}
    for k in AGREEMENT_SIZES:
        blocks = [standardised[:, i : i + k].mean(axis=1) for i in range(0, N_MEMBERS - k + 1, k)]
        result[f"{k} vs {k}"] = float(
            np.mean([spearmanr(a, b).statistic for a, b in itertools.combinations(blocks, 2)])
        )
    half = result[f"{N_MEMBERS // 2} vs {N_MEMBERS // 2}"]
    result[f"{N_MEMBERS} vs {N_MEMBERS} (predicted)"] = 2 * half / (1 + half)
    return result


def agreement_from(directory: str, datasets: list[str], seeds: int) -> list[dict]:
    """Rows of the agreement table from the scores that ``--save-scores`` wrote."""
    per_split = {}
    for dataset in datasets:
        for seed in range(seeds):
            saved = np.load(Path(directory) / f"{dataset}_{seed}.npz")
            per_split[dataset, seed] = agreement(
                member_scores(
                    saved["per_bandwidth"], saved["ensemble_location"], saved["ensemble_scale"]
                )
            )
    return [
        {
            "ensembles": name,
            **{
                dataset: _mean_std([per_split[dataset, seed][name] for seed in range(seeds)])
                for dataset in datasets
            },
        }
        for name in per_split[datasets[0], 0]
    ]


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
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=sorted(DATASETS),
        default=["breast_cancer", "digits", "wine", "moons"],
    )
    parser.add_argument(
        "--save-scores",
        metavar="DIR",
        default=None,
        help="also write each split's standardised member scores to DIR",
    )
    parser.add_argument(
        "--agreement-from",
        metavar="DIR",
        default=None,
        help="no fits: tabulate the agreement of disjoint ensembles from the "
        "scores that --save-scores wrote to DIR",
    )
    args = parser.parse_args(argv)
    if args.agreement_from is not None:
        write_agreement(args)
        return
    date, load_start, version = (
        datetime.date.today().isoformat(),
        _common.load_average(),
        _common.code_version(),
    )
    tasks = [
        (dataset, seed, args.save_scores) for dataset in args.datasets for seed in range(args.seeds)
    ]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        per_split = pool.starmap(run_split, tasks)
    results = dict(zip([t[:2] for t in tasks], per_split))
    rows = table_rows(results, args.datasets, args.seeds)
    text = (
        "## Members of the subspace ensemble (exploration)\n\n"
        f"`{_common.command_line()}`, {date}; {_common.code_version_since(version)}; "
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


def write_agreement(args: argparse.Namespace) -> None:
    """Write ``results/ensemble_agreement.md`` from saved scores."""
    rows = agreement_from(args.agreement_from, args.datasets, args.seeds)
    text = (
        "## Agreement of disjoint subspace ensembles (no labels)\n\n"
        f"`{_common.command_line()}`, {datetime.date.today().isoformat()}; from the test "
        f"scores that `--save-scores` kept of one {N_MEMBERS}-member `SubspaceOutlierEnsemble` "
        f"per split ({args.seeds} seeds, the splits of `bench_outliers.py`). Spearman "
        "correlation of the test scores of two ensembles of k members with no member in common "
        "(mean over the pairs of disjoint blocks), mean ± standard deviation over the seeds; the "
        "last row is the Spearman-Brown prediction from the two halves.\n\n"
        + _common.markdown_table(rows, ["ensembles", *args.datasets])
        + "\n"
    )
    print(text)
    print(f"written to {_common.write_result('ensemble_agreement.md', text)}")


if __name__ == "__main__":
    main()

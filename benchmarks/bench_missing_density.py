"""My training table has holes: how much held-out likelihood does ``FlowMatchingDensity`` keep by
learning from the incomplete rows (``allow_missing=True``), against dropping them or imputing
them first?

For each table (``--tables``; the eight real tables of ``bench_imputation.py``, numeric feature
columns only, each standardised by its own mean and standard deviation so that nats compare
across tables) and seed (``--seeds``, default 3): a 75 % / 25 % split (``random_state=seed``),
then cells of the training part removed completely at random (each with probability
``--missing-rate``, 0.2 by default, redrawn until no row or column is empty; the generator is
``bench_imputation``'s for its ``mcar`` setting). Every model is the default
``FlowMatchingDensity(random_state=seed)``, fitted on:

* ``complete data``: the training rows before any cell was removed (the reference: what the holes
  cost);
* ``allow_missing``: the incomplete rows, with ``allow_missing=True``;
* ``complete rows``: the rows without a hole only (complete-case analysis), where there are at
  least 4;
* ``imputed``: the rows filled in by ``IterativeImputer(BayesianRidge())`` (its defaults,
  ``random_state=seed``), a regression imputer's conditional means;
* ``flow draw``: the rows completed by one draw of ``FlowMatchingImputer(random_state=seed)``
  (``sample_imputations(X, 1)``): a stochastic imputation from skflow's own conditional flow.

Measured: the mean log-density of the complete test rows (nats per row, standardised units;
higher is better), the same for the test rows with cells removed at the same rate for
``allow_missing`` alone (the log-density of their observed cells: no other model scores a row with
holes), and the CPU seconds of each fit (imputation included).

Reproduce (from the repository root; about 12 min wall with two jobs)::

    OMP_NUM_THREADS=1 python benchmarks/bench_missing_density.py --jobs 2
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import time
import warnings

import bench_imputation
import numpy as np
from joblib import Parallel, delayed, parallel_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.linear_model import BayesianRidge
from sklearn.model_selection import train_test_split

from skflow import FlowMatchingDensity, FlowMatchingImputer

METHODS = ("complete data", "allow_missing", "complete rows", "imputed", "flow draw")
MIN_COMPLETE_ROWS = 4


def run_job(name: str, X: np.ndarray, seed: int, rate: float) -> dict:
    """Every method on one table and seed: test log-likelihoods and fit CPU seconds."""
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    train, test = train_test_split(X, test_size=0.25, random_state=seed)
    rng = bench_imputation._rng(name, "mcar", seed)
    holes = np.where(bench_imputation.mcar_mask(train.shape, rate, rng), np.nan, train)
    test_holes = np.where(bench_imputation.mcar_mask(test.shape, rate, rng), np.nan, test)
    complete = ~np.isnan(holes).any(axis=1)
    result = {"rows": len(train), "n_complete": int(complete.sum())}

    def fit(rows, **params):
        flow = FlowMatchingDensity(random_state=seed, **params)
        return _common.timed(flow.fit, rows)[:2]

    def imputed_fit():
        imputer = IterativeImputer(estimator=BayesianRidge(), random_state=seed)
        with warnings.catch_warnings():  # its defaults stop before its tolerance on some tables
            warnings.simplefilter("ignore", ConvergenceWarning)
            filled, impute_s, _ = _common.timed(imputer.fit_transform, holes)
        flow, fit_s = fit(filled)
        return flow, impute_s + fit_s

    def drawn_fit():
        imputer = FlowMatchingImputer(random_state=seed)
        draws, impute_s, _ = _common.timed(
            lambda: imputer.fit(holes).sample_imputations(holes, 1)[0]
        )
        flow, fit_s = fit(draws)
        return flow, impute_s + fit_s

    fits = {
        "complete data": lambda: fit(train),
        "allow_missing": lambda: fit(holes, allow_missing=True),
        "complete rows": lambda: (
            fit(holes[complete]) if complete.sum() >= MIN_COMPLETE_ROWS else None
        ),
        "imputed": imputed_fit,
        "flow draw": drawn_fit,
    }
    for method, run in fits.items():
        fitted = run()
        if fitted is None:
            result[method] = {"score": np.nan, "fit_s": np.nan}
            continue
        flow, fit_s = fitted
        result[method] = {"score": float(flow.score_samples(test).mean()), "fit_s": fit_s}
        if method == "allow_missing":
            result[method]["holes_score"] = float(flow.score_samples(test_holes).mean())
    return result


def _cell(results: list[dict], method: str, metric: str, digits: int = 3) -> str:
    values = [r[method][metric] for r in results if np.isfinite(r[method][metric])]
    if not values:
        return "—"
    cell = _common.mean_and_spread(values, digits)
    missing = len(results) - len(values)
    return cell + (f" ({missing} seed{'s' if missing > 1 else ''} without)" if missing else "")


def summary(found: dict[str, list[dict]]) -> str:
    """Means over the tables of the per-table means over the seeds; the paired difference to
    ``allow_missing`` over the tables where both ran."""
    rows = []
    for method in METHODS:
        scores, gaps, seconds = [], [], []
        for results in found.values():
            mine = np.array([r[method]["score"] for r in results])
            ours = np.array([r["allow_missing"]["score"] for r in results])
            ran = np.isfinite(mine)
            if ran.any():
                scores.append(mine[ran].mean())
                gaps.append((ours[ran] - mine[ran]).mean())
                seconds.append(
                    np.mean([r[method]["fit_s"] for r, done in zip(results, ran) if done])
                )
        paired = [  # the tables where the method ran at every seed
            np.mean([r["allow_missing"]["score"] - r[method]["score"] for r in results])
            for results in found.values()
            if all(np.isfinite(r[method]["score"]) for r in results)
        ]
        rows.append(
            {
                "model fitted on": method,
                "tables": f"{len(scores)}/{len(found)}",
                "test log-likelihood": f"{np.mean(scores):.3f}",
                "allow_missing minus it": "—"
                if method == "allow_missing"
                else f"{np.mean(gaps):+.3f}",
                "tables where allow_missing is higher": "—"
                if method == "allow_missing"
                else f"{sum(g > 0 for g in paired)}/{len(paired)}",
                "fit CPU s": f"{np.mean(seconds):.1f}",
            }
        )
    return _common.markdown_table(rows, list(rows[0]))


def detail(found: dict[str, list[dict]], metric: str, digits: int = 3) -> str:
    rows = []
    for name, results in found.items():
        row = {
            "table": name,
            "training rows": results[0]["rows"],
            "training rows without a hole": _common.mean_and_spread(
                [r["n_complete"] for r in results], 1
            ),
        }
        row.update({m: _cell(results, m, metric, digits) for m in METHODS})
        if metric == "score":
            row["allow_missing, test rows with holes"] = _cell(
                results, "allow_missing", "holes_score"
            )
        rows.append(row)
    return _common.markdown_table(rows, list(rows[0]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tables",
        nargs="+",
        choices=bench_imputation.TABLE_CHOICES,
        default=bench_imputation.DEFAULT_TABLES,
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--missing-rate", type=float, default=0.2)
    parser.add_argument("--jobs", type=int, default=1, help="jobs at once, one process each")
    parser.add_argument("--output", help="result file (default missing_density.md)")
    args = parser.parse_args(argv)
    date, load_start = datetime.date.today().isoformat(), _common.load_average()
    code_at_start = _common.code_version()
    data = {
        name: bench_imputation.numeric_features(bench_imputation.load(name))[0]
        for name in args.tables
    }
    jobs = [(name, seed) for seed in range(args.seeds) for name in args.tables]
    found = {name: [] for name in args.tables}
    wall = time.perf_counter()
    with parallel_config(backend="loky", inner_max_num_threads=1):
        results = Parallel(n_jobs=args.jobs, return_as="generator")(
            delayed(run_job)(name, data[name], seed, args.missing_rate) for name, seed in jobs
        )
        for (name, seed), result in zip(jobs, results):
            found[name].append(result)
            cells = ", ".join(f"{m} {result[m]['score']:.3f}" for m in METHODS)
            print(f"{name} seed {seed}: {cells}", flush=True)
    wall = time.perf_counter() - wall
    header = (
        "## Density estimation from incomplete rows\n\n"
        f"`{_common.command_line(argv, script=__file__)}`, {date}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}. "
        f"1-minute load average {load_start} at the start, {_common.load_average()} at the end; "
        f"{wall / 60:.1f} min wall with {args.jobs} job{'s' if args.jobs > 1 else ''} at once. "
        f"{args.seeds} seed{'s' if args.seeds > 1 else ''}, missing rate {args.missing_rate} "
        "(cells of the training rows, completely at random)."
    )
    text = "\n\n".join(
        [
            header,
            "### Summary (held-out log-likelihood of complete test rows, nats per standardised "
            "row; means over the tables of the means over the seeds)\n\n" + summary(found),
            "### Held-out log-likelihood per table (mean ± std over the seeds)\n\n"
            + detail(found, "score"),
            "### Fit CPU seconds per table\n\n" + detail(found, "fit_s", 1),
        ]
    )
    text += "\n"
    print(text)
    print(f"written to {_common.write_result(args.output or 'missing_density.md', text)}")


if __name__ == "__main__":
    main()

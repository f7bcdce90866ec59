"""Does GridSearchCV over FlowMatchingDensity's hyperparameters beat the defaults?

Measured: on the real data sets of ``bench_quality.py`` (the same 75/25 split, ``random_state=0``),
``GridSearchCV(FlowMatchingDensity(random_state=0), grid, cv=...)`` is fitted on the training rows
(its score is the flow's own ``score``, the mean log-likelihood, so no scorer is needed) and its
refitted best model is scored on the test rows, next to the default model. Each grid holds the
default setting, so the search leaves it only for a setting that cross-validates better. Two grids
(``GRIDS``): ``"knobs"``, for the small sets, and ``"depth"``, for digits. The table gives both
test LLs, the paired difference over the test rows, the chosen setting, the default's CV rank,
and for each hyperparameter of the grid the spread of the mean CV score over its values (the best
mean CV score with that value fixed, best minus worst value): the larger the spread, the more the
knob matters.

Reproduce (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_model_selection.py   # ~25 CPU min
    OMP_NUM_THREADS=1 python benchmarks/bench_model_selection.py --datasets digits --grid depth \\
        --cv 3                                                         # ~25 CPU min

Both write ``benchmarks/results/model_selection.md``, one section per grid: a run replaces the
section of its grid and keeps the other's.
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import re

import numpy as np
from sklearn.model_selection import GridSearchCV, train_test_split

from skflow import FlowMatchingDensity

from bench_quality import DATASETS

GRIDS = {
    "knobs": {
        "architecture": ["mlp", "residual"],
        "learning_rate_init": [2e-3, 5e-3],
        "time_distribution": ["uniform", "arcsine"],
    },
    "depth": {
        "architecture": ["mlp", "residual"],
        "hidden_layer_sizes": [(128, 128, 128), (128, 128, 128, 128)],
        "learning_rate_init": [5e-3, 1e-2],
    },
}
"""Knobs that move the likelihood (``benchmarks/README.md``, "Why the defaults"), each at its
default and one alternative; on digits, three hidden layers or four."""

TITLE = "## Model selection: GridSearchCV against the defaults"


def knob_spreads(search: GridSearchCV, grid: dict) -> str:
    """For each parameter of the grid: the best mean CV score with each of its values, best minus
    worst."""
    results = search.cv_results_
    parts = []
    for name in grid:
        values = [repr(v) for v in results[f"param_{name}"]]
        best = {
            v: max(s for s, w in zip(results["mean_test_score"], values) if w == v)
            for v in set(values)
        }
        parts.append(f"{name} {max(best.values()) - min(best.values()):.3f}")
    return ", ".join(parts)


def default_rank(search: GridSearchCV) -> int:
    """The CV rank of the grid's setting that is FlowMatchingDensity's default (1 = chosen)."""
    defaults = FlowMatchingDensity().get_params()
    results = search.cv_results_
    (index,) = [
        i
        for i, params in enumerate(results["params"])
        if all(value == defaults[name] for name, value in params.items())
    ]
    return int(results["rank_test_score"][index])


def merge_section(path, grid: str, section: str) -> str:
    """The result file's text with ``section`` as the section of ``grid``: the sections of the
    other grids already in the file at ``path`` are kept, in the order of ``GRIDS``."""
    sections = {}
    if path.exists():
        for part in re.split(r"^(?=### Grid ')", path.read_text(), flags=re.MULTILINE)[1:]:
            sections[part.split("'")[1]] = part.rstrip() + "\n"
    sections[grid] = section
    return TITLE + "\n\n" + "\n".join(sections[name] for name in GRIDS if name in sections)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["wine", "iris", "breast_cancer"])
    parser.add_argument("--grid", choices=list(GRIDS), default="knobs", help="default: knobs")
    parser.add_argument("--cv", type=int, default=5, help="folds of the search (default 5)")
    parser.add_argument("--output", default="model_selection.md")
    args = parser.parse_args(argv)
    grid = GRIDS[args.grid]
    load_at_start, code_at_start = _common.load_average(), _common.code_version()
    rows = []
    for name in args.datasets:
        X = DATASETS[name](0).X
        X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
        default = FlowMatchingDensity(random_state=0)
        _, default_seconds, _ = _common.timed(default.fit, X_train)
        search = GridSearchCV(FlowMatchingDensity(random_state=0), grid, cv=args.cv)
        _, search_seconds, _ = _common.timed(search.fit, X_train)
        default_ll = default.score_samples(X_test)
        tuned_ll = search.best_estimator_.score_samples(X_test)
        gain, gain_se = _common.mean_and_se(tuned_ll - default_ll)
        row = {
            "dataset": name,
            "default test LL ± SE": "{:.3f} ± {:.3f}".format(*_common.mean_and_se(default_ll)),
            "tuned test LL ± SE": "{:.3f} ± {:.3f}".format(*_common.mean_and_se(tuned_ll)),
            "tuned - default ± SE": f"{gain:+.3f} ± {gain_se:.3f}",
            "chosen": ", ".join(f"{k}={v!r}" for k, v in search.best_params_.items()),
            "default's CV rank": default_rank(search),
            "CV-score spread per knob": knob_spreads(search, grid),
            "fit s default / search": f"{default_seconds:.1f} / {search_seconds:.1f}",
        }
        print(_common.markdown_table([row], list(row)).splitlines()[-1], flush=True)
        rows.append(row)
    described = ", ".join(f"{k}: {v}" for k, v in grid.items())
    section = (
        f"### Grid {args.grid!r}\n\n"
        f"`{_common.command_line(argv, script=__file__)}`, {datetime.date.today()}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}. "
        f"1-minute load average {load_at_start} at the start, {_common.load_average()} at the end. "
        f"Grid {args.grid!r} ({np.prod([len(v) for v in grid.values()])} settings, {args.cv}-fold "
        f"CV on the training rows, every other hyperparameter at its default): {described}.\n\n"
        + _common.markdown_table(rows, list(rows[0]))
        + "\n"
    )
    print("\n" + section)
    text = merge_section(_common.result_path(args.output), args.grid, section)
    print(f"written to {_common.write_result(args.output, text)}")


if __name__ == "__main__":
    main()

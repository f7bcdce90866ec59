"""What held-out log-likelihood does a fixed amount of wall-clock time buy?

For each data set of ``bench_quality.py`` (same 75/25 split, ``random_state=0``) and each budget
``B`` (default 15, 30, 60 and 120 seconds of wall time):

* ``flow``: ``FlowMatchingDensity(random_state=0, max_time=B)``, its defaults otherwise: the
  default step budget, cut by the time budget when that runs out first (the step-size schedule
  follows whichever does);
* ``nsf``: the neural spline flow of ``_spline_flow.py`` (zuko's NSF, maximum likelihood) trained
  for ``B`` wall seconds, its best validation epoch kept;

and, once per data set, the tuned ``GaussianMixture`` and ``KernelDensity`` of
``bench_quality.py`` as reference lines (their grid-search time is reported, not budgeted).
Reported: the mean test log-likelihood ± its standard error (nats per row, units of ``X``), the
fit's wall seconds, the flow's optimiser steps and why it stopped. The flow's fit includes its
early-stopping checks; neither model's budget includes scoring the test rows.

Each data set runs in its own one-thread process (``--jobs`` at once), so a budget is one core's
wall time: on an idle machine with two cores, ``--jobs 2`` keeps each job on its own core.

Reproduce (from the repository root; about 35 minutes)::

    OMP_NUM_THREADS=1 python benchmarks/bench_time_to_quality.py --jobs 2 --plot

It writes ``benchmarks/results/time_to_quality.md`` and, with ``--plot``, the figure
``doc/images/time_to_quality.png`` of the user guide; ``--plot-only`` redraws the figure from the
result file without fitting anything.
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import multiprocessing
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from skflow import FlowMatchingDensity

from _spline_flow import SplineFlow
from bench_quality import DATASETS, N_TOY, held_out_log_density, make_models

BUDGETS = (15.0, 30.0, 60.0, 120.0)
FIGURE = Path(__file__).resolve().parent.parent / "doc" / "images" / "time_to_quality.png"


def run_dataset(name: str, budgets: tuple[float, ...], models: tuple[str, ...]) -> list[dict]:
    """Rows of the table for data set ``name``: each model at each budget, then the references."""
    dataset = DATASETS[name](N_TOY)
    X_train, X_test = train_test_split(dataset.X, test_size=0.25, random_state=0)
    rows = []

    def record(model: str, budget: str, fitted, wall: float, note: str) -> None:
        mean, se = _common.mean_and_se(held_out_log_density(fitted, X_test))
        row = {
            "dataset": name,
            "model": model,
            "budget s": budget,
            "test LL": f"{mean:.4f}",
            "SE": f"{se:.4f}",
            "fit wall s": f"{wall:.1f}",
            "note": note,
        }
        print(_common.markdown_table([row], list(row)).splitlines()[-1], flush=True)
        rows.append(row)

    for budget in budgets:
        if "flow" in models:
            flow = FlowMatchingDensity(random_state=0, max_time=budget)
            _, _, wall = _common.timed(flow.fit, X_train)
            record("flow", f"{budget:g}", flow, wall, f"{flow.t_} steps, {flow.stop_reason_}")
        if "nsf" in models:
            nsf = SplineFlow(budget=budget, random_state=0, clock="wall")
            _, _, wall = _common.timed(nsf.fit, X_train)
            record("nsf", f"{budget:g}", nsf, wall, nsf.describe())
    for model in ("gmm", "kde"):
        search = make_models(dataset, quick=False)[model]
        _, _, wall = _common.timed(search.fit, X_train)
        ((parameter, value),) = search.best_params_.items()
        record(model, "", search, wall, f"{parameter.removeprefix('density__')}={value:.3g}")
    return rows


def read_table(path: Path) -> list[dict]:
    """The rows of the markdown table of a result file, as dicts of strings."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ")]
    columns = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(columns, (cell.strip() for cell in line.strip("|").split("|"))))
        for line in lines[2:]
    ]


def plot(rows: list[dict], path: Path) -> None:
    """Test LL against the budget, one panel per data set: the flow and the spline flow as lines,
    the GMM and the KDE as horizontal reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row["dataset"] for row in rows))
    columns = 3
    fig, axes = plt.subplots(
        -(-len(names) // columns), columns, figsize=(12, 3.2 * -(-len(names) // columns))
    )
    styles = {
        "flow": ("tab:blue", "o", "FlowMatchingDensity(max_time=B)"),
        "nsf": ("tab:orange", "s", "spline flow, B seconds"),
    }
    for ax, name in zip(np.ravel(axes), names):
        mine = [row for row in rows if row["dataset"] == name]
        budgets = sorted({float(row["budget s"]) for row in mine if row["budget s"]})
        for model, (color, marker, label) in styles.items():
            points = [row for row in mine if row["model"] == model]
            if points:
                ax.plot(
                    [float(row["budget s"]) for row in points],
                    [float(row["test LL"]) for row in points],
                    color=color,
                    marker=marker,
                    label=label,
                )
        for model, style, label in (("gmm", "--", "tuned GMM"), ("kde", ":", "tuned KDE")):
            for row in mine:
                if row["model"] == model:
                    ax.axhline(float(row["test LL"]), color="0.3", ls=style, label=label)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{budget:g}" for budget in budgets])
        ax.minorticks_off()
        ax.set_title(name)
        ax.set_xlabel("wall-clock budget (s)")
        ax.set_ylabel("test log-likelihood")
    for ax in np.ravel(axes)[len(names) :]:
        ax.axis("off")
    np.ravel(axes)[0].legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), help="default: all")
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    parser.add_argument("--models", nargs="+", choices=("flow", "nsf"), default=["flow", "nsf"])
    parser.add_argument("--jobs", type=int, default=1, help="data sets run at once")
    parser.add_argument("--plot", action="store_true", help=f"draw {FIGURE.name} for the guide")
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw the figure from the result file, no fits"
    )
    parser.add_argument("--output", default="time_to_quality.md", help="result file")
    args = parser.parse_args(argv)
    if args.plot_only:
        plot(read_table(_common.RESULTS_DIR / args.output), FIGURE)
        print(f"figure: {FIGURE}")
        return

    names = args.datasets or list(DATASETS)
    load_at_start, code_at_start = _common.load_average(), _common.code_version()
    tasks = [(name, tuple(args.budgets), tuple(args.models)) for name in names]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        rows = [row for result in pool.starmap(run_dataset, tasks, chunksize=1) for row in result]
    text = (
        "## Time to quality: held-out log-likelihood at fixed wall-clock budgets\n\n"
        f"`{_common.command_line(argv, script=__file__)}`, {datetime.date.today()}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}. "
        f"1-minute load average {load_at_start} at the start, {_common.load_average()} at the "
        "end.\n\n"
        + _common.markdown_table(rows, list(rows[0]))
        + "\n\nTest LL: mean log-density of the test rows (nats per row, units of X) and its "
        "standard error. flow: FlowMatchingDensity(random_state=0, max_time=budget); nsf: the "
        "spline flow trained for the budget; gmm, kde: tuned by 5-fold grid search (time not "
        "budgeted). Fit wall s: the whole fit, one thread, scoring excluded.\n"
    )
    print("\n" + text)
    print(f"written to {_common.write_result(args.output, text)}")
    if args.plot:
        plot(rows, FIGURE)
        print(f"figure: {FIGURE}")


if __name__ == "__main__":
    main()

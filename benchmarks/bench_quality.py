"""How well does FlowMatchingDensity estimate a density, against the usual alternatives?

Measured: the held-out log-likelihood of the default ``FlowMatchingDensity`` and of three tuned
baselines on the same split of each data set (75 % train / 25 % test, ``random_state=0``): the
mean log-density of the test rows (nats per row, in the units of ``X``) with its standard error,
the paired difference to the flow, and the CPU seconds of fitting and of scoring.

Models:

* ``flow``: ``FlowMatchingDensity(random_state=0)`` with its defaults.
* ``gmm``: ``GaussianMixture(covariance_type="full")``, ``n_components`` chosen by 5-fold
  ``GridSearchCV`` (1..10 on the real data, 1..40 on the 2-D toys, where uniform densities with
  sharp edges need many components).
* ``kde``: Gaussian ``KernelDensity``, ``bandwidth`` chosen by 5-fold ``GridSearchCV`` on a log grid
  from 0.01 to 10.
* ``nsf``: a neural spline flow (``zuko.flows.NSF``) trained by maximum likelihood for the same CPU
  seconds as the flow's fit on that data set, its best epoch picked on a validation split of the
  training rows (see ``_spline_flow.py``).

Above 10,000 rows (diamonds) the GMM grid is 14 component counts up to 40 and the KDE grid 11
bandwidths from 0.01 to 1, summed to a relative tolerance of 1e-4: the full grids cost five fits
on 32k rows per point.

The baselines run on standardised features (a ``StandardScaler`` in the pipeline, whose
log-Jacobian ``-sum(log scale_)`` is added back, so every number is in the units of ``X``): a single
isotropic KDE bandwidth is meaningless across features of different scales. Their fit time includes
the grid search. A choice at the top of its grid (or the bottom of the bandwidth grid) is marked
"(edge)".

Data sets:

* 2-D toys with a known density, 4000 rows (3000 train, 1000 test): ``square`` (uniform on the unit
  square, entropy 0), ``annulus`` (uniform on 1 <= r <= 2, entropy log(3 pi)), ``gaussians8`` (eight
  Gaussians of standard deviation 0.2 on a circle of radius 3, entropy by Monte Carlo on 10^7 draws
  of the exact log-density, its standard error stated) and ``correlated_gaussian`` (unit variances,
  correlation 0.9, entropy ``log(2 pi e) + log(1 - 0.9^2) / 2``). No model can beat the floor
  ``-H`` in expectation; ``gap`` is the paired estimate ``mean(log p_true - log p_model)`` over the
  test rows, an estimate of ``KL(p_true || p_model) >= 0`` with a much smaller error than the
  difference of the two means. Likewise ``flow - model`` compares each baseline with the flow on the
  same test rows (paired), which is far more precise than comparing the two means.
* ``digits`` (sklearn's 8x8 digits, 64 features with integer values 0..16), dequantised as
  ``X + U[0, 1)``: its log-density is in nats per image with pixel values in [0, 17), and is a lower
  bound of the log-probability of the discrete image.
* ``breast_cancer`` (30 features), ``wine`` (13 features) and ``iris`` (4 features), as loaded.
* ``diamonds``: (log carat, log price) of the 53,940 diamonds of ``plotnine/data/diamonds.csv``
  (read from the installed package's directory, without importing plotnine), 40,455 training
  rows. Carats are recorded to 0.01 and prices to the dollar, so both get uniform noise of their
  recording step before the log (``carat + U(-0.005, 0.005)``, ``price + U(-0.5, 0.5)``).

With ``--solver-check`` the fitted flow is also scored with RK4 at 5, 10, 20 and 40 steps on the
flow's time grid (``--step-exponents`` compares several grids, ``step_exponent`` of
:func:`skflow.solvers.time_grid`) and with dopri5 at atol = rtol = 1e-7 on at most 1000 test rows
(100 above 16 features), in a second table.

Reproduce (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_quality.py --solver-check --step-exponents 1 1.5 \\
        --jobs 2                                                      # about 40 CPU min
    OMP_NUM_THREADS=1 python benchmarks/bench_quality.py --quick      # toys, short budget (~1 min)

The first writes ``benchmarks/results/quality.md``. ``--quick`` checks that the script runs (its
numbers mean nothing) and only prints, unless ``--output`` names a file; ``--datasets`` runs a
subset, which should go to another file (``--output``) so as not to overwrite the full table.
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import math
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skflow import FlowMatchingDensity

from _spline_flow import SplineFlow

N_TOY = 4000
N_TOY_QUICK = 1000
N_MONTE_CARLO = 10**7
LARGE = 10_000  # rows above which the baselines' grids are coarser (see make_models)


@dataclass
class Dataset:
    """Rows to split and, for a toy, its exact log-density and entropy (and the entropy's error)."""

    name: str
    X: np.ndarray
    log_density: Callable[[np.ndarray], np.ndarray] | None = None
    entropy: float | None = None
    entropy_se: float = 0.0


# --------------------------------------------------------------------------------------------------
# data sets


def square(n: int) -> Dataset:
    X = np.random.default_rng(0).uniform(size=(n, 2))
    return Dataset("square", X, lambda X: np.zeros(len(X)), entropy=0.0)


def annulus(n: int) -> Dataset:
    rng = np.random.default_rng(0)
    radius = np.sqrt(rng.uniform(1.0, 4.0, size=n))  # uniform in area between r = 1 and r = 2
    angle = rng.uniform(0.0, 2 * np.pi, size=n)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    log_area = math.log(3 * math.pi)
    return Dataset("annulus", X, lambda X: np.full(len(X), -log_area), entropy=log_area)


def gaussians8(n: int) -> Dataset:
    angles = 2 * np.pi * np.arange(8) / 8
    centres = 3.0 * np.column_stack([np.cos(angles), np.sin(angles)])
    std = 0.2

    def draw(m: int, rng: np.random.Generator) -> np.ndarray:
        return centres[rng.integers(8, size=m)] + std * rng.standard_normal((m, 2))

    def log_density(X: np.ndarray) -> np.ndarray:
        squared = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2)
        return logsumexp(-0.5 * squared / std**2, axis=1) - math.log(8 * 2 * math.pi * std**2)

    # entropy = -E[log p], by Monte Carlo on draws independent of the data, in chunks
    rng = np.random.default_rng(12345)
    values = np.concatenate([log_density(draw(10**6, rng)) for _ in range(N_MONTE_CARLO // 10**6)])
    entropy, entropy_se = _common.mean_and_se(-values)
    X = draw(n, np.random.default_rng(0))
    return Dataset("gaussians8", X, log_density, entropy, entropy_se)


def correlated_gaussian(n: int) -> Dataset:
    covariance = np.array([[1.0, 0.9], [0.9, 1.0]])
    X = np.random.default_rng(0).multivariate_normal(np.zeros(2), covariance, size=n)
    entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * covariance))
    return Dataset(
        "correlated_gaussian", X, multivariate_normal(np.zeros(2), covariance).logpdf, entropy
    )


def digits(n: int) -> Dataset:
    X = load_digits().data
    return Dataset("digits", X + np.random.default_rng(0).uniform(size=X.shape))


def breast_cancer(n: int) -> Dataset:
    return Dataset("breast_cancer", load_breast_cancer().data)


def wine(n: int) -> Dataset:
    return Dataset("wine", load_wine().data)


def iris(n: int) -> Dataset:
    return Dataset("iris", load_iris().data)


def diamonds(n: int) -> Dataset:
    """(log carat, log price) of plotnine's 53,940 diamonds, dequantised before the log.

    Carats are recorded to 0.01 and prices to the dollar, so the raw values repeat (a density on
    them would be infinite); each gets uniform noise of its recording step, ``carat + U(-0.005,
    0.005)`` and ``price + U(-0.5, 0.5)``, which turns the recorded grid into a continuous density.
    The CSV file is read from the installed package's directory, without importing plotnine.
    """
    table = _common.plotnine_csv("diamonds", ["carat", "price"])
    rng = np.random.default_rng(0)
    carat = table["carat"].to_numpy() + rng.uniform(-0.005, 0.005, size=len(table))
    price = table["price"].to_numpy() + rng.uniform(-0.5, 0.5, size=len(table))
    return Dataset("diamonds", np.column_stack([np.log(carat), np.log(price)]))


TOYS = {f.__name__: f for f in (square, annulus, gaussians8, correlated_gaussian)}
REAL = {f.__name__: f for f in (diamonds, digits, breast_cancer, wine, iris)}
DATASETS = {**TOYS, **REAL}


# --------------------------------------------------------------------------------------------------
# models


def standardised_search(estimator, parameter: str, grid) -> GridSearchCV:
    """5-fold grid search of ``parameter`` of ``estimator`` fitted on standardised features."""
    pipeline = Pipeline([("scale", StandardScaler()), ("density", estimator)])
    return GridSearchCV(pipeline, {f"density__{parameter}": list(grid)}, cv=5)


def held_out_log_density(model, X: np.ndarray) -> np.ndarray:
    """Log-density of each row in the units of ``X`` (undoing the baselines' standardisation)."""
    if isinstance(model, GridSearchCV):
        pipeline = model.best_estimator_
        return pipeline.score_samples(X) - np.log(pipeline["scale"].scale_).sum()
    return model.score_samples(X)


def describe_choice(search: GridSearchCV) -> str:
    ((name, grid),) = search.param_grid.items()
    value = search.best_params_[name]
    # the top of a grid, or the bottom of the bandwidth grid, may have cut the choice short
    at_edge = value == grid[-1] or (isinstance(value, float) and value == grid[0])
    edge = " (edge)" if at_edge else ""
    label = name.removeprefix("density__")
    return f"{label}={value:.3g}{edge}" if isinstance(value, float) else f"{label}={value}{edge}"


def make_models(dataset: Dataset, quick: bool) -> dict:
    """The flow and the tuned baselines (the spline flow is made in :func:`evaluate`, once the
    flow's fit time, its budget, is known)."""
    many_components = dataset.log_density is not None or dataset.X.shape[0] > LARGE
    max_components = 5 if quick else (40 if many_components else 10)
    components = list(range(1, max_components + 1))
    bandwidths = np.logspace(-2, 1, 10 if quick else 31)
    kde = KernelDensity()
    if dataset.X.shape[0] > LARGE:
        # every grid point costs five fits on 32k rows: a coarser grid over the same range, and a
        # KDE summed to a relative tolerance of 1e-4 (1e-4 nats) instead of exactly
        components = [1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30, 35, 40]
        bandwidths = np.logspace(-2, 0, 11)
        kde = KernelDensity(rtol=1e-4)
    return {
        "flow": FlowMatchingDensity(random_state=0, **(QUICK_FLOW if quick else {})),
        "gmm": standardised_search(
            GaussianMixture(covariance_type="full", random_state=0), "n_components", components
        ),
        "kde": standardised_search(kde, "bandwidth", bandwidths),
    }


# --------------------------------------------------------------------------------------------------


MODELS = ["flow", "gmm", "kde", "nsf"]
QUICK_FLOW = {"max_iter": 20}  # --quick: a flow that trains in seconds
SOLVER_CHECK_ROWS = 1000  # 100 above 16 features, where the exact divergence costs d passes
SOLVER_CHECK_STEPS = (5, 10, 20, 40)


def solver_convergence(
    dataset: Dataset, flow, X_test: np.ndarray, exponents: tuple[float, ...]
) -> list[dict]:
    """Mean test LL of the fitted ``flow`` with RK4 at ``SOLVER_CHECK_STEPS`` steps on the grid of
    each of ``exponents`` (``step_exponent``; empty: the flow's own) and with dopri5 at atol = rtol
    = 1e-7 (the reference), on at most ``SOLVER_CHECK_ROWS`` test rows; one row per exponent, each
    RK4 entry the mean and the largest absolute per-row difference from the reference."""
    X = X_test[: SOLVER_CHECK_ROWS if X_test.shape[1] <= 16 else 100]
    keys = ("solver", "n_steps", "step_exponent", "atol", "rtol")
    solver = {k: flow.get_params()[k] for k in keys}
    reference, seconds, _ = _common.timed(
        flow.set_params(solver="dopri5", atol=1e-7, rtol=1e-7).score_samples, X
    )
    rows = []
    for exponent in exponents or (solver["step_exponent"],):
        row = {"dataset": dataset.name, "rows": len(X), "dopri5 LL": f"{reference.mean():.4f}"}
        row["dopri5 s"] = f"{seconds:.1f}"
        row["step exponent"] = f"{exponent:g}"
        for n_steps in SOLVER_CHECK_STEPS:
            flow.set_params(solver="rk4", n_steps=n_steps, step_exponent=exponent)
            difference = flow.score_samples(X) - reference
            row[f"rk4 {n_steps}: mean diff / max abs diff"] = (
                f"{difference.mean():+.4f} / {np.abs(difference).max():.4f}"
            )
        print(_common.markdown_table([row], list(row)).splitlines()[-1], flush=True)
        rows.append(row)
    flow.set_params(**solver)
    return rows


def evaluate(
    dataset: Dataset, quick: bool, solver_check: tuple[float, ...] | None = None
) -> tuple[list[dict], list[dict]]:
    """The rows of the main table for ``dataset`` and, with ``solver_check`` (``--solver-check``:
    the grid exponents to check), the flow's ODE-solver convergence rows
    (:func:`solver_convergence`; else none)."""
    X_train, X_test = train_test_split(dataset.X, test_size=0.25, random_state=0)
    floor = "" if dataset.entropy is None else f"{0.0 - dataset.entropy:.3f}"
    if dataset.entropy_se:
        floor += f" ± {dataset.entropy_se:.4f}"
    rows, solver_rows = [], []
    flow_log_density, flow_fit_seconds = None, 0.0
    models = make_models(dataset, quick)
    for name in MODELS:
        if name == "nsf":  # the same CPU time as the flow's fit
            model = SplineFlow(budget=flow_fit_seconds, random_state=0)
        else:
            model = models[name]
        _, fit_seconds, _ = _common.timed(model.fit, X_train)
        log_density, score_seconds, _ = _common.timed(held_out_log_density, model, X_test)
        mean, se = _common.mean_and_se(log_density)
        if name == "flow":
            flow_log_density, flow_fit_seconds = log_density, fit_seconds
            if solver_check is not None:
                solver_rows = solver_convergence(dataset, model, X_test, solver_check)
        if isinstance(model, GridSearchCV):
            note = describe_choice(model)
        elif isinstance(model, SplineFlow):
            note = model.describe()
        else:
            note = f"{model.n_iter_} epochs, {model.t_} steps"
            if model.n_fourier_features_:
                note += f", {model.n_fourier_features_} Fourier features"
        row = {
            "dataset": dataset.name,
            "n train/test": f"{len(X_train)}/{len(X_test)}",
            "d": dataset.X.shape[1],
            "model": name,
            "test LL ± SE": f"{mean:.3f} ± {se:.3f}",
            "flow - model ± SE": "",
            "floor -H": floor,
            "gap (KL est.) ± SE": "",
            "fit s": f"{fit_seconds:.1f}",
            "score s": f"{score_seconds:.1f}",
            "selected / trained": note,
        }
        if name != "flow":
            advantage, advantage_se = _common.mean_and_se(flow_log_density - log_density)
            row["flow - model ± SE"] = f"{advantage:+.3f} ± {advantage_se:.3f}"
        if dataset.log_density is not None:
            gap, gap_se = _common.mean_and_se(dataset.log_density(X_test) - log_density)
            row["gap (KL est.) ± SE"] = f"{gap:.3f} ± {gap_se:.3f}"
        print(_common.markdown_table([row], list(row)).splitlines()[-1], flush=True)
        rows.append(row)
    return rows, solver_rows


def run_dataset(
    name: str, quick: bool, solver_check: tuple[float, ...] | None = None
) -> tuple[list[dict], list[dict]]:
    """Build data set ``name`` and evaluate the models on it (one task of the process pool); with
    ``solver_check``, also the flow's solver convergence."""
    n_toy = N_TOY_QUICK if quick else N_TOY
    return evaluate(DATASETS[name](n_toy), quick, solver_check)


NOTES = """\
Test LL: mean log-density of the test rows (nats per row, units of X), ± its standard error over the
test rows. Flow - model: paired mean over the test rows of the flow's log-density minus the
baseline's (positive: the flow is better), ± its standard error. Floor -H: minus the entropy of a
toy's true density, the best expected test LL (for `gaussians8` by Monte Carlo over 10^7 draws,
± its standard error). Gap: mean over the test rows of log p_true - log p_model, an estimate of
KL(p_true || p_model) (0 is perfect). Fit s / score s: CPU seconds (one thread; the baselines'
fit includes the 5-fold grid search). Baselines run on standardised features with the Jacobian
added back. digits: X + U[0, 1), nats per 8x8 image with pixel values in [0, 17) (bits per pixel =
-LL / (64 ln 2)).
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="toys only, 1000 rows, flow max_iter=20, small grids; prints unless --output is given",
    )
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(DATASETS), help="data sets to run (default: all)"
    )
    parser.add_argument(
        "--solver-check",
        action="store_true",
        help="also score the fitted flow with RK4 at 5, 10, 20, 40 steps and with dopri5 (1e-7)",
    )
    parser.add_argument(
        "--step-exponents",
        type=float,
        nargs="+",
        default=[],
        help="the grid exponents (step_exponent) of --solver-check (default: the flow's own)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="data sets run in parallel processes, one thread each (CPU times stay per process)",
    )
    parser.add_argument("--output", help="result file (default quality.md; none with --quick)")
    args = parser.parse_args(argv)

    names = args.datasets or list(TOYS if args.quick else DATASETS)
    load_at_start, code_at_start = _common.load_average(), _common.code_version()

    solver_check = tuple(args.step_exponents) if args.solver_check else None
    tasks = [(name, args.quick, solver_check) for name in names]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.starmap(run_dataset, tasks, chunksize=1)
    rows = [row for dataset_rows, _ in results for row in dataset_rows]
    solver_rows = [row for _, solver_row in results for row in solver_row]
    table = _common.markdown_table(rows, list(rows[0]))
    if solver_rows:
        table += (
            "\n\n### Convergence of the flow's log-likelihood in the ODE solver\n\n"
            f"The fitted flows above, on the first {SOLVER_CHECK_ROWS} test rows (100 above 16 "
            "features; all, when fewer): mean LL with dopri5 at atol = rtol = 1e-7 (the "
            "reference) and its CPU seconds; for RK4 with n steps on the grid of the step "
            "exponent (1: equal steps), the mean and the largest absolute per-row difference "
            "from the reference (nats).\n\n"
            + _common.markdown_table(solver_rows, list(solver_rows[0]))
        )

    command = _common.command_line(argv, script=__file__)
    flow_params = QUICK_FLOW if args.quick else {}
    flow_setting = ", ".join(f"{k}={v!r}" for k, v in flow_params.items()) or "defaults"
    text = (
        "## Quality benchmark: held-out log-likelihood\n\n"
        f"`{command}`, {datetime.date.today()}; {_common.code_version_since(code_at_start)}; "
        f"{_common.machine_description()}. "
        f"1-minute load average {load_at_start} at the start, {_common.load_average()} at the end. "
        f"FlowMatchingDensity: {flow_setting}.\n\n"
        f"{table}\n\n{NOTES}"
    )
    print("\n" + text)
    output = args.output or (None if args.quick else "quality.md")
    if output is not None:
        print(f"written to {_common.write_result(output, text)}")


if __name__ == "__main__":
    main()

"""How well does InterpolantTransport map one sample onto another, and with how few steps?

For two pairs of shapes (moons -> 8 Gaussians, checkerboard -> spiral) it fits one transport per
coupling (independent, minibatch exact OT, Schrödinger bridge = Sinkhorn with the Brownian noise and
regularisation 2 sigma^2) on ``n`` rows per side and reports, on held-out rows:

* W2 between the transported held-out source and the held-out target (POT's exact ``emd2``), for
  Euler steps 1..32 of the probability-flow ODE and, for the models with a learned score, of the SDE
  ``dX = (b + eps(t) s) dt + sqrt(2 eps(t)) dW`` (Euler–Maruyama);
* the transport cost ``E |T(x) - x|^2`` of the learned map (RK4, 20 steps) against the exact OT cost
  between the same held-out samples (POT), the smallest cost any map between them can have;
* the noise floor: W2 between the held-out target and a second target sample of the same size;
* why the transport's defaults differ from the density's: the default ``InterpolantTransport``
  against the same with ``FlowMatchingDensity``'s network (a residual network of four layers of
  128, GELU), and with its whole training set-up too (minibatches of 1,024, the ``"auto"`` step
  budget, arcsine times, the graded solver grid): W2 at the default solver and with 2 Euler
  steps, and the CPU seconds of the fit.

Reproduce (from the repository root; about seven minutes)::

    OMP_NUM_THREADS=1 python benchmarks/bench_transport.py

It writes ``benchmarks/results/transport.md`` (``--n``, ``--n-test``, ``--max-iter`` and ``--seed``
change the run; the file's command names them).
"""

from __future__ import annotations

import _common  # noqa: F401  (first: one thread, repository on the path)

# isort: split

import argparse
import datetime

import numpy as np
import ot
from sklearn.datasets import make_moons

from skflow import InterpolantTransport

from _common import load_average, machine_description, markdown_table, timed, write_result

STEPS = (1, 2, 4, 8, 16, 32)


# --- shapes ---------------------------------------------------------------------------------------


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    X, _ = make_moons(n, noise=0.05, random_state=int(rng.integers(2**31)))
    return (X - [0.5, 0.25]) * 2.0


def gaussians8(n: int, rng: np.random.Generator) -> np.ndarray:
    angles = 2 * np.pi * rng.integers(0, 8, n) / 8
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centres + 0.15 * rng.standard_normal((n, 2))


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2.0
    x2 = x2 + (np.floor(x1) % 2)
    return np.stack([x1, x2], axis=1)


def spiral(n: int, rng: np.random.Generator) -> np.ndarray:
    r = np.sqrt(rng.random(n)) * 3 * np.pi
    X = np.stack([r * np.cos(r), r * np.sin(r)], axis=1) / (1.2 * np.pi)
    return X + 0.08 * rng.standard_normal((n, 2))


PAIRS = {
    "moons -> 8 gaussians": (moons, gaussians8),
    "checkerboard -> spiral": (checkerboard, spiral),
}


# --- models ---------------------------------------------------------------------------------------

SIGMA = 0.2  # noise scale of the stochastic models, in pooled standard deviations


def models(max_iter: int, seed: int) -> dict[str, InterpolantTransport]:
    common = dict(
        hidden_layer_sizes=(128, 128), max_iter=max_iter, batch_size=256, random_state=seed
    )
    return {
        "independent (I-CFM)": InterpolantTransport(coupling="independent", **common),
        "OT (OT-CFM)": InterpolantTransport(coupling="ot", **common),
        "independent + brownian, score": InterpolantTransport(
            coupling="independent", gamma="brownian", sigma=SIGMA, eps=0.5, **common
        ),
        "Sinkhorn SB (SB-CFM), score": InterpolantTransport(
            coupling="sinkhorn", coupling_reg="sb", gamma="brownian", sigma=SIGMA, eps=0.5, **common
        ),
    }


DENSITY_NETWORK = {
    "architecture": "residual",
    "hidden_layer_sizes": (128, 128, 128, 128),
    "activation": "gelu",
}
DENSITY_TRAINING = {
    "batch_size": 1024,
    "max_iter": "auto",
    "time_distribution": "arcsine",
    "step_exponent": 1.5,
}
DEFAULTS_COMPARED = {
    "InterpolantTransport()": {},
    "with the density's network": DENSITY_NETWORK,
    "with the density's network and training": DENSITY_NETWORK | DENSITY_TRAINING,
}


def defaults_row(pair, name, params, X, y, source_test, target_test, seed) -> dict:
    """W2 and fit time of a default transport with ``params`` changed."""
    model = InterpolantTransport(random_state=seed, **params)
    _, fit_cpu, _ = timed(model.fit, X, y)
    default_solver = w2(model.transform(source_test), target_test)
    model.set_params(solver="euler", n_steps=2)
    return {
        "pair": pair,
        "model": name,
        "fit CPU s": f"{fit_cpu:.1f}",
        "steps": model.t_,
        "W2, RK4 20 steps": f"{default_solver:.3f}",
        "W2, Euler 2 steps": f"{w2(model.transform(source_test), target_test):.3f}",
    }


def w2(A: np.ndarray, B: np.ndarray) -> float:
    a, b = np.full(len(A), 1 / len(A)), np.full(len(B), 1 / len(B))
    return float(np.sqrt(ot.emd2(a, b, ot.dist(A, B), numItermax=2_000_000)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="training rows per side")
    parser.add_argument("--n-test", type=int, default=1000, help="held-out rows per side")
    parser.add_argument("--max-iter", type=int, default=150, help="epochs of every model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="transport.md")
    args = parser.parse_args(argv)

    load_start = load_average()
    step_rows, cost_rows, default_rows = [], [], []
    for pair, (draw_source, draw_target) in PAIRS.items():
        rng = np.random.default_rng(args.seed)
        X = np.vstack([draw_source(args.n, rng), draw_target(args.n, rng)])
        y = np.repeat([0, 1], args.n)
        source_test, target_test = draw_source(args.n_test, rng), draw_target(args.n_test, rng)
        floor = w2(target_test, draw_target(args.n_test, rng))
        exact_cost = w2(source_test, target_test) ** 2
        identity = w2(source_test, target_test)
        for name, model in models(args.max_iter, args.seed).items():
            _, fit_cpu, _ = timed(model.fit, X, y)
            print(f"{pair} / {name}: fitted in {fit_cpu:.1f} CPU s", flush=True)
            ode = {}
            for k in STEPS:
                model.set_params(solver="euler", n_steps=k)
                ode[k] = w2(model.transform(source_test), target_test)
            step_rows.append(
                {
                    "pair": pair,
                    "model": name,
                    "sampler": "ODE (Euler)",
                    "fit CPU s": f"{fit_cpu:.0f}",
                }
                | {f"{k}": f"{ode[k]:.3f}" for k in STEPS}
            )
            if model.eps > 0:
                sde = {}
                for k in STEPS:
                    model.set_params(sde_n_steps=k)
                    sde[k] = w2(model.transport(source_test, random_state=args.seed), target_test)
                step_rows.append(
                    {
                        "pair": pair,
                        "model": name,
                        "sampler": f"SDE eps={model.eps} (E-M)",
                        "fit CPU s": f"{fit_cpu:.0f}",
                    }
                    | {f"{k}": f"{sde[k]:.3f}" for k in STEPS}
                )
            model.set_params(solver="rk4", n_steps=20)
            moved = model.transform(source_test)
            cost = float(np.mean(np.sum((moved - source_test) ** 2, axis=1)))
            own_ot = w2(source_test, moved) ** 2
            cost_rows.append(
                {
                    "pair": pair,
                    "model": name,
                    "E|T(x)-x|^2": f"{cost:.3f}",
                    "exact OT cost": f"{exact_cost:.3f}",
                    "ratio": f"{cost / exact_cost:.3f}",
                    "OT cost source -> T(source)": f"{own_ot:.3f}",
                    "optimality gap": f"{cost / own_ot - 1:.3f}",
                    "W2(T#source, target)": f"{w2(moved, target_test):.3f}",
                    "W2 floor": f"{floor:.3f}",
                    "W2(source, target)": f"{identity:.3f}",
                }
            )
            print(cost_rows[-1], flush=True)
        for name, params in DEFAULTS_COMPARED.items():
            row = defaults_row(pair, name, params, X, y, source_test, target_test, args.seed)
            default_rows.append(row)
            print(row, flush=True)

    step_columns = ["pair", "model", "sampler", "fit CPU s", *[f"{k}" for k in STEPS]]
    cost_columns = list(cost_rows[0])
    text = f"""## Transport benchmark: InterpolantTransport between 2-D shapes

`OMP_NUM_THREADS=1 python benchmarks/bench_transport.py --n {args.n} --n-test {args.n_test} \
--max-iter {args.max_iter} --seed {args.seed}`, {datetime.date.today()}; {machine_description()}.
1-minute load average {load_start} at the start, {load_average()} at the end. Every model:
hidden_layer_sizes=(128, 128), batch_size=256, max_iter={args.max_iter}, cosine schedule; the
stochastic ones gamma="brownian", sigma={SIGMA} (pooled standard deviations), eps=0.5, which also
learns the denoiser. {args.n} training and {args.n_test} held-out rows per side, one seed.

### W2 to the held-out target against the number of solver steps

W2 (exact, POT `emd2`) between the held-out source pushed by the model and the held-out target, in
the units of the data. ODE: explicit Euler on the learned velocity. SDE: Euler–Maruyama with
`epsilon(t) = eps gamma(t) / max gamma`. Noise floor (W2 between two target samples of this size)
and the W2 of the untransported source are in the second table.

{markdown_table(step_rows, step_columns)}

### Transport cost of the learned map against the exact OT cost

`E|T(x)-x|^2` of the ODE map (RK4, 20 steps) on the held-out source rows; exact OT cost: the
optimal cost between the held-out source and target samples (POT); ratio: the first over the
second. The exact cost between two finite samples is biased upwards (it also pays for matching
one sample's noise to another's), so a map can have a ratio below 1. The optimality gap removes that
bias: it compares the map's cost with the exact OT cost between the source rows and their own images
``T(x)`` (POT), which equals the map's cost exactly when the map is the optimal one between the two
point clouds (gap 0) and is smaller otherwise.

{markdown_table(cost_rows, cost_columns)}

### The transport's defaults against the density's

`InterpolantTransport(random_state={args.seed})` with its defaults (an MLP of three layers of 128,
SiLU, minibatches of 256, 500 epochs, uniform times, equal solver steps), with
`FlowMatchingDensity`'s network ({DENSITY_NETWORK}), and with its training set-up as well
({DENSITY_TRAINING}); same rows as above, W2 to the held-out target (floor as above).

{markdown_table(default_rows, list(default_rows[0]))}
"""
    path = write_result(args.output, text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

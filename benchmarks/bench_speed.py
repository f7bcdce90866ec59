"""Is skflow's CPU code as fast as plain torch code doing the same work?

Measured, as ratios taken in one run (CPU, one torch thread, float32 training and float64
inference as skflow does), on the network of ``SETTINGS`` (``VelocityMLP`` (128, 128, 128), SiLU,
minibatches of 256, uniform training times, equal ODE steps), which a hand-written loop can
reproduce exactly:

(a) Training throughput, in optimiser steps per second, of ``FlowMatchingDensity.fit`` against a
    minimal hand-written torch loop: the same network, Adam at the same initial learning rate, the
    same minibatch size, the linear path (``x_t = (1 - t) x0 + t x1``, target ``x1 - x0``) and the
    independent coupling, on the same standardised data, for the same number of steps. skflow runs
    with ``early_stopping=False`` and a fixed ``max_iter``; its time is the whole ``fit`` call, so
    its bookkeeping (EMA of the weights, learning-rate schedule, row weights, the epoch's loss) is
    counted; the hand-written loop has none of it. Target: skflow / hand-written >= 0.9.
(b) Exact-divergence ``score_samples`` (RK4, 20 steps) at d = 32 against a naive implementation
    that computes the divergence with one ``torch.autograd.grad`` per dimension in a Python loop,
    with the same float64 network and the same RK4 steps, on 1024, 256 and 16 rows (where the naive
    loop's Python overhead weighs most). Both must give the same log-densities (the largest
    absolute difference is reported). The arithmetic floor at this machine's float64 matmul rate
    is reported next to them. Target: skflow >= 3x faster.
(c) The share of a training step (batch 256) spent pairing the minibatch with the exact OT coupling
    (``ExactOTCoupling.pair``, POT's network simplex) and with the Sinkhorn coupling, at d = 2 and
    d = 32: the time inside ``pair`` (wrapped by a timer) over the time of the whole ``fit``.

The clock is the CPU time of the process; each timing is repeated with the two contenders
alternating and the fastest repetition is kept (as ``timeit`` does).

Reproduce (from the repository root; about five minutes)::

    OMP_NUM_THREADS=1 python benchmarks/bench_speed.py

It writes ``benchmarks/results/speed.md``. ``--repeats`` changes the number of repetitions of (a),
``--likelihood-repeats`` those of (b).
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import copy
import datetime
import math
import warnings

import numpy as np
import torch

from skflow import FlowMatchingDensity
from skflow.couplings import ExactOTCoupling, SinkhornCoupling
from skflow.networks import VelocityMLP

SETTINGS = {
    "architecture": "mlp",
    "hidden_layer_sizes": (128, 128, 128),
    "activation": "silu",
    "batch_size": 256,
    "learning_rate_init": 5e-3,
    "time_distribution": "uniform",
    "n_fourier_features": 0,
    "step_exponent": 1.0,
    "early_stopping": False,
}
"""The flow that ``results/speed.md`` and ``results/gpu.md`` measure: a plain ``VelocityMLP``
trained on uniform times for a fixed number of epochs and integrated with equal steps, as the
hand-written code does; every other hyperparameter at its default."""
BATCH_SIZE = SETTINGS["batch_size"]
LEARNING_RATE = SETTINGS["learning_rate_init"]
HIDDEN = SETTINGS["hidden_layer_sizes"]
ACTIVATION = SETTINGS["activation"]


def random_gaussian_data(n_samples: int, n_features: int, seed: int = 0) -> np.ndarray:
    """Standardised rows of a Gaussian with a random covariance: the data every part trains on."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(n_features, n_features)) / math.sqrt(n_features)
    X = rng.normal(size=(n_samples, n_features)) @ (np.eye(n_features) + mixing)
    return (X - X.mean(axis=0)) / X.std(axis=0)


# --------------------------------------------------------------------------------------------------
# (a) training throughput


def train_skflow(X: np.ndarray, n_epochs: int, coupling: str = "independent"):
    """FlowMatchingDensity with ``SETTINGS`` (its learning-rate schedule at the default) for a
    fixed number of epochs."""
    return FlowMatchingDensity(
        **SETTINGS, coupling=coupling, max_iter=n_epochs, random_state=0
    ).fit(X)


def train_by_hand(X: np.ndarray, n_epochs: int, seed: int = 0) -> tuple[int, float]:
    """The minimal flow-matching loop: linear path, independent pairs, Adam at a constant step,
    no EMA, no schedule, no row weights.

    Returns the number of steps and the mean loss of the last epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = VelocityMLP(X.shape[1], HIDDEN, ACTIVATION)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    data = torch.as_tensor(X, dtype=torch.float32)
    n_steps = 0
    for _ in range(n_epochs):
        order = torch.randperm(data.shape[0], generator=generator)
        epoch_loss, n_batches = torch.zeros(()), 0
        for start in range(0, data.shape[0], BATCH_SIZE):
            x1 = data[order[start : start + BATCH_SIZE]]
            x0 = torch.randn(x1.shape, generator=generator)
            t = torch.rand(x1.shape[0], generator=generator)
            xt = (1 - t[:, None]) * x0 + t[:, None] * x1
            loss = (model(t, xt) - (x1 - x0)).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.detach()
            n_batches += 1
            n_steps += 1
    return n_steps, float(epoch_loss) / n_batches


def bench_training(n_features: int, n_epochs: int, repeats: int) -> dict:
    X = random_gaussian_data(BATCH_SIZE * 20, n_features)
    train_skflow(X, 1), train_by_hand(X, 1)  # warm-up: torch's first calls are slow
    skflow_rates, hand_rates = [], []
    for _ in range(repeats):  # alternate the two so that a slow spell of the machine hits both
        flow, seconds, _ = _common.timed(train_skflow, X, n_epochs)
        skflow_rates.append(flow.t_ / seconds)
        (hand_steps, hand_loss), seconds, _ = _common.timed(train_by_hand, X, n_epochs)
        hand_rates.append(hand_steps / seconds)
    skflow_rate, hand_rate = max(skflow_rates), max(hand_rates)
    return {
        "d": n_features,
        "steps per fit": flow.t_,
        "skflow steps/s": f"{skflow_rate:.1f}",
        "hand-written steps/s": f"{hand_rate:.1f}",
        "ratio (target >= 0.9)": f"{skflow_rate / hand_rate:.2f}",
        "last-epoch loss skflow / hand": f"{flow.loss_curve_[-1]:.3f} / {hand_loss:.3f}",
    }


# --------------------------------------------------------------------------------------------------
# (b) exact-divergence likelihood


def naive_score_samples(
    flow: FlowMatchingDensity, X: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """``flow.score_samples`` written plainly: RK4 backwards from t = 1 to t = 0 with the divergence
    from one autograd call per dimension (on ``device``)."""
    net = copy.deepcopy(flow.model_).double().eval().to(device)
    x = torch.as_tensor((X - flow.mean_) / flow.scale_, dtype=torch.float64, device=device)
    n, d = x.shape

    def augmented(t: float, state: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            y = state[:, :d].detach().requires_grad_(True)
            v = net(torch.full((n,), t, dtype=torch.float64, device=device), y)
            div = torch.zeros(n, dtype=torch.float64, device=device)
            for i in range(d):
                (grad,) = torch.autograd.grad(v[:, i].sum(), y, retain_graph=i < d - 1)
                div += grad[:, i]
        return torch.cat([v.detach(), div[:, None]], dim=1)

    state = torch.cat([x, torch.zeros(n, 1, dtype=torch.float64, device=device)], dim=1)
    n_steps = flow.n_steps
    h = -1.0 / n_steps  # from t = 1 down to t = 0
    for k in range(n_steps):
        t = 1.0 + k * h
        k1 = augmented(t, state)
        k2 = augmented(t + h / 2, state + h / 2 * k1)
        k3 = augmented(t + h / 2, state + h / 2 * k2)
        k4 = augmented(t + h, state + h * k3)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    z, delta = state[:, :d], state[:, d]
    base = -0.5 * (z**2).sum(dim=1) - 0.5 * d * math.log(2 * math.pi)
    return (base + delta).cpu().numpy() - np.log(flow.scale_).sum()


def float64_matmul_rate(width: int) -> float:
    """Best floating-point operations per second of a float64 (rows x width) @ (width x width)
    product on this machine, over a few row counts: the peak rate of a hidden layer."""
    rates = []
    b = torch.randn(width, width, dtype=torch.float64)
    for n_rows in (256, 1024, 4096):
        a = torch.randn(n_rows, width, dtype=torch.float64)
        seconds = min(_common.timed(torch.mm, a, b)[1] for _ in range(20))
        rates.append(2 * n_rows * width * width / seconds)
    return max(rates)


def matmul_bound_seconds(flow: FlowMatchingDensity, n_rows: int) -> float:
    """Time the exact likelihood needs at this machine's float64 matmul rate, whatever the code.

    Every one of the ``4 n_steps`` RK4 evaluations does a forward pass and ``d`` vector-Jacobian
    products, each about ``2 n_rows n_weights`` floating-point operations: the whole Jacobian is
    needed for its trace, so batching the ``d`` products saves Python overhead, not arithmetic.
    """
    d = flow.n_features_in_
    n_weights = sum(p.numel() for name, p in flow.model_.named_parameters() if "weight" in name)
    flops = 4 * flow.n_steps * 2 * n_rows * (d + 1) * n_weights
    return flops / float64_matmul_rate(max(flow.hidden_layer_sizes))


def bench_likelihood(n_features: int, n_rows: int, repeats: int) -> dict:
    X = random_gaussian_data(BATCH_SIZE * 4 + n_rows, n_features)
    X_train, X_eval = X[:-n_rows], X[-n_rows:]
    # a short fit: the cost of score_samples does not depend on how well the network is trained
    flow = FlowMatchingDensity(**SETTINGS, max_iter=3, random_state=0)
    flow.fit(X_train)
    assert flow.solver == "rk4" and flow.divergence == "exact"
    skflow_times, naive_times = [], []
    for _ in range(repeats):
        skflow_ll, seconds, _ = _common.timed(flow.score_samples, X_eval)
        skflow_times.append(seconds)
        naive_ll, seconds, _ = _common.timed(naive_score_samples, flow, X_eval)
        naive_times.append(seconds)
    skflow_s, naive_s = min(skflow_times), min(naive_times)
    return {
        "d": n_features,
        "rows": n_rows,
        "RK4 steps": flow.n_steps,
        "skflow s": f"{skflow_s:.2f}",
        "naive loop s": f"{naive_s:.2f}",
        "speed-up (target >= 3)": f"{naive_s / skflow_s:.1f}x",
        "matmul-bound s": f"{matmul_bound_seconds(flow, n_rows):.2f}",
        "max abs diff of log p": f"{np.max(np.abs(skflow_ll - naive_ll)):.1e}",
        "mean log p": f"{skflow_ll.mean():.3f}",
    }


# --------------------------------------------------------------------------------------------------
# (c) coupling cost


COUPLING_CLASSES = {"ot": ExactOTCoupling, "sinkhorn": SinkhornCoupling}


def bench_couplings(n_features: int, n_epochs: int) -> list[dict]:
    X = random_gaussian_data(BATCH_SIZE * 10, n_features)
    train_skflow(X, 1)  # warm-up
    flow, seconds, _ = _common.timed(train_skflow, X, n_epochs)
    independent_step = seconds / flow.t_
    rows = []
    for name, cls in COUPLING_CLASSES.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _common.time_method(cls, "pair") as pair:
                flow, seconds, _ = _common.timed(train_skflow, X, n_epochs, coupling=name)
        step = seconds / flow.t_
        rows.append(
            {
                "coupling": name,
                "d": n_features,
                "steps": flow.t_,
                "step ms (independent)": f"{1e3 * independent_step:.1f}",
                "step ms (with coupling)": f"{1e3 * step:.1f}",
                "pair ms per step": f"{1e3 * pair['seconds'] / pair['calls']:.1f}",
                "share of step in pair": f"{100 * pair['seconds'] / seconds:.0f}%",
                "warnings": len(caught),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=9, help="repetitions of each training timing (a)"
    )
    parser.add_argument(
        "--likelihood-repeats", type=int, default=3, help="repetitions of each timing in (b)"
    )
    parser.add_argument("--output", default="speed.md", help="result file (in benchmarks/results)")
    args = parser.parse_args(argv)

    sections = []
    load_at_start, code_at_start = _common.load_average(), _common.code_version()

    print("(a) training throughput ...", flush=True)
    training = [bench_training(d, n_epochs=30, repeats=args.repeats) for d in (2, 32)]
    sections.append(
        "### (a) Training throughput, FlowMatchingDensity.fit vs a hand-written loop\n\n"
        f"Same VelocityMLP {HIDDEN} ({ACTIVATION}), batch {BATCH_SIZE}, Adam from lr "
        f"{LEARNING_RATE:g} (skflow: its default `learning_rate='cosine'` "
        "schedule; by hand: constant), linear path, independent coupling, 5120 rows, 600 steps "
        f"per fit; fastest of {args.repeats} alternating runs, CPU seconds.\n\n"
        + _common.markdown_table(training, list(training[0]))
    )
    print(sections[-1] + "\n", flush=True)

    print("(b) exact-divergence score_samples ...", flush=True)
    repeats = args.likelihood_repeats
    likelihood = [bench_likelihood(32, n_rows=n, repeats=repeats) for n in (1024, 256, 16)]
    sections.append(
        "### (b) score_samples (exact divergence, RK4) vs one autograd.grad per dimension\n\n"
        f"Same float64 network, same RK4 steps; fastest of {repeats} alternating runs, "
        "CPU seconds. "
        "`matmul-bound s` is the time the arithmetic alone takes at this machine's best measured "
        "float64 matmul rate for the network's width (a forward pass plus d vector-Jacobian "
        "products per evaluation).\n\n" + _common.markdown_table(likelihood, list(likelihood[0]))
    )
    print(sections[-1] + "\n", flush=True)

    print("(c) coupling share of a training step ...", flush=True)
    couplings = [row for d in (2, 32) for row in bench_couplings(d, n_epochs=10)]
    sections.append(
        "### (c) Share of a training step spent in the minibatch coupling (batch 256)\n\n"
        "CPU time inside `Coupling.pair` over that of the whole `fit` (2560 rows, 10 epochs, "
        "no early stopping); `warnings` counts warnings raised during the fit (e.g. Sinkhorn not "
        "converging).\n\n" + _common.markdown_table(couplings, list(couplings[0]))
    )
    print(sections[-1] + "\n", flush=True)

    header = (
        "## Speed benchmark\n\n"
        f"`OMP_NUM_THREADS=1 python benchmarks/bench_speed.py`, {datetime.date.today()}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}. "
        f"1-minute load average {load_at_start} at the start, "
        f"{_common.load_average()} at the end (2 cores, shared with other jobs).\n\n"
    )
    path = _common.write_result(args.output, header + "\n\n".join(sections) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

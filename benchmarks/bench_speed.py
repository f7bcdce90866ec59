"""How fast are skflow's defaults, and how close to what the hardware allows?

Measured with torch on ``--threads`` threads (2 by default: the project's machine), in wall-clock
seconds, each against a target of the "time to quality" issue (the outlier detector's cost, as a
multiple of IsolationForest's, is measured by ``bench_outliers.py``):

(a) A default ``FlowMatchingDensity(random_state=0).fit`` on 5,000 x 16 and 50,000 x 64 rows of a
    correlated Gaussian (targets: 30 s and 120 s), with the steps it took and why it stopped.
(b) ``score_samples`` of 10,000 rows at 2, 10 and 64 features with the defaults (the exact
    divergence up to 16 features, Hutchinson's estimator with 8 probes a row above; targets: 5 s
    up to 10 features, 20 s at 64), and, for the exact divergence, the ratio to the time the
    arithmetic alone takes at this machine's float64 matmul rate (target: at most 1.5).
(c) Training throughput of ``fit`` against a hand-written torch loop doing the same work: the
    network the default fit builds (``network_spec_``: the residual (128, 128, 128, 128) GELU
    network, behind 64 Fourier features at d = 2 and 10,240 rows), minibatches of 1,024,
    arcsine training times, the linear path, Adam with the cosine schedule and the EMA of the
    weights, for the same steps (target: at least 0.95), fastest of ``--repeats`` alternating runs.
(d) The share of a training step spent pairing the minibatch (``Coupling.pair``) at the default
    minibatch of 1,024 rows, with ``coupling="ot"`` (exact OT within blocks of 64 rows) and
    ``"sinkhorn"``, at 2 and 32 features (target: under 15 %).
(e) A default ``InterpolantTransport(random_state=0).fit`` between two Gaussians of 5,000 rows
    each at 36 features (target: 30 s).
(f) A 3-fold ``GridSearchCV`` of the default ``FlowMatchingDensity`` over ``path`` in {linear,
    trig} x ``coupling`` in {independent, ot} on 10,000 x 8 rows with ``n_jobs=2`` (target: 600 s).

Reproduce on an idle machine (from the repository root; about 20 minutes, ``--parts`` runs a
subset)::

    python benchmarks/bench_speed.py

It writes ``benchmarks/results/speed.md``.
"""

from __future__ import annotations

import _common  # first: one thread for every other benchmark; this one sets its own

# isort: split

import argparse
import copy
import datetime
import math
import time
import warnings

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV
from torch.optim.swa_utils import get_ema_multi_avg_fn

from skflow import FlowMatchingDensity, InterpolantTransport
from skflow._spec import NetworkSpec
from skflow.couplings import ExactOTCoupling, SinkhornCoupling
from skflow.times import ArcsineTimes

TARGETS = {
    "fit": {16: 30.0, 64: 120.0},
    "score": {2: 5.0, 10: 5.0, 64: 20.0},
    "transport": 30.0,
    "grid search": 600.0,
}


def random_gaussian_data(n_samples: int, n_features: int, seed: int = 0) -> np.ndarray:
    """Standardised rows of a Gaussian with a random covariance."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(n_features, n_features)) / math.sqrt(n_features)
    X = rng.normal(size=(n_samples, n_features)) @ (np.eye(n_features) + mixing)
    return (X - X.mean(axis=0)) / X.std(axis=0)


def wall(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


# --------------------------------------------------------------------------------------------------
# (a) default fits


def against_target(seconds: float, target: float) -> dict:
    return {
        "s": f"{seconds:.1f}",
        "target s": f"{target:g}",
        "met": "yes" if seconds <= target else f"no ({seconds / target:.1f}x)",
    }


def bench_fit(n_rows: int, n_features: int) -> dict:
    X = random_gaussian_data(n_rows, n_features)
    flow, seconds = wall(FlowMatchingDensity(random_state=0).fit, X)
    return {
        "rows x features": f"{n_rows:,} x {n_features}",
        **against_target(seconds, TARGETS["fit"][n_features]),
        "steps": flow.t_,
        "stop": flow.stop_reason_,
    }


# --------------------------------------------------------------------------------------------------
# (b) scoring


def naive_score_samples(
    flow: FlowMatchingDensity, X: np.ndarray, device: str = "cpu"
) -> np.ndarray:
    """``flow.score_samples`` written plainly: RK4 with equal steps backwards from t = 1 to t = 0,
    the divergence from one autograd call per dimension (on ``device``)."""
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
        seconds = min(wall(torch.mm, a, b)[1] for _ in range(20))
        rates.append(2 * n_rows * width * width / seconds)
    return max(rates)


def matmul_bound_seconds(flow: FlowMatchingDensity, n_rows: int) -> float:
    """Time the exact likelihood needs at this machine's float64 matmul rate, whatever the code:
    each of the ``4 n_steps`` RK4 evaluations does a forward pass and ``d`` vector-Jacobian
    products, about ``2 n_rows n_weights`` floating-point operations each."""
    d = flow.n_features_in_
    n_weights = sum(p.numel() for name, p in flow.model_.named_parameters() if "weight" in name)
    flops = 4 * flow.n_steps * 2 * n_rows * (d + 1) * n_weights
    return flops / float64_matmul_rate(max(flow.hidden_layer_sizes))


def bench_score(n_features: int, n_rows: int = 10_000) -> dict:
    X = random_gaussian_data(2048 + n_rows, n_features)
    # a short fit: the cost of scoring does not depend on how well the network is trained
    flow = FlowMatchingDensity(max_iter=2, random_state=0).fit(X[:2048])
    (log_density, error), seconds = wall(flow.score_samples, X[2048:], return_std=True)
    exact = bool(np.all(error == 0))
    bound = matmul_bound_seconds(flow, n_rows) if exact else math.nan
    return {
        "features": n_features,
        "rows": n_rows,
        "divergence": "exact" if exact else f"Hutchinson, {flow.n_probes} probes",
        **against_target(seconds, TARGETS["score"][n_features]),
        "matmul-bound s": "" if not exact else f"{bound:.1f}",
        "ratio to bound (target <= 1.5)": "" if not exact else f"{seconds / bound:.1f}",
        "mean standard error (nats)": f"{error.mean():.3f}",
    }


# --------------------------------------------------------------------------------------------------
# (c) training throughput


BATCH = 1024
STEPS = 200


def train_skflow(X: np.ndarray) -> FlowMatchingDensity:
    """The default flow for ``STEPS`` steps on all rows (no early stopping)."""
    epochs = STEPS // (X.shape[0] // BATCH)
    flow = FlowMatchingDensity(max_iter=epochs, early_stopping=False, random_state=0)
    return flow.fit(X)


def train_by_hand(X: np.ndarray, spec: NetworkSpec) -> int:
    """The same work written plainly: the network ``spec`` describes, arcsine times, the linear
    path, Adam with a cosine schedule and the EMA of the weights."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    data = torch.as_tensor(X, dtype=torch.float32)
    model = spec.build(X.shape[1])
    ema = copy.deepcopy(model).requires_grad_(False)
    ema_parameters, parameters = list(ema.parameters()), list(model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / STEPS, 1.0)))
    )
    times = ArcsineTimes()
    steps = 0
    while steps < STEPS:
        order = torch.randperm(data.shape[0], generator=generator)
        for index in order.split(BATCH):
            x1 = data[index]
            x0 = torch.randn(x1.shape, generator=generator)
            t = times.sample(x1.shape[0], generator, x1.device)
            xt = (1 - t[:, None]) * x0 + t[:, None] * x1
            loss = (model(t, xt) - (x1 - x0)).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            steps += 1
            decay = min(0.999, (1 + steps) / (10 + steps))
            get_ema_multi_avg_fn(decay)(ema_parameters, parameters, None)
    return steps


def bench_throughput(n_features: int, repeats: int) -> dict:
    X = random_gaussian_data(BATCH * 10, n_features)
    spec = train_skflow(X).network_spec_  # also the warm-up: torch's first calls are slow
    train_by_hand(X, spec)
    skflow_rates, hand_rates = [], []
    for _ in range(repeats):  # alternate the two so that a slow spell of the machine hits both
        flow, seconds = wall(train_skflow, X)
        skflow_rates.append(flow.t_ / seconds)
        steps, seconds = wall(train_by_hand, X, spec)
        hand_rates.append(steps / seconds)
    ratio = max(skflow_rates) / max(hand_rates)
    return {
        "features": n_features,
        "steps": STEPS,
        "skflow steps/s": f"{max(skflow_rates):.1f}",
        "hand-written steps/s": f"{max(hand_rates):.1f}",
        "ratio (target >= 0.95)": f"{ratio:.2f}",
    }


# --------------------------------------------------------------------------------------------------
# (d) coupling share


def bench_coupling(name: str, cls: type, n_features: int) -> dict:
    X = random_gaussian_data(BATCH * 10, n_features)
    flow = FlowMatchingDensity(coupling=name, max_iter=10, early_stopping=False, random_state=0)
    original, spent = cls.pair, []

    def timed_pair(self, *args):
        start = time.perf_counter()
        try:
            return original(self, *args)
        finally:
            spent.append(time.perf_counter() - start)

    cls.pair = timed_pair
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, seconds = wall(flow.fit, X)
    finally:
        cls.pair = original
    return {
        "coupling": name,
        "features": n_features,
        "step ms": f"{1e3 * seconds / flow.t_:.1f}",
        "pair ms per step": f"{1e3 * sum(spent) / len(spent):.2f}",
        "share of a step (target < 15 %)": f"{100 * sum(spent) / seconds:.0f} %",
        "warnings": len(caught),
    }


# --------------------------------------------------------------------------------------------------
# (e)-(f) the other default fits


def bench_transport(n_per_side: int = 5_000, n_features: int = 36) -> dict:
    source = random_gaussian_data(n_per_side, n_features, seed=1)
    target = 0.5 * random_gaussian_data(n_per_side, n_features, seed=2) + 1.0
    X, y = np.vstack([source, target]), np.repeat([0, 1], n_per_side)
    transport, seconds = wall(InterpolantTransport(random_state=0).fit, X, y)
    return {
        "rows per side x features": f"{n_per_side:,} x {n_features}",
        **against_target(seconds, TARGETS["transport"]),
        "steps": transport.t_,
        "stop": transport.stop_reason_,
    }


def bench_grid_search(n_rows: int = 10_000, n_features: int = 8) -> dict:
    X = random_gaussian_data(n_rows, n_features)
    grid = {"path": ["linear", "trig"], "coupling": ["independent", "ot"]}
    search = GridSearchCV(FlowMatchingDensity(random_state=0), grid, cv=3, n_jobs=2)
    search, seconds = wall(search.fit, X)
    return {
        "rows x features": f"{n_rows:,} x {n_features}",
        "fits": 3 * 4 + 1,
        **against_target(seconds, TARGETS["grid search"]),
        "best": ", ".join(f"{key}={value}" for key, value in search.best_params_.items()),
    }


# --------------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of (c)")
    parser.add_argument(
        "--parts", nargs="+", choices=list("abcdef"), default=list("abcdef"), help="what to run"
    )
    parser.add_argument("--output", default="speed.md", help="result file (in benchmarks/results)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_at_start, code_at_start = _common.load_average(), _common.code_version()
    sections = []

    def section(title: str, rows: list[dict], text: str = "") -> None:
        sections.append(f"### {title}\n\n{text}{_common.markdown_table(rows, list(rows[0]))}")
        print(sections[-1] + "\n", flush=True)

    parts = {
        "a": ("(a) A default fit", lambda: [bench_fit(5_000, 16), bench_fit(50_000, 64)], ""),
        "b": (
            "(b) score_samples of 10,000 rows",
            lambda: [bench_score(d) for d in (2, 10, 64)],
            "`matmul-bound s`: the time the exact divergence's arithmetic takes at this machine's "
            "best float64 matmul rate (a forward pass and d vector-Jacobian products per "
            "evaluation). Standard error: of each row's log-density (0 when exact).\n\n",
        ),
        "c": (
            "(c) Training throughput against a hand-written loop",
            lambda: [bench_throughput(d, args.repeats) for d in (2, 32)],
            "",
        ),
        "d": (
            "(d) The minibatch coupling's share of a training step (1,024 rows)",
            lambda: [
                bench_coupling(name, cls, d)
                for name, cls in (("ot", ExactOTCoupling), ("sinkhorn", SinkhornCoupling))
                for d in (2, 32)
            ],
            "Seconds inside `Coupling.pair` over those of the whole `fit` (10 epochs of 10,240 "
            "rows, no early stopping).\n\n",
        ),
        "e": ("(e) A default InterpolantTransport fit", lambda: [bench_transport()], ""),
        "f": (
            "(f) GridSearchCV over path x coupling",
            lambda: [bench_grid_search()],
            "3-fold, 4 candidates, `n_jobs=2` (one torch thread per worker), and the refit on all "
            "rows.\n\n",
        ),
    }
    for part in args.parts:
        title, run, text = parts[part]
        section(title, run(), text)
    command = f"python benchmarks/bench_speed.py {' '.join(argv or [])}".strip()
    header = (
        "## Speed benchmark\n\n"
        f"`{command}`, {datetime.date.today()}; {_common.code_version_since(code_at_start)}; "
        f"{_common.machine_description()}; torch threads {args.threads}. 1-minute load average "
        f"{load_at_start} at the start, {_common.load_average()} at the end.\n\n"
    )
    path = _common.write_result(args.output, header + "\n\n".join(sections) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

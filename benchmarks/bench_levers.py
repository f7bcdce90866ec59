"""Lever sweep behind FlowMatchingDensity's network and minibatch defaults.

What is measured: the held-out log-likelihood of the flow alone (``bench_quality.py``'s data sets,
splits, scoring and CPU clock, through its ``run_dataset``), for settings that each change the
*former* defaults (``activation="silu"``, ``hidden_layer_sizes=(128, 128, 128)``,
``batch_size=256``, ``architecture="mlp"``; the rest as in the current defaults) in one or more
places. The settings were chosen in six rounds, each on what the ones before showed:

1. *Alone*: one lever at a time on the five sets where the flow missed a target (diamonds, the
   three non-Gaussian toys, digits): twice the step budget, a wider or deeper network, minibatches
   of 1024, the learning rate at 2e-3 or 1e-2, EMA decay 0.9999, logit-normal times, exact OT
   coupling, GELU.
2. *Combined*: GELU with the deeper network and larger minibatches, on all nine sets.
3. *Robustness*: the leading combinations with another seed (``random_state=1``: another network
   initialisation and other minibatches, on the same split), with twice the steps instead of twice
   the rows per step, and with minibatches of 2048.
4. *Network shape*, on top of the defaults that rounds 1-3 chose (GELU, 128 x 4, minibatches of
   1024): ``architecture="residual"`` (residual blocks, layer normalisation, the time embedding in
   every block) on all sets and with a second seed, and the block network with each of its three
   parts switched off in turn (a ``"block"`` entry of the changes sets
   :class:`~skflow.networks.VelocityBlockMLP`'s switches in the worker process).
5. *Learning-rate schedule*, on top of round 4's residual network: a constant learning rate
   instead of the cosine decay.
6. *Warm-up and budget*, on top of round 4's residual network: a linear learning-rate warm-up over
   the first 2 % or 10 % of the steps before the cosine decay (a ``"warmup"`` entry of the changes
   replaces the trainer's schedule in the worker process; skflow does not offer one), and, on
   diamonds, twice the 20,000-step cap of ``max_iter="auto"``.

Every task is a separate process (``spawn``) with one torch thread; ``--jobs`` run at once. Fit
seconds are the process's CPU seconds, comparable within one run only.

Reproduce (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_levers.py --jobs 16          # all 192 fits
    OMP_NUM_THREADS=1 python benchmarks/bench_levers.py --round 1 --datasets square --jobs 2
    OMP_NUM_THREADS=1 python benchmarks/bench_levers.py --round 4 --jobs 2 \
        --output quality_levers_network.md                                # round 4, 34 fits
    OMP_NUM_THREADS=1 python benchmarks/bench_levers.py --round 5 --jobs 1 \
        --output quality_levers_schedule.md                               # round 5, 5 fits
    OMP_NUM_THREADS=1 python benchmarks/bench_levers.py --round 6 --jobs 1 \
        --output quality_levers_warmup.md                                 # round 6, 11 fits
"""

from __future__ import annotations

import argparse
import datetime
import functools
import multiprocessing

import _common
from bench_quality import N_TOY, run_dataset

import torch

from skflow import _trainer, networks

FORMER = {
    "activation": "silu",
    "hidden_layer_sizes": (128, 128, 128),
    "batch_size": 256,
    "architecture": "mlp",
}
"""The defaults before the sweep, in the places the sweep changes (the plain MLP was the only
network before round 4)."""

MISSED = ("diamonds", "gaussians8", "square", "annulus", "digits")
"""Sets where the former defaults missed a target of the quality benchmark."""

ALL = (*MISSED, "correlated_gaussian", "breast_cancer", "wine", "iris")

GELU = {"activation": "gelu"}
DEEP = {"hidden_layer_sizes": (128, 128, 128, 128)}
DEFAULTS = {**GELU, **DEEP, "batch_size": 1024}
"""The network and minibatch defaults that rounds 1-3 chose (round 4 starts from them)."""
RESIDUAL = {**DEFAULTS, "architecture": "residual"}

# epochs that make twice the former "auto" step budget at the named batch size (the 90 % of the
# training rows left after early stopping's validation split, in minibatches of that size)
TWICE_THE_STEPS = {
    256: {"diamonds": 280, "digits": 1940, "gaussians8": 1964, "square": 1964, "annulus": 1964},
    512: {"diamonds": 556, "digits": 1212, "gaussians8": 3600, "square": 3600, "annulus": 3600},
}

NOT_HYPERPARAMETERS = ("block", "warmup")
"""Keys of the changes that patch skflow in the worker process instead of setting a parameter."""


def warmup_cosine(fraction: float):
    """A trainer ``_scheduler`` method: the learning rate rises linearly from
    ``learning_rate_init / w`` to ``learning_rate_init`` over the first ``w = fraction * total``
    steps, then decays to zero on the cosine of the remaining ones."""

    def scheduler(self, optimizer, batches_per_epoch):
        total = self.config.max_iter * batches_per_epoch
        warm = max(1, round(fraction * total))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return _trainer.cosine_decay(step - warm, total - warm)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    return scheduler


# (round, name, changes from FORMER, data sets); a dict-valued "max_iter" is looked up per data set
SETTINGS: list[tuple[int, str, dict, tuple[str, ...]]] = [
    (1, "former defaults", {}, ALL),
    (1, "2x steps", {"max_iter": TWICE_THE_STEPS[256]}, MISSED),
    (1, "256 x 3", {"hidden_layer_sizes": (256, 256, 256)}, MISSED),
    (1, "128 x 4", DEEP, MISSED),
    (1, "batch 1024", {"batch_size": 1024}, MISSED),
    (1, "lr 2e-3", {"learning_rate_init": 2e-3}, MISSED),
    (1, "lr 1e-2", {"learning_rate_init": 1e-2}, MISSED),
    (1, "EMA 0.9999", {"ema_decay": 0.9999}, MISSED),
    (1, "logit-normal t", {"time_distribution": "logit_normal"}, MISSED),
    (1, "OT coupling", {"coupling": "ot"}, MISSED),
    (1, "GELU", GELU, MISSED),
    (2, "GELU, 128 x 4", {**GELU, **DEEP}, ALL),
    (2, "GELU, batch 1024", {**GELU, "batch_size": 1024}, ALL),
    (2, "GELU, 128 x 4, batch 512", {**GELU, **DEEP, "batch_size": 512}, ALL),
    (2, "GELU, 128 x 4, batch 1024", {**GELU, **DEEP, "batch_size": 1024}, ALL),
    (
        2,
        "GELU, 128 x 4, batch 1024, lr 1e-2",
        {**GELU, **DEEP, "batch_size": 1024, "learning_rate_init": 1e-2},
        ALL,
    ),
    (
        3,
        "GELU, 128 x 4, batch 512, seed 1",
        {**GELU, **DEEP, "batch_size": 512, "random_state": 1},
        MISSED,
    ),
    (
        3,
        "GELU, 128 x 4, batch 1024, seed 1",
        {**GELU, **DEEP, "batch_size": 1024, "random_state": 1},
        MISSED,
    ),
    (3, "GELU, batch 1024, seed 1", {**GELU, "batch_size": 1024, "random_state": 1}, MISSED),
    (
        3,
        "GELU, 128 x 4, batch 512, 2x steps",
        {**GELU, **DEEP, "batch_size": 512, "max_iter": TWICE_THE_STEPS[512]},
        MISSED,
    ),
    (3, "GELU, batch 2048", {**GELU, "batch_size": 2048}, MISSED),
    (3, "GELU, 128 x 4, batch 2048", {**GELU, **DEEP, "batch_size": 2048}, ALL),
    (
        3,
        "GELU, 256 x 4, batch 512",
        {**GELU, "hidden_layer_sizes": (256,) * 4, "batch_size": 512},
        ("diamonds", "digits"),
    ),
    (
        3,
        "GELU, 128 x 5, batch 512",
        {**GELU, "hidden_layer_sizes": (128,) * 5, "batch_size": 512},
        ("diamonds",),
    ),
    (
        3,
        "GELU, 128 x 4, batch 512, lr 1e-2",
        {**GELU, **DEEP, "batch_size": 512, "learning_rate_init": 1e-2},
        ("diamonds",),
    ),
    (4, "defaults, seed 1", {**DEFAULTS, "random_state": 1}, MISSED),
    (4, "residual", RESIDUAL, ALL),
    (4, "residual, seed 1", {**RESIDUAL, "random_state": 1}, MISSED),
    (4, "residual without skips", {**RESIDUAL, "block": {"skip": False}}, MISSED),
    (4, "residual without layer norm", {**RESIDUAL, "block": {"layer_norm": False}}, MISSED),
    (
        4,
        "residual, time in the first layer only",
        {**RESIDUAL, "block": {"time_every_layer": False}},
        MISSED,
    ),
    (5, "residual, constant learning rate", {**RESIDUAL, "learning_rate": "constant"}, MISSED),
    (6, "residual, warm-up 2 %", {**RESIDUAL, "warmup": 0.02}, MISSED),
    (6, "residual, warm-up 10 %", {**RESIDUAL, "warmup": 0.1}, MISSED),
    (6, "residual, 2x the step cap", {**RESIDUAL, "max_iter": {"diamonds": 1112}}, ("diamonds",)),
]


def flow_params(changes: dict, dataset: str) -> dict:
    """The former defaults with ``changes`` applied, per-data-set budgets resolved (the patches of
    ``NOT_HYPERPARAMETERS`` are left out)."""
    params = {
        key: value for key, value in {**FORMER, **changes}.items() if key not in NOT_HYPERPARAMETERS
    }
    if isinstance(params.get("max_iter"), dict):
        params["max_iter"] = params["max_iter"][dataset]
    return params


def describe(changes: dict, dataset: str) -> str:
    """``changes`` as ``key=value`` pairs, per-data-set budgets resolved."""
    resolved = {
        key: changes[key] if key in NOT_HYPERPARAMETERS else flow_params(changes, dataset)[key]
        for key in changes
    }
    return ", ".join(f"{key}={value!r}" for key, value in resolved.items()) or "(none)"


def run_task(round_: int, name: str, changes: dict, dataset: str) -> dict:
    """Fit and score one flow; the row of the results table."""
    if "block" in changes:  # this process only: the "residual" architecture with switches changed
        networks.ARCHITECTURES["residual"] = functools.partial(
            networks.VelocityBlockMLP, **changes["block"]
        )
    if "warmup" in changes:  # this process only: warm-up, then the cosine decay
        _trainer.FlowMatchingTrainer._scheduler = warmup_cosine(changes["warmup"])
    (row,), _ = run_dataset(dataset, N_TOY, False, flow_params(changes, dataset), ["flow"])
    result = {
        "dataset": dataset,
        "round": round_,
        "setting": name,
        "changes from the former defaults": describe(changes, dataset),
        **{key: row[key] for key in ("test LL ± SE", "gap (KL est.) ± SE", "fit s")},
        "trained": row["selected / trained"],
    }
    print(" | ".join(map(str, result.values())), flush=True)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--round", type=int, nargs="+", choices=(1, 2, 3, 4, 5, 6), help="default: all"
    )
    parser.add_argument("--datasets", nargs="+", choices=ALL, help="default: all")
    parser.add_argument("--jobs", type=int, default=1, help="processes at once (default 1)")
    parser.add_argument("--output", default="quality_levers.md", help="result file")
    args = parser.parse_args(argv)

    tasks = [
        (round_, name, changes, dataset)
        for round_, name, changes, datasets in SETTINGS
        for dataset in datasets
        if (args.round is None or round_ in args.round)
        and (args.datasets is None or dataset in args.datasets)
    ]
    load_at_start, code_at_start = _common.load_average(), _common.code_version()
    with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        rows = pool.starmap(run_task, tasks, chunksize=1)
    rows.sort(key=lambda row: (ALL.index(row["dataset"]), row["round"]))

    command = _common.command_line(argv, script=__file__)
    text = (
        "## Lever sweep: the flow's held-out log-likelihood under changed hyperparameters\n\n"
        f"`{command}`, {datetime.date.today()}; {_common.code_version_since(code_at_start)}; "
        f"{_common.machine_description()}. 1-minute load average {load_at_start} at the start, "
        f"{_common.load_average()} at the end. Former defaults: "
        + ", ".join(f"{key}={value!r}" for key, value in FORMER.items())
        + "; every other hyperparameter at its default.\n\n"
        + _common.markdown_table(rows, list(rows[0]))
        + "\n\nTest LL, gap and fit s as in `quality.md` (gap: to the true density, toys only; fit s:"
        " CPU seconds of one process, with `--jobs` processes sharing the machine).\n"
    )
    print("\n" + text)
    print(f"written to {_common.write_result(args.output, text)}")


if __name__ == "__main__":
    main()

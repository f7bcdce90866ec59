"""What does a GPU buy? FlowMatchingDensity on CUDA against the same machine's CPU.

Measured, as ratios taken in one run (wall-clock seconds, after one warm-up fit that pays CUDA's
start-up), with the flow of ``SETTINGS`` (``VelocityMLP`` (128, 128, 128), SiLU,
uniform training times, equal ODE steps), the linear path and the independent coupling:

(a) Training throughput in optimiser steps per second at batch 256 and 4096, 2-D and 32-D data.
(b) ``score_samples`` (exact divergence, RK4, 20 steps) in rows per second at d = 2 and d = 32.
(c) On the GPU, ``score_samples`` at d = 32 against the naive one-``autograd.grad``-per-dimension
    loop of ``bench_speed.py`` on the same rows (where the loop's many small launches cost most).

Reproduce on a machine with a GPU (from the repository root)::

    python benchmarks/bench_gpu.py

It prints a table and writes it to ``benchmarks/results/gpu.md``. The CPU side uses every core torch
sees (``torch.get_num_threads()``), as a user of that machine would.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skflow import FlowMatchingDensity  # noqa: E402

from _common import markdown_table, write_result  # noqa: E402
from bench_speed import naive_score_samples, random_gaussian_data  # noqa: E402

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
    "divergence": "exact",
}
"""The flow that ``results/gpu.md`` measured: a plain ``VelocityMLP`` trained on uniform times for a
fixed number of epochs and integrated with equal steps and the exact divergence."""


def _synchronised_seconds(function, *args) -> tuple[object, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def training_rate(device: str, X: np.ndarray, batch_size: int, epochs: int) -> float:
    settings = {**SETTINGS, "batch_size": batch_size}
    flow = FlowMatchingDensity(**settings, device=device, max_iter=epochs, random_state=0)
    flow, seconds = _synchronised_seconds(flow.fit, X)
    return flow.t_ / seconds


def scoring_rate(device: str, flow: FlowMatchingDensity, X: np.ndarray) -> float:
    flow.set_params(device=device)
    _, seconds = _synchronised_seconds(flow.score_samples, X)
    return X.shape[0] / seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="gpu.md")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA device.")
    torch.set_num_threads(os.cpu_count())  # _common pins one thread for the CPU benchmarks
    training_rate("cuda", random_gaussian_data(4096, 2), 256, 2)  # warm-up: CUDA context, kernels
    rows = []
    for d in (2, 32):
        for batch_size in (256, 4096):
            X = random_gaussian_data(batch_size * 40, d)
            epochs = 5
            gpu = training_rate("cuda", X, batch_size, epochs)
            cpu = training_rate("cpu", X, batch_size, epochs)
            rows.append(
                {
                    "what": f"fit steps/s, batch {batch_size}",
                    "d": d,
                    "cuda": f"{gpu:.0f}",
                    "cpu": f"{cpu:.0f}",
                    "cuda / cpu": f"{gpu / cpu:.1f}",
                }
            )
        flow = FlowMatchingDensity(**SETTINGS, max_iter=1, random_state=0)
        flow.fit(random_gaussian_data(2048, d))
        X = random_gaussian_data(20000 if d == 2 else 4000, d, seed=1)
        gpu, cpu = scoring_rate("cuda", flow, X), scoring_rate("cpu", flow, X)
        rows.append(
            {
                "what": f"score_samples rows/s ({X.shape[0]} rows)",
                "d": d,
                "cuda": f"{gpu:.0f}",
                "cpu": f"{cpu:.0f}",
                "cuda / cpu": f"{gpu / cpu:.1f}",
            }
        )
        print(rows[-1], flush=True)
    flow = FlowMatchingDensity(**SETTINGS, max_iter=1, random_state=0, device="cuda")
    flow.fit(random_gaussian_data(2048, 32))
    X = random_gaussian_data(256, 32, seed=2)
    fast, fast_s = _synchronised_seconds(flow.score_samples, X)
    naive, naive_s = _synchronised_seconds(naive_score_samples, flow, X, "cuda")
    rows.append(
        {
            "what": "score_samples s, 256 rows: skflow (cuda) vs naive loop (cuda)",
            "d": 32,
            "cuda": f"{fast_s:.2f}",
            "cpu": f"naive {naive_s:.2f} (max diff {np.abs(fast - naive).max():.1e})",
            "cuda / cpu": f"skflow {naive_s / fast_s:.1f}x faster",
        }
    )
    text = (
        "## GPU against the same machine's CPU\n\n"
        f"`python benchmarks/bench_gpu.py` on {torch.cuda.get_device_name()}, "
        f"torch {torch.__version__}, CPU side with {torch.get_num_threads()} torch threads "
        f"({os.cpu_count()} cores visible); wall-clock seconds after a warm-up fit.\n\n"
        + markdown_table(rows, list(rows[0]))
    )
    print(text)
    write_result(args.output, text)


if __name__ == "__main__":
    main()

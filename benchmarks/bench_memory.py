"""Does inference on many rows fit in memory? Memory and time of inference against the rows.

For ``score_samples``, ``transform``, ``inverse_transform`` and ``sample`` of a small fitted
``FlowMatchingDensity`` (``MODEL``: one hidden layer of 16, RK4 with 2 steps, so that a million
rows take seconds), on 10^4, 10^5 and 10^6 rows of d = 2 (``--dims`` adds others), this script
measures

- **peak RSS increase**: the largest resident set size of the process during the call, sampled
  every millisecond from ``/proc/self/statm`` by a thread, minus the resident size just before
  the call (with the input already in memory). Torch's CPU allocations bypass ``tracemalloc``, so
  the operating system's count is the one that sees everything. Each measurement runs in a fresh
  Python process, so that memory the allocator keeps from an earlier call does not hide a peak;
- **output size**: the bytes of the returned array, which any implementation must allocate;
- **working memory** = peak increase - output size: what the method needs beyond its result. It
  is flat in the number of rows when the work is chunked. These processes run with
  ``MALLOC_MMAP_THRESHOLD_=65536``: by default glibc raises its mmap threshold to the largest
  block freed, so that the chunks' freed blocks stay in the heap and the resident size counts
  what the allocator keeps, growing with the number of chunks (at 10^6 rows of d = 2 the peak
  increase of ``score_samples`` was 140 MiB by default against 38 MiB with the fixed threshold,
  and 84 against 31 MiB at 10^5 rows);
- **NumPy working memory**: the peak of ``tracemalloc`` (which sees NumPy's allocations exactly,
  but not torch's) during the call minus the output's bytes: the temporary NumPy arrays. Torch
  works on one chunk at a time, so an array that grows with the rows would be a NumPy one;
- **CPU time per row** (one thread), which is flat when the time is linear in the rows. It is
  measured in another fresh process with the default allocator settings (the fixed mmap
  threshold makes allocation 2-3 times slower).

Run from the repository root (about 4 minutes; Linux and glibc only)::

    OMP_NUM_THREADS=1 python benchmarks/bench_memory.py

and it writes ``benchmarks/results/memory.md``. ``--rows`` and ``--dims`` change the grid.
"""

from __future__ import annotations

import _common  # noqa: F401  (first: one thread, skflow on the path)

# isort: split

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np

from _common import (
    code_version,
    code_version_since,
    load_average,
    machine_description,
    markdown_table,
    write_result,
)

METHODS = ["score_samples", "transform", "inverse_transform", "sample"]
MODEL = {
    "hidden_layer_sizes": (16,),
    "architecture": "mlp",
    "activation": "silu",
    "batch_size": 256,
    "max_iter": 5,
    "early_stopping": False,
    "time_distribution": "uniform",
    "n_fourier_features": 0,
    "n_steps": 2,
    "step_exponent": 1.0,
}
"""The fitted model whose inference ``results/memory.md`` measures (its size, not its quality,
matters here)."""
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class PeakSampler(threading.Thread):
    """Samples the resident size every millisecond until stopped; keeps the largest."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = resident_bytes()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, resident_bytes())
            time.sleep(0.001)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, resident_bytes())


def measure(method: str, n_rows: int, n_features: int) -> dict:
    """One measurement, in this process: fit the small model, make the input, time the call."""
    from skflow import FlowMatchingDensity

    rng = np.random.default_rng(0)
    flow = FlowMatchingDensity(**MODEL, random_state=0).fit(rng.normal(size=(2000, n_features)))
    X = None if method == "sample" else rng.normal(size=(n_rows, n_features))
    call = {
        "score_samples": lambda: flow.score_samples(X),
        "transform": lambda: flow.transform(X),
        "inverse_transform": lambda: flow.inverse_transform(X),
        "sample": lambda: flow.sample(n_rows, random_state=0),
    }[method]
    before = resident_bytes()
    sampler = PeakSampler()
    sampler.start()
    tracemalloc.start()
    cpu = time.process_time()
    result = call()
    cpu = time.process_time() - cpu
    numpy_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = sampler.stop()
    return {"peak": peak - before, "numpy_peak": numpy_peak, "output": result.nbytes, "cpu": cpu}


def run_child(method: str, n_rows: int, n_features: int, environment: dict) -> dict:
    """:func:`measure` in a fresh Python process with ``environment`` added to this one's."""
    child = subprocess.run(
        [sys.executable, __file__, "--one", method, str(n_rows), str(n_features)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **environment},
    )
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    parser.add_argument("--dims", type=int, nargs="+", default=[2])
    parser.add_argument("--output", default="memory.md")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # METHOD ROWS DIMS, in a child
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), int(args.one[2]))))
        return

    at_start, load_start = code_version(), load_average()
    rows = []
    for d in args.dims:
        for method in METHODS:
            first = None
            for n in args.rows:
                m = run_child(method, n, d, {"MALLOC_MMAP_THRESHOLD_": "65536"})
                m["cpu"] = run_child(method, n, d, {})["cpu"]
                per_row = m["cpu"] / n
                first = first or per_row
                row = {
                    "method": method,
                    "d": d,
                    "rows": f"{n:.0e}",
                    "peak RSS increase MiB": f"{m['peak'] / 2**20:.1f}",
                    "output MiB": f"{m['output'] / 2**20:.1f}",
                    "working MiB (peak - output)": f"{(m['peak'] - m['output']) / 2**20:.1f}",
                    "NumPy working MiB": f"{(m['numpy_peak'] - m['output']) / 2**20:.2f}",
                    "CPU s": f"{m['cpu']:.2f}",
                    "µs per row": f"{1e6 * per_row:.2f}",
                    "per row / first": f"{per_row / first:.2f}",
                }
                print(row, flush=True)
                rows.append(row)

    text = "\n\n".join(
        [
            "# Inference memory and time vs rows",
            f"`OMP_NUM_THREADS=1 python benchmarks/bench_memory.py`, {time.strftime('%Y-%m-%d')}; "
            f"{code_version_since(at_start)}; {machine_description()}. 1-minute load average "
            f"{load_start} at the start, {load_average()} at the end.",
            f"FlowMatchingDensity({', '.join(f'{k}={v!r}' for k, v in MODEL.items())}) fitted "
            "on 2000 standard normal rows; inputs are standard normal rows. Each cell is one call "
            "in a fresh process. Peak RSS increase: largest resident size during the call (sampled "
            "every ms from /proc/self/statm) minus the resident size before it, input included "
            "before, with MALLOC_MMAP_THRESHOLD_=65536 (see the script's docstring). Working = "
            "peak increase - output bytes. CPU s: process CPU time of the call "
            "(one thread), in a separate process with the default allocator. NumPy working: "
            "tracemalloc's peak during the call minus the output "
            "bytes (NumPy's temporaries; torch's allocations are not traced).",
            markdown_table(rows, list(rows[0])),
        ]
    )
    print(f"wrote {write_result(args.output, text + chr(10))}")


if __name__ == "__main__":
    main()

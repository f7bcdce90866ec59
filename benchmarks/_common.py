"""Helpers shared by the benchmark scripts: one-thread setup, timing, the machine line and markdown.

Importing this module sets ``OMP_NUM_THREADS=1`` (unless already set) before torch is imported and
pins torch to one thread, so that every benchmark runs on one core of the shared machine and numbers
from different runs are comparable. Import it before anything that imports torch. When skflow is not
installed, the repository root is put on ``sys.path`` so the scripts also run from a plain checkout.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import ast  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

# run straight from a checkout too: put the repository root on the path when skflow is not installed
if importlib.util.find_spec("skflow") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The processor's name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """One line saying where and with what the numbers were taken."""
    import sklearn

    from skflow import __version__ as skflow_version

    return (
        f"{cpu_model()}, {os.cpu_count()} cores visible, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"torch threads={torch.get_num_threads()}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
        f"skflow {skflow_version}"
    )


def code_version() -> str:
    """Which skflow was measured: the git commit of the checkout, the hash of its ``skflow/`` tree
    and whether ``skflow/`` has uncommitted changes (read-only git calls)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        tree = git("rev-parse", "--short", "HEAD:skflow")
        dirty = git("status", "--porcelain", "--", "skflow")
    except (OSError, subprocess.CalledProcessError):
        return "skflow outside a git checkout"
    return f"skflow at commit {commit} (skflow/ tree {tree}" + (
        ", with uncommitted changes)" if dirty else ")"
    )


def code_version_since(at_start: str) -> str:
    """``code_version()`` now, saying so if skflow's code is not what it was at the start of the
    run (a new commit that leaves ``skflow/`` alone does not count)."""
    now = code_version()

    def code(version: str) -> str:
        return version.split("(", 1)[-1]  # the tree and the uncommitted-changes flag

    if code(now) == code(at_start):
        return now
    return f"{at_start} at the start, {now} at the end (skflow changed during the run)"


def timed(function, *args, **kwargs):
    """Call ``function(*args, **kwargs)``; return ``(result, cpu_seconds, wall_seconds)``.

    The CPU time of the process is the benchmarks' main clock: with one torch thread it is the
    compute the call needed, and unlike the wall time it does not grow when other jobs on the
    shared machine take the core away.
    """
    cpu, wall = time.process_time(), time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.process_time() - cpu, time.perf_counter() - wall


def load_average() -> str:
    """The machine's 1-minute load average, to judge how busy it was during a run."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:  # not available on every platform
        return "n/a"


@contextmanager
def time_method(cls: type, name: str):
    """Accumulate the CPU time and the number of calls of ``cls.name`` while the block runs.

    Yields a dict with ``seconds`` and ``calls``; the method is restored on exit.
    """
    original = getattr(cls, name)
    record = {"seconds": 0.0, "calls": 0}

    def wrapper(self, *args, **kwargs):
        start = time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            record["seconds"] += time.process_time() - start
            record["calls"] += 1

    setattr(cls, name, wrapper)
    try:
        yield record
    finally:
        setattr(cls, name, original)


def plotnine_csv(name: str, columns: list[str]):
    """Columns of one of the data sets shipped with plotnine (``plotnine/data/<name>.csv``) as a
    pandas DataFrame, read from the installed package's directory without importing plotnine."""
    import pandas as pd

    (package_dir,) = importlib.util.find_spec("plotnine").submodule_search_locations
    return pd.read_csv(f"{package_dir}/data/{name}.csv", usecols=columns)


def mean_and_se(values) -> tuple[float, float]:
    """Mean of ``values`` and its standard error ``std / sqrt(n)``."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def mean_and_spread(values, digits: int = 3) -> str:
    """``"mean ± std"`` of ``values`` (over seeds; ``ddof=1``), the mean alone for one value and
    ``"—"`` for none."""
    if len(values) == 0:
        return "—"
    text = f"{np.mean(values):.{digits}f}"
    return text + (f" ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else "")


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A GitHub markdown table of ``rows`` (dicts), one column per key in ``columns``."""
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def command_line(argv: list[str] | None = None, script: str | None = None) -> str:
    """The command that reproduces this run, as the results files record it.

    The script (``script``, a path; default: the running one), from the repository root, with its
    arguments (``argv``; default: the command line's) and one thread.
    """
    name = Path(script or sys.argv[0]).name
    arguments = sys.argv[1:] if argv is None else argv
    return f"OMP_NUM_THREADS=1 python benchmarks/{name} {shlex.join(arguments)}".strip()


def param_changes(items: list[str]) -> dict:
    """``{name: value}`` of command-line ``NAME=VALUE`` items, each value a Python literal
    (number, tuple, bool, None) or else the text itself."""
    changes = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"expected NAME=VALUE, got {item!r}")
        try:
            changes[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            changes[name] = text
    return changes


def result_path(filename: str) -> Path:
    """``benchmarks/results/<filename>`` for a bare file name, else ``filename`` as a path."""
    path = Path(filename)
    if not path.is_absolute() and path.parent == Path("."):
        path = RESULTS_DIR / path
    return path


def write_result(filename: str, text: str) -> Path:
    """Write ``text`` to ``benchmarks/results/<filename>`` (or to ``filename`` if it is a path)."""
    path = result_path(filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

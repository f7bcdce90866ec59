"""The evidence behind FlowMatchingDensity's default training budget and schedule.

On 3000 training rows of two moons (noise 0.08; 1000 rows held out), it fits FlowMatchingDensity with
the defaults and with the alternatives they were chosen over, and reports the held-out mean
log-likelihood (nats per row, ± its standard error over the test rows), the epochs and steps trained
and the fit's CPU seconds (one torch thread):

- ``defaults``: 500 epochs, no early stopping, cosine schedule (the defaults this benchmark chose,
  before ``max_iter="auto"`` and held-out log-likelihood selection replaced the first two; see
  ``bench_quality.py`` for those);
- ``early stopping``: the same with early stopping on the validation flow-matching loss;
- ``constant step``: the same with ``learning_rate="constant"``;
- ``first defaults``: 200 epochs at a constant 1e-3 with a (256, 256, 256) network and early stopping,
  the package's first defaults.

GaussianMixture (10 components) and KernelDensity (bandwidth 0.05) give reference points.

Reproduce (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_defaults.py

It prints a table and writes it to ``benchmarks/results/defaults.md``.
"""

from __future__ import annotations

import _common  # noqa: I001  (first: sets one thread before torch is imported)

from sklearn.datasets import make_moons
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KernelDensity

from skflow import FlowMatchingDensity

FIXED_BUDGET = {"max_iter": 500, "early_stopping": False}

VARIANTS = {
    "defaults": FIXED_BUDGET,
    "early stopping": {**FIXED_BUDGET, "early_stopping": True, "scoring": "loss"},
    "constant step": {**FIXED_BUDGET, "learning_rate": "constant"},
    "first defaults": {
        "hidden_layer_sizes": (256, 256, 256),
        "max_iter": 200,
        "learning_rate_init": 1e-3,
        "learning_rate": "constant",
        "early_stopping": True,
        "scoring": "loss",
    },
}


def main() -> None:
    X, _ = make_moons(n_samples=4000, noise=0.08, random_state=0)
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    models = {
        f"FlowMatchingDensity, {name}": FlowMatchingDensity(random_state=0, **params)
        for name, params in VARIANTS.items()
    }
    models["GaussianMixture(10)"] = GaussianMixture(10, random_state=0)
    models["KernelDensity(bandwidth=0.05)"] = KernelDensity(bandwidth=0.05)
    rows = []
    start_load = _common.load_average()
    for name, model in models.items():
        _, seconds, _ = _common.timed(model.fit, X_train)
        mean, se = _common.mean_and_se(model.score_samples(X_test))
        rows.append(
            {
                "model": name,
                "held-out LL ± SE": f"{mean:.3f} ± {se:.3f}",
                "epochs / steps": f"{model.n_iter_} / {model.t_}" if hasattr(model, "t_") else "",
                "fit CPU s": f"{seconds:.1f}",
            }
        )
        print(rows[-1], flush=True)
    text = (
        "## Default training budget and schedule (two moons, 3000 train / 1000 test rows)\n\n"
        "`OMP_NUM_THREADS=1 python benchmarks/bench_defaults.py`; "
        f"{_common.machine_description()}. Load average {start_load} at the start, "
        f"{_common.load_average()} at the end.\n\n" + _common.markdown_table(rows, list(rows[0]))
    )
    print(text)
    _common.write_result("defaults.md", text)


if __name__ == "__main__":
    main()

"""The cases of the golden-output test: every estimator and branch, fitted with fixed seeds.

Each case builds, fits and queries an estimator with a tiny network and a few epochs (so that a
one-ulp change in a refactoring cannot grow into a visible one) and returns its outputs as a dict of
arrays. ``tests/test_golden.py`` compares them with ``tests/golden/outputs.npz``, which
``python tests/test_golden.py --regenerate`` writes; regenerate only in a commit of its own, where a
change of numbers is intended and said.

``ARCHIVES`` are estimators written with :func:`skflow.save` into ``tests/golden/archives``; the
golden test loads each and compares its outputs with those stored when it was written.
"""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import numpy as np
from sklearn.neighbors import KernelDensity

import skflow._spec
from skflow import (
    FlowMatchingDensity,
    FlowMatchingOutlierDetector,
    InterpolantTransport,
)
from skflow.outlier import DENSITY_DEFAULTS

from _shared import gaussian

TINY = dict(hidden_layer_sizes=(8, 8), max_iter=3, batch_size=32, n_steps=4)
"""A budget under which nothing is learned, but every line of training and inference runs."""

X_FIT = gaussian(80, 0)
X_TEST = gaussian(7, 1)
WEIGHTS = np.random.default_rng(5).uniform(0.0, 2.0, 80)
WEIGHTS[:5] = 0.0


def _floats(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _training(estimator) -> dict[str, np.ndarray]:
    return {
        "loss_curve": _floats(estimator.loss_curve_),
        "validation_loss_curve": _floats(estimator.validation_loss_curve_),
        "best_loss": _floats(estimator.best_loss_),
        # partial_fit keeps no best epoch
        "counts": _floats([getattr(estimator, "best_iter_", -1), estimator.n_iter_, estimator.t_]),
        "mean": estimator.mean_,
        "scale": estimator.scale_,
    }


def density_outputs(flow: FlowMatchingDensity, X_test: np.ndarray = X_TEST) -> dict:
    """What a fitted density says: its training record, densities, samples and maps."""
    latent = flow.transform(X_test)
    return {
        **_training(flow),
        "score_samples": flow.score_samples(X_test),
        "sample": flow.sample(5, random_state=0),
        "transform": latent,
        "inverse_transform": flow.inverse_transform(latent),
    }


def two_sides(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X = np.vstack([gaussian(n, seed), gaussian(n, seed + 1) @ np.diag([0.5, 2.0]) + 4.0])
    return X, np.repeat([0, 1], n)


T_FIT, Y_FIT = two_sides(60, 0)
T_TEST, Y_TEST = two_sides(6, 7)


def transport_outputs(transport: InterpolantTransport) -> dict:
    """What a fitted transport says: training record, maps both ways, densities, fields, score."""
    outputs = {
        **_training(transport),
        "transform": transport.transform(T_TEST[Y_TEST == 0]),
        "inverse_transform": transport.inverse_transform(T_TEST[Y_TEST == 1]),
        "score_samples": transport.score_samples(T_TEST),
        "log_density_half": transport.log_density(T_TEST, t=0.5),
        "velocity": transport.velocity(T_TEST, 0.3),
        "sample": transport.sample(5, random_state=0),
        "forward": transport.transport(T_TEST[Y_TEST == 0], random_state=1),
        "backward": transport.transport(T_TEST[Y_TEST == 1], direction="backward", random_state=2),
        "score": _floats(transport.score(T_TEST, Y_TEST)),
    }
    if transport.eps > 0:
        outputs["grad_log_density"] = transport.grad_log_density(T_TEST, 0.4)
    return outputs


def detector_outputs(detector, X_test: np.ndarray = X_TEST) -> dict:
    """What a fitted outlier detector says: scores, threshold, labels and the fit's records."""
    outputs = {
        "score_samples": detector.score_samples(X_test),
        "decision_function": detector.decision_function(X_test),
        "predict": _floats(detector.predict(X_test)),
        "offset": _floats(detector.offset_),
    }
    for name in ("decision_scores_", "effective_rank_"):
        if hasattr(detector, name):
            outputs[name.rstrip("_")] = _floats(getattr(detector, name))
    return outputs


# --------------------------------------------------------------------------------------------------
# the density


def _density(X=X_FIT, fit_params=None, **params) -> dict:
    flow = FlowMatchingDensity(random_state=0, **{**TINY, **params})
    return density_outputs(flow.fit(X, **(fit_params or {})))


def _auto_fourier() -> dict:
    # two candidate networks: lower the row threshold instead of fitting 10,000 rows
    with mock.patch.object(skflow._spec, "FOURIER_AUTO_MIN_ROWS", 50):
        flow = FlowMatchingDensity(random_state=0, fourier_scale=1.0, **TINY).fit(X_FIT)
    return {**density_outputs(flow), "n_fourier_features": _floats(flow.n_fourier_features_)}


def _warm_start() -> dict:
    flow = FlowMatchingDensity(random_state=0, warm_start=True, **TINY).fit(X_FIT)
    first = density_outputs(flow)
    flow.set_params(max_iter=2).fit(X_FIT + 0.5)
    return {**{f"first_{k}": v for k, v in first.items()}, **density_outputs(flow)}


def _partial_fit(after_fit: bool) -> dict:
    flow = FlowMatchingDensity(random_state=0, **TINY)
    if after_fit:
        flow.fit(X_FIT)
    for chunk in np.array_split(gaussian(90, 3) * 1.5 + 1.0, 3):
        flow.partial_fit(chunk)
    return density_outputs(flow)


def _many_features(n_features: int, n_rows: int, **params) -> dict:
    X = np.random.default_rng(4).standard_normal((n_rows, n_features)) * 2.0 + 1.0
    X_test = np.random.default_rng(6).standard_normal((5, n_features)) * 2.0 + 1.0
    flow = FlowMatchingDensity(random_state=0, **{**TINY, **params}).fit(X)
    return density_outputs(flow, X_test)


DENSITY_CASES: dict[str, Callable[[], dict]] = {
    "density/default": lambda: _density(),
    "density/path-trig": lambda: _density(path="trig"),
    "density/path-vp": lambda: _density(path="vp"),
    "density/linear-sigma": lambda: _density(sigma_min=0.1),
    "density/coupling-ot": lambda: _density(coupling="ot"),
    "density/coupling-sinkhorn": lambda: _density(coupling="sinkhorn", coupling_reg=0.5),
    "density/mlp-silu": lambda: _density(architecture="mlp", activation="silu"),
    "density/fourier": lambda: _density(n_fourier_features=4),
    "density/fourier-auto": _auto_fourier,
    "density/times-uniform": lambda: _density(time_distribution="uniform"),
    "density/times-logit-normal": lambda: _density(time_distribution="logit_normal"),
    "density/constant-rate": lambda: _density(learning_rate="constant"),
    "density/no-early-stopping": lambda: _density(early_stopping=False),
    "density/scoring-loss": lambda: _density(scoring="loss"),
    "density/hutchinson": lambda: _density(divergence="hutchinson"),
    "density/euler": lambda: _density(solver="euler", step_exponent=1.0),
    "density/midpoint": lambda: _density(solver="midpoint"),
    "density/dopri5": lambda: _density(solver="dopri5", atol=1e-5, rtol=1e-5),
    "density/max-iter-auto": lambda: _density(max_iter="auto", n_iter_no_change=2),
    "density/sample-weight": lambda: _density(fit_params={"sample_weight": WEIGHTS}),
    "density/warm-start": _warm_start,
    "density/partial-fit": lambda: _partial_fit(after_fit=False),
    "density/partial-fit-after-fit": lambda: _partial_fit(after_fit=True),
    # above 8 features the early-stopping likelihood uses Hutchinson's divergence
    "density/ten-features": lambda: _many_features(10, 60),
    # more than 1,000 validation rows: the early-stopping likelihood takes a subsample
    "density/many-validation-rows": lambda: _many_features(
        2, 2100, validation_fraction=0.5, max_iter=1, batch_size=1024, hidden_layer_sizes=(4,)
    ),
}


# --------------------------------------------------------------------------------------------------
# the transport


def _transport(fit_params=None, **params) -> dict:
    transport = InterpolantTransport(random_state=0, **{**TINY, "sde_n_steps": 5, **params})
    return transport_outputs(transport.fit(T_FIT, Y_FIT, **(fit_params or {})))


def _transport_warm_start() -> dict:
    transport = InterpolantTransport(random_state=0, warm_start=True, **TINY).fit(T_FIT, Y_FIT)
    transport.set_params(max_iter=2).fit(T_FIT, Y_FIT)
    return transport_outputs(transport)


TRANSPORT_CASES: dict[str, Callable[[], dict]] = {
    "transport/default": lambda: _transport(),
    "transport/independent": lambda: _transport(coupling="independent"),
    "transport/sinkhorn": lambda: _transport(coupling="sinkhorn", coupling_reg=0.3),
    "transport/trig-bsquared": lambda: _transport(path="trig", gamma="bsquared", sigma=0.3),
    "transport/encdec-eps": lambda: _transport(
        path="encdec", gamma="sinesquared", sigma=1.0, eps=0.5
    ),
    "transport/schroedinger-bridge": lambda: _transport(
        gamma="brownian", sigma=0.5, coupling="sinkhorn", coupling_reg="sb", eps=0.3
    ),
    "transport/residual-arcsine": lambda: _transport(
        architecture="residual", time_distribution="arcsine", step_exponent=1.5
    ),
    "transport/early-stopping": lambda: _transport(early_stopping=True),
    "transport/kde-source": lambda: _transport(source_density=KernelDensity(bandwidth=0.5)),
    "transport/sample-weight": lambda: _transport(
        fit_params={"sample_weight": np.linspace(0.5, 1.5, T_FIT.shape[0])}
    ),
    "transport/warm-start": _transport_warm_start,
}


# --------------------------------------------------------------------------------------------------
# the outlier detector


def detector_density(**params) -> FlowMatchingDensity:
    """The density of the detector's default (``estimator=None``) with a tiny budget."""
    return FlowMatchingDensity(**{**DENSITY_DEFAULTS, **TINY, **params})


def _detector(X=X_FIT, fit_params=None, **params) -> dict:
    detector = FlowMatchingOutlierDetector(detector_density(), random_state=0, **params)
    detector.fit(X, **(fit_params or {}))
    return {**detector_outputs(detector), **_training(detector.estimator_)}


DETECTOR_CASES: dict[str, Callable[[], dict]] = {
    "detector/default": lambda: _detector(),
    "detector/contamination": lambda: _detector(contamination=0.1),
    "detector/log-density": lambda: _detector(method="log_density"),
    "detector/sample-weight": lambda: _detector(fit_params={"sample_weight": WEIGHTS}),
    "detector/too-few-rows": lambda: _detector(X=X_FIT[:3]),
}

CASES: dict[str, Callable[[], dict]] = {**DENSITY_CASES, **TRANSPORT_CASES, **DETECTOR_CASES}


# --------------------------------------------------------------------------------------------------
# archives written by skflow.save


def _archived_density():
    return FlowMatchingDensity(random_state=0, n_fourier_features=4, **TINY).fit(X_FIT)


def _archived_stream():
    flow = FlowMatchingDensity(random_state=0, **TINY)
    for chunk in np.array_split(gaussian(90, 3) * 1.5 + 1.0, 3):
        flow.partial_fit(chunk)
    return flow


ARCHIVES: dict[str, tuple[Callable, Callable[[object], dict]]] = {
    "density": (_archived_density, density_outputs),
    "density-stream": (_archived_stream, density_outputs),
    "transport": (
        lambda: InterpolantTransport(
            gamma="brownian", sigma=0.5, eps=0.5, random_state=0, **{**TINY, "sde_n_steps": 5}
        ).fit(T_FIT, Y_FIT),
        transport_outputs,
    ),
    "detector": (
        lambda: FlowMatchingOutlierDetector(detector_density(), random_state=0).fit(X_FIT),
        detector_outputs,
    ),
}
"""Estimators kept as ``skflow.save`` archives, with what to compare after loading them."""

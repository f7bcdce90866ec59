"""Reading archives of format version 1 (skflow 0.1.0.dev0 before the network specification and
the training outcome became fitted data): their manifest is rewritten into version 2 before it is
decoded, so that :func:`skflow.load` has one decoder.

Version 1 called the density's ``sigma_min`` ``sigma``, had neither ``max_time`` nor
``n_probes``, kept the Fourier features a fit chose as ``n_fourier_features_`` (the rest of the
network came from the hyperparameters), whether a KeyboardInterrupt cut the fit short as
``_interrupted``, and the state of ``partial_fit`` in four attributes. Version 2 keeps
``network_spec_``, ``stop_reason_`` and one ``_stream`` record. A version-1 outlier detector is
not upgraded: its scores are not those this skflow's detector computes, so loading it is an error
that asks for a new fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ._archive_v2 import map_estimators

__all__ = ["upgrade_v1"]

_FLOWS = {"skflow.FlowMatchingDensity", "skflow.InterpolantTransport"}
_DETECTOR = "skflow.FlowMatchingOutlierDetector"


def upgrade_v1(manifest: dict, read_array: Callable[[int], np.ndarray]) -> dict:
    """The version-2 manifest of a version-1 one (a new dict; ``manifest`` is left as it is)."""
    estimator = map_estimators(manifest["estimator"], partial(_upgrade, read_array=read_array))
    return {**manifest, "format_version": 2, "estimator": estimator}


def _pairs(encoded: Any) -> dict:
    """An encoded dict with string keys as a Python dict of encoded values."""
    if not (isinstance(encoded, dict) and isinstance(encoded.get("dict"), list)):
        raise ValueError("Malformed version-1 archive: expected a dict.")
    return {key: value for key, value in encoded["dict"]}


def _upgrade(entry: dict, read_array) -> dict:
    if entry.get("class") == _DETECTOR:
        raise ValueError(
            "The archive holds a FlowMatchingOutlierDetector of format version 1, whose "
            "scores this skflow does not compute: fit the detector again."
        )
    attributes = entry.get("attributes")
    moments = attributes.get("_moments") if isinstance(attributes, dict) else None
    if isinstance(moments, dict) and set(moments) == {"moments"}:
        fields = _pairs(moments["moments"])
        entry["attributes"] = {
            **attributes,
            "_moments": {"dataclass": {"class": "WeightedMoments", "fields": fields}},
        }
    if entry.get("class") == "skflow.FlowMatchingDensity":
        entry["params"] = _renamed(entry["params"], {"sigma": "sigma_min"})
    if entry.get("class") in _FLOWS:  # no time budget, the default probes
        added = [["max_time", None], ["n_probes", 8]]
        entry["params"] = {"dict": [*entry["params"]["dict"], *added]}
        entry["attributes"] = _upgrade_flow(entry, read_array)
    return entry


def _renamed(params: dict, names: dict[str, str]) -> dict:
    """Encoded hyperparameters with the keys of ``names`` renamed."""
    return {"dict": [[names.get(k, k), v] for k, v in _pairs(params).items()]}


def _upgrade_flow(entry: dict, read_array) -> dict:
    """The attributes of a fitted (or streamed) flow estimator in version 2."""
    params = _pairs(entry.get("params"))
    attributes = dict(entry.get("attributes") or {})
    if "model_" not in attributes:  # unfitted
        return attributes
    network = (
        attributes["model_"].get("network", {}) if isinstance(attributes["model_"], dict) else {}
    )
    sizes = params["hidden_layer_sizes"]
    if isinstance(sizes, dict) and "array" in sizes:
        sizes = read_array(sizes["array"]).tolist()
    elif isinstance(sizes, dict) and "tuple" in sizes:
        sizes = sizes["tuple"]
    sizes = [int(s) for s in np.atleast_1d(sizes)]
    attributes["network_spec_"] = {
        "dataclass": {
            "class": "NetworkSpec",
            "fields": {
                "architecture": params["architecture"],
                "hidden_layer_sizes": {"tuple": sizes},
                "activation": params["activation"],
                "n_fourier_features": attributes.pop("n_fourier_features_", 0),
                "fourier_scale": params.get("fourier_scale", 10.0),
                "denoiser": network.get("class") == "VelocityDenoiserMLP",
            },
        }
    }
    interrupted = attributes.pop("_interrupted", False)
    attributes["stop_reason_"] = "interrupted" if interrupted else _stop_reason(params, attributes)
    if "_online_model" in attributes:
        attributes["_stream"] = {
            "dataclass": {
                "class": "Stream",
                "fields": {
                    "network": attributes.pop("_online_model"),
                    "optimizer_state": attributes.pop("_optimizer_state"),
                    "reference": attributes.pop("_reference"),
                    "calls": attributes.pop("_partial_fit_calls"),
                },
            }
        }
    return attributes


def _stop_reason(params: dict, attributes: dict) -> str:
    """``"early_stopping"`` where the validation curve ends with ``n_iter_no_change`` checks
    without improvement (the rule that stopped the fit), else ``"max_iter"``."""
    curve = attributes.get("validation_loss_curve_") or []
    if not params.get("early_stopping") or not curve:
        return "max_iter"
    best, without = math.inf, 0
    for monitored in curve:
        without = 0 if monitored < best - params["tol"] else without + 1
        best = min(best, monitored)
    return "early_stopping" if without >= params["n_iter_no_change"] else "max_iter"

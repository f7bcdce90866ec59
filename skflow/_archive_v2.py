"""Reading archives of format version 2 (skflow before column kinds): their manifest is
rewritten into version 3 before it is decoded.

Version 2 had no ``categorical_features``, ``integer_features`` or ``bounds``: every column of a
:class:`~skflow.FlowMatchingDensity` or an :class:`~skflow.InterpolantTransport` was continuous
and unbounded. Version 3 keeps them, with the fitted layout of the columns as ``columns_``; an
upgraded flow gets the plain layout of the columns it was fitted on (a DataFrame's, if it had
column names).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["add_plain_layout", "map_estimators", "upgrade_v2"]

_FLOWS = {"skflow.FlowMatchingDensity", "skflow.InterpolantTransport"}
_ADDED = [["categorical_features", "from_dtype"], ["integer_features", "from_dtype"]]


def upgrade_v2(manifest: dict) -> dict:
    """The version-3 manifest of a version-2 one (a new dict; ``manifest`` is left as it is)."""
    estimator = map_estimators(manifest["estimator"], _upgrade_flow)
    return {**manifest, "format_version": 3, "estimator": estimator}


def map_estimators(value: Any, upgrade: Callable[[dict], dict]) -> Any:
    """A copy of the encoded ``value`` in which ``upgrade`` has rewritten the entry (class,
    params and attributes) of every estimator, nested ones first."""
    if isinstance(value, list):
        return [map_estimators(v, upgrade) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"estimator"} and isinstance(value["estimator"], dict):
        entry = {k: map_estimators(v, upgrade) for k, v in value["estimator"].items()}
        return {"estimator": upgrade(entry)}
    return {k: map_estimators(v, upgrade) for k, v in value.items()}


def _upgrade_flow(entry: dict) -> dict:
    return add_plain_layout(entry) if entry.get("class") in _FLOWS else entry


def add_plain_layout(entry: dict) -> dict:
    """An estimator's entry with the column-kind hyperparameters at their defaults and, if it is
    fitted, the plain layout of its columns as ``columns_``."""
    entry = {**entry, "params": {"dict": [*entry["params"]["dict"], *_ADDED, ["bounds", None]]}}
    attributes = entry.get("attributes")
    if isinstance(attributes, dict) and "n_features_in_" in attributes:
        entry["attributes"] = {**attributes, "columns_": _plain_layout(attributes)}
    return entry


def _plain_layout(attributes: dict) -> dict:
    """The encoded layout of continuous, unbounded float64 columns, named as the fit saw them."""
    names = attributes.get("feature_names_in_")
    frame = isinstance(names, dict) and "strings" in names
    if frame:
        names = names["strings"]
    else:
        names = [str(j) for j in range(int(attributes["n_features_in_"]))]
    columns = [
        {
            "dataclass": {
                "class": "Column",
                "fields": {
                    "name": name,
                    "kind": "continuous",
                    "dtype": "float64",
                    "categories": {"tuple": []},
                    "ordered": False,
                    "low": float("-inf"),
                    "high": float("inf"),
                    "margin": 0.0,
                    "minimum": float("-inf"),
                    "maximum": float("inf"),
                },
            }
        }
        for name in names
    ]
    return {
        "dataclass": {
            "class": "TableLayout",
            "fields": {"columns": {"tuple": columns}, "frame": frame},
        }
    }

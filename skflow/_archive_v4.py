"""Reading archives of format version 4 (skflow before missing cells in the density and the
detector): their manifest is rewritten into version 5 before it is decoded.

Version 4 had no ``allow_missing``: a :class:`~skflow.FlowMatchingDensity` or a
:class:`~skflow.FlowMatchingOutlierDetector` took complete rows only, which is
``allow_missing=False``.
"""

from __future__ import annotations

from ._archive_v2 import map_estimators

__all__ = ["upgrade_v4"]

_TAKE_MISSING = {"skflow.FlowMatchingDensity", "skflow.FlowMatchingOutlierDetector"}


def upgrade_v4(manifest: dict) -> dict:
    """The version-5 manifest of a version-4 one (a new dict; ``manifest`` is left as it is)."""
    estimator = map_estimators(manifest["estimator"], _add_allow_missing)
    return {**manifest, "format_version": 5, "estimator": estimator}


def _add_allow_missing(entry: dict) -> dict:
    if entry.get("class") not in _TAKE_MISSING:
        return entry
    return {**entry, "params": {"dict": [*entry["params"]["dict"], ["allow_missing", False]]}}

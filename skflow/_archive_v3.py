"""Reading archives of format version 3 (skflow before the outlier detector's second fit): their
manifest is rewritten into version 4 before it is decoded.

Version 3 had no ``support_fraction``: a :class:`~skflow.FlowMatchingOutlierDetector` was fitted
once, on every training row, which is ``support_fraction=1``.
"""

from __future__ import annotations

from ._archive_v2 import map_estimators

__all__ = ["upgrade_v3"]

_DETECTOR = "skflow.FlowMatchingOutlierDetector"


def upgrade_v3(manifest: dict) -> dict:
    """The version-4 manifest of a version-3 one (a new dict; ``manifest`` is left as it is)."""
    estimator = map_estimators(manifest["estimator"], _upgrade_detector)
    return {**manifest, "format_version": 4, "estimator": estimator}


def _upgrade_detector(entry: dict) -> dict:
    if entry.get("class") != _DETECTOR:
        return entry
    return {**entry, "params": {"dict": [*entry["params"]["dict"], ["support_fraction", 1.0]]}}

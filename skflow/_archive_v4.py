"""Reading archives of format version 4 (skflow before missing cells in the density, the
classifier and the detector, and before column kinds in the imputer): their manifest is rewritten
into version 5 before it is decoded.

Version 4 had no ``allow_missing``: a :class:`~skflow.FlowMatchingDensity`, a
:class:`~skflow.FlowMatchingClassifier` or a :class:`~skflow.FlowMatchingOutlierDetector` took
complete rows only, which is ``allow_missing=False``. Its :class:`~skflow.FlowMatchingImputer` had
no ``categorical_features``, ``integer_features`` or ``bounds``: every column was continuous and
unbounded, the plain layout that an upgraded imputer gets as ``columns_``.
"""

from __future__ import annotations

from ._archive_v2 import add_plain_layout, map_estimators

__all__ = ["upgrade_v4"]

_TAKE_MISSING = {
    "skflow.FlowMatchingClassifier",
    "skflow.FlowMatchingDensity",
    "skflow.FlowMatchingOutlierDetector",
}
_IMPUTER = "skflow.FlowMatchingImputer"


def upgrade_v4(manifest: dict) -> dict:
    """The version-5 manifest of a version-4 one (a new dict; ``manifest`` is left as it is)."""
    estimator = map_estimators(manifest["estimator"], _upgrade)
    return {**manifest, "format_version": 5, "estimator": estimator}


def _upgrade(entry: dict) -> dict:
    if entry.get("class") == _IMPUTER:
        return add_plain_layout(entry)
    if entry.get("class") not in _TAKE_MISSING:
        return entry
    return {**entry, "params": {"dict": [*entry["params"]["dict"], ["allow_missing", False]]}}

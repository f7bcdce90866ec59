"""Reading archives of format version 3 (skflow before the outlier detector's second fit): their
manifest is rewritten into version 4 before it is decoded.

Version 3 had no ``support_fraction``: a :class:`~skflow.FlowMatchingOutlierDetector` was fitted
once, on every training row, which is ``support_fraction=1``; its ``support_`` is every row that
counted, those with a score in ``decision_scores_``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ._archive_v2 import map_estimators

__all__ = ["upgrade_v3"]

_DETECTOR = "skflow.FlowMatchingOutlierDetector"


def upgrade_v3(
    manifest: dict,
    read_array: Callable[[int], np.ndarray],
    add_array: Callable[[np.ndarray], int],
) -> dict:
    """The version-4 manifest of a version-3 one (a new dict; ``manifest`` is left as it is).
    ``read_array`` reads an array of the archive; ``add_array`` stores a derived one and returns
    the reference to it."""
    upgrade = partial(_upgrade_detector, read_array=read_array, add_array=add_array)
    estimator = map_estimators(manifest["estimator"], upgrade)
    return {**manifest, "format_version": 4, "estimator": estimator}


def _upgrade_detector(entry: dict, read_array, add_array) -> dict:
    if entry.get("class") != _DETECTOR:
        return entry
    entry = {**entry, "params": {"dict": [*entry["params"]["dict"], ["support_fraction", 1.0]]}}
    attributes = entry.get("attributes")
    if isinstance(attributes, dict) and "decision_scores_" in attributes:
        counted = ~np.isnan(read_array(attributes["decision_scores_"]["array"]))
        entry["attributes"] = {**attributes, "support_": {"array": add_array(counted)}}
    return entry

"""Golden outputs: every estimator and branch gives the numbers stored in ``tests/golden``.

A refactoring must leave them unchanged (to ``rtol=1e-6``: the fits are tiny and short, so a
reordering of floating-point operations cannot grow past that). The cases live in
``tests/_golden_cases.py``. After an intended change of numbers, rewrite the stored outputs in a
commit of its own with

    OMP_NUM_THREADS=1 python tests/test_golden.py --regenerate

which writes the archives of ``ARCHIVES`` that do not exist yet with the current
:func:`skflow.save`; the others stay as they were written (the first ones by format version 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import skflow

HERE = Path(__file__).parent
OUTPUTS = HERE / "golden" / "outputs.npz"
ARCHIVE_DIR = HERE / "golden" / "archives"
RTOL = 1e-6
ATOL = 1e-10  # for entries that are zero up to rounding

sys.path.insert(0, str(HERE))
from _golden_cases import ARCHIVES, CASES  # noqa: E402


def _stored() -> dict[str, np.ndarray]:
    with np.load(OUTPUTS) as stored:
        return dict(stored)


def _flatten(prefix: str, outputs: dict) -> dict[str, np.ndarray]:
    return {f"{prefix}:{name}": np.asarray(value) for name, value in outputs.items()}


def _check(prefix: str, outputs: dict, stored: dict[str, np.ndarray]) -> None:
    expected = {k: v for k, v in stored.items() if k.startswith(f"{prefix}:")}
    actual = _flatten(prefix, outputs)
    assert sorted(actual) == sorted(expected), "the case's outputs are not the stored ones"
    for key, value in actual.items():
        np.testing.assert_allclose(value, expected[key], rtol=RTOL, atol=ATOL, err_msg=key)


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    return _stored()


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_are_the_stored_ones(case, stored):
    _check(case, CASES[case](), stored)


@pytest.mark.parametrize("name", sorted(ARCHIVES))
def test_archives_load_and_give_the_stored_outputs(name, stored):
    _, outputs = ARCHIVES[name]
    _check(f"archive/{name}", outputs(skflow.load(ARCHIVE_DIR / f"{name}.skflow")), stored)


def regenerate() -> None:
    """Fit every case and archive anew and store their outputs."""
    import torch

    torch.set_num_threads(1)
    outputs: dict[str, np.ndarray] = {}
    for case, run in CASES.items():
        outputs.update(_flatten(case, run()))
    ARCHIVE_DIR.mkdir(parents=True, exist_ok=True)
    for name, (build, query) in ARCHIVES.items():
        path = ARCHIVE_DIR / f"{name}.skflow"
        if not path.exists():  # an archive, once written, stays: it tests reading old formats
            skflow.save(build(), path)
        outputs.update(_flatten(f"archive/{name}", query(skflow.load(path))))
    np.savez_compressed(OUTPUTS, **outputs)
    print(f"Wrote {len(outputs)} outputs of {len(CASES)} cases and {len(ARCHIVES)} archives.")


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit(__doc__)
    regenerate()

"""The data sets of the tabular anomaly-detection benchmark, built the ODDS / ADBench way.

Each set is a labelled classification table turned into an outlier problem: some classes are the
inliers, (a sample of) other classes the labelled outliers (``y = 1``). Nothing is committed: the
tables are read at run time from

* scikit-learn's bundled sets (``load_wine``, ``load_breast_cancer``, ``load_digits``);
* the R package mlbench's data files (``data/*.rda``), from the Debian package ``r-cran-mlbench``;
* the R package kernlab's data files (``spam.rda``, ``musk.rda``), from ``r-cran-kernlab``.

The ``.deb`` files are fetched with ``apt-get download`` (or taken from the folder named by
``SKFLOW_DEB_DIR``), their ``.rda`` files unpacked into the cache folder (``SKFLOW_DATA``, default
``~/.cache/skflow-benchmarks``) and read with the PyPI package ``pyreadr``. Each built set is
stored there as an ``.npz`` file, so later loads neither download nor rebuild.

Rules common to every set: factors with numeric levels become those numbers, other factors their
integer codes (binary ones 0/1); rows with a missing value are dropped unless the set says
otherwise; constant columns are dropped; every sub-sample is drawn with ``default_rng(0)``
(outliers first, then inliers), so the sets are the same on every machine. ``kind`` is
"high-dimensional" when there are 50 features or more, else "discrete" when the median feature
takes at most 16 distinct values, else "continuous". Each set's own rule is its entry in ``SPECS``
and is spelt out, with the class names and counts, in its ``source``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

CACHE_VERSION = 1  # bump when a set's construction changes: old .npz files are then ignored
DEB = {"mlbench": "r-cran-mlbench", "kernlab": "r-cran-kernlab"}  # R package -> Debian package


@dataclass
class Dataset:
    """Rows ``X`` (float64, no NaN) and labels ``y`` (1 = outlier, 0 = inlier)."""

    name: str
    X: np.ndarray
    y: np.ndarray
    kind: str  # "continuous", "discrete" or "high-dimensional"
    source: str  # where it comes from and how it was made


def cache_dir() -> Path:
    return Path(os.environ.get("SKFLOW_DATA", "~/.cache/skflow-benchmarks")).expanduser()


# --------------------------------------------------------------------------------------------------
# raw tables


def _data_tar(deb: Path) -> tarfile.TarFile:
    """The file tree of a .deb: through dpkg-deb where there is one, else read from its ar archive
    (8-byte magic, then members each behind a 60-byte header)."""
    if shutil.which("dpkg-deb"):
        run = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True
        )
        return tarfile.open(fileobj=io.BytesIO(run.stdout))
    data, pos = deb.read_bytes(), 8
    while pos < len(data):
        size = int(data[pos + 48 : pos + 58])
        if data[pos : pos + 8] == b"data.tar":
            return tarfile.open(fileobj=io.BytesIO(data[pos + 60 : pos + 60 + size]))
        pos += 60 + size + size % 2
    raise RuntimeError(f"{deb} holds no data.tar member")


def _deb_file(package: str, folder: Path) -> Path:
    """The R package's .deb: from SKFLOW_DEB_DIR, else downloaded into ``folder`` by apt-get."""
    deb_name = DEB[package]
    pattern = f"{deb_name}_*.deb"
    debs = sorted(Path(os.environ.get("SKFLOW_DEB_DIR", folder)).glob(pattern))
    if not debs and shutil.which("apt-get"):
        run = subprocess.run(["apt-get", "download", deb_name], cwd=folder, capture_output=True)
        debs = sorted(folder.glob(pattern))
        if not debs:
            raise RuntimeError(f"`apt-get download {deb_name}` failed:\n{run.stderr.decode()}")
    if not debs:
        raise RuntimeError(
            f"the {package} data sets need the Debian package {deb_name}: download it "
            f"(`apt-get download {deb_name}` on Debian/Ubuntu, or from packages.debian.org) and "
            f"set SKFLOW_DEB_DIR to its folder, or unpack it (`dpkg -x {pattern} DIR`) and copy "
            f"DIR/usr/lib/R/site-library/{package}/data/*.rda into {cache_dir()}/rda/{package}/"
        )
    return debs[-1]


def _fetch_rda_files(package: str, target: Path) -> None:
    """Put the R package's ``data/*.rda`` files into ``target``, from its Debian package."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # same file system as target
        deb, staged = _deb_file(package, Path(tmp)), Path(tmp, "rda")
        staged.mkdir()
        with _data_tar(deb) as tar:
            for member in tar:
                path = Path(member.name)
                if member.isfile() and path.parent.match(f"site-library/{package}/data"):
                    (staged / path.name).write_bytes(tar.extractfile(member).read())
        if not any(staged.glob("*.rda")):
            raise RuntimeError(f"{deb} holds no {package}/data/*.rda files")
        try:  # the whole folder at once: no half-filled cache, whichever parallel run is first
            staged.rename(target)
        except OSError:
            if not target.is_dir():
                raise


def _rda(package: str, name: str, label: str) -> tuple[pd.DataFrame, pd.Series, str]:
    """Features, class labels and the origin of the R data set ``name`` of ``package``."""
    import pyreadr  # only the R data sets need it

    folder = cache_dir() / "rda" / package
    if not folder.exists():
        _fetch_rda_files(package, folder)
    frame = pyreadr.read_r(folder / f"{name}.rda")[name]
    return frame.drop(columns=label), frame[label], f"{package} {name} (Debian {DEB[package]})"


def _sklearn(name: str) -> tuple[pd.DataFrame, pd.Series, str]:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    labels = pd.Series(np.asarray(bunch.target_names)[bunch.target]).astype(str)
    return pd.DataFrame(bunch.data), labels, f"scikit-learn load_{name}()"


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Factors with numeric levels -> those numbers, other factors -> integer codes; NaN kept."""
    columns = {}
    for column, values in frame.items():
        if isinstance(values.dtype, pd.CategoricalDtype):
            levels = pd.to_numeric(values.cat.categories.astype(str), errors="coerce")
            if levels.notna().all():
                values = values.cat.rename_categories(levels)
            else:
                values = values.cat.codes.where(values.notna())
        columns[column] = pd.to_numeric(values.astype(float))
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------------------------------
# one spec per set


@dataclass(frozen=True)
class Spec:
    """How a set is made from a classification table.

    ``inliers`` None means every class that is neither an outlier class nor in ``drop``;
    ``n_outliers`` is a count, a float share of the final set, or None for all the outlier rows;
    ``n_inliers`` a count of inliers to draw, or None for all; ``na`` the value given to missing
    entries, or None to drop the rows that have any.
    """

    read: Callable[[], tuple[pd.DataFrame, pd.Series, str]]
    outliers: tuple[str, ...]
    inliers: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    n_outliers: int | float | None = None
    n_inliers: int | None = None
    na: float | None = None
    columns_out: tuple[str, ...] = ()
    note: str = ""


def _letters(first: str, last: str) -> tuple[str, ...]:
    return tuple(chr(c) for c in range(ord(first), ord(last) + 1))


_MLBENCH = partial(_rda, "mlbench")
_SATELLITE = partial(_MLBENCH, "Satellite", "classes")
_SAT_IN = ("red soil", "grey soil", "very damp grey soil")

SPECS: dict[str, Spec] = {  # small to large
    "sonar": Spec(partial(_MLBENCH, "Sonar", "Class"), ("M",), n_outliers=0.10),
    "wine": Spec(partial(_sklearn, "wine"), ("class_0",), n_outliers=10, note="as ODDS wine"),
    "glass": Spec(partial(_MLBENCH, "Glass", "Type"), ("6",), note="type 6 tableware, as ODDS"),
    "vote": Spec(
        partial(_MLBENCH, "HouseVotes84", "Class"),
        ("republican",),
        n_outliers=0.10,
        na=0.5,
        note="votes n=0, y=1, missing vote=0.5 (rows kept)",
    ),
    "musk": Spec(
        partial(_rda, "kernlab", "musk", "Class"),
        ("1",),
        n_outliers=0.10,
        note="musk version 1; class 1 = musk",
    ),
    "ionosphere": Spec(partial(_MLBENCH, "Ionosphere", "Class"), ("bad",), note="as ODDS"),
    "wbc": Spec(
        partial(_sklearn, "breast_cancer"), ("malignant",), n_outliers=21, note="as ODDS wbc"
    ),
    "vehicle": Spec(partial(_MLBENCH, "Vehicle", "Class"), ("van",), n_outliers=0.05),
    "breastw": Spec(
        partial(_MLBENCH, "BreastCancer", "Class"),
        ("malignant",),
        columns_out=("Id",),
        note="Id dropped, as ODDS breastw",
    ),
    "pima": Spec(partial(_MLBENCH, "PimaIndiansDiabetes", "diabetes"), ("pos",), note="as ODDS"),
    "vowels": Spec(
        partial(_MLBENCH, "Vowel", "Class"),
        ("hid",),
        n_outliers=0.05,
        columns_out=("V1",),
        note="the first vowel class as outliers; speaker column V1 dropped",
    ),
    "letter": Spec(
        partial(_MLBENCH, "LetterRecognition", "lettr"),
        _letters("N", "Z"),
        inliers=_letters("A", "M"),
        n_outliers=100,
        n_inliers=1500,
        note="ODDS letter's sizes, without its column doubling",
    ),
    "digits": Spec(partial(_sklearn, "digits"), ("0",), n_outliers=0.03, note="as ODDS optdigits"),
    "dna": Spec(
        partial(_MLBENCH, "DNA", "Class"),
        ("ei",),
        inliers=("n",),
        drop=("ie",),
        n_outliers=0.05,
        note="n = neither splice junction, ei = exon/intron boundary",
    ),
    "spambase": Spec(partial(_rda, "kernlab", "spam", "type"), ("spam",), n_outliers=0.10),
    "satimage-2": Spec(
        _SATELLITE, ("cotton crop",), n_outliers=71, note="as ODDS satimage-2 (its class 2)"
    ),
    "satellite": Spec(
        _SATELLITE,
        ("cotton crop", "damp grey soil", "vegetation stubble"),
        inliers=_SAT_IN,
        note="the three smallest classes as outliers, as ODDS satellite",
    ),
    "shuttle": Spec(
        partial(_MLBENCH, "Shuttle", "Class"),
        ("Fpv.Close", "Fpv.Open", "Bypass", "Bpv.Close", "Bpv.Open"),
        inliers=("Rad.Flow",),
        drop=("High",),
        note="classes 1 / 2,3,5,6,7 / 4, as ODDS shuttle",
    ),
}


def _kind(X: np.ndarray) -> str:
    if X.shape[1] >= 50:
        return "high-dimensional"
    distinct = [len(np.unique(column)) for column in X.T]
    return "discrete" if np.median(distinct) <= 16 else "continuous"


def _classes(names) -> str:
    if len(names) > 6:
        return f"the {len(names)} classes '{names[0]}'..'{names[-1]}'"
    return ("classes " if len(names) > 1 else "class ") + ", ".join(f"'{name}'" for name in names)


def build(name: str) -> Dataset:
    """Make the set ``name`` from its raw table (no cache)."""
    spec = SPECS[name]
    features, labels, origin = spec.read()
    features = _numeric(features.drop(columns=list(spec.columns_out)))
    labels = labels.astype(str).to_numpy()
    notes = [spec.note] if spec.note else []
    missing = features.isna().any(axis=1).to_numpy()
    if spec.na is not None:
        features = features.fillna(spec.na)
    elif missing.any():
        notes.append(f"{missing.sum()} rows with missing values dropped")
        features, labels = features[~missing], labels[~missing]
    values = features.to_numpy(dtype=np.float64)
    inlier_classes = spec.inliers or sorted(set(labels) - set(spec.outliers) - set(spec.drop))
    in_classes = _classes(inlier_classes)
    if spec.inliers is None and len(inlier_classes) > 6:
        in_classes = f"the other {len(inlier_classes)} classes"
    if spec.drop:
        notes.append(f"{_classes(spec.drop)} dropped")

    rng = np.random.default_rng(0)
    inliers = values[np.isin(labels, inlier_classes)]
    outliers = values[np.isin(labels, spec.outliers)]
    n_in, n_out = spec.n_inliers or len(inliers), spec.n_outliers or len(outliers)
    if isinstance(n_out, float):
        n_out = round(n_out * n_in / (1 - n_out))
    out_text, in_text = f"{n_out}", f"{n_in}"
    if n_out < len(outliers):
        out_text += f" drawn of {len(outliers)}"
        outliers = outliers[rng.choice(len(outliers), n_out, replace=False)]
    if n_in < len(inliers):
        in_text += f" drawn of {len(inliers)}"
        inliers = inliers[rng.choice(len(inliers), n_in, replace=False)]

    X = np.vstack([inliers, outliers])
    constant = np.ptp(X, axis=0) == 0
    if constant.any():
        notes.append(f"{constant.sum()} constant column(s) dropped")
        X = X[:, ~constant]
    y = np.r_[np.zeros(len(inliers), dtype=int), np.ones(len(outliers), dtype=int)]
    made = f"{origin}: {in_classes} inliers ({in_text}), "
    made += f"{_classes(spec.outliers)} outliers ({out_text})"
    source = "; ".join([made, *notes])
    return Dataset(name, X, y, _kind(X), source)


def load(name: str) -> Dataset:
    """The set ``name``: built once, then read back from ``<cache>/sets-v*/<name>.npz``."""
    if name not in SPECS:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(SPECS)}")
    path = cache_dir() / f"sets-v{CACHE_VERSION}" / f"{name}.npz"
    if path.exists():
        with np.load(path) as stored:
            return Dataset(
                name, stored["X"], stored["y"], str(stored["kind"]), str(stored["source"])
            )
    dataset = build(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, X=dataset.X, y=dataset.y, kind=dataset.kind, source=dataset.source)
    os.replace(tmp.name, path)  # atomic: parallel runs never read a half-written file
    return dataset


DATASETS: dict[str, Callable[[], Dataset]] = {name: partial(load, name) for name in SPECS}


if __name__ == "__main__":
    print(f"cache: {cache_dir()}")
    total = time.perf_counter()
    for name, loader in DATASETS.items():
        start = time.perf_counter()
        data = loader()
        seconds = time.perf_counter() - start
        print(
            f"{name:<11} {data.X.shape[0]:>6} x {data.X.shape[1]:<3} {100 * data.y.mean():5.1f} % "
            f"{data.kind:<16} {seconds:6.2f} s  {data.source}"
        )
    print(f"all sets: {time.perf_counter() - total:.1f} s")

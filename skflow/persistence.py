"""Saving and loading fitted estimators without pickle, so that a shared model cannot run code.

:func:`pickle` and :func:`joblib.load` rebuild objects by calling whatever the file names: loading
a model from an untrusted source can run arbitrary code. :func:`save` writes a zip archive that
holds only data,

- ``skflow.json``: the format and its version, the versions that wrote it, and the estimator as
  JSON: its class (one of an allow-list), ``get_params()`` and every fitted attribute (numbers,
  strings, containers, and records such as the network specification, field by field), with
  arrays and tensors replaced by references to
- ``arrays/<i>.npy``: NumPy's ``.npy`` files of numbers, booleans or fixed-width strings, one per
  array, tensor and network weight,

and :func:`load` reads it back with :func:`json.loads` and :func:`numpy.load` with
``allow_pickle=False``: no pickle, no ``torch.load``, no import of a name read from the file. The
estimator is rebuilt from its allow-listed class and validated hyperparameters, and its networks
from its fitted ``network_spec_``, into which the saved weights are loaded (``strict``: every
weight, each of the right shape). Everything is loaded on the CPU, wherever
the model was trained.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.base import BaseEstimator
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

from ._archive_v1 import upgrade_v1
from ._archive_v2 import upgrade_v2
from ._archive_v3 import upgrade_v3
from ._archive_v4 import upgrade_v4
from ._columns import Column, TableLayout
from ._data import WeightedMoments
from ._spec import NetworkSpec
from ._stream import Stream
from .classifier import FlowMatchingClassifier
from .density import FlowMatchingDensity
from .impute import FlowMatchingImputer
from .networks import RestandardisedVelocity
from .outlier import FlowMatchingOutlierDetector
from .transport import InterpolantTransport

__all__ = ["load", "save"]

FORMAT = "skflow-estimator"
FORMAT_VERSION = 5
"""Version 2 stores the network specification (``network_spec_``) and the training outcome
(``stop_reason_``) as fitted data, version 3 the column kinds (``columns_``), version 4 the
outlier detector's ``support_fraction`` and ``support_``, version 5 ``allow_missing`` of the
density, the classifier and the detector; archives of versions 1 to 4 are upgraded on loading."""
MANIFEST = "skflow.json"

PUBLIC_ESTIMATORS = (
    FlowMatchingClassifier,
    FlowMatchingDensity,
    FlowMatchingImputer,
    FlowMatchingOutlierDetector,
    InterpolantTransport,
)
"""The estimators that :func:`save` writes and :func:`load` returns."""

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    f"{cls.__module__.split('.')[0]}.{cls.__name__}": cls
    # and the source densities that InterpolantTransport can carry and that hold plain arrays
    for cls in (*PUBLIC_ESTIMATORS, GaussianMixture, BayesianGaussianMixture)
}
"""The classes that :func:`load` may build, by the name the archive gives them."""

_WRAPPERS = {"RestandardisedVelocity": RestandardisedVelocity}

_DATACLASSES = {
    cls.__name__: cls for cls in (NetworkSpec, Stream, WeightedMoments, TableLayout, Column)
}
"""The plain-data records of a fitted estimator that the format stores, field by field."""


def save(estimator: BaseEstimator, path: str | os.PathLike) -> None:
    """Write a fitted or unfitted skflow estimator to a pickle-free archive.

    Parameters
    ----------
    estimator : estimator of a class in ``PUBLIC_ESTIMATORS``
        A :class:`~skflow.FlowMatchingDensity`, :class:`~skflow.FlowMatchingClassifier`,
        :class:`~skflow.FlowMatchingImputer`, :class:`~skflow.FlowMatchingOutlierDetector` or
        :class:`~skflow.InterpolantTransport`. An
        :class:`~skflow.InterpolantTransport` is saved with its source density when that is a
        :class:`~sklearn.mixture.GaussianMixture` (the default), a
        :class:`~sklearn.mixture.BayesianGaussianMixture` or a skflow density.
    path : str or path-like
        Where to write the zip archive (overwritten if it exists).

    Raises
    ------
    TypeError
        If ``estimator``, or an object it holds, is not of a class the format can rebuild.

    See Also
    --------
    load : Read the archive back.

    Examples
    --------
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from tempfile import TemporaryDirectory
    >>> from skflow import FlowMatchingDensity, load, save
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> flow = FlowMatchingDensity(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X)
    >>> with TemporaryDirectory() as folder:
    ...     save(flow, Path(folder) / "flow.skflow")
    ...     loaded = load(Path(folder) / "flow.skflow")
    >>> bool((loaded.score_samples(X[:5]) == flow.score_samples(X[:5])).all())
    True
    """
    if type(estimator) not in PUBLIC_ESTIMATORS:
        raise TypeError(
            f"estimator must be one of {[cls.__name__ for cls in PUBLIC_ESTIMATORS]}, got "
            f"{type(estimator).__name__}."
        )
    arrays: list[np.ndarray] = []
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "written_by": {
            "skflow": _skflow_version(),
            "scikit-learn": sklearn.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "estimator": _encode(estimator, arrays),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
        for i, array in enumerate(arrays):
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(f"arrays/{i}.npy", buffer.getvalue())


def load(path: str | os.PathLike) -> BaseEstimator:
    """Read an estimator written by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
        The archive.

    Returns
    -------
    estimator : estimator of a class in ``PUBLIC_ESTIMATORS``
        The estimator, with its networks on the CPU; its outputs are those of the saved one, bit
        for bit.

    Raises
    ------
    ValueError
        If the file is not such an archive, is of a later format version, names a class outside
        the allow-list, or holds anything that does not fit the estimator (an unknown attribute
        name, a weight of the wrong shape, a pickled array).

    See Also
    --------
    save : Write the archive.

    Examples
    --------
    See :func:`save`.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ValueError(f"path={str(path)!r} is not an skflow archive (not a zip).") from error
    with archive:
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except KeyError as error:
            raise ValueError(f"path={str(path)!r} is not an skflow archive.") from error
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError(f"path={str(path)!r} is not an skflow archive.")

        derived: list[np.ndarray] = []  # arrays an upgrade computes, referred to as -1, -2, ...

        def add_array(array: np.ndarray) -> int:
            derived.append(array)
            return -len(derived)

        def read_array(i: Any) -> np.ndarray:
            if not isinstance(i, int) or isinstance(i, bool) or i < -len(derived):
                raise ValueError(f"Bad array reference {i!r}.")
            if i < 0:
                return derived[-i - 1]
            try:
                return np.load(io.BytesIO(archive.read(f"arrays/{i}.npy")), allow_pickle=False)
            except KeyError as error:
                raise ValueError(f"The archive lacks arrays/{i}.npy.") from error

        upgrades = {
            1: lambda m: upgrade_v1(m, read_array),
            2: upgrade_v2,
            3: lambda m: upgrade_v3(m, read_array, add_array),
            4: upgrade_v4,
        }
        while (version := manifest.get("format_version")) in upgrades:
            try:
                manifest = upgrades[version](manifest)
            except (KeyError, TypeError, AttributeError) as error:
                raise ValueError(
                    f"path={str(path)!r} is a malformed version-{version} archive ({error!r})."
                ) from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"path={str(path)!r} has format version {manifest.get('format_version')!r}; this "
                f"skflow reads versions 1 to {FORMAT_VERSION}."
            )
        try:
            estimator = _decode(manifest["estimator"], read_array)
        except ValueError as error:
            written_by = manifest.get("written_by")
            writer = written_by.get("skflow") if isinstance(written_by, dict) else None
            if writer == _skflow_version():
                raise
            # the likeliest cause: the estimator's hyperparameters or attributes changed since
            raise ValueError(
                f"{error} The archive was written by skflow {writer!r}, this is skflow "
                f"{_skflow_version()!r}: load it with the version that wrote it, or fit again."
            ) from error
    if type(estimator) not in PUBLIC_ESTIMATORS:
        raise ValueError(
            f"path={str(path)!r} holds a {type(estimator).__name__}, not an skflow estimator."
        )
    return estimator


# --------------------------------------------------------------------------------------------------
# encoding: every value becomes JSON; arrays go to the list ``arrays`` and are referred to by index


def _skflow_version() -> str:
    from . import __version__

    return __version__


def _class_key(estimator: Any) -> str | None:
    for key, cls in ESTIMATORS.items():
        if type(estimator) is cls:
            return key
    return None


def _encode(value: Any, arrays: list[np.ndarray]) -> Any:
    """JSON for ``value``; containers and special objects are tagged by a one-key dict."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, np.bool_, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, arrays) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, torch.Tensor):
        arrays.append(value.detach().cpu().numpy())
        return {"tensor": len(arrays) - 1}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            if not all(isinstance(v, str) for v in value.flat):
                raise TypeError("Only object arrays of strings can be saved (e.g. feature names).")
            return {"strings": value.tolist()}
        arrays.append(value)
        return {"array": len(arrays) - 1}
    if isinstance(value, np.random.RandomState):
        return {"random_state": _encode(value.get_state(), arrays)}
    if dataclasses.is_dataclass(value) and type(value).__name__ in _DATACLASSES:
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {
            "dataclass": {
                "class": type(value).__name__,
                "fields": {k: _encode(v, arrays) for k, v in fields.items()},
            }
        }
    if isinstance(value, torch.nn.Module):
        # the architecture is rebuilt from the owner's hyperparameters: only the wrappers around
        # the network, its class (as a check) and the weights of the whole are stored
        state = _encode(dict(value.state_dict()), arrays)
        wrappers = []
        while type(value).__name__ in _WRAPPERS:
            wrappers.append(type(value).__name__)
            value = value.network
        return {"network": {"wrappers": wrappers, "class": type(value).__name__, "state": state}}
    key = _class_key(value)
    if key is not None:
        params = value.get_params(deep=False)
        attributes = {k: v for k, v in vars(value).items() if k not in params}
        return {
            "estimator": {
                "class": key,
                "params": _encode(params, arrays),
                "attributes": {k: _encode(v, arrays) for k, v in attributes.items()},
            }
        }
    raise TypeError(
        f"An object of type {type(value).__name__} cannot be saved without pickle; use joblib "
        "for this estimator (and only load such files from trusted sources)."
    )


# --------------------------------------------------------------------------------------------------
# decoding


def _decode(value: Any, read_array, owner: BaseEstimator | None = None) -> Any:
    """The object that :func:`_encode` turned into ``value``; ``owner`` is the estimator whose
    attribute it is (its ``network_spec_`` rebuilds networks)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v, read_array, owner) for v in value]
    if not (isinstance(value, dict) and len(value) == 1):
        raise ValueError(f"Unexpected entry in the archive: {str(value)[:80]!r}.")
    ((tag, body),) = value.items()
    if tag == "tuple":
        return tuple(_decode(v, read_array) for v in _list(body))
    if tag == "dict":
        return {_decode(k, read_array): _decode(v, read_array) for k, v in _pairs(body)}
    if tag == "array":
        return read_array(body)
    if tag == "tensor":
        return torch.from_numpy(read_array(body))
    if tag == "strings":
        return np.array(_list(body), dtype=object)
    if tag == "random_state":
        state = np.random.RandomState()
        state.set_state(_decode(body, read_array))
        return state
    if tag == "dataclass":
        return _decode_dataclass(body, read_array, owner)
    if tag == "network":
        return _decode_network(body, read_array, owner)
    if tag == "estimator":
        return _decode_estimator(body, read_array)
    raise ValueError(f"Unknown entry {tag!r} in the archive.")


def _list(body: Any) -> list:
    if not isinstance(body, list):
        raise ValueError(f"Expected a list in the archive, got {str(body)[:80]!r}.")
    return body


def _pairs(body: Any) -> list:
    if not all(isinstance(pair, list) and len(pair) == 2 for pair in _list(body)):
        raise ValueError("Expected key-value pairs in the archive.")
    return body


def _decode_estimator(body: Any, read_array) -> BaseEstimator:
    if not isinstance(body, dict) or set(body) != {"class", "params", "attributes"}:
        raise ValueError("Malformed estimator entry in the archive.")
    name = body["class"]
    if name not in ESTIMATORS:
        raise ValueError(
            f"The archive names the class {name!r}, which is not one that skflow.load builds; "
            f"allowed: {sorted(ESTIMATORS)}."
        )
    cls = ESTIMATORS[name]
    params = _decode(body["params"], read_array)
    if not isinstance(params, dict):
        raise ValueError("Malformed hyperparameters in the archive.")
    expected = set(cls().get_params(deep=False))
    if set(params) != expected:
        raise ValueError(
            f"The archive's hyperparameters do not match those of {name}: it lacks "
            f"{sorted(expected - set(params))} and has unknown {sorted(set(params) - expected)}."
        )
    estimator = cls(**params)
    estimator._validate_params()
    attributes = body["attributes"]
    if not isinstance(attributes, dict):
        raise ValueError("Malformed attributes in the archive.")
    for attribute in attributes:
        if not attribute.isidentifier() or hasattr(cls, attribute) or attribute.startswith("__"):
            raise ValueError(f"The archive sets {attribute!r}, which no fitted {name} has.")
    # networks last: they are rebuilt from network_spec_ and the width of mean_
    for attribute, encoded in sorted(attributes.items(), key=lambda item: _holds_network(item[1])):
        setattr(estimator, attribute, _decode(encoded, read_array, owner=estimator))
    return estimator


def _holds_network(encoded: Any) -> bool:
    if isinstance(encoded, dict):
        return "network" in encoded or any(_holds_network(v) for v in encoded.values())
    if isinstance(encoded, list):
        return any(_holds_network(v) for v in encoded)
    return False


def _decode_dataclass(body: Any, read_array, owner: BaseEstimator | None) -> Any:
    if not isinstance(body, dict) or body.get("class") not in _DATACLASSES:
        raise ValueError(f"Unknown record in the archive: {str(body)[:80]!r}.")
    cls = _DATACLASSES[body["class"]]
    fields = body.get("fields")
    names = {f.name for f in dataclasses.fields(cls)}
    # a field added since with a default (e.g. NetworkSpec.n_classes) is absent from older archives
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    if not isinstance(fields, dict) or not required <= set(fields) <= names:
        raise ValueError(f"Malformed {cls.__name__} record in the archive.")
    return cls(**{k: _decode(v, read_array, owner) for k, v in fields.items()})


def _decode_network(body: Any, read_array, owner: BaseEstimator | None) -> torch.nn.Module:
    spec = getattr(owner, "network_spec_", None)
    if not isinstance(spec, NetworkSpec) or not hasattr(owner, "mean_"):
        raise ValueError("A network in the archive is not an attribute of a fitted estimator.")
    if not isinstance(body, dict):
        raise ValueError("Malformed network entry in the archive.")
    n_features = len(owner.mean_)  # the flow's coordinates
    with torch.random.fork_rng(devices=[]):  # the weights are loaded: leave the global RNG be
        network = spec.build(n_features)
    if body.get("class") != type(network).__name__:
        raise ValueError(
            f"The archive's network is a {body.get('class')!r}; {type(owner).__name__} with these "
            f"hyperparameters builds a {type(network).__name__}."
        )
    for wrapper in reversed(_list(body.get("wrappers"))):
        if wrapper not in _WRAPPERS:
            raise ValueError(f"Unknown network wrapper {wrapper!r} in the archive.")
        network = _WRAPPERS[wrapper](network, n_features)
    state = _decode(body.get("state"), read_array)
    try:
        network.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"The archive's network weights do not fit the network: {error}") from None
    return network.eval().requires_grad_(False)

"""Round trips of every public estimator through pickle, joblib and the pickle-free skflow.save /
skflow.load, and the safety of skflow.load against tampered files."""

import io
import json
import pathlib
import pickle
import zipfile

import joblib
import numpy as np
import pytest
import torch
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity
from sklearn.utils import get_tags

import skflow
from skflow import (
    FlowMatchingDensity,
    FlowMatchingImputer,
    FlowMatchingOutlierDetector,
    InterpolantTransport,
)

from _shared import FAST, gaussian, with_holes


def two_sides(n, seed):
    X = np.vstack([gaussian(n, seed), gaussian(n, seed + 1) + 4.0])
    return X, np.repeat(["source", "target"], n)


def streamed():
    flow = FlowMatchingDensity(random_state=np.random.RandomState(0), **FAST)
    for chunk in np.array_split(gaussian(300, 0), 3):
        flow.partial_fit(chunk + chunk.mean())  # moving statistics: the wrapper is saved too
    return flow


ESTIMATORS = {
    "density": lambda: FlowMatchingDensity(random_state=0, **FAST).fit(gaussian(200, 0)),
    "density-residual": lambda: FlowMatchingDensity(
        architecture="residual", random_state=0, **FAST
    ).fit(gaussian(200, 0)),
    "density-fourier": lambda: FlowMatchingDensity(
        n_fourier_features=8, random_state=0, **FAST
    ).fit(gaussian(200, 0)),
    "density-streamed": streamed,
    "density-missing": lambda: FlowMatchingDensity(allow_missing=True, random_state=0, **FAST).fit(
        with_holes(gaussian(200, 0), 0.3, 0)
    ),
    "outlier": lambda: FlowMatchingOutlierDetector(FlowMatchingDensity(**FAST), random_state=0).fit(
        gaussian(200, 0)
    ),
    "transport": lambda: InterpolantTransport(
        gamma="brownian", eps=0.5, sde_n_steps=5, random_state=0, **FAST
    ).fit(*two_sides(100, 0)),
    "transport-residual": lambda: InterpolantTransport(
        architecture="residual", gamma="brownian", eps=0.5, sde_n_steps=5, random_state=0, **FAST
    ).fit(*two_sides(100, 0)),
    "transport-flow-source": lambda: InterpolantTransport(
        source_density=FlowMatchingDensity(**FAST), random_state=0, **FAST
    ).fit(*two_sides(100, 0)),
    "imputer": lambda: FlowMatchingImputer(add_indicator=True, random_state=0, **FAST).fit(
        with_holes(gaussian(200, 0), 0.3, 0)
    ),
}


def outputs(estimator):
    X = gaussian(20, 9)
    holes = with_holes(X, 0.3, 9)
    if hasattr(estimator, "sample_imputations"):
        return {
            "transform": estimator.transform(holes),
            "sample_imputations": estimator.sample_imputations(holes, 3),
        }
    result = {"score_samples": estimator.score_samples(X)}
    if get_tags(estimator).input_tags.allow_nan:
        result["score_samples_with_holes"] = estimator.score_samples(holes)
    if hasattr(estimator, "transform"):  # a flow of its own
        result.update(
            transform=estimator.transform(X),
            inverse_transform=estimator.inverse_transform(X),
            sample=estimator.sample(5, random_state=0),
        )
    if hasattr(estimator, "offset_"):
        result.update(offset=estimator.offset_, predict=estimator.predict(X * 3))
    return result


def flows(estimator):
    """The fitted flows of an estimator: itself, or a detector's estimator_."""
    return [getattr(estimator, "estimator_", estimator)]


def round_trip(estimator, how, folder):
    if how == "pickle":
        return pickle.loads(pickle.dumps(estimator))
    if how == "joblib":
        buffer = io.BytesIO()
        joblib.dump(estimator, buffer)
        buffer.seek(0)
        return joblib.load(buffer)
    skflow.save(estimator, folder / "model.skflow")
    return skflow.load(folder / "model.skflow")


@pytest.fixture(scope="module", params=list(ESTIMATORS))
def fitted(request):
    return ESTIMATORS[request.param]()


@pytest.mark.parametrize("how", ["pickle", "joblib", "skflow"])
def test_round_trip_gives_identical_outputs(fitted, how, tmp_path):
    loaded = round_trip(fitted, how, tmp_path)
    assert type(loaded) is type(fitted)
    assert loaded.get_params().keys() == fitted.get_params().keys()
    expected = outputs(fitted)
    for name, value in outputs(loaded).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    assert all(p.device.type == "cpu" for flow in flows(loaded) for p in flow.model_.parameters())


def test_a_loaded_stream_continues_exactly(tmp_path):
    flow = streamed()
    skflow.save(flow, tmp_path / "model.skflow")
    loaded = skflow.load(tmp_path / "model.skflow")
    more = gaussian(100, 5)
    flow.partial_fit(more)
    loaded.partial_fit(more)  # Adam's moments, the EMA, the statistics and the RNG came back
    np.testing.assert_array_equal(loaded.score_samples(more), flow.score_samples(more))


def test_unfitted_estimator_round_trips(tmp_path):
    estimator = InterpolantTransport(source_density=GaussianMixture(3), hidden_layer_sizes=(7, 5))
    skflow.save(estimator, tmp_path / "model.skflow")
    loaded = skflow.load(tmp_path / "model.skflow")
    assert repr(loaded) == repr(estimator)


def tamper(path, edit):
    """Rewrite the manifest of the archive at ``path`` with ``edit(manifest)``."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["skflow.json"])
    edit(manifest)
    members["skflow.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def set_param(manifest, name, value):
    params = manifest["estimator"]["estimator"]["params"]["dict"]
    params[[key for key, _ in params].index(name)][1] = value


def set_network(manifest, name, value):
    spec = manifest["estimator"]["estimator"]["attributes"]["network_spec_"]
    spec["dataclass"]["fields"][name] = value


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.skflow"
    skflow.save(FlowMatchingDensity(random_state=0, **FAST).fit(gaussian(100, 0)), path)
    return path


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m["estimator"]["estimator"].update(dict(a=1, b=2)), "Malformed"),
        (lambda m: m["estimator"]["estimator"].update({"class": "os.system"}), "'os.system'"),
        (lambda m: m.update({"format_version": 99}), "version 99"),
        (lambda m: set_network(m, "hidden_layer_sizes", {"array": -1}), "array reference -1"),
        (lambda m: m["estimator"]["estimator"]["attributes"].update({"fit": 1}), "'fit'"),
        (lambda m: set_param(m, "activation", "spline"), "activation"),
        (lambda m: set_network(m, "hidden_layer_sizes", {"tuple": [17]}), "do not fit"),
    ],
    ids=[
        "extra",
        "unknown class",
        "later format",
        "derived array",
        "method name",
        "bad param",
        "wrong shape",
    ],
)
def test_tampered_archives_are_refused(saved, edit, match):
    tamper(saved, edit)
    with pytest.raises(ValueError, match=match):
        skflow.load(saved)


def drop_param(manifest, name, entry=None):
    params = (entry or manifest["estimator"]["estimator"])["params"]["dict"]
    params.pop([key for key, _ in params].index(name))


def as_version_4(manifest):
    """Edit a manifest of this version into one that version 4 wrote: no ``allow_missing``
    (density, classifier, detector), no column kinds in an imputer."""
    entry = manifest["estimator"]["estimator"]
    if entry["class"] == "skflow.FlowMatchingImputer":
        for name in ("categorical_features", "integer_features", "bounds"):
            drop_param(manifest, name)
        del entry["attributes"]["columns_"]
    else:
        drop_param(manifest, "allow_missing")
        nested = dict(entry["params"]["dict"]).get("estimator")
        if isinstance(nested, dict):
            drop_param(manifest, "allow_missing", nested["estimator"])
    manifest["format_version"] = 4


def test_an_archive_from_another_version_names_what_changed(saved):
    # as an archive written before step_exponent existed, by another skflow, would be
    def older(manifest):
        drop_param(manifest, "step_exponent")
        manifest["written_by"]["skflow"] = "0.0.1"

    tamper(saved, older)
    message = r"lacks \['step_exponent'\] and has unknown \[\]\. .* written by skflow '0\.0\.1'"
    with pytest.raises(ValueError, match=message):
        skflow.load(saved)


def test_a_mismatch_from_this_version_is_not_blamed_on_the_version(saved):
    tamper(saved, lambda manifest: set_param(manifest, "step_exponent", 0.5))
    with pytest.raises(ValueError, match="step_exponent") as caught:
        skflow.load(saved)
    assert "written by" not in str(caught.value)


def test_not_an_archive_is_refused(tmp_path):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(FlowMatchingDensity()))
    with pytest.raises(ValueError, match="not an skflow archive"):
        skflow.load(tmp_path / "model.pkl")


class Payload:
    """Unpickling this creates the file ``target``: a stand-in for arbitrary code."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.target),)


def test_loading_never_unpickles(saved, tmp_path, monkeypatch):
    # the payload is live: unpickling it does run code
    pickle.loads(pickle.dumps(Payload(tmp_path / "proof")))
    assert (tmp_path / "proof").exists()

    # an archive whose weights are replaced by a pickled object array carrying the payload
    target = tmp_path / "pwned"
    buffer = io.BytesIO()
    np.save(buffer, np.array([Payload(target)], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(saved) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["arrays/0.npy"] = buffer.getvalue()
    evil = tmp_path / "evil.skflow"
    with zipfile.ZipFile(evil, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="allow_pickle"):
        skflow.load(evil)
    assert not target.exists()

    # and a clean archive loads with every unpickler disabled
    def refuse(*args, **kwargs):
        raise AssertionError("skflow.load unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert isinstance(skflow.load(saved), FlowMatchingDensity)


def test_what_cannot_be_saved_safely_is_a_clear_error(tmp_path):
    transport = InterpolantTransport(source_density=KernelDensity(), random_state=0, **FAST)
    transport.fit(*two_sides(50, 0))
    with pytest.raises(TypeError, match="KernelDensity.*joblib"):
        skflow.save(transport, tmp_path / "model.skflow")
    with pytest.raises(TypeError, match="estimator must be one of"):
        skflow.save(GaussianMixture(), tmp_path / "model.skflow")
    with pytest.raises(TypeError, match="IsolationForest.*joblib"):
        skflow.save(FlowMatchingOutlierDetector(IsolationForest()), tmp_path / "model.skflow")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_trained_on_cuda_loads_on_the_cpu(tmp_path):
    flow = FlowMatchingDensity(device="cuda", random_state=0, **FAST).fit(gaussian(200, 0))
    skflow.save(flow, tmp_path / "model.skflow")
    loaded = skflow.load(tmp_path / "model.skflow").set_params(device="cpu")
    assert all(p.device.type == "cpu" for p in loaded.model_.parameters())
    X = gaussian(20, 1)
    np.testing.assert_allclose(loaded.score_samples(X), flow.score_samples(X), atol=1e-8)


def test_a_version_1_detector_asks_for_a_new_fit():
    # written by skflow.save in format version 1; its detector scored rows by blurred densities
    path = pathlib.Path(__file__).parent / "golden" / "detector-v1.skflow"
    with pytest.raises(ValueError, match="format version 1.*fit the detector again"):
        skflow.load(path)


def test_a_version_3_detector_loads_as_the_single_fit_it_was(tmp_path):
    # version 3 had no support_fraction: its detectors were fitted once, on every row
    # and had no support_: it is every row of positive weight
    weight = np.r_[np.ones(90), np.zeros(10)]
    detector = FlowMatchingOutlierDetector(
        FlowMatchingDensity(**FAST), support_fraction=1.0, random_state=0
    ).fit(gaussian(100, 0), sample_weight=weight)
    path = tmp_path / "detector.skflow"
    skflow.save(detector, path)

    def version_3(manifest):
        as_version_4(manifest)
        drop_param(manifest, "support_fraction")
        del manifest["estimator"]["estimator"]["attributes"]["support_"]
        manifest["format_version"] = 3

    tamper(path, version_3)
    loaded = skflow.load(path)
    assert loaded.support_fraction == 1.0
    np.testing.assert_array_equal(loaded.support_, weight > 0)
    X = gaussian(20, 1)
    np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))
    # the golden archive of version 2 goes through the same upgrade
    golden = skflow.load(pathlib.Path(__file__).parent / "golden" / "archives" / "detector.skflow")
    assert golden.support_fraction == 1.0
    np.testing.assert_array_equal(golden.support_, ~np.isnan(golden.decision_scores_))


@pytest.mark.parametrize("name", ["density", "outlier", "imputer"])
def test_a_version_4_archive_loads_as_the_model_it_was(name, tmp_path):
    # version 4 had no allow_missing (complete rows only) and no column kinds in the imputer
    fitted = ESTIMATORS[name]()
    path = tmp_path / "model.skflow"
    skflow.save(fitted, path)
    tamper(path, as_version_4)
    loaded = skflow.load(path)
    assert loaded.get_params().keys() == fitted.get_params().keys()
    for output, value in outputs(loaded).items():
        np.testing.assert_array_equal(value, outputs(fitted)[output], err_msg=output)

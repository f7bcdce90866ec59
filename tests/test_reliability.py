"""Bad input and faults, systematically: every public estimator and method against every kind of
input.

What is tested against what
---------------------------
* Bad input (NaN, inf, pandas NA, wrong feature count, 0 rows, 1-D and 3-D arrays, complex numbers,
  strings, object and categorical columns, ragged lists, sparse matrices) on every method that takes
  ``X``: a ValueError or TypeError whose message names the problem.
* Input that must work (int, bool, float32, read-only, Fortran-ordered, DataFrame, list, one row):
  the same output as the float64 C-ordered array of the same values (for ``fit`` and
  ``fit_predict``: the same fitted model), and the input is never mutated.
* Scale: data and queries multiplied by 1e8 or 1e-8 give log-densities that differ from the unscaled
  model's (same seed) by exactly the Jacobian ``-d log c``, maps and samples that scale by ``c``, a
  velocity that scales by ``c`` and a score by ``1 / c`` (the internal standardisation makes this
  exact up to float32 training noise). A zero-variance column gives finite outputs.
* Every entry of every estimator's ``_parameter_constraints``: an unknown string and out-of-range
  numbers are ValueErrors naming the parameter, at ``fit``.
* ``sample(n_samples=...)``, ``t`` out of ``[0, 1]``, bad labels ``y``, unfitted use.
* Faults: a diverging training (huge learning rate, or a loss that turns NaN mid-fit by fault
  injection), ``KeyboardInterrupt`` during fit, ``warm_start``, and a failed fit of a fitted model,
  which must leave the model exactly as it was.
"""

import math
import re
from numbers import Real

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, make_constraint

import skflow._trainer as trainer
from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector, InterpolantTransport
from skflow.outlier import DENSITY_DEFAULTS

from _shared import FAST, gaussian

_MSE = trainer._weighted_mse  # the loss, before any test patches it

pd = pytest.importorskip("pandas")

N = 80
ESTIMATORS = {
    "density": FlowMatchingDensity(random_state=0, **FAST),
    # eps > 0 learns the denoiser, so that grad_log_density and the SDE sampler exist
    "transport": InterpolantTransport(
        gamma="brownian", sigma=0.5, eps=0.5, sde_n_steps=4, random_state=0, **FAST
    ),
    "outlier": FlowMatchingOutlierDetector(
        FlowMatchingDensity(**{**DENSITY_DEFAULTS, **FAST}), contamination=0.1, random_state=0
    ),
}
FLOWS = ["density", "transport"]
"""The estimators that are flows themselves (the detector holds one, ``estimator_``)."""


def flow_of(model):
    """The fitted flow of a model: itself, or the detector's ``estimator_``."""
    return getattr(model, "estimator_", model)


def set_flow_params(name, estimator, **params):
    """Set the flow's hyperparameters: the detector's are those of its ``estimator``."""
    prefix = "estimator__" if name == "outlier" else ""
    return estimator.set_params(**{prefix + key: value for key, value in params.items()})


def labels(n):
    """The transport's labels: 0 (source) and 1 (target), alternating."""
    return np.arange(n) % 2


def _n_rows(X):
    shape = getattr(X, "shape", None)
    if shape is not None:
        return shape[0] if len(shape) else 1
    return len(X) if hasattr(X, "__len__") else 1


def training_data(seed=0):
    X = gaussian(N, seed)
    X[1::2] += 2.0  # the transport's target side (odd rows) is shifted
    return X


def refit(estimator, X, **kwargs):
    """Fit ``estimator`` itself; the transport gets alternating labels."""
    if isinstance(estimator, InterpolantTransport):
        return estimator.fit(X, labels(_n_rows(X)), **kwargs)
    return estimator.fit(X, **kwargs)


def fit(estimator, X, **kwargs):
    """Fit a clone of ``estimator``."""
    return refit(clone(estimator), X, **kwargs)


@pytest.fixture(scope="module")
def fitted():
    return {name: fit(estimator, training_data()) for name, estimator in ESTIMATORS.items()}


# Every public method that takes X: name -> (estimators that have it, how to call it). Methods with
# randomness get a seed; fit and fit_predict fit a clone and report what the fitted model says.
QUERY = gaussian(6, 1)


def _fitted_output(model):
    return model.score_samples(QUERY)


CALLS = {
    "fit": lambda est, X: _fitted_output(fit(est, X)),
    "fit_predict": lambda est, X: clone(est).fit_predict(X),
    "score_samples": lambda est, X: est.score_samples(X),
    "score": lambda est, X: (
        est.score(X, labels(_n_rows(X))) if isinstance(est, InterpolantTransport) else est.score(X)
    ),
    "transform": lambda est, X: est.transform(X),
    "inverse_transform": lambda est, X: est.inverse_transform(X),
    "transport": lambda est, X: est.transport(X, random_state=0),
    "log_density": lambda est, X: est.log_density(X, t=0.5),
    "velocity": lambda est, X: est.velocity(X, 0.5),
    "grad_log_density": lambda est, X: est.grad_log_density(X, 0.5),
    "decision_function": lambda est, X: est.decision_function(X),
    "predict": lambda est, X: est.predict(X),
}
SHARED = ["fit", "score_samples", "score"]
MAPS = ["transform", "inverse_transform"]
METHODS = {
    "density": SHARED + MAPS,
    "transport": SHARED + MAPS + ["transport", "log_density", "velocity", "grad_log_density"],
    "outlier": SHARED + ["fit_predict", "decision_function", "predict"],
}
CASES = [(name, method) for name, methods in METHODS.items() for method in methods]
FITTING = {"fit", "fit_predict"}


def run(fitted, name, method, X):
    estimator = ESTIMATORS[name] if method in FITTING else fitted[name]
    return CALLS[method](estimator, X)


# --------------------------------------------------------------------------------------------------
# bad input: a clear error


def _with_nan():
    X = gaussian(8, 2)
    X[3, 1] = np.nan
    return X


def _with_inf():
    X = gaussian(8, 2)
    X[2, 0] = -np.inf
    return X


def _with_pandas_na():
    frame = pd.DataFrame(gaussian(8, 2)).astype("Float64")
    frame.iloc[4, 0] = pd.NA
    return frame


BAD_INPUTS = {
    # name: (X, exception, message)
    "nan": (_with_nan, ValueError, "NaN"),
    "inf": (_with_inf, ValueError, "infinity"),
    "pandas NA": (_with_pandas_na, ValueError, "NaN"),
    "0 rows": (lambda: np.empty((0, 2)), ValueError, "0 sample"),
    "1-D": (lambda: gaussian(8, 2)[:, 0], ValueError, "Expected 2D array"),
    "3-D": (lambda: gaussian(8, 2).reshape(4, 2, 2), ValueError, "dim 3"),
    "scalar": (lambda: 3.0, ValueError, "Expected 2D array"),
    "complex": (lambda: gaussian(8, 2) + 1j, ValueError, "Complex data not supported"),
    "strings": (lambda: np.full((8, 2), "a"), ValueError, "could not convert string to float"),
    "object column": (
        lambda: pd.DataFrame({0: np.arange(8.0), 1: list("abcdefgh")}),
        ValueError,
        "could not convert string to float",
    ),
    "categorical column": (
        lambda: pd.DataFrame({0: np.arange(8.0), 1: pd.Categorical(list("abababab"))}),
        ValueError,
        "could not convert string to float",
    ),
    "ragged list": (lambda: [[1.0, 2.0], [3.0]], ValueError, "inhomogeneous"),
    "sparse": (lambda: sp.csr_matrix(gaussian(8, 2)), TypeError, "Sparse data"),
}


TABLES_WITH_CATEGORIES = {"object column", "categorical column"}
"""Bad input where every column must be a number (every model fitted on numbers); tables that the
estimators fit, with a categorical column (tests/test_columns.py)."""


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
@pytest.mark.parametrize("name, method", CASES)
def test_bad_input_is_a_clear_error(fitted, name, method, kind):
    make, error, message = BAD_INPUTS[kind]
    X = make()
    if kind in TABLES_WITH_CATEGORIES and method in FITTING:
        run(fitted, name, method, X)  # a table of a number and a category column: it fits
        return
    with pytest.raises(error, match=re.escape(message)):
        run(fitted, name, method, X)


@pytest.mark.parametrize("name, method", [c for c in CASES if c[1] not in FITTING])
def test_wrong_feature_count_after_fit(fitted, name, method):
    for n_features in (1, 3):
        with pytest.raises(ValueError, match=f"X has {n_features} features.*expecting 2 features"):
            run(fitted, name, method, np.ones((4, n_features)))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_needs_two_rows(name):
    with pytest.raises(ValueError, match="1 sample.*minimum of 2"):
        fit(ESTIMATORS[name], gaussian(1, 0))


@pytest.mark.parametrize("name, method", [c for c in CASES if c[1] not in FITTING])
def test_use_before_fit(name, method):
    with pytest.raises(NotFittedError):
        CALLS[method](clone(ESTIMATORS[name]), QUERY)


@pytest.mark.parametrize("name", FLOWS)
def test_sample_before_fit(name):
    with pytest.raises(NotFittedError):
        clone(ESTIMATORS[name]).sample(3)


# --------------------------------------------------------------------------------------------------
# input that must work: the same output as float64, C-ordered; never mutated


def _read_only(X):
    X = X.copy()
    X.flags.writeable = False
    return X


# name: (converted input, the float64 C-ordered array it stands for)
EQUIVALENT_INPUTS = {
    "int": lambda X: (np.rint(X).astype(np.int64), np.rint(X)),
    "bool": lambda X: (X > X.mean(axis=0), (X > X.mean(axis=0)).astype(np.float64)),
    "float32": lambda X: (X.astype(np.float32), X.astype(np.float32).astype(np.float64)),
    "read-only": lambda X: (_read_only(X), X),
    "Fortran": lambda X: (np.asfortranarray(X), X),
    "DataFrame": lambda X: (pd.DataFrame(X), X),
    "list": lambda X: (X.tolist(), X),
}


def _snapshot(X):
    return X.copy(deep=True) if isinstance(X, pd.DataFrame) else np.array(X, copy=True)


def _assert_unchanged(X, snapshot):
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, snapshot)
    else:
        np.testing.assert_array_equal(np.asarray(X), snapshot)


@pytest.mark.parametrize("kind", list(EQUIVALENT_INPUTS))
@pytest.mark.parametrize("name, method", CASES)
def test_input_types_give_the_float64_result_and_are_not_mutated(fitted, name, method, kind):
    # fitting on bool data would hold constant standardised columns; the training set is larger
    X = training_data(3) if method in FITTING else gaussian(10, 4)
    converted, reference = EQUIVALENT_INPUTS[kind](X)
    snapshot = _snapshot(converted)
    if kind == "int" and method in FITTING:
        # an integer array is integer-valued, and dequantised: its float64 values only without
        estimator = set_flow_params(name, clone(ESTIMATORS[name]), integer_features=None)
        result, expected = (CALLS[method](estimator, X) for X in (converted, reference))
    else:
        result, expected = (run(fitted, name, method, X) for X in (converted, reference))
    _assert_unchanged(converted, snapshot)
    # the same values; only the order of float64 sums may differ (a Fortran array's column means)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-14)


# the SDE of ``transport`` draws its noise for the whole batch, so a row's path depends on the batch
@pytest.mark.parametrize(
    "name, method", [c for c in CASES if c[1] not in FITTING and c[1] != "transport"]
)
def test_one_row_gives_the_row_of_the_batch(fitted, name, method):
    X = gaussian(10, 4)
    if method == "score":
        if name == "transport":  # the score compares the two sides: one row cannot have both
            with pytest.raises(ValueError, match="both labels"):
                run(fitted, name, method, X[:1])
            return
        assert run(fitted, name, method, X[:1]) == pytest.approx(fitted[name].score_samples(X[:1]))
        return
    batch = run(fitted, name, method, X)
    np.testing.assert_allclose(run(fitted, name, method, X[:1]), batch[:1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_does_not_mutate_X_y_or_sample_weight(name):
    X, y, weight = training_data(), labels(N), np.linspace(0.5, 1.5, N)
    copies = X.copy(), y.copy(), weight.copy()
    estimator = clone(ESTIMATORS[name])
    if name == "transport":
        estimator.fit(X, y, sample_weight=weight)
        estimator.score(X, y)
    else:
        estimator.fit(X, sample_weight=weight)
    for array, copy in zip((X, y, weight), copies):
        np.testing.assert_array_equal(array, copy)


# --------------------------------------------------------------------------------------------------
# scale: values around 1e8 and 1e-8, and a zero-variance column


@pytest.fixture(scope="module", params=[1e8, 1e-8], ids=["1e8", "1e-8"])
def scaled(request):
    c = request.param
    return c, {name: fit(estimator, c * training_data()) for name, estimator in ESTIMATORS.items()}


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_scaled_data_give_the_jacobian_shifted_density(fitted, scaled, name):
    c, models = scaled
    model, reference, X = models[name], fitted[name], gaussian(10, 5)
    np.testing.assert_allclose(flow_of(model).scale_, c * flow_of(reference).scale_, rtol=1e-12)
    jacobian = -X.shape[1] * math.log(c)
    # a log-density moves by the Jacobian; the outlier detector's default multi-scale score is
    # standardised by the training rows' scores, which move with it, so it does not move at all
    shift = 0.0 if name == "outlier" else jacobian
    _close(model.score_samples(c * X), reference.score_samples(X) + shift)
    if name == "transport":  # -W2^2 is a squared distance
        assert model.score(c * X, labels(10)) == pytest.approx(
            c**2 * reference.score(X, labels(10)), rel=1e-5
        )
    else:
        assert model.score(c * X) == pytest.approx(reference.score(X) + shift, rel=1e-5)
    flow, reference_flow = flow_of(model), flow_of(reference)
    _close(flow.sample(5, random_state=0), c * reference_flow.sample(5, random_state=0))
    if name == "transport":
        _close(model.transform(c * X), c * reference.transform(X))
        _close(model.inverse_transform(c * X), c * reference.inverse_transform(X))
        _close(model.transport(c * X, random_state=0), c * reference.transport(X, random_state=0))
        _close(model.log_density(c * X, t=0.5), reference.log_density(X, t=0.5) + jacobian)
        _close(model.velocity(c * X, 0.5), c * reference.velocity(X, 0.5))
        _close(model.grad_log_density(c * X, 0.5), reference.grad_log_density(X, 0.5) / c)
    else:  # the latent space is the same standard normal
        _close(flow.transform(c * X), reference_flow.transform(X))
        Z = reference_flow.transform(X)
        _close(flow.inverse_transform(Z), c * reference_flow.inverse_transform(Z))
    if name == "outlier":
        assert model.offset_ == pytest.approx(reference.offset_ + shift, rel=1e-5, abs=1e-9)
        _close(model.decision_function(c * X), reference.decision_function(X))
        np.testing.assert_array_equal(model.predict(c * X), reference.predict(X))


@pytest.mark.parametrize("constant", [0.0, 5.0, 1e8])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_zero_variance_column_gives_finite_outputs(name, constant):
    X = np.c_[training_data(), np.full(N, constant)]
    model = fit(ESTIMATORS[name], X)
    assert flow_of(model).scale_[2] == 1.0
    query = np.c_[gaussian(5, 6), np.full(5, constant)]
    methods = [m for m in METHODS[name] if m not in FITTING]
    for method in methods:
        assert np.all(np.isfinite(CALLS[method](model, query))), method
    samples = flow_of(model).sample(5, random_state=0)
    assert samples.shape == (5, 3) and np.all(np.isfinite(samples))


def test_values_beyond_float64_squares_are_a_clear_error():
    """The spread of data near 1e300 cannot be represented; the standardisation says so.
    Near 1e160 (whose squares overflow) it still works, since deviations are rescaled first."""
    X = training_data()
    model = FlowMatchingDensity(random_state=0, **FAST).fit(1e160 * X)
    assert np.all(np.isfinite(model.scale_)) and np.all(np.isfinite(model.score_samples(1e160 * X)))
    with pytest.raises(ValueError, match="too large to standardise"):
        FlowMatchingDensity(**FAST).fit(1e307 * (1.0 + np.abs(X)))  # the mean overflows


# --------------------------------------------------------------------------------------------------
# hyperparameters: every constraint, an unknown string and out-of-range numbers


def _out_of_range(interval):
    """Numbers just outside an Interval constraint, and a non-integer for an integer one."""
    values = []
    if interval.left is not None:
        values.append(
            interval.left if interval.closed in ("right", "neither") else interval.left - 1
        )
    if interval.right is not None:
        values.append(
            interval.right if interval.closed in ("left", "neither") else interval.right + 1
        )
    if interval.type is not Real and interval.left is not None:
        values.append(interval.left + 0.5)
    return values


def _invalid_values(constraints):
    constraints = [make_constraint(c) for c in constraints]
    candidates = ["not-an-option", None]
    for c in constraints:
        if isinstance(c, Interval):
            candidates += _out_of_range(c)
    return [v for v in candidates if not any(c.is_satisfied_by(v) for c in constraints)]


HYPERPARAMETER_CASES = [
    pytest.param(name, parameter, value, id=f"{name}-{parameter}={value!r}")
    for name, estimator in ESTIMATORS.items()
    for parameter, constraints in type(estimator)._parameter_constraints.items()
    for value in _invalid_values(constraints)
] + [
    pytest.param(name, "hidden_layer_sizes", value, id=f"{name}-hidden_layer_sizes={value!r}")
    for name in FLOWS
    for value in [(), (16, 0), (16.5,), [[4, 4]]]
]


@pytest.mark.parametrize("name, parameter, value", HYPERPARAMETER_CASES)
def test_invalid_hyperparameter_names_itself_at_fit(name, parameter, value):
    estimator = clone(ESTIMATORS[name]).set_params(**{parameter: value})
    with pytest.raises(ValueError, match=rf"\b{parameter}\b"):
        fit(estimator, training_data())


@pytest.mark.parametrize("parameter", ["hidden_layer_sizes", "learning_rate_init", "path"])
def test_an_invalid_hyperparameter_of_the_detectors_estimator_names_itself(parameter):
    estimator = set_flow_params("outlier", clone(ESTIMATORS["outlier"]), **{parameter: -1})
    with pytest.raises(ValueError, match=rf"\b{parameter}\b"):
        fit(estimator, training_data())


def test_every_hyperparameter_is_swept():
    swept = {(case.values[0], case.values[1]) for case in HYPERPARAMETER_CASES}
    for name, estimator in ESTIMATORS.items():
        for parameter in estimator.get_params(deep=False):
            assert (name, parameter) in swept, (name, parameter)
            assert parameter in type(estimator)._parameter_constraints


# --------------------------------------------------------------------------------------------------
# method arguments: n_samples, t, direction, labels


@pytest.mark.parametrize("n_samples", [0, -1, 1.5, "a", None, 3.0])
@pytest.mark.parametrize("name", FLOWS)
def test_bad_n_samples_names_itself(fitted, name, n_samples):
    with pytest.raises(ValueError, match="n_samples"):
        fitted[name].sample(n_samples)


@pytest.mark.parametrize("name", FLOWS)
def test_sample_n_samples_types(fitted, name):
    with pytest.raises(TypeError, match="n_samples"):
        fitted[name].sample(True)
    np.testing.assert_array_equal(
        fitted[name].sample(np.int64(3), random_state=0), fitted[name].sample(3, random_state=0)
    )


@pytest.mark.parametrize("method", ["log_density", "velocity", "grad_log_density"])
def test_time_outside_0_1_names_itself(fitted, method):
    model, X = fitted["transport"], gaussian(4, 7)
    call = getattr(model, method)
    for t in (-0.1, 1.1, -np.inf, np.nan, "a", None, [0.5]):
        with pytest.raises(ValueError, match="t must be a number in \\[0, 1\\]"):
            call(X, t)
    with pytest.raises(TypeError, match="t must be a number, not a bool"):
        call(X, True)
    np.testing.assert_array_equal(call(X, np.float32(0.5)), call(X, 0.5))
    assert np.all(np.isfinite(call(X, 0.0))) and np.all(np.isfinite(call(X, 1.0)))


def test_transport_arguments(fitted):
    model, X = fitted["transport"], gaussian(4, 7)
    with pytest.raises(ValueError, match="direction"):
        model.transport(X, direction="sideways")
    with pytest.raises(ValueError, match="random_state"):
        model.transport(X, random_state="seed")
    with pytest.raises(ValueError, match="random_state"):
        model.sample(3, random_state="seed")


@pytest.mark.parametrize(
    ("y", "error", "match"),
    [
        (np.zeros(N), ValueError, "exactly two distinct labels.*got 1"),
        (np.arange(N) % 3, ValueError, "exactly two distinct labels.*got 3"),
        (np.r_[0, np.ones(N - 1)], ValueError, "at least 2 rows"),
        (labels(N)[:-1], ValueError, "inconsistent numbers of samples"),
        (np.r_[labels(N - 1), np.nan], ValueError, "y contains NaN"),
        (np.c_[labels(N), labels(N)], ValueError, "1d array"),
        (np.array([0, "a"] * (N // 2), dtype=object), TypeError, "y must hold labels of one kind"),
        (None, ValueError, "requires y"),
    ],
    ids=[
        "one class",
        "three classes",
        "one-row side",
        "wrong length",
        "NaN",
        "2-D",
        "mixed",
        "None",
    ],
)
def test_bad_labels_are_clear_errors(y, error, match):
    with pytest.raises(error, match=match):
        clone(ESTIMATORS["transport"]).fit(training_data(), y)


def test_bad_labels_in_score_are_clear_errors(fitted):
    model, X = fitted["transport"], training_data()
    with pytest.raises(ValueError, match=r"labels \[2\] that fit did not see"):
        model.score(np.r_[X, X[:3]], np.r_[labels(N), [2, 2, 2]])
    with pytest.raises(ValueError, match="rows but y has"):
        model.score(X, labels(N)[:-1])
    with pytest.raises(ValueError, match="both labels"):
        model.score(X[::2], labels(N)[::2])
    with pytest.raises(ValueError, match="sample_weight"):
        model.score(X, labels(N), sample_weight=np.ones(N))


# --------------------------------------------------------------------------------------------------
# faults: divergence, interruption, warm start, failed refits


def _fault_after(n_calls, fault):
    """A ``_weighted_mse`` that applies ``fault(loss)`` at its ``n_calls + 1``-th call, once (a
    glitch: the loss of the weights kept afterwards is sound)."""
    calls = {"n": 0}

    def faulty(*args):
        calls["n"] += 1
        loss = _MSE(*args)
        return fault(loss) if calls["n"] == n_calls + 1 else loss

    return faulty


def _interrupt(loss):
    raise KeyboardInterrupt


def _one_loss_a_step(name):
    """The estimator, with one call of the loss per minibatch (no denoiser loss)."""
    estimator = clone(ESTIMATORS[name])
    return estimator.set_params(eps=0.0) if name == "transport" else estimator


@pytest.mark.parametrize("learning_rate_init", [1e5, 1e12])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_divergence_in_the_first_epoch_is_a_clear_error(name, learning_rate_init):
    """1e12 makes the loss non-finite; 1e5 keeps it finite but 1e22 times too large, with weights
    that carry points to 1e157 (this used to give NaN densities with no warning)."""
    estimator = set_flow_params(
        name, clone(ESTIMATORS[name]), learning_rate_init=learning_rate_init
    )
    with pytest.raises(ValueError, match="diverged.*learning_rate_init"):
        fit(estimator, training_data())


@pytest.mark.parametrize("name", ["density", "transport"])
def test_later_divergence_keeps_the_last_good_weights(monkeypatch, name):
    """Fault injection: the loss turns NaN in the third epoch; the model must stay finite."""
    # 80 rows (40 target rows for the transport) in batches of 64: 2 (1) minibatches an epoch
    per_epoch = 2 if name == "density" else 1
    fault = _fault_after(2 * per_epoch, lambda loss: loss * np.nan)
    monkeypatch.setattr(trainer, "_weighted_mse", fault)
    with pytest.warns(RuntimeWarning, match="diverged.*last good epoch"):
        model = fit(_one_loss_a_step(name), training_data())
    assert model.n_iter_ == 2
    X = gaussian(10, 8)
    assert np.all(np.isfinite(model.score_samples(X))) and np.all(np.isfinite(model.transform(X)))


@pytest.mark.parametrize("name", ["density", "transport"])
def test_keyboard_interrupt_keeps_the_best_weights_and_says_so(monkeypatch, name):
    per_epoch = 2 if name == "density" else 1
    monkeypatch.setattr(trainer, "_weighted_mse", _fault_after(2 * per_epoch, _interrupt))
    with pytest.warns(RuntimeWarning, match="interrupted after 2 epochs.*best weights"):
        model = fit(_one_loss_a_step(name), training_data())
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 2
    X = gaussian(10, 8)
    assert np.all(np.isfinite(model.score_samples(X))) and np.all(np.isfinite(model.transform(X)))


def test_keyboard_interrupt_of_the_outlier_detector(monkeypatch):
    """Interrupted in its first flow's training, the detector keeps the flow's best weights so far,
    fits no second flow, and is usable (the density's behaviour), with a threshold from that
    flow's scores."""
    X = training_data()
    # the flow: two minibatches an epoch; interrupted in the second
    monkeypatch.setattr(trainer, "_weighted_mse", _fault_after(2, _interrupt))
    detector = clone(ESTIMATORS["outlier"])
    with pytest.warns(RuntimeWarning, match="interrupted after 1 epochs"):
        detector.fit(X)
    assert detector.estimator_.n_iter_ == 1 and np.isfinite(detector.offset_)
    assert detector.estimator_.stop_reason_ == "interrupted"
    assert np.all(np.isfinite(detector.decision_function(X)))
    np.testing.assert_array_equal(detector.decision_scores_, -detector.score_samples(X))


@pytest.mark.parametrize("name", FLOWS)  # the detector fits new clones of its estimator
def test_warm_start_continues_training(fitted, name):
    X = training_data()
    model = fit(ESTIMATORS[name], X)
    model.set_params(warm_start=True)
    before = {k: v.clone() for k, v in model.model_.state_dict().items()}
    mean, scale = model.mean_.copy(), model.scale_.copy()
    fit_again = model.fit(X + 1.0, labels(N)) if name == "transport" else model.fit(X + 1.0)
    assert fit_again is model
    # the standardisation is kept and the network moved on from where it was
    np.testing.assert_array_equal(model.mean_, mean)
    np.testing.assert_array_equal(model.scale_, scale)
    assert any(not np.array_equal(before[k], v) for k, v in model.model_.state_dict().items())
    assert np.all(np.isfinite(model.score_samples(X)))
    # a cold fit starts from scratch: the same as a fresh estimator
    cold = fit(ESTIMATORS[name], X)
    np.testing.assert_array_equal(cold.score_samples(QUERY), fitted[name].score_samples(QUERY))


def _failing_refits(name):
    """Refits that fail half-way through fit, after the data passed validation."""
    X3 = np.c_[training_data(), training_data(1)[:, :1]] * 100.0
    refits = {
        "diverging": lambda m: refit(
            set_flow_params(name, m, learning_rate_init=1e12), 100 * training_data()
        ),
        "bad network": lambda m: refit(set_flow_params(name, m, hidden_layer_sizes=(0,)), X3),
    }
    if name in FLOWS:  # the detector fits new clones, for any number of features
        refits["warm start, new feature count"] = lambda m: refit(m.set_params(warm_start=True), X3)
    if name == "transport":
        refits["one label"] = lambda m: m.fit(X3, np.zeros(N))
        refits["eps=0.5 without noise"] = lambda m: m.set_params(gamma="zero").fit(X3, labels(N))
    return refits


@pytest.mark.parametrize(
    "name, refit",
    [(name, refit) for name in ESTIMATORS for refit in _failing_refits(name)],
)
def test_a_failed_refit_leaves_the_model_as_it_was(name, refit):
    model = fit(ESTIMATORS[name], training_data())
    params, state = model.get_params(), dict(vars(model))
    outputs = model.score_samples(QUERY)
    with pytest.raises(ValueError):
        _failing_refits(name)[refit](model)
    model.set_params(**params)
    assert set(vars(model)) == set(state)
    for key, value in state.items():
        assert vars(model)[key] is value, key
    np.testing.assert_array_equal(model.score_samples(QUERY), outputs)

"""FlowMatchingDensity end to end, checked against independent references.

- Gaussian data: the held-out mean log-likelihood is compared with the exact one (scipy).
- The density of a 2-D model is integrated over a grid (it must be ~1).
- ``inverse_transform(transform(X))`` is compared with ``X``; samples' moments with the data's.
- Reproducibility, persistence, model selection in a Pipeline, feature names. Bad input, faults
  and warm starts are in test_reliability.py.
"""

import pickle
import time

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skflow import FlowMatchingDensity
from skflow import _spec as spec
from skflow._distributions import StandardNormal
from skflow._inference import validation_negative_log_likelihood
from skflow.networks import FourierFeatureVelocity
from skflow.paths import LinearPath

from _shared import (
    COVARIANCE,
    FAST,
    MEAN,
    SMALL,
    ExactGaussianVelocity,
    exact_gaussian_loss,
    gaussian,
)


@pytest.fixture(scope="module")
def fitted():
    return FlowMatchingDensity(random_state=0, **SMALL).fit(gaussian(2000, 0))


def test_gaussian_log_likelihood_matches_the_truth(fitted):
    X_test = gaussian(1000, 1)
    truth = multivariate_normal(MEAN, COVARIANCE).logpdf(X_test)
    assert abs(fitted.score(X_test) - truth.mean()) < 0.05
    # row by row too, in the bulk of the distribution where the model has seen data
    bulk = truth > np.quantile(truth, 0.1)
    assert np.median(np.abs(fitted.score_samples(X_test)[bulk] - truth[bulk])) < 0.1


def test_score_is_mean_of_score_samples(fitted):
    X_test = gaussian(50, 2)
    assert fitted.score(X_test) == pytest.approx(fitted.score_samples(X_test).mean())


def test_density_is_in_the_units_of_X(fitted):
    """Rescaling X by c shifts the log-density by -d log c (the Jacobian of the standardisation)."""
    X, X_test = gaussian(2000, 0), gaussian(20, 3)
    scaled = FlowMatchingDensity(random_state=0, **SMALL).fit(10.0 * X)
    np.testing.assert_allclose(
        scaled.score_samples(10.0 * X_test),
        fitted.score_samples(X_test) - 2 * np.log(10.0),
        rtol=1e-4,
    )


def test_density_integrates_to_one(fitted):
    step = 0.1
    u = np.arange(-6.0, 6.0, step) + step / 2
    grid = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2) * fitted.scale_ + fitted.mean_
    mass = np.exp(fitted.score_samples(grid)).sum() * step**2 * np.prod(fitted.scale_)
    assert mass == pytest.approx(1.0, abs=0.02)


def test_transform_round_trip(fitted):
    """The round-trip error is the solver's: it shrinks at RK4's fourth order in the step."""
    X_test = gaussian(200, 4)
    errors = []
    for n_steps in (10, 40):
        flow = pickle.loads(pickle.dumps(fitted)).set_params(n_steps=n_steps)
        errors.append(np.abs(flow.inverse_transform(flow.transform(X_test)) - X_test).max())
    assert errors[0] < 5e-3
    assert errors[1] < errors[0] / 30 and errors[1] < 1e-4
    # the latent of data from the model's distribution is close to N(0, I)
    Z = fitted.transform(gaussian(2000, 5))
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(np.cov(Z.T), np.eye(2), atol=0.15)


def test_samples_match_the_data_moments(fitted):
    S = fitted.sample(4000, random_state=1)
    assert S.shape == (4000, 2)
    np.testing.assert_allclose(S.mean(axis=0), MEAN, atol=0.1)
    np.testing.assert_allclose(np.cov(S.T), COVARIANCE, atol=0.15)


@pytest.mark.parametrize("path", ["linear", "trig", "vp"])
@pytest.mark.parametrize("coupling", ["independent", "ot", "sinkhorn"])
def test_every_path_and_coupling_learns_the_gaussian(path, coupling):
    flow = FlowMatchingDensity(
        path=path, coupling=coupling, random_state=0, **{**SMALL, "max_iter": 15}
    ).fit(gaussian(1000, 0))
    X_test = gaussian(300, 1)
    truth = multivariate_normal(MEAN, COVARIANCE).logpdf(X_test).mean()
    assert abs(flow.score(X_test) - truth) < 0.25


def test_same_random_state_same_outputs():
    X, X_test = gaussian(300, 0), gaussian(20, 1)
    params = dict(random_state=3, coupling="sinkhorn", **{**SMALL, "max_iter": 3})
    a = FlowMatchingDensity(**params).fit(X)
    b = FlowMatchingDensity(**params).fit(X)
    np.testing.assert_array_equal(a.score_samples(X_test), b.score_samples(X_test))
    np.testing.assert_array_equal(a.sample(5, random_state=0), b.sample(5, random_state=0))
    assert a.loss_curve_ == b.loss_curve_
    c = FlowMatchingDensity(**{**params, "random_state": 4}).fit(X)
    assert not np.array_equal(a.score_samples(X_test), c.score_samples(X_test))


def test_global_random_generators_are_untouched():
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    FlowMatchingDensity(random_state=0, **{**SMALL, "max_iter": 2}).fit(gaussian(200, 0)).sample(
        3, random_state=0
    )
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


def test_grid_search_in_a_pipeline_picks_by_mean_log_likelihood():
    pipe = Pipeline(
        [("scale", StandardScaler()), ("flow", FlowMatchingDensity(random_state=0, **SMALL))]
    )
    grid = {"flow__path": ["linear", "trig"], "flow__coupling": ["independent", "ot"]}
    search = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(gaussian(600, 0))
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert search.best_index_ == int(np.argmax(scores))
    # the pipeline's score is the flow's mean log-likelihood of the scaled data
    X_test = gaussian(40, 1)
    best = search.best_estimator_
    expected = best["flow"].score_samples(best["scale"].transform(X_test)).mean()
    assert search.score(X_test) == pytest.approx(expected)


def test_dataframe_input_and_feature_names():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(gaussian(200, 0), columns=["height", "weight"])
    flow = FlowMatchingDensity(random_state=0, **{**SMALL, "max_iter": 2}).fit(X)
    assert list(flow.feature_names_in_) == ["height", "weight"]
    assert list(flow.get_feature_names_out()) == [
        "flowmatchingdensity0",
        "flowmatchingdensity1",
    ]
    Z = flow.set_output(transform="pandas").transform(X)
    assert list(Z.columns) == ["flowmatchingdensity0", "flowmatchingdensity1"]
    with pytest.warns(UserWarning, match="feature names"):
        np.testing.assert_allclose(flow.score_samples(X), flow.score_samples(X.to_numpy()))


def test_sample_weight_zero_removes_a_cluster():
    """Rows with zero weight do not shape the density: a cluster weighted out gets little mass."""
    rng = np.random.default_rng(0)
    left = rng.normal(-4.0, 0.5, size=(400, 1))
    right = rng.normal(4.0, 0.5, size=(400, 1))
    X = np.vstack([left, right])
    weight = np.r_[np.ones(400), np.zeros(400)]
    flow = FlowMatchingDensity(random_state=0, **SMALL).fit(X, sample_weight=weight)
    assert flow.mean_[0] == pytest.approx(left.mean())
    assert flow.score_samples([[-4.0]])[0] > flow.score_samples([[4.0]])[0] + 5


def test_hutchinson_divergence_is_seeded_and_unbiased(fitted):
    X_test = gaussian(1000, 7)
    hutchinson = pickle.loads(pickle.dumps(fitted)).set_params(divergence="hutchinson")
    first, second = hutchinson.score_samples(X_test), hutchinson.score_samples(X_test)
    np.testing.assert_array_equal(first, second)
    error = first - fitted.score_samples(X_test)
    assert np.std(error) > 0  # it is an estimate, not the exact value
    assert abs(error.mean()) < 4 * error.std() / np.sqrt(len(error))


@pytest.mark.parametrize("step_exponent", [1.0, 1.5])
@pytest.mark.parametrize(
    "solver, n_steps, tolerance",
    # on this model (a smooth field, arcsine training times), row-wise largest differences from
    # dopri5 at 1e-7, with equal steps / the default graded grid: rk4-40 0.0012 / 0.0042,
    # midpoint-100 0.0011 / 0.0049, euler-100 0.054 / 0.072 (rk4-20: 0.009 / 0.031; the graded
    # grid pays off where the field is sharp near the data: benchmarks/results/quality.md, diamonds)
    [("euler", 100, 0.1), ("midpoint", 100, 0.01), ("rk4", 40, 0.005)],
)
def test_solvers_converge_to_the_same_likelihood(fitted, solver, n_steps, tolerance, step_exponent):
    X_test = gaussian(100, 8)
    reference = pickle.loads(pickle.dumps(fitted)).set_params(solver="dopri5").score_samples(X_test)
    other = pickle.loads(pickle.dumps(fitted)).set_params(
        solver=solver, n_steps=n_steps, step_exponent=step_exponent
    )
    np.testing.assert_allclose(other.score_samples(X_test), reference, atol=tolerance)


def test_default_step_exponent_grades_the_grid(fitted):
    # the default steps through 1 - (1 - k/n)^1.5, not equal steps, and dopri5 ignores the grid
    assert FlowMatchingDensity().step_exponent == 1.5
    X_test = gaussian(20, 9)
    scores = {
        exponent: pickle.loads(pickle.dumps(fitted)).set_params(step_exponent=exponent)
        for exponent in (1.0, 1.5)
    }
    assert not np.allclose(scores[1.0].score_samples(X_test), fitted.score_samples(X_test))
    np.testing.assert_array_equal(scores[1.5].score_samples(X_test), fitted.score_samples(X_test))
    adaptive = [m.set_params(solver="dopri5").score_samples(X_test) for m in scores.values()]
    np.testing.assert_array_equal(*adaptive)


def test_fourier_features_are_seeded_and_absent_by_default_on_small_data():
    X = gaussian(200, 0)
    assert not isinstance(FlowMatchingDensity(**FAST).fit(X).model_, FourierFeatureVelocity)
    make = lambda seed: FlowMatchingDensity(  # noqa: E731
        n_fourier_features=6, fourier_scale=3.0, random_state=seed, **FAST
    ).fit(X)
    first, again, other = make(0), make(0), make(1)
    assert isinstance(first.model_, FourierFeatureVelocity)
    assert first.model_.frequencies.shape == (2, 6)
    np.testing.assert_array_equal(first.score_samples(X), again.score_samples(X))
    assert not torch.equal(first.model_.frequencies, other.model_.frequencies)


def test_auto_fourier_features_are_none_below_the_row_threshold():
    X = gaussian(200, 0)
    auto = FlowMatchingDensity(random_state=0, **FAST).fit(X)
    plain = FlowMatchingDensity(n_fourier_features=0, random_state=0, **FAST).fit(X)
    assert auto.n_fourier_features == "auto" and auto.n_fourier_features_ == 0
    np.testing.assert_array_equal(auto.score_samples(X), plain.score_samples(X))


@pytest.mark.parametrize("early_stopping", [True, False])
def test_auto_fourier_features_from_the_row_threshold_in_few_dimensions(
    early_stopping, monkeypatch
):
    monkeypatch.setattr(spec, "FOURIER_AUTO_MIN_ROWS", 250)
    params = dict(early_stopping=early_stopping, random_state=0, **FAST)
    X = gaussian(300, 0)  # 270 training rows beside a validation split, 300 without
    auto = FlowMatchingDensity(**params).fit(X)
    explicit = FlowMatchingDensity(n_fourier_features=spec.FOURIER_AUTO_FEATURES, **params).fit(X)
    assert auto.n_fourier_features_ == spec.FOURIER_AUTO_FEATURES
    np.testing.assert_array_equal(auto.score_samples(X), explicit.score_samples(X))
    # fewer training rows, or more dimensions: none
    assert FlowMatchingDensity(**params).fit(X[:200]).n_fourier_features_ == 0
    wide = np.random.default_rng(0).normal(size=(300, spec.FOURIER_AUTO_MAX_DIMENSIONS + 1))
    assert FlowMatchingDensity(**params).fit(wide).n_fourier_features_ == 0
    # a stream's first chunk does not know how many rows will come
    assert FlowMatchingDensity(**FAST).partial_fit(X).n_fourier_features_ == 0


@pytest.mark.parametrize("scoring", ["log_likelihood", "loss"])
def test_early_stopping_records_validation_and_stops(scoring):
    flow = FlowMatchingDensity(
        early_stopping=True,
        scoring=scoring,
        random_state=0,
        n_iter_no_change=2,
        tol=10.0,
        **{**SMALL, "max_iter": 50},
    ).fit(gaussian(300, 0))
    # a check every ceil(50 / 25) = 2 epochs; with a huge tol no check counts as an improvement:
    # stop after the first n_iter_no_change + 1 checks
    assert flow.n_iter_ == 6 and len(flow.loss_curve_) == 6
    assert len(flow.validation_loss_curve_) == 3
    assert flow.best_loss_ == min(flow.validation_loss_curve_)
    assert flow.best_iter_ == 2 * (1 + flow.validation_loss_curve_.index(flow.best_loss_))


@pytest.mark.parametrize("n_features", [2, 10])  # exact divergence, then Hutchinson's
def test_log_likelihood_check_matches_score_samples(n_features):
    # the early-stopping score is minus the mean log-likelihood of standardised rows, estimated
    # cheaply (8 equal RK4 steps, float32, Hutchinson above 8 features): close to the converged
    # score (dopri5)
    X = np.random.default_rng(0).standard_normal((300, n_features)) * 3.0 + 1.0
    flow = FlowMatchingDensity(random_state=0, early_stopping=False, **SMALL).fit(X)
    check = validation_negative_log_likelihood(
        (X[:200] - flow.mean_) / flow.scale_,
        None,
        np.random.RandomState(0),
        path=LinearPath(),
        base_log_prob=StandardNormal(n_features).log_prob,
        device=torch.device("cpu"),
    )
    converged = pickle.loads(pickle.dumps(flow)).set_params(solver="dopri5")
    expected = converged.score(X[:200]) + np.log(flow.scale_).sum()
    # with 10 features, one Hutchinson probe per row: the mean of 200 rows has a standard error
    # of about 0.06 nats here (16 probes a row give a probe's standard deviation, 0.83); 4 of them
    assert -check(flow.model_) == pytest.approx(expected, abs=0.25 if n_features > 8 else 0.01)
    no_es = FlowMatchingDensity(random_state=0, early_stopping=False, **{**SMALL, "max_iter": 4})
    assert no_es.fit(gaussian(300, 0)).validation_loss_curve_ == []


@pytest.mark.parametrize("verbose, lines", [(1, 25), (2, 100)])
def test_verbose_prints_a_line_per_check_or_per_epoch(capsys, verbose, lines):
    params = {**SMALL, "max_iter": 100, "hidden_layer_sizes": (8,)}
    FlowMatchingDensity(verbose=verbose, n_iter_no_change=100, random_state=0, **params).fit(
        gaussian(100, 0)
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == lines  # 25 checks over the 100 epochs, or every epoch
    assert out[0].startswith("Epoch ") and "step" in out[0] and "of the budget" in out[0]
    assert "validation loss" in out[-1] and "100%" in out[-1]
    assert sum("validation loss" in line for line in out) == 25


def test_max_time_ends_training_within_the_budget():
    flow = FlowMatchingDensity(max_time=0.5, random_state=0, **{**FAST, "max_iter": 10**6})
    start = time.perf_counter()
    flow.fit(gaussian(200, 0))
    # the budget, plus what fit does besides training (a generous margin for a loaded machine)
    assert time.perf_counter() - start < 5.0
    assert flow.stop_reason_ == "max_time" and 0 < flow.n_iter_ < 10**6
    assert len(flow.validation_loss_curve_) >= 1  # the last check ran: the best weights are kept
    assert np.isfinite(flow.score_samples(gaussian(20, 1))).all()


def test_cuda_without_a_device_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="cuda"):
        FlowMatchingDensity(device="cuda").fit(gaussian(20, 0))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_end_to_end_and_loads_on_cpu():
    X, X_test = gaussian(2000, 0), gaussian(500, 1)
    flow = FlowMatchingDensity(device="cuda", random_state=0, **SMALL).fit(X)
    truth = multivariate_normal(MEAN, COVARIANCE).logpdf(X_test).mean()
    assert abs(flow.score(X_test) - truth) < 0.05
    assert all(p.device.type == "cpu" for p in flow.model_.parameters())
    precise = pickle.loads(pickle.dumps(flow)).set_params(n_steps=40)
    np.testing.assert_allclose(
        precise.inverse_transform(precise.transform(X_test)), X_test, atol=1e-4
    )
    on_cpu = pickle.loads(pickle.dumps(flow)).set_params(device="cpu")
    np.testing.assert_allclose(on_cpu.score_samples(X_test), flow.score_samples(X_test), atol=1e-8)


def test_hutchinson_scores_do_not_depend_on_the_batch_and_state_their_error():
    X = np.random.default_rng(0).standard_normal((200, 20)) * 2.0 + 1.0
    flow = FlowMatchingDensity(random_state=0, **FAST).fit(X)
    assert flow.divergence == "auto"  # Hutchinson's estimator above 16 features
    log_density, error = flow.score_samples(X[:30], return_std=True)
    np.testing.assert_allclose(flow.score_samples(X[7:8]), log_density[7:8], rtol=1e-12)
    np.testing.assert_allclose(flow.score_samples(X[29::-1]), log_density[::-1], rtol=1e-12)
    assert np.all(error > 0) and np.all(np.isfinite(error))
    # the estimates scatter around the exact log-density as their standard errors say
    exact = pickle.loads(pickle.dumps(flow)).set_params(divergence="exact").score_samples(X[:30])
    assert np.abs((log_density - exact) / error).max() < 5
    assert abs(np.mean((log_density - exact) / error)) < 4 / np.sqrt(30)
    # exact up to 16 features: no error
    flow16 = FlowMatchingDensity(random_state=0, **FAST).fit(X[:, :16])
    np.testing.assert_array_equal(flow16.score_samples(X[:5, :16], return_std=True)[1], 0.0)


# --------------------------------------------------------------------------------------------------
# the flow-matching loss at given rows


def with_exact_gaussian_field():
    """A flow fitted on Gaussian rows whose network is swapped for the exact velocity field of the
    standardised training law."""
    flow = FlowMatchingDensity(**FAST, random_state=0).fit(gaussian(200, 40))
    mean = (MEAN - flow.mean_) / flow.scale_
    covariance = COVARIANCE / np.outer(flow.scale_, flow.scale_)
    flow.model_ = ExactGaussianVelocity(mean, covariance)
    return flow


def test_flow_matching_loss_matches_its_closed_form_on_a_gaussian():
    flow = with_exact_gaussian_field()
    X = gaussian(20, 41) + np.random.default_rng(42).normal(size=(20, 2))
    loss = flow.flow_matching_loss(X, n_times=4, n_draws=20_000, random_state=0)
    expected = exact_gaussian_loss(flow, X, (np.arange(4) + 0.5) / 4)
    np.testing.assert_allclose(loss, expected, rtol=0.03)


def test_flow_matching_loss_of_a_row_does_not_depend_on_the_batch():
    flow = FlowMatchingDensity(**FAST, random_state=0).fit(gaussian(100, 43))
    X = gaussian(7, 44)
    together = flow.flow_matching_loss(X, n_times=3, n_draws=2, random_state=5)
    alone = np.vstack([flow.flow_matching_loss(row[None], 3, 2, random_state=5) for row in X])
    assert together.shape == (7, 3)
    # the same draws; the float32 arithmetic may round a batch's matrix products differently
    np.testing.assert_allclose(alone, together, rtol=1e-5)
    # the estimator's own random_state seeds the draws by default; another seed draws others
    np.testing.assert_array_equal(
        flow.flow_matching_loss(X), flow.flow_matching_loss(X, random_state=0)
    )
    assert not np.array_equal(
        flow.flow_matching_loss(X, random_state=1), flow.flow_matching_loss(X, random_state=0)
    )


@pytest.mark.parametrize("name, value", [("n_times", 0), ("n_draws", 1.5), ("n_draws", True)])
def test_flow_matching_loss_rejects_bad_counts(name, value):
    flow = FlowMatchingDensity(**FAST, random_state=0).fit(gaussian(50, 45))
    with pytest.raises(ValueError, match=name):
        flow.flow_matching_loss(gaussian(3, 46), **{name: value})

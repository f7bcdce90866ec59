"""FlowMatchingOutlierDetector, checked against closed forms and scikit-learn's conventions.

- Gaussian training data: the detector ranks rows like the true Gaussian log-density, and
  ``contamination="auto"`` agrees with the exact chi-squared test of the Mahalanobis distance.
- ``bandwidth``: the score is the log-density blurred by Gaussian noise, exactly (dopri5 on the
  exact velocity field of Gaussian data) and as trained.
- ``contamination=float`` flags exactly that share of the training rows (weighted-out rows aside).
- Far-away rows (10^3 to 10^6 standard deviations) get finite scores, strictly ordered by distance.
- Constant and duplicated columns, and gross outliers in the training data, do not break the fit.
- scikit-learn's estimator checks, outlier checks included, on small fast instances.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import chi2, multivariate_normal, spearmanr
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.utils.estimator_checks import parametrize_with_checks

from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector, outlier
from skflow._thresholds import AUTO_LEVEL
from skflow.networks import VelocityMLP
from skflow.outlier import DENSITY_DEFAULTS

from _shared import COVARIANCE, FAST, MEAN, SMALL, gaussian


def density(**params):
    """The density that ``estimator=None`` stands for, with other hyperparameters."""
    return FlowMatchingDensity(**{**DENSITY_DEFAULTS, **params})


def detector_with(density_params, **params):
    return FlowMatchingOutlierDetector(density(**density_params), **params)


def mahalanobis_squared(X):
    diff = X - MEAN
    return np.einsum("ij,jk,ik->i", diff, np.linalg.inv(COVARIANCE), diff)


def blurred_truth(detector, X, bandwidth):
    """Exact log-density of the training law blurred by N(0, (bandwidth * scale_)^2) per feature."""
    blur = np.diag((bandwidth * detector.estimator_.scale_) ** 2)
    return multivariate_normal(MEAN, COVARIANCE + blur).logpdf(X)


@pytest.fixture(scope="module")
def fitted():
    # a fixed budget on all rows, and the unblurred density: these tests are about the threshold
    return detector_with({"early_stopping": False, **SMALL}, random_state=0, bandwidth=0.0).fit(
        gaussian(2000, 0)
    )


# --------------------------------------------------------------------------------------------------
# closed forms on Gaussian data


def test_ranks_rows_like_the_true_gaussian_density(fitted):
    X_test = np.vstack([gaussian(500, 1), MEAN + np.random.default_rng(2).normal(size=(50, 2)) * 3])
    truth = multivariate_normal(MEAN, COVARIANCE).logpdf(X_test)
    assert spearmanr(fitted.score_samples(X_test), truth).statistic > 0.98


def test_auto_threshold_is_the_chi_squared_test_on_gaussian_data(fitted):
    # offset_ is close to the exact log-density on the 99 % chi-squared ellipse ...
    exact_offset = multivariate_normal(MEAN, COVARIANCE).logpdf(MEAN) - 0.5 * chi2.ppf(0.99, 2)
    assert fitted.effective_rank_ == 2
    assert fitted.offset_ == pytest.approx(exact_offset, abs=0.5)
    # ... so predict agrees with the exact test on held-out rows, and flags about 1 % of inliers
    X_test = gaussian(4000, 3)
    exact = np.where(mahalanobis_squared(X_test) > chi2.ppf(1 - AUTO_LEVEL, 2), -1, 1)
    predicted = fitted.predict(X_test)
    assert np.mean(predicted == exact) > 0.99
    assert np.mean(predicted == -1) == pytest.approx(AUTO_LEVEL, abs=0.01)


def test_decision_function_and_predict_follow_offset(fitted):
    X_test = gaussian(100, 4)
    scores = fitted.score_samples(X_test)
    np.testing.assert_allclose(fitted.decision_function(X_test), scores - fitted.offset_)
    np.testing.assert_array_equal(
        fitted.predict(X_test), np.where(scores - fitted.offset_ < 0, -1, 1)
    )
    # the score is the log-density of the flow
    np.testing.assert_array_equal(scores, fitted.estimator_.score_samples(X_test))


class ExactGaussianVelocity(torch.nn.Module):
    """Marginal velocity of the linear path from N(0, I) to N(m, C):
    ``E[x1 - x0 | x_t = x] = m + (t C - (1 - t) I) S_t^{-1} (x - t m)``,
    ``S_t = (1 - t)^2 I + t^2 C``.
    """

    def __init__(self, mean, covariance):
        super().__init__()
        self.register_buffer("m", torch.as_tensor(mean))
        self.register_buffer("C", torch.as_tensor(covariance))

    def forward(self, t, x):
        t = t.to(x.dtype)[:, None, None]
        eye = torch.eye(x.shape[1], dtype=x.dtype)
        S = (1 - t) ** 2 * eye + t**2 * self.C
        gain = torch.linalg.solve(S, (t * self.C - (1 - t) * eye).transpose(1, 2))
        return self.m + ((x - t[:, :, 0] * self.m)[:, None, :] @ gain)[:, 0, :]


def with_exact_field(bandwidth):
    """A detector fitted on Gaussian rows with its final network swapped for the exact field of
    the standardised training law (solved by dopri5), and test rows."""
    detector = detector_with(FAST, bandwidth=bandwidth, random_state=0).fit(gaussian(200, 20))
    flow = detector.estimator_.set_params(solver="dopri5", atol=1e-10, rtol=1e-10)
    mean = (MEAN - flow.mean_) / flow.scale_
    covariance = COVARIANCE / np.outer(flow.scale_, flow.scale_)
    flow.model_ = ExactGaussianVelocity(mean, covariance)
    return detector, gaussian(50, 21) + np.random.default_rng(22).normal(size=(50, 2))


@pytest.mark.parametrize("bandwidth", [0.0, 0.3, 1.0, 2.5])
def test_bandwidth_blurs_the_density_exactly(bandwidth):
    detector, X_test = with_exact_field(bandwidth)
    np.testing.assert_allclose(
        detector.score_samples(X_test), blurred_truth(detector, X_test, bandwidth), atol=1e-6
    )


def test_trained_flow_blurs_like_the_truth(fitted):
    X_test = gaussian(1000, 23)
    for bandwidth in (0.5, 1.0, 2.0):
        blurred = fitted.set_params(bandwidth=bandwidth).score_samples(X_test)
        error = np.abs(blurred - blurred_truth(fitted, X_test, bandwidth)).mean()
        assert error < 0.1, (bandwidth, error)
    fitted.set_params(bandwidth=0.0)


def test_bandwidth_beyond_the_paths_reach_is_an_error():
    # the VP path starts from a trace exp(-T(1)/2) of the data: its blur is at most about 150
    detector = detector_with({"path": "vp", **FAST}, bandwidth=1e4)
    with pytest.raises(ValueError, match="bandwidth"):
        detector.fit(gaussian(50, 24))


def test_multi_scale_score_is_the_lowest_standardised_blurred_density():
    # the exact field again: each blurred log-density is a closed form, standardised by the
    # median and interquartile range of the held-out scores of its bandwidth
    bandwidths = (0.0, 0.5, 1.0)
    detector, X_test = with_exact_field(bandwidths)
    standardised = [
        (blurred_truth(detector, X_test, h) - location) / scale
        for h, location, scale in zip(bandwidths, detector.score_location_, detector.score_scale_)
    ]
    np.testing.assert_allclose(
        detector.score_samples(X_test), np.min(standardised, axis=0), atol=1e-6
    )
    np.testing.assert_array_equal(detector.bandwidths_, bandwidths)


def test_one_repeated_bandwidth_gives_the_standardised_single_bandwidth_detector():
    # the threshold rule and the trimming are affine-equivariant: standardising the scores of a
    # single bandwidth changes neither the rows trimmed nor the labels
    X = np.vstack([gaussian(300, 25), MEAN + np.random.default_rng(26).normal(size=(15, 2)) * 4])
    single = detector_with(FAST, bandwidth=0.5, random_state=0).fit(X)
    repeated = detector_with(FAST, bandwidth=[0.5, 0.5], random_state=0).fit(X)
    location, scale = repeated.score_location_[0], repeated.score_scale_[0]
    np.testing.assert_array_equal(repeated.score_location_, [location, location])
    held_out = repeated.held_out_scores_
    assert np.median(held_out) == pytest.approx(0.0, abs=1e-12)
    assert np.subtract(*np.percentile(held_out, [75, 25])) == pytest.approx(1.0)
    np.testing.assert_allclose(held_out, (single.held_out_scores_ - location) / scale)
    np.testing.assert_array_equal(repeated.trimmed_, single.trimmed_)
    X_test = gaussian(100, 27) * 2
    np.testing.assert_allclose(
        repeated.score_samples(X_test), (single.score_samples(X_test) - location) / scale
    )
    np.testing.assert_array_equal(repeated.predict(X_test), single.predict(X_test))


def test_multi_scale_scores_of_far_rows_stay_finite_and_ordered():
    detector = detector_with(SMALL, bandwidth=(0.0, 1.0), random_state=0)
    flow = detector.fit(gaussian(500, 28)).estimator_
    u = np.array([0.6, 0.8])
    far = flow.mean_ + 10.0 ** np.arange(2, 6)[:, None] * u * flow.scale_
    scores = detector.score_samples(far)
    assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) < 0), scores
    np.testing.assert_array_equal(detector.predict(far), -1)


def test_score_is_the_mean_score(fitted):
    X = gaussian(50, 32)
    assert fitted.score(X) == pytest.approx(fitted.score_samples(X).mean())


def test_multi_scale_with_too_few_rows_is_standardised_by_the_final_flow():
    tiny = detector_with(FAST, bandwidth=(0.0, 1.0), random_state=0)
    tiny.fit(gaussian(3, 0))
    assert tiny.held_out_scores_ is None and tiny.score_scale_.shape == (2,)
    assert np.all(np.isfinite(tiny.score_samples(gaussian(5, 1))))


@pytest.mark.parametrize("bandwidth", [[], [[0.5]], [0.5, -1.0], [0.5, np.nan]])
def test_bad_bandwidth_sequences_are_errors(bandwidth):
    with pytest.raises(ValueError, match="bandwidth"):
        detector_with(FAST, bandwidth=bandwidth).fit(gaussian(20, 29))


def test_bandwidths_changed_after_fit_need_a_new_fit():
    detector = detector_with(FAST, bandwidth=(0.0, 1.0), random_state=0)
    detector.fit(gaussian(20, 30)).set_params(bandwidth=(0.0, 2.0))
    with pytest.raises(ValueError, match="fit again"):
        detector.score_samples(gaussian(5, 31))
    # a single bandwidth needs nothing from the fit: it may change
    assert detector.set_params(bandwidth=2.0).score_samples(gaussian(5, 31)).shape == (5,)


def test_refit_with_one_bandwidth_drops_the_multi_scale_standardisation():
    detector = detector_with(FAST, bandwidth=(0.0, 1.0), random_state=0)
    assert detector.fit(gaussian(20, 32)).score_scale_.shape == (2,)
    detector.set_params(bandwidth=0.5).fit(gaussian(20, 32))
    assert not hasattr(detector, "score_location_") and not hasattr(detector, "score_scale_")
    np.testing.assert_allclose(
        detector.score_samples(gaussian(5, 33)),
        detector.estimator_.smoothed_score_samples(gaussian(5, 33), 0.5),
    )


# --------------------------------------------------------------------------------------------------
# contamination and sample weights


@pytest.mark.parametrize("contamination", [0.05, 0.2, 0.5])
def test_float_contamination_flags_that_share_of_training_rows(contamination):
    X = gaussian(300, 5)
    detector = detector_with(FAST, contamination=contamination, random_state=0)
    labels = detector.fit_predict(X)
    assert (labels == -1).sum() == round(contamination * len(X))
    assert detector.trimmed_.sum() == round(contamination * len(X))
    np.testing.assert_array_equal(labels, detector.predict(X))


def test_rows_of_weight_zero_do_not_count():
    X = gaussian(400, 6)
    weight = np.r_[np.ones(200), np.zeros(200)]
    detector = detector_with(FAST, contamination=0.1, random_state=0)
    detector.fit(X, sample_weight=weight)
    assert (detector.predict(X[:200]) == -1).sum() == 20
    assert not detector.trimmed_[200:].any()


def test_auto_threshold_comes_from_held_out_scores(fitted):
    # each training row is scored by the flow fitted on the other half: lower than in-sample
    assert fitted.held_out_scores_.shape == (2000,)
    assert fitted.held_out_scores_.mean() < fitted.score_samples(gaussian(2000, 0)).mean()
    # with fewer than four rows there is no cross-fitting: the final flow's scores set offset_
    tiny = detector_with(FAST, random_state=0).fit(gaussian(3, 0))
    assert tiny.held_out_scores_ is None and not tiny.trimmed_.any()
    assert np.isfinite(tiny.offset_) and tiny.predict(gaussian(3, 1)).shape == (3,)


# --------------------------------------------------------------------------------------------------
# robustness


def test_far_away_rows_get_finite_scores_ordered_by_distance(fitted):
    directions = np.random.default_rng(7).normal(size=(5, 2))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    distances = 10.0 ** np.arange(3, 7)  # standard deviations of the standardised data
    flow = fitted.estimator_
    for u in directions:
        far = flow.mean_ + distances[:, None] * u * flow.scale_
        scores = fitted.score_samples(far)
        assert np.all(np.isfinite(scores))
        assert np.all(np.diff(scores) < 0), scores
        # no saturation: each step of 10x in distance costs about 100x in log-density
        assert np.all(scores[1:] / scores[:-1] > 20)
        np.testing.assert_array_equal(fitted.predict(far), -1)


def test_constant_and_duplicated_columns_do_not_break_the_fit():
    X = gaussian(600, 8)
    X_extra = np.column_stack([X, np.full(len(X), 7.0), X[:, 0], 2.0 * X[:, 1]])
    base = detector_with(SMALL, random_state=0).fit(X)
    extra = detector_with(SMALL, random_state=0).fit(X_extra)
    assert extra.effective_rank_ == base.effective_rank_ == 2
    X_test = gaussian(500, 9)
    X_test_extra = np.column_stack(
        [X_test, np.full(len(X_test), 7.0), X_test[:, 0], 2 * X_test[:, 1]]
    )
    scores = extra.score_samples(X_test_extra)
    assert np.all(np.isfinite(scores))
    # the same rows are flagged, about as often as without the extra columns
    flagged, flagged_base = extra.predict(X_test_extra) == -1, base.predict(X_test) == -1
    assert abs(flagged.mean() - flagged_base.mean()) < 0.03
    assert spearmanr(scores, base.score_samples(X_test)).statistic > 0.9
    # a value never seen in the constant column makes a row less normal
    shifted = X_test_extra.copy()
    shifted[:, 2] = 8.0
    assert np.all(extra.score_samples(shifted) < scores)


def test_gross_outliers_in_the_training_data_are_trimmed():
    """5 % of the training rows 50 standard deviations away: the refit leaves them out and
    recovers the model of clean data, where a single fit of the density is pulled off."""
    clean = gaussian(1000, 10)
    junk = MEAN + 50.0 * np.random.default_rng(11).normal(size=(50, 2))
    X = np.vstack([clean, junk])
    # a fixed budget on all rows: the test is about trimming, not the stopping rule
    budget = {**SMALL, "early_stopping": False}
    detector = detector_with(budget, random_state=0, bandwidth=0.0).fit(X)
    assert detector.trimmed_[len(clean) :].all()
    assert detector.trimmed_[: len(clean)].mean() < 0.02
    # the same density fitted once on all the rows, as the detector's final fit would be
    single = density(random_state=0, **budget).fit(X)
    X_test = gaussian(1000, 12)
    truth = multivariate_normal(MEAN, COVARIANCE).logpdf(X_test)
    error = np.abs(detector.score_samples(X_test) - truth).mean()
    error_single = np.abs(single.score_samples(X_test) - truth).mean()
    assert error < 0.15
    assert error < error_single / 3


# --------------------------------------------------------------------------------------------------
# composition: the estimator, its defaults and the random_state rule


def test_parameters_are_the_estimator_and_the_detectors_own():
    assert FlowMatchingOutlierDetector().get_params() == {
        "estimator": None,
        "contamination": "auto",
        "bandwidth": (0.0, 0.5, 1.0),
        "random_state": None,
    }
    with pytest.raises(TypeError):
        FlowMatchingOutlierDetector(hidden_layer_sizes=(8,))


def test_no_estimator_means_the_documented_density(monkeypatch):
    if FlowMatchingOutlierDetector.__doc__ is not None:  # python -OO strips docstrings
        doc = " ".join(FlowMatchingOutlierDetector.__doc__.split())
        for name, value in DENSITY_DEFAULTS.items():
            assert f"{name}={value!r}".replace("'", '"') in doc, name
    # None fits FlowMatchingDensity(**DENSITY_DEFAULTS); a small budget keeps the test quick
    monkeypatch.setattr(outlier, "DENSITY_DEFAULTS", {**DENSITY_DEFAULTS, **FAST})
    X = gaussian(60, 3)
    default = FlowMatchingOutlierDetector(random_state=4).fit(X)
    assert isinstance(default.estimator_.model_, VelocityMLP)
    assert default.estimator_.get_params() == density(random_state=4, **FAST).get_params()
    explicit = FlowMatchingOutlierDetector(density(**FAST), random_state=4).fit(X)
    np.testing.assert_array_equal(default.score_samples(X), explicit.score_samples(X))


def test_random_state_seeds_the_split_and_every_clone():
    X = gaussian(80, 5)
    detector = detector_with({**FAST, "random_state": 123}, random_state=7).fit(X)
    assert detector.estimator_.random_state == 7  # the estimator's own is replaced
    assert detector.estimator.random_state == 123  # and the parameter is left as given
    same = detector_with(FAST, random_state=7).fit(X)
    np.testing.assert_array_equal(detector.held_out_scores_, same.held_out_scores_)
    np.testing.assert_array_equal(detector.score_samples(X), same.score_samples(X))
    other = detector_with(FAST, random_state=8).fit(X)
    assert not np.array_equal(detector.held_out_scores_, other.held_out_scores_)


def test_grid_search_tunes_the_estimators_hyperparameters():
    X = gaussian(120, 6)
    search = GridSearchCV(
        detector_with(FAST, bandwidth=0.0, random_state=0),
        {"estimator__path": ["linear", "trig"]},
        cv=2,
    ).fit(X)
    assert search.best_params_["estimator__path"] in ("linear", "trig")
    assert search.best_estimator_.estimator_.path == search.best_params_["estimator__path"]


def test_any_density_estimator_plugs_in():
    X, X_test = gaussian(200, 7), gaussian(30, 8)
    kde = KernelDensity(bandwidth=0.3)
    detector = FlowMatchingOutlierDetector(kde, bandwidth=0.0, contamination=0.1).fit(X)
    # no trimmed row shapes the final fit, whose scores are the density's log-density
    kept = KernelDensity(bandwidth=0.3).fit(X[~detector.trimmed_])
    np.testing.assert_allclose(detector.score_samples(X_test), kept.score_samples(X_test))
    assert (detector.predict(X) == -1).mean() == pytest.approx(0.1, abs=0.01)
    # blurring needs smoothed_score_samples, which KernelDensity has not
    with pytest.raises(TypeError, match="smoothed_score_samples"):
        FlowMatchingOutlierDetector(kde).fit(X)
    with pytest.raises(TypeError, match="sample_weight"):
        FlowMatchingOutlierDetector(DensityWithoutWeights(), bandwidth=0.0).fit(
            X, sample_weight=np.ones(len(X))
        )


class DensityWithoutWeights(KernelDensity):
    """A density estimator whose fit takes no sample_weight."""

    def fit(self, X, y=None):
        return super().fit(X)


def test_reproducible():
    # pickle, joblib and skflow.save round trips: tests/test_persistence.py
    X, X_test = gaussian(200, 13), gaussian(20, 14)
    a = detector_with(FAST, contamination=0.1, random_state=1).fit(X)
    b = detector_with(FAST, contamination=0.1, random_state=1).fit(X)
    np.testing.assert_array_equal(a.decision_function(X_test), b.decision_function(X_test))


def test_dataframe_feature_names_survive_the_refit():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(gaussian(200, 15), columns=["height", "weight"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names" from fit
        detector = detector_with(FAST, contamination=0.1, random_state=0).fit(X)
        assert detector.predict(X).shape == (200,)
    assert detector.trimmed_.any()  # the refit ran
    assert list(detector.feature_names_in_) == ["height", "weight"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_end_to_end_and_loads_on_cpu():
    junk = MEAN + 50.0 * np.random.default_rng(17).normal(size=(20, 2))
    X = np.vstack([gaussian(1000, 16), junk])
    detector = detector_with({"device": "cuda", **SMALL}, random_state=0).fit(X)
    assert detector.trimmed_[1000:].all()
    X_test = gaussian(500, 18)
    truth = blurred_truth(detector, X_test, detector.bandwidth)
    assert np.abs(detector.score_samples(X_test) - truth).mean() < 0.15
    on_cpu = pickle.loads(pickle.dumps(detector))
    on_cpu.estimator_.set_params(device="cpu")
    np.testing.assert_allclose(
        on_cpu.decision_function(X_test), detector.decision_function(X_test), atol=1e-8
    )


# --------------------------------------------------------------------------------------------------
# scikit-learn's estimator checks

EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "training draws random base points, times and minibatches, so a weight of 2 equals a "
        "duplicated row only in expectation, not to floating-point precision"
    ),
}


AUTO_FLAGS_NO_TRAINING_ROW = (
    'contamination="auto" is a 1 % chi-squared test fitted to held-out training scores; on the '
    "check's 300 rows of three compact Gaussian blobs no training row lies beyond it, so predict "
    "returns +1 only, where the check wants both labels (the instance with a float contamination "
    "passes both checks)"
)


def _expected_failures(estimator):
    if estimator.contamination == "auto":
        return {
            **EXPECTED_FAILURES,
            "check_outliers_train": AUTO_FLAGS_NO_TRAINING_ROW,
            "check_outliers_fit_predict": AUTO_FLAGS_NO_TRAINING_ROW,
        }
    return EXPECTED_FAILURES


@parametrize_with_checks(
    [
        detector_with(FAST),
        detector_with({"path": "trig", "coupling": "ot", **FAST}, contamination=0.1),
    ]
    + ([detector_with({"device": "cuda", **FAST})] if torch.cuda.is_available() else []),
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)

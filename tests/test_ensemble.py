"""SubspaceOutlierEnsemble, checked against a closed form and scikit-learn's conventions.

- With Gaussian members (GaussianMixture with one component), the score is the mean of the
  standardised Gaussian log-densities of the feature subsets, computed here with scipy.
- With flow members, the standardisation comes from their scores of their training rows,
  ``"auto"`` from their thresholds, and a float ``contamination`` flags exactly that share of the
  training rows; PyOD's names follow the training scores.
- The subsets: their size (``max_features``), reproducibility, and parallel fits equal to serial.
- Clear errors, weights, persistence and scikit-learn's estimator checks.
"""

import math
import pickle

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import LocalOutlierFactor
from sklearn.utils.estimator_checks import parametrize_with_checks

import skflow._trainer as trainer
from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector, SubspaceOutlierEnsemble
from skflow.ensemble import subspace_size
from skflow.outlier import DENSITY_DEFAULTS

from _shared import FAST


def correlated(n, d, seed):
    """Rows of a correlated d-dimensional Gaussian (random factor), in units far from standard."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ factor.T * 50.0 + 7.0


def flow_detector(**params):
    """The default member with a small budget."""
    return FlowMatchingOutlierDetector(
        FlowMatchingDensity(**{**DENSITY_DEFAULTS, **FAST, **params})
    )


FLOW = flow_detector()


@pytest.fixture(scope="module")
def flow_ensemble():
    X = correlated(120, 6, 0)
    return SubspaceOutlierEnsemble(FLOW, n_estimators=3, random_state=0).fit(X), X


# --------------------------------------------------------------------------------------------------
# the score against a closed form


def test_gaussian_members_give_the_mean_standardised_gaussian_log_density():
    X, X_new = correlated(300, 7, 1), correlated(50, 7, 2)
    ensemble = SubspaceOutlierEnsemble(
        GaussianMixture(), n_estimators=4, contamination=0.1, random_state=3
    ).fit(X)
    standardised = []
    for columns in ensemble.estimators_features_:
        # the maximum-likelihood Gaussian of the subset, scored by scipy
        law = multivariate_normal(X[:, columns].mean(axis=0), np.cov(X[:, columns].T, bias=True))
        train, new = law.logpdf(X[:, columns]), law.logpdf(X_new[:, columns])
        q25, q50, q75 = np.percentile(train, [25, 50, 75])
        standardised.append((new - q50) / (q75 - q25))
    expected = np.mean(standardised, axis=0)
    np.testing.assert_allclose(ensemble.score_samples(X_new), expected, atol=1e-6)


def test_subspace_size_is_the_rule_of_rotated_bagging():
    # 2 + ceil(sqrt(d) / 2), at most d
    expected = {1: 1, 2: 2, 3: 3, 4: 3, 5: 4, 13: 4, 16: 4, 17: 5, 30: 5, 64: 6, 100: 7}
    assert {d: subspace_size(d) for d in expected} == expected
    for d in range(1, 200):
        assert subspace_size(d) == min(d, 2 + math.ceil(math.sqrt(d) / 2))


# --------------------------------------------------------------------------------------------------
# flow members: standardisation, thresholds


def test_flow_members_are_standardised_by_their_training_scores(flow_ensemble):
    ensemble, X = flow_ensemble
    training = np.column_stack(
        [
            member.score_samples(X[:, columns])
            for member, columns in zip(ensemble.estimators_, ensemble.estimators_features_)
        ]
    )
    q25, q50, q75 = np.percentile(training, [25, 50, 75], axis=0)
    np.testing.assert_allclose(ensemble.score_location_, q50)
    np.testing.assert_allclose(ensemble.score_scale_, q75 - q25)
    np.testing.assert_allclose(
        ensemble.decision_scores_, -((training - q50) / (q75 - q25)).mean(axis=1)
    )
    np.testing.assert_allclose(ensemble.decision_scores_, -ensemble.score_samples(X))
    np.testing.assert_array_equal(ensemble.labels_, (ensemble.predict(X) == -1).astype(int))
    assert ensemble.threshold_ == -ensemble.offset_
    # new rows: each member scores its own columns
    X_new = correlated(20, 6, 5)
    by_hand = np.mean(
        [
            (member.score_samples(X_new[:, columns]) - m) / w
            for member, columns, m, w in zip(
                ensemble.estimators_, ensemble.estimators_features_, q50, q75 - q25
            )
        ],
        axis=0,
    )
    np.testing.assert_allclose(ensemble.score_samples(X_new), by_hand)


def test_auto_threshold_is_the_mean_standardised_member_threshold(flow_ensemble):
    ensemble, _ = flow_ensemble
    offsets = np.array([member.offset_ for member in ensemble.estimators_])
    expected = np.mean((offsets - ensemble.score_location_) / ensemble.score_scale_)
    assert ensemble.offset_ == pytest.approx(expected)


def test_members_get_the_ensembles_contamination_and_their_own_seeds(flow_ensemble):
    ensemble, _ = flow_ensemble
    assert {member.contamination for member in ensemble.estimators_} == {"auto"}
    seeds = [member.random_state for member in ensemble.estimators_]
    assert len(set(seeds)) == len(seeds) and all(isinstance(s, int) for s in seeds)
    # the template is left unfitted and unchanged
    assert repr(FLOW) == repr(flow_detector())
    assert not hasattr(FLOW, "offset_")

    fitted = SubspaceOutlierEnsemble(FLOW, n_estimators=2, contamination=0.2, random_state=0)
    fitted.fit(correlated(60, 4, 0))
    assert {member.contamination for member in fitted.estimators_} == {0.2}


@pytest.mark.parametrize("contamination", [0.05, 0.2])
def test_float_contamination_flags_that_share_of_training_rows(contamination):
    X = correlated(100, 5, 4)
    ensemble = SubspaceOutlierEnsemble(
        FLOW, n_estimators=2, contamination=contamination, random_state=0
    ).fit(X)
    assert (ensemble.predict(X) == -1).sum() == round(contamination * X.shape[0])


def test_a_far_row_is_an_outlier_and_scores_lowest(flow_ensemble):
    ensemble, X = flow_ensemble
    far = X.mean(axis=0) + 20 * X.std(axis=0)
    scores = ensemble.score_samples(np.vstack([X[:10], far]))
    assert scores[-1] < scores[:-1].min() and ensemble.predict(far[None])[0] == -1


def test_scores_do_not_depend_on_the_units():
    # the members standardise their features and the ensemble their scores: X * 1e8 scores alike
    X, X_new = correlated(80, 5, 6), correlated(20, 5, 7)
    ensemble = SubspaceOutlierEnsemble(FLOW, n_estimators=2, random_state=0)
    unscaled = ensemble.fit(X).score_samples(X_new)
    scaled = clone(ensemble).fit(X * 1e8).score_samples(X_new * 1e8)
    np.testing.assert_allclose(scaled, unscaled, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# the subsets


@pytest.mark.parametrize(
    ("max_features", "size"), [("auto", 4), (1, 1), (5, 5), (0.5, 2), (0.01, 1), (1.0, 5)]
)
def test_max_features_sets_the_subset_size(max_features, size):
    ensemble = SubspaceOutlierEnsemble(
        IsolationForest(n_estimators=5), n_estimators=4, max_features=max_features, random_state=0
    ).fit(correlated(40, 5, 0))
    assert ensemble.max_features_ == size
    for columns in ensemble.estimators_features_:
        assert columns.shape == (size,) and np.all(np.diff(columns) > 0)
        assert 0 <= columns.min() and columns.max() < 5


def test_subsets_differ_and_are_reproducible():
    X = correlated(40, 30, 0)
    make = lambda seed: SubspaceOutlierEnsemble(  # noqa: E731
        IsolationForest(n_estimators=5), n_estimators=5, random_state=seed
    ).fit(X)
    first, again, other = make(0), make(0), make(1)
    subsets = [tuple(c) for c in first.estimators_features_]
    assert len(set(subsets)) == len(subsets)
    assert subsets == [tuple(c) for c in again.estimators_features_]
    assert subsets != [tuple(c) for c in other.estimators_features_]
    np.testing.assert_array_equal(first.score_samples(X), again.score_samples(X))


def test_parallel_fit_and_score_equal_serial():
    X = correlated(80, 6, 0)
    serial = SubspaceOutlierEnsemble(FLOW, n_estimators=2, random_state=0).fit(X)
    parallel = clone(serial).set_params(n_jobs=2).fit(X)
    np.testing.assert_allclose(parallel.score_samples(X), serial.score_samples(X), rtol=1e-6)
    assert parallel.offset_ == pytest.approx(serial.offset_, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# errors, weights, persistence


def test_more_features_than_the_data_have_is_an_error():
    with pytest.raises(ValueError, match="max_features=6 is more than the 5 features"):
        SubspaceOutlierEnsemble(FLOW, max_features=6).fit(correlated(20, 5, 0))


def test_auto_needs_members_with_a_threshold():
    with pytest.raises(TypeError, match='contamination="auto".*GaussianMixture'):
        SubspaceOutlierEnsemble(GaussianMixture()).fit(correlated(20, 5, 0))


def test_weights_need_members_that_take_them():
    X = correlated(30, 4, 0)
    with pytest.raises(TypeError, match="LocalOutlierFactor does not accept sample_weight"):
        SubspaceOutlierEnsemble(LocalOutlierFactor(novelty=True)).fit(X, sample_weight=np.ones(30))
    with pytest.raises(ValueError, match="at least one non-zero"):
        SubspaceOutlierEnsemble(FLOW).fit(X, sample_weight=np.zeros(30))


def test_rows_of_weight_zero_do_not_count():
    X = correlated(100, 4, 0)
    weight = np.ones(100)
    weight[:10] = 0.0
    ensemble = SubspaceOutlierEnsemble(FLOW, n_estimators=2, contamination=0.1, random_state=0)
    ensemble.fit(X, sample_weight=weight)
    assert np.all(np.isnan(ensemble.decision_scores_[:10]))
    assert np.all(np.isfinite(ensemble.decision_scores_[10:]))
    assert (ensemble.predict(X[10:]) == -1).sum() == 9  # 10 % of the 90 rows that count


def test_keyboard_interrupt_stops_the_fit_and_keeps_the_ensemble(monkeypatch):
    X = correlated(80, 4, 0)
    ensemble = SubspaceOutlierEnsemble(FLOW, n_estimators=2, contamination=0.1, random_state=0)
    ensemble.fit(X)
    before = ensemble.score_samples(X)
    calls = {"n": 0}
    weighted_mse = trainer._weighted_mse

    def interrupted_in_the_flow_of_the_first_member(*args):
        # the first member's flow (80 rows) takes 2 calls an epoch. Interrupted in its second
        # epoch, the member keeps its first epoch's weights, and the ensemble must stop rather
        # than go on to the second member
        calls["n"] += 1
        if calls["n"] == 2 + 1:
            raise KeyboardInterrupt
        return weighted_mse(*args)

    monkeypatch.setattr(trainer, "_weighted_mse", interrupted_in_the_flow_of_the_first_member)
    with (
        pytest.warns(RuntimeWarning, match="interrupted"),
        pytest.raises(KeyboardInterrupt, match="interrupted while fitting a member"),
    ):
        ensemble.fit(X + 1.0)
    assert calls["n"] == 2 + 1 + 1  # and the check of the kept weights: no second member
    np.testing.assert_array_equal(ensemble.score_samples(X), before)


def test_pickle_round_trip(flow_ensemble):
    ensemble, X = flow_ensemble
    loaded = pickle.loads(pickle.dumps(ensemble))
    np.testing.assert_array_equal(loaded.score_samples(X), ensemble.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X), ensemble.predict(X))


# --------------------------------------------------------------------------------------------------
# scikit-learn's checks


WEIGHTS_ARE_NOT_DUPLICATES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "the flow members draw random base points, times and minibatches, so a weight of 2 "
        "equals a duplicated row only in expectation, not to floating-point precision"
    ),
}
ISOLATION_FOREST_FAILS_THE_CHECK = {
    "check_sample_weight_equivalence_on_dense_data": (
        "IsolationForest fails it on its own: with the check's many zero weights its weighted "
        'draw of rows raises "Fewer non-zero entries in p than size"'
    ),
}


def _expected_failures(ensemble):
    if isinstance(ensemble.estimator, IsolationForest):
        return ISOLATION_FOREST_FAILS_THE_CHECK
    return WEIGHTS_ARE_NOT_DUPLICATES


@parametrize_with_checks(
    [
        SubspaceOutlierEnsemble(FLOW, n_estimators=2, contamination=0.1),
        SubspaceOutlierEnsemble(IsolationForest(n_estimators=5), max_features=0.5, n_estimators=3),
    ]
    + (
        [SubspaceOutlierEnsemble(flow_detector(device="cuda"), n_estimators=2)]
        if torch.cuda.is_available()
        else []
    ),
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)

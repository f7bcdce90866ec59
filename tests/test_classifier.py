"""Tests of :class:`skflow.FlowMatchingClassifier`, the class-conditional flow.

What is tested against what
---------------------------
* Two Gaussian classes of unequal priors, in units far from standard: ``predict_proba`` against
  the Bayes posterior of the true Gaussians in closed form, ``predict_joint_log_proba`` and
  ``score_samples`` against the true log-densities (which checks the standardisation's Jacobian
  and the prior), and ``class_prior_`` against the class frequencies.
* The stacked rows-by-classes evaluation against one ODE per class computed directly with
  :func:`skflow.likelihood.flow_log_likelihood` on the fitted network given that class.
* Bayes' rule: rows of ``predict_proba`` sum to 1 and equal ``exp(predict_log_proba)``;
  ``score_samples`` is the log-sum-exp of the joint; ``predict`` is the argmax.
* ``sample``: rows drawn for given labels lie near their class's mean, labels drawn from the prior
  follow it, the same ``random_state`` gives the same draws; unknown labels are a clear error.
* String labels and three classes, weighted class priors, reproducibility, warm starts, clear
  errors (one class, wrong feature count, continuous targets), Pipeline, GridSearchCV,
  CalibratedClassifierCV, and a save/load round trip.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skflow import FlowMatchingClassifier, load, save
from skflow.likelihood import flow_log_likelihood, standard_normal_log_density
from skflow.networks import ConditionedVelocity

from _shared import FAST, SMALL

MEANS = np.array([[10.0, -5.0], [13.0, -5.5]])
COVARIANCE = np.array([[4.0, 0.3], [0.3, 0.25]])
PRIOR = np.array([2 / 3, 1 / 3])


def two_gaussians(n, seed):
    """``n`` rows of two Gaussian classes of one covariance, in proportions ``PRIOR``."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) >= round(PRIOR[0] * n)).astype(int)
    factor = np.linalg.cholesky(COVARIANCE)
    X = MEANS[y] + rng.standard_normal((n, 2)) @ factor.T
    return X, y


def true_log_densities(X):
    """``log p(x | c)`` of the true Gaussians, shape (n, 2)."""
    return np.column_stack([multivariate_normal(m, COVARIANCE).logpdf(X) for m in MEANS])


@pytest.fixture(scope="module")
def gaussian_classifier():
    X, y = two_gaussians(900, seed=0)
    return FlowMatchingClassifier(**SMALL, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def test_rows():
    X, _ = two_gaussians(200, seed=1)
    return X


def test_posterior_is_close_to_the_bayes_posterior(gaussian_classifier, test_rows):
    log_joint = true_log_densities(test_rows) + np.log(PRIOR)
    bayes = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    proba = gaussian_classifier.predict_proba(test_rows)
    assert np.abs(proba - bayes).mean() < 0.04
    assert np.abs(proba - bayes).max() < 0.2
    # the decision agrees with Bayes' rule wherever the Bayes posterior is not close to a tie
    clear = np.abs(bayes[:, 0] - 0.5) > 0.15
    assert clear.sum() > 150
    assert (proba[clear].argmax(axis=1) == bayes[clear].argmax(axis=1)).all()


def test_densities_are_those_of_the_true_classes(gaussian_classifier, test_rows):
    np.testing.assert_allclose(gaussian_classifier.class_prior_, PRIOR, atol=1e-3)
    log_joint = gaussian_classifier.predict_joint_log_proba(test_rows)
    true_joint = true_log_densities(test_rows) + np.log(PRIOR)
    # rows of each class, where its density is well sampled
    _, y = two_gaussians(200, seed=1)
    own = log_joint[np.arange(y.size), y] - true_joint[np.arange(y.size), y]
    assert abs(np.median(own)) < 0.15
    log_density = gaussian_classifier.score_samples(test_rows)
    assert abs(np.median(log_density - logsumexp(true_joint, axis=1))) < 0.15


def test_the_stacked_evaluation_is_one_ode_per_class(gaussian_classifier, test_rows):
    clf, X = gaussian_classifier, test_rows[:7]
    x = torch.as_tensor((X - clf.mean_) / clf.scale_)
    network = copy.deepcopy(clf.model_).double()
    solver = {"method": clf.solver, "n_steps": clf.n_steps, "step_exponent": clf.step_exponent}
    columns = []
    for label in range(2):
        field = ConditionedVelocity(network, torch.tensor(label))
        with torch.no_grad():
            z, delta = flow_log_likelihood(field, x, 0.0, 1.0, **solver)
        log_density = standard_normal_log_density(z) + delta - np.log(clf.scale_).sum()
        columns.append(log_density.numpy() + np.log(clf.class_prior_[label]))
    np.testing.assert_allclose(
        clf.predict_joint_log_proba(X), np.column_stack(columns), rtol=1e-9, atol=1e-9
    )


def test_probabilities_follow_bayes_rule(gaussian_classifier, test_rows):
    clf = gaussian_classifier
    log_joint = clf.predict_joint_log_proba(test_rows)
    proba = clf.predict_proba(test_rows)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(proba, np.exp(clf.predict_log_proba(test_rows)), rtol=1e-12)
    np.testing.assert_allclose(
        clf.predict_log_proba(test_rows),
        log_joint - logsumexp(log_joint, axis=1, keepdims=True),
        rtol=1e-12,
    )
    np.testing.assert_allclose(clf.score_samples(test_rows), logsumexp(log_joint, axis=1))
    np.testing.assert_array_equal(clf.predict(test_rows), clf.classes_[proba.argmax(axis=1)])


def test_samples_of_given_labels_lie_near_their_class(gaussian_classifier):
    labels = np.repeat([1, 0], 300)
    X, y = gaussian_classifier.sample(y=labels, random_state=0)
    assert X.shape == (600, 2)
    np.testing.assert_array_equal(y, labels)
    for label in (0, 1):
        rows = X[y == label]
        # the mean (of 300 rows: standard error 0.06 sd) nearer its class's than the other's
        std = np.sqrt(np.diag(COVARIANCE))
        assert np.all(np.abs(rows.mean(axis=0) - MEANS[label]) < 0.35 * std)
        np.testing.assert_allclose(rows.std(axis=0), std, rtol=0.2)
    again, _ = gaussian_classifier.sample(y=labels, random_state=0)
    np.testing.assert_array_equal(X, again)


def test_labels_drawn_without_y_follow_the_prior(gaussian_classifier):
    X, y = gaussian_classifier.sample(3000, random_state=1)
    assert X.shape == (3000, 2) and y.shape == (3000,)
    share = np.mean(y == 0)
    assert abs(share - PRIOR[0]) < 4 * np.sqrt(PRIOR[0] * PRIOR[1] / 3000)


def test_unknown_labels_in_sample_are_a_clear_error(gaussian_classifier):
    with pytest.raises(ValueError, match=r"labels \[7\] that are not classes"):
        gaussian_classifier.sample(y=[0, 7, 1])
    with pytest.raises(ValueError, match="labels \\['a'\\]"):
        gaussian_classifier.sample(y=["a"])


def three_string_classes(n_per_class, seed):
    rng = np.random.default_rng(seed)
    centres = {"setosa": (0.0, 0.0), "versicolor": (6.0, 0.0), "virginica": (0.0, 6.0)}
    X = np.vstack([rng.normal(c, 1.0, (n_per_class, 2)) for c in centres.values()])
    return X, np.repeat(list(centres), n_per_class)


def test_string_labels_and_three_classes():
    X, y = three_string_classes(60, seed=0)
    clf = FlowMatchingClassifier(**{**FAST, "max_iter": 40}, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["setosa", "versicolor", "virginica"])
    assert clf.network_spec_.n_classes == 3
    X_test, y_test = three_string_classes(30, seed=1)
    assert clf.score(X_test, y_test) > 0.95
    assert clf.predict_proba(X_test).shape == (90, 3)
    _, labels = clf.sample(y=["virginica", "setosa"], random_state=0)
    np.testing.assert_array_equal(labels, ["virginica", "setosa"])


def test_sample_weight_sets_the_prior_and_the_fit():
    X, y = three_string_classes(20, seed=0)
    weight = np.linspace(0.5, 2.0, y.size)
    clf = FlowMatchingClassifier(**FAST, random_state=0).fit(X, y, sample_weight=weight)
    totals = np.array([weight[y == c].sum() for c in clf.classes_])
    np.testing.assert_allclose(clf.class_prior_, totals / totals.sum(), rtol=1e-12)
    unweighted = FlowMatchingClassifier(**FAST, random_state=0).fit(X, y)
    assert not np.allclose(clf.predict_proba(X), unweighted.predict_proba(X))
    # a class of zero weight has prior 0 and is never predicted
    weight = np.where(y == "virginica", 0.0, 1.0)
    clf.fit(X, y, sample_weight=weight)
    assert clf.class_prior_[2] == 0.0
    assert np.all(clf.predict_proba(X)[:, 2] == 0.0)
    assert "virginica" not in clf.predict(X)


def test_same_random_state_same_model_and_outputs():
    X, y = three_string_classes(20, seed=0)
    first = FlowMatchingClassifier(**FAST, random_state=3).fit(X, y)
    second = FlowMatchingClassifier(**FAST, random_state=3).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    np.testing.assert_array_equal(
        first.sample(5, random_state=0)[0], second.sample(5, random_state=0)[0]
    )
    other = FlowMatchingClassifier(**FAST, random_state=4).fit(X, y)
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


@pytest.mark.parametrize("y", [np.zeros(20), np.array([0.0] * 19 + [1.0])])
def test_one_class_of_positive_weight_is_an_error(y):
    X = np.random.default_rng(0).normal(size=(20, 2))
    weight = None if y.sum() == 0 else (y == 0).astype(float)
    with pytest.raises(ValueError, match="at least two classes"):
        FlowMatchingClassifier(**FAST).fit(X, y, sample_weight=weight)


def test_bad_input_is_a_clear_error():
    X, y = three_string_classes(10, seed=0)
    clf = FlowMatchingClassifier(**FAST, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="3 features"):
        clf.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Unknown label type"):
        FlowMatchingClassifier(**FAST).fit(X, np.linspace(0, 1, y.size))


def test_warm_start_continues_and_needs_the_same_classes():
    X, y = three_string_classes(20, seed=0)
    clf = FlowMatchingClassifier(**FAST, warm_start=True, random_state=0).fit(X, y)
    mean, before = clf.mean_, clf.predict_proba(X)
    # a step too small to move the weights: the warm fit starts from the fitted network
    clf.set_params(max_iter=1, learning_rate_init=1e-9, early_stopping=False).fit(X + 1.0, y)
    np.testing.assert_array_equal(clf.mean_, mean)  # the standardisation is kept
    np.testing.assert_allclose(clf.predict_proba(X), before, atol=1e-5)
    cold = FlowMatchingClassifier(**FAST, random_state=1).fit(X, y).predict_proba(X)
    assert np.abs(cold - before).max() > 1e-3
    model = clf.model_
    with pytest.raises(ValueError, match="warm_start: y has the classes"):
        clf.fit(X[y != "setosa"], y[y != "setosa"])
    assert clf.model_ is model and clf.classes_.size == 3  # left as it was


def test_imbalanced_and_tiny_classes_fit_with_early_stopping():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (57, 2)), rng.normal(5, 1, (3, 2))])
    y = np.repeat([0, 1], [57, 3])
    FlowMatchingClassifier(**FAST, random_state=0).fit(X, y)  # stratified: 1 of 6 held out
    # one row of a class cannot be stratified: the split falls back to a random one
    FlowMatchingClassifier(**FAST, random_state=0).fit(X[:58], y[:58])


def test_hutchinson_divergence_and_coupling_within_classes():
    X, y = three_string_classes(20, seed=0)
    for params in ({"divergence": "hutchinson"}, {"coupling": "ot"}, {"coupling": "sinkhorn"}):
        clf = FlowMatchingClassifier(**FAST, **params, random_state=0).fit(X, y)
        proba = clf.predict_proba(X)
        assert np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_pipeline_grid_search_and_calibration():
    X, y = three_string_classes(20, seed=0)
    clf = FlowMatchingClassifier(**FAST, random_state=0)
    pipeline = make_pipeline(StandardScaler(), clf).fit(X, y)
    assert pipeline.predict_proba(X).shape == (60, 3)
    search = GridSearchCV(
        clf,
        {"coupling": ["independent", "ot"]},
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
    ).fit(X, y)
    assert search.best_params_["coupling"] in ("independent", "ot")
    calibrated = CalibratedClassifierCV(clf, cv=2).fit(X, y)
    np.testing.assert_allclose(calibrated.predict_proba(X).sum(axis=1), 1.0)


def test_save_and_load_give_identical_outputs(tmp_path):
    X, y = three_string_classes(20, seed=0)
    clf = FlowMatchingClassifier(**FAST, n_fourier_features=4, random_state=0).fit(X, y)
    save(clf, tmp_path / "clf.skflow")
    loaded = load(tmp_path / "clf.skflow")
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(
        loaded.sample(4, random_state=0)[0], clf.sample(4, random_state=0)[0]
    )

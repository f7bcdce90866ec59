"""Density estimation, outlier detection and classification on rows with missing cells
(``allow_missing``): the marginal log-density against a closed form and against the flow of the
observed cells integrated by hand, mixed tables with holes, the detector's scale for rows with
holes, the classifier's posterior given the observed features, and clear errors."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import multivariate_normal, norm
from sklearn.model_selection import GridSearchCV
from sklearn.utils import get_tags

from skflow import (
    FlowMatchingClassifier,
    FlowMatchingDensity,
    FlowMatchingOutlierDetector,
    load,
    save,
)

from _shared import COVARIANCE, FAST, MEAN, SMALL, column_kinds, gaussian, with_holes


@pytest.fixture(scope="module")
def gaussian_flow():
    X = with_holes(gaussian(2000, 0), 0.3, 1)
    return FlowMatchingDensity(allow_missing=True, random_state=0, **SMALL).fit(X)


def test_a_row_with_holes_gets_the_marginal_log_density_of_its_observed_cells(gaussian_flow):
    X = gaussian(400, 5)
    for seen in (0, 1):
        rows = X.copy()
        rows[:, 1 - seen] = np.nan
        expected = norm(MEAN[seen], np.sqrt(COVARIANCE[seen, seen])).logpdf(X[:, seen])
        got = gaussian_flow.score_samples(rows)
        assert abs(np.mean(got - expected)) < 0.1, seen
        assert np.corrcoef(got, expected)[0, 1] > 0.95, seen
    complete = gaussian_flow.score_samples(X)
    expected = multivariate_normal(MEAN, COVARIANCE).logpdf(X)
    assert abs(np.mean(complete - expected)) < 0.15
    # nothing observed: the law of no cells, probability one
    assert gaussian_flow.score_samples([[np.nan, np.nan]])[0] == pytest.approx(0.0, abs=1e-9)


def test_samples_follow_the_joint_law(gaussian_flow):
    rows = gaussian_flow.sample(3000, random_state=0)
    assert not np.isnan(rows).any()
    np.testing.assert_allclose(rows.mean(axis=0), MEAN, atol=0.15)
    np.testing.assert_allclose(np.cov(rows.T), COVARIANCE, atol=0.2)


def _log_density_by_hand(network, row, observed, n_steps=400):
    """The log-density of the ``observed`` standardised coordinates of ``row`` under the flow
    that the masked ``network`` gives them, integrated by RK4 backwards from t = 1 to 0 in those
    coordinates alone, with the divergence by autograd."""
    d, o = row.shape[0], np.flatnonzero(observed)
    condition = torch.tensor(np.concatenate([np.zeros(d), observed]), dtype=torch.float64)[None]

    def field(t, y):
        x = torch.zeros(1, d, dtype=torch.float64)
        x[:, o] = y
        return network(t.reshape(1), x, condition)[:, o]

    def augmented(t, state):
        y = state[:, :-1].detach().requires_grad_(True)
        with torch.enable_grad():
            v = field(t, y)
            divergence = sum(
                torch.autograd.grad(v[:, i].sum(), y, retain_graph=True)[0][:, i]
                for i in range(len(o))
            )
        return torch.cat([v.detach(), divergence.detach()[:, None]], dim=1)

    state = torch.tensor(np.append(row[o], 0.0), dtype=torch.float64)[None]
    h = -1.0 / n_steps
    for k in range(n_steps):
        t = torch.tensor(1.0 + k * h, dtype=torch.float64)
        k1 = augmented(t, state)
        k2 = augmented(t + h / 2, state + h / 2 * k1)
        k3 = augmented(t + h / 2, state + h / 2 * k2)
        k4 = augmented(t + h, state + h * k3)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    z, integral = state[0, :-1].numpy(), -state[0, -1].item()  # integral of div from 0 to 1
    return multivariate_normal(np.zeros(len(o)), np.eye(len(o))).logpdf(z) - integral


def test_the_score_of_a_row_with_holes_is_the_flow_of_its_observed_cells_alone():
    rng = np.random.default_rng(0)
    X = with_holes(rng.normal(size=(300, 3)) @ rng.normal(size=(3, 3)) + 2.0, 0.3, 1)
    flow = FlowMatchingDensity(allow_missing=True, random_state=0, **FAST).fit(X)
    flow.set_params(n_steps=200, step_exponent=1.0)
    network = copy.deepcopy(flow.model_).double()
    for row in ([0.5, np.nan, 3.0], [np.nan, np.nan, 1.0], [1.0, 2.0, 3.0]):
        row = np.asarray(row)
        observed = ~np.isnan(row)
        standardised = np.where(observed, (row - flow.mean_) / flow.scale_, 0.0)
        expected = _log_density_by_hand(network, standardised, observed)
        expected -= np.log(flow.scale_[observed]).sum()
        assert flow.score_samples(row[None])[0] == pytest.approx(expected, abs=1e-4), row


def test_transform_leaves_missing_coordinates_nan_and_inverts_the_observed_ones(gaussian_flow):
    X = gaussian(50, 3)
    Z = gaussian_flow.transform(X)
    np.testing.assert_allclose(gaussian_flow.inverse_transform(Z), X, atol=1e-3)
    holes = X.copy()
    holes[::2, 0] = np.nan
    Z = gaussian_flow.transform(holes)
    np.testing.assert_array_equal(np.isnan(Z), np.isnan(holes))


def test_a_mixed_table_with_holes():
    rng = np.random.default_rng(0)
    n = 400
    table = pd.DataFrame(
        {
            "height": rng.normal(170, 10, n),
            "children": pd.array(rng.poisson(2, n), dtype="Int64"),
            "city": pd.Series(rng.choice(["Oslo", "Lima", "Pune"], n), dtype="category"),
            "share": rng.uniform(0, 1, n),
        }
    )
    holes = table.copy()
    for column in holes.columns:
        holes.loc[rng.random(n) < 0.2, column] = None
    flow = FlowMatchingDensity(
        allow_missing=True, bounds={"share": "unit"}, random_state=0, **FAST
    ).fit(holes)
    assert column_kinds(flow) == [
        "continuous",
        "integer",
        "categorical",
        "continuous",
    ]
    scores = flow.score_samples(holes)
    assert np.isfinite(scores).all()
    rows = flow.sample(100, random_state=0)
    assert not rows.isna().any().any() and set(rows["city"]) <= {"Oslo", "Lima", "Pune"}
    assert rows["share"].between(0, 1).all()
    Z = flow.transform(holes.iloc[:20])
    city_missing = holes["city"].iloc[:20].isna().to_numpy()
    assert np.isnan(Z[:, 2:5]).all(axis=1).tolist() == city_missing.tolist()  # one-hot, 3 wide


def test_the_flow_matching_loss_counts_only_observed_cells(gaussian_flow):
    row = gaussian(1, 7)
    holes = row.copy()
    holes[0, 1] = np.nan
    full = gaussian_flow.flow_matching_loss(row, random_state=0)
    part = gaussian_flow.flow_matching_loss(holes, random_state=0)
    assert np.isfinite(part).all() and (part > 0).all()
    assert not np.allclose(full, part)


def test_the_input_is_never_mutated():
    X = with_holes(gaussian(100, 0), 0.3, 1)
    before = X.copy()
    flow = FlowMatchingDensity(allow_missing=True, random_state=0, **FAST).fit(X)
    flow.score_samples(X)
    flow.transform(X)
    FlowMatchingOutlierDetector(allow_missing=True, random_state=0).fit(X).score_samples(X)
    np.testing.assert_array_equal(X, before)


def test_the_tags_follow_the_parameter():
    assert get_tags(FlowMatchingDensity(allow_missing=True)).input_tags.allow_nan
    assert not get_tags(FlowMatchingDensity()).input_tags.allow_nan
    assert get_tags(FlowMatchingOutlierDetector(allow_missing=True)).input_tags.allow_nan


@pytest.mark.parametrize(
    "params, X, match",
    [
        ({}, [[1.0, np.nan], [2.0, 1.0], [0.0, 3.0]], "NaN"),
        ({"allow_missing": True}, [[1.0, np.nan], [2.0, np.nan], [0.0, np.nan]], "Column '1'"),
        ({"allow_missing": True}, [[1.0, np.inf], [2.0, 1.0], [0.0, 3.0]], "infinity"),
        (
            {"allow_missing": True, "coupling": "ot"},
            [[1.0, np.nan], [2.0, 1.0], [0.0, 3.0]],
            'coupling="independent"',
        ),
    ],
)
def test_bad_input_is_a_clear_error(params, X, match):
    with pytest.raises(ValueError, match=match):
        FlowMatchingDensity(**params, **FAST).fit(np.asarray(X))


def test_an_all_missing_column_of_a_frame_is_named():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [None, None, None]})
    with pytest.raises(ValueError, match="Column 'b'"):
        FlowMatchingDensity(allow_missing=True, **FAST).fit(frame)


def test_no_partial_fit_and_a_changed_warm_start_is_a_clear_error():
    X = with_holes(gaussian(100, 0), 0.2, 1)
    assert not hasattr(FlowMatchingDensity(allow_missing=True), "partial_fit")
    flow = FlowMatchingDensity(warm_start=True, **FAST).fit(gaussian(100, 0))
    with pytest.raises(ValueError, match="allow_missing=True differs"):
        flow.set_params(allow_missing=True).fit(X)


def test_a_pipeline_under_grid_search_on_incomplete_rows():
    X = with_holes(gaussian(300, 0), 0.2, 1)
    search = GridSearchCV(
        FlowMatchingDensity(allow_missing=True, random_state=0, **FAST),
        {"hidden_layer_sizes": [(8,), (16,)]},
        cv=3,
    ).fit(X)
    assert np.isfinite(search.best_score_)


def test_the_detector_scores_rows_with_holes_on_the_scale_of_complete_rows():
    X = gaussian(600, 0)
    X[:12] += 6.0
    holes = with_holes(X, 0.25, 1)
    holes[:, 0] = np.where(np.isnan(holes).all(axis=1), X[:, 0], holes[:, 0])
    detector = FlowMatchingOutlierDetector(allow_missing=True, random_state=0).fit(holes)
    assert detector.estimator_.allow_missing
    scores = -detector.decision_scores_
    assert np.isfinite(scores).all()
    # the twelve shifted rows are the least normal, with or without holes
    assert set(np.argsort(scores)[:12]) == set(range(12))
    half = np.isnan(holes).any(axis=1)
    loss = detector.estimator_.flow_matching_loss(holes).mean(axis=1)
    np.testing.assert_allclose(scores[half], -2.0 * loss[half], rtol=1e-6)
    np.testing.assert_allclose(scores[~half], -loss[~half], rtol=1e-6)


def test_the_detector_needs_an_estimator_that_takes_nan():
    X = with_holes(gaussian(100, 0), 0.2, 1)
    with pytest.raises(ValueError, match="allow_nan"):
        FlowMatchingOutlierDetector(FlowMatchingDensity(**FAST), allow_missing=True).fit(X)
    detector = FlowMatchingOutlierDetector(
        FlowMatchingDensity(allow_missing=True, **FAST), allow_missing=True, random_state=0
    ).fit(X)
    assert np.isfinite(detector.score_samples(X)).all()


def test_the_classifier_classifies_a_row_with_holes_by_its_observed_features():
    # two classes N(-1, I) and N(+1, I) in 3-D, equal priors: given x_0 alone,
    # p(+1 | x_0) = sigmoid(2 x_0)
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-1.0, 1.0, (600, 3)), rng.normal(1.0, 1.0, (600, 3))])
    y = np.repeat(["minus", "plus"], 600)
    clf = FlowMatchingClassifier(allow_missing=True, random_state=0, **SMALL)
    clf.fit(with_holes(X, 0.3, 1), y)
    rows = np.array([[-1.0, np.nan, np.nan], [0.5, np.nan, np.nan], [np.nan, np.nan, np.nan]])
    proba = clf.predict_proba(rows)
    np.testing.assert_allclose(proba[:2, 1], 1.0 / (1.0 + np.exp(-2.0 * rows[:2, 0])), atol=0.1)
    np.testing.assert_allclose(proba[2], [0.5, 0.5], atol=1e-9)  # nothing seen: the prior
    assert clf.score_samples(rows[2:])[0] == pytest.approx(0.0, abs=1e-9)
    assert (clf.predict(with_holes(X, 0.3, 2)) == y).mean() > 0.8
    X_new, y_new = clf.sample(50, random_state=0)
    assert not np.isnan(X_new).any() and set(y_new) <= {"minus", "plus"}
    assert get_tags(clf).input_tags.allow_nan


def test_the_classifier_without_allow_missing_names_the_nan():
    X = with_holes(gaussian(100, 0), 0.2, 1)
    with pytest.raises(ValueError, match="NaN"):
        FlowMatchingClassifier(**FAST).fit(X, np.arange(100) % 2)


def test_a_saved_classifier_with_holes_loads_and_gives_the_same_posteriors(tmp_path):
    X = with_holes(gaussian(120, 0), 0.3, 1)
    clf = FlowMatchingClassifier(allow_missing=True, random_state=0, **FAST)
    clf.fit(X, np.arange(120) % 2)
    save(clf, tmp_path / "clf.skflow")
    loaded = load(tmp_path / "clf.skflow")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_holes_make_a_fit_of_two_stages():
    # the law of the observed cells and the conditionals, then the joint from completed rows
    X = gaussian(200, 0)
    params = dict(FAST, early_stopping=False)
    complete = FlowMatchingDensity(allow_missing=True, random_state=0, **params).fit(X)
    assert complete.n_iter_ == params["max_iter"] == len(complete.loss_curve_)
    holes = FlowMatchingDensity(allow_missing=True, random_state=0, **params)
    holes.fit(with_holes(X, 0.2, 1))
    assert holes.n_iter_ == 2 * params["max_iter"] == len(holes.loss_curve_)

"""FlowMatchingImputer: conditional draws against the closed form of a Gaussian, the masked training
never reading a missing cell, the imputer API (indicators, names, errors) and its place in a
Pipeline under GridSearchCV."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skflow import FlowMatchingImputer
from skflow._columns import Column
from skflow._distributions import StandardNormal
from skflow._masked import MaskedFlowMatchingTrainer, masks
from skflow.couplings import IndependentCoupling
from skflow.impute import _typical
from skflow.networks import MaskedVelocity, VelocityMLP
from skflow.paths import LinearPath
from skflow.times import UniformTimes

from _shared import COVARIANCE, FAST, MEAN, SMALL, column_kinds, gaussian, with_holes


@pytest.fixture(scope="module")
def gaussian_imputer():
    X = with_holes(gaussian(2000, 0), 0.3, 1)
    return FlowMatchingImputer(random_state=0, **SMALL).fit(X)


def test_draws_follow_the_gaussian_conditional_law(gaussian_imputer):
    # x2 | x1 ~ N(m2 + C21 / C11 (x1 - m1), C22 - C21^2 / C11), and the same with roles swapped
    rows = np.array([[2.0, np.nan], [4.0, np.nan], [np.nan, -1.5], [np.nan, 0.0]])
    draws = gaussian_imputer.sample_imputations(rows, n_imputations=2000, random_state=0)
    for i, (given, drawn) in enumerate([(0, 1), (0, 1), (1, 0), (1, 0)]):
        ratio = COVARIANCE[drawn, given] / COVARIANCE[given, given]
        mean = MEAN[drawn] + ratio * (rows[i, given] - MEAN[given])
        std = np.sqrt(COVARIANCE[drawn, drawn] - ratio * COVARIANCE[drawn, given])
        values = draws[:, i, drawn]
        assert abs(values.mean() - mean) < 0.25 * std, (i, values.mean(), mean)
        assert 0.75 < values.std() / std < 1.33, (i, values.std(), std)
        np.testing.assert_array_equal(draws[:, i, given], rows[i, given])


def test_a_row_without_observed_cells_is_drawn_from_the_whole_law(gaussian_imputer):
    draws = gaussian_imputer.sample_imputations([[np.nan, np.nan]], 3000, random_state=0)[:, 0]
    np.testing.assert_allclose(draws.mean(axis=0), MEAN, atol=0.15)
    np.testing.assert_allclose(np.cov(draws.T), COVARIANCE, atol=0.2)


def test_training_never_reads_a_missing_cell():
    X = with_holes(gaussian(300, 0), 0.3, 1)
    placeholder = np.where(np.isnan(X), -999.0, X)
    garbage = np.where(np.isnan(X), 1e6, X)  # a finite value, but never missing_values: reject
    a = FlowMatchingImputer(random_state=0, **FAST).fit(X)
    b = FlowMatchingImputer(missing_values=-999.0, random_state=0, **FAST).fit(placeholder)
    np.testing.assert_array_equal(a.transform(X), b.transform(placeholder))
    assert not np.isnan(a.transform(X)).any()
    assert (b.transform(garbage) != a.transform(X)).any()  # 1e6 is a value, not a hole


def test_the_masked_field_moves_only_the_generated_coordinates():
    torch.manual_seed(0)
    field = MaskedVelocity(VelocityMLP(9, (16,), "gelu", n_outputs=3), 3).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    known = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=bool)
    generated = np.array([[0, 1, 0], [1, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=bool)
    condition = torch.as_tensor(masks(known, generated))
    v = field(torch.full((4,), 0.3, dtype=torch.float64), x, condition)
    assert (v[torch.as_tensor(~generated)] == 0).all()
    assert (v[torch.as_tensor(generated)] != 0).all()
    # the divergence (by autograd) is that of the generated coordinates alone
    jacobian = torch.autograd.functional.jacobian(
        lambda y: field(torch.full((4,), 0.3, dtype=torch.float64), y, condition).sum(0), x
    )
    for i in range(4):
        diagonal = torch.diagonal(jacobian[:, i, :])
        assert (diagonal[torch.as_tensor(~generated[i])] == 0).all()


def test_the_masked_field_does_not_see_cells_neither_known_nor_generated():
    torch.manual_seed(0)
    field = MaskedVelocity(VelocityMLP(9, (16,), "gelu", n_outputs=3), 3).double()
    condition = torch.as_tensor(masks(np.array([[1, 0, 0]]), np.array([[0, 1, 0]])))
    t = torch.full((1,), 0.3, dtype=torch.float64)
    x = torch.tensor([[0.5, -1.0, 0.0]], dtype=torch.float64)
    other = torch.tensor([[0.5, -1.0, 7.0]], dtype=torch.float64)  # the third cell is neither
    torch.testing.assert_close(field(t, x, condition), field(t, other, condition))


@pytest.mark.parametrize(
    "conditional, completed",
    [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.5, 0.0), (0.0, 0.5)],
)
def test_each_row_trains_one_task(conditional, completed):
    n, d = 400, 5
    trainer = MaskedFlowMatchingTrainer(
        LinearPath(),
        IndependentCoupling(),
        StandardNormal(d),
        UniformTimes(),
        None,
        None,
        conditional=conditional,
        completed=completed,
    )
    generator = torch.Generator().manual_seed(0)
    observed = torch.rand(n, d, generator=generator) < 0.6
    x1 = torch.randn(n, d, generator=generator)
    condition = torch.as_tensor(masks(np.zeros((n, d), bool), observed.numpy()))
    *_, given = trainer._regression_pairs(x1, generator, condition)
    known, generated = given[:, :d].bool(), given[:, d:].bool()
    assert not (known & generated).any()
    assert not (known & ~observed).any()  # only an observed cell is known
    whole = generated.all(dim=1) & ~observed.all(dim=1)  # the joint of a completed row
    split = known.any(dim=1)
    marginal = ~whole & ~split
    assert (generated[marginal] == observed[marginal]).all()
    assert (generated[split] == (observed & ~known)[split]).all()
    share = observed.any(dim=1).float().mean()
    assert abs(whole.float().mean() - completed * (~observed.all(dim=1)).float().mean()) < 0.08
    # a conditional task with no cell drawn known trains the marginal: a few of them
    assert 0.8 * conditional * share - 0.05 <= split.float().mean() <= conditional * share + 0.05


def test_the_loss_counts_only_generated_cells():
    trainer = MaskedFlowMatchingTrainer(*[None] * 6)
    ut = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    condition = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    zero_field = MaskedVelocity(lambda t, z: torch.zeros(z.shape[0], 2), 2)
    loss = trainer._loss(zero_field, torch.zeros(2), torch.zeros(2, 2), ut, None, condition, None)
    assert float(loss) == 1.0  # one generated cell, error 1; the second row generates nothing


def test_transform_is_a_seeded_median_and_keeps_observed_cells():
    X = with_holes(gaussian(200, 0), 0.2, 1)
    imputer = FlowMatchingImputer(n_draws=5, random_state=0, **FAST).fit(X)
    filled = imputer.transform(X)
    np.testing.assert_array_equal(filled, imputer.transform(X))
    np.testing.assert_array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])
    draws = imputer.sample_imputations(X, 5, random_state=0)
    np.testing.assert_array_equal(filled, np.median(draws, axis=0))
    assert draws.shape == (5, 200, 2)
    assert not np.array_equal(draws, imputer.sample_imputations(X, 5, random_state=1))


def test_indicators_and_feature_names():
    X = gaussian(100, 0)
    X[::7, 1] = np.nan  # only the second feature has holes in fit
    imputer = FlowMatchingImputer(add_indicator=True, random_state=0, **FAST).fit(X)
    np.testing.assert_array_equal(imputer.indicator_features_, [1])
    out = imputer.transform(X)
    assert out.shape == (100, 3)
    np.testing.assert_array_equal(out[:, 2], np.isnan(X[:, 1]))
    assert list(imputer.get_feature_names_out()) == ["x0", "x1", "missingindicator_x1"]
    # a hole in a feature that had none in fit is imputed too, without an indicator
    Y = X[:3].copy()
    Y[0, 0] = np.nan
    assert np.isfinite(imputer.transform(Y)).all()
    assert imputer.transform(Y).shape == (3, 3)


def test_the_input_is_never_mutated():
    X = with_holes(gaussian(100, 0), 0.2, 1)
    before = X.copy()
    imputer = FlowMatchingImputer(random_state=0, **FAST).fit(X)
    imputer.transform(X)
    imputer.sample_imputations(X, 2)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]]), "Column '1' of X has no"),
        (np.array([[1.0, np.inf], [2.0, 1.0], [3.0, 2.0]]), "infinity"),
        (np.array([[1.0, 2.0]]), "minimum of 2"),
    ],
)
def test_bad_training_data_is_a_clear_error(X, match):
    with pytest.raises(ValueError, match=match):
        FlowMatchingImputer(**FAST).fit(X)


def test_a_nan_with_another_placeholder_is_an_error():
    X = gaussian(50, 0)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FlowMatchingImputer(missing_values=-1.0, **FAST).fit(X)


def test_bad_n_imputations_is_a_clear_error():
    # as sample's n_samples: a number out of range is a ValueError, a bool a TypeError
    imputer = FlowMatchingImputer(random_state=0, **FAST).fit(gaussian(50, 0))
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="n_imputations"):
            imputer.sample_imputations(gaussian(3, 1), bad)
    with pytest.raises(TypeError, match="n_imputations"):
        imputer.sample_imputations(gaussian(3, 1), True)


def test_a_pipeline_step_under_grid_search():
    rng = np.random.default_rng(0)
    X = gaussian(240, 0)
    y = X @ np.array([1.0, -2.0]) + 0.1 * rng.standard_normal(240)
    pipeline = make_pipeline(FlowMatchingImputer(random_state=0, **FAST), LinearRegression())
    search = GridSearchCV(
        pipeline, {"flowmatchingimputer__n_draws": [1, 3]}, cv=2, error_score="raise"
    )
    search.fit(with_holes(X, 0.2, 1), y)
    assert search.best_params_["flowmatchingimputer__n_draws"] in (1, 3)
    assert np.isfinite(search.predict(with_holes(X[:10], 0.5, 2))).all()


@pytest.fixture(scope="module")
def mixed_table():
    """A table whose sign is that of x, whose count follows x and whose share is bounded,
    with 20 % of every column missing."""
    rng = np.random.default_rng(0)
    n = 800
    x = rng.normal(size=n)
    table = pd.DataFrame(
        {
            "x": x,
            "sign": pd.Series(np.where(x > 0, "plus", "minus"), dtype="category"),
            "count": pd.array(np.clip(np.round(2 * x + 5), 0, None).astype(int), dtype="Int64"),
            "share": 1 / (1 + np.exp(-x + 0.3 * rng.normal(size=n))),
        }
    )
    holes = table.copy()
    for column in holes.columns:
        holes.loc[rng.random(n) < 0.2, column] = None
    return table, holes


def test_a_mixed_table_keeps_its_kinds(mixed_table):
    table, holes = mixed_table
    before = holes.copy()
    imputer = FlowMatchingImputer(bounds={"share": "unit"}, random_state=0, **SMALL).fit(holes)
    assert column_kinds(imputer) == [
        "continuous",
        "categorical",
        "integer",
        "continuous",
    ]
    filled = imputer.transform(holes)
    pd.testing.assert_frame_equal(holes, before)  # the input is left as it was
    assert filled.dtype == object and filled.shape == table.shape
    missing = holes.isna().to_numpy()
    observed = ~missing
    cells = holes.to_numpy(dtype=object)
    assert all(filled[observed] == cells[observed])
    # an imputed sign is a category, and that of x where x was seen
    signs = filled[missing[:, 1], 1]
    assert set(signs) <= {"plus", "minus"}
    seen = missing[:, 1] & ~missing[:, 0]
    assert (filled[seen, 1] == np.where(holes["x"][seen] > 0, "plus", "minus")).mean() > 0.9
    counts = filled[missing[:, 2], 2].astype(float)
    assert (counts == np.round(counts)).all()
    assert counts.min() >= table["count"].min() and counts.max() <= table["count"].max()
    shares = filled[missing[:, 3], 3].astype(float)
    assert ((shares >= 0) & (shares <= 1)).all()
    draws = imputer.sample_imputations(holes.iloc[:50], 4, random_state=0)
    assert draws.shape == (4, 50, 4) and set(draws[:, :, 1].ravel()) <= {"plus", "minus"}


def test_the_typical_category_is_the_most_frequent_draw():
    column = Column("c", "categorical", "object", categories=("a", "b", "c"))
    draws = np.array([["a", "b"], ["c", "b"], ["c", "a"], ["a", "a"]], dtype=object)
    # ties go to the first category in the column's order
    np.testing.assert_array_equal(_typical(draws, column), ["a", "a"])
    draws = np.array([["b"], ["c"], ["c"]], dtype=object)
    np.testing.assert_array_equal(_typical(draws, column), ["c"])
    integer = Column("k", "integer", "int64")
    np.testing.assert_array_equal(_typical(np.array([[1.0], [2.0], [4.0], [5.0]]), integer), [2.0])


def test_a_placeholder_marks_missing_integers():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 10, size=(200, 3))
    X[rng.random(X.shape) < 0.2] = -1
    imputer = FlowMatchingImputer(missing_values=-1, random_state=0, **FAST).fit(X)
    assert all(c.kind == "integer" for c in imputer.columns_.columns)
    filled = imputer.transform(X)
    assert (filled >= 0).all() and (filled == np.round(filled)).all()
    np.testing.assert_array_equal(filled[X >= 0], X[X >= 0])

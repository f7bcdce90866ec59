"""Column kinds: categorical, integer and bounded columns of FlowMatchingDensity (and of the
detector through it), checked against closed forms, autograd and the laws they were drawn from."""

import math

import joblib
import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

import skflow
from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector
from skflow._columns import (
    BIT_SPREAD,
    ONE_HOT_MAX,
    Column,
    TableLayout,
    _bound,
    _category_index,
    _unbound,
)
from skflow._kinds import categorical_by_dtype, two_valued_columns

from _shared import FAST, column_kinds

pd = pytest.importorskip("pandas")

# a short but real fit: enough to learn a few simple marginals
TRAINED = dict(
    hidden_layer_sizes=(64, 64),
    max_iter=150,
    batch_size=256,
    early_stopping=False,
    n_steps=8,
    random_state=0,
)


def mixed_frame(n: int = 300, seed: int = 0) -> "pd.DataFrame":
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "count": rng.poisson(3.0, size=n),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], size=n)),
            "city": rng.choice(["Oslo", "Lima", "Pune", "Kyiv", "Doha"], size=n).astype(object),
            "flag": rng.random(n) < 0.3,
            "share": rng.beta(2.0, 5.0, size=n),
            "income": rng.exponential(2.0, size=n),
        }
    )


BOUNDS = {"share": "unit", "income": "non-negative"}


def widths(layout) -> list[int]:
    return [c.width for c in layout.columns]


@pytest.fixture(scope="module")
def fitted():
    X = mixed_frame()
    return X, FlowMatchingDensity(bounds=BOUNDS, random_state=0, **FAST).fit(X)


# --------------------------------------------------------------------------------------------------
# layout


def test_kinds_come_from_a_frames_dtypes(fitted):
    _, flow = fitted
    kinds = {c.name: c.kind for c in flow.columns_.columns}
    assert kinds == {
        "x": "continuous",
        "count": "integer",
        "colour": "categorical",
        "city": "categorical",
        "flag": "categorical",
        "share": "continuous",
        "income": "continuous",
    }
    widths = {c.name: c.width for c in flow.columns_.columns}
    # one-hot codes of 3 and 5 categories, one sign for two
    assert (widths["colour"], widths["city"], widths["flag"]) == (3, 5, 1)
    assert flow.columns_.width == 1 + 1 + 3 + 5 + 1 + 1 + 1
    assert flow.mean_.shape == (flow.columns_.width,)
    assert list(flow.feature_names_in_) == list(mixed_frame().columns)


def test_kinds_given_explicitly_by_index_name_or_mask():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=80), rng.integers(0, 4, size=80), rng.integers(0, 9, 80)])
    by_index = FlowMatchingDensity(categorical_features=[1], integer_features=[2], **FAST).fit(X)
    assert column_kinds(by_index) == ["continuous", "categorical", "integer"]
    mask = FlowMatchingDensity(categorical_features=[False, True, False], **FAST).fit(X)
    assert column_kinds(mask) == ["continuous", "categorical", "continuous"]
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    by_name = FlowMatchingDensity(categorical_features=["b"], integer_features=["c"], **FAST)
    assert column_kinds(by_name.fit(frame)) == [
        "continuous",
        "categorical",
        "integer",
    ]
    # an integer array is integer-valued; a float array stays plain
    assert FlowMatchingDensity(**FAST).fit(X.astype(int)).columns_.columns[0].kind == "integer"
    assert FlowMatchingDensity(**FAST).fit(X).columns_.plain
    assert FlowMatchingDensity(integer_features=None, **FAST).fit(X.astype(int)).columns_.plain


def test_a_few_categories_are_coded_one_hot_and_decoded_by_their_largest_coordinate():
    colour = Column("colour", "categorical", "object", ("blue", "green", "red"), one_hot=True)
    layout = TableLayout((colour,))
    codes, valid = layout.encode(np.array([["red"], ["blue"], ["pink"]], dtype=object))
    np.testing.assert_array_equal(codes[:2], [[-1, -1, 1], [1, -1, -1]])
    np.testing.assert_array_equal(valid, [True, True, False])  # an unseen category
    # every orthant decodes, to the largest coordinate: no category takes another's share
    values = np.array([[0.2, 0.9, 0.5], [-0.3, -0.1, -0.8], [1.0, -1.0, -1.0]])
    np.testing.assert_array_equal(layout.decode(values).ravel(), ["green", "green", "blue"])
    # past ONE_HOT_MAX categories, the binary code of the index
    many = [f"c{i}" for i in range(ONE_HOT_MAX + 1)]
    X = pd.DataFrame({"c": many * 4, "v": np.arange(4.0 * len(many))})
    column = FlowMatchingDensity(**FAST).fit(X).columns_.columns[0]
    assert not column.one_hot and column.width == math.ceil(math.log2(ONE_HOT_MAX + 1))


def test_a_high_cardinality_category_takes_logarithmically_many_inputs():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(
        {"id": rng.integers(0, 1000, size=2000).astype(str), "v": rng.normal(size=2000)}
    )
    flow = FlowMatchingDensity(**FAST).fit(X)
    assert len(flow.columns_.columns[0].categories) > 800
    assert flow.columns_.width == 10 + 1
    sample = flow.sample(500, random_state=0)
    assert set(sample["id"]) <= set(X["id"])


@pytest.mark.parametrize(
    "params, X_change, message",
    [
        ({"categorical_features": ["nope"]}, None, "names the column 'nope'"),
        ({"categorical_features": [7]}, None, "not a column index"),
        ({"categorical_features": [True, False]}, None, "mask must have 7 entries"),
        ({"integer_features": ["colour"], "categorical_features": ["colour"]}, None, "both"),
        ({"bounds": {"colour": (0, 1)}}, None, "categorical and cannot have bounds"),
        ({"bounds": {"x": (1, 0)}}, None, "low < high"),
        ({"bounds": {"x": "positive"}}, None, "one of"),
        ({"bounds": {"x": (0, None)}}, None, "Column 'x' holds .* outside its bounds"),
        ({"integer_features": ["x"]}, None, "Column 'x' is an integer column"),
        ({}, ("share", np.nan), "Column 'share' holds NaN"),
        ({}, ("city", None), "Column 'city' holds NaN or another missing value"),
        ({}, ("city", 3), "Column 'city' mixes categories"),
    ],
)
def test_bad_kinds_and_values_are_clear_errors_naming_the_column(params, X_change, message):
    X = mixed_frame(40)
    if X_change is not None:
        column, value = X_change
        if value is None or isinstance(value, int):
            X[column] = X[column].astype(object)
        X.loc[3, column] = value
    before = X.copy()
    with pytest.raises(ValueError, match=message):
        FlowMatchingDensity(**params, **FAST).fit(X)
    pd.testing.assert_frame_equal(X, before)  # the input is left as it was


def test_partial_fit_refuses_a_mixed_table():
    with pytest.raises(ValueError, match="partial_fit needs every column continuous"):
        FlowMatchingDensity(**FAST).partial_fit(mixed_frame(50))


# --------------------------------------------------------------------------------------------------
# the maps, against autograd and closed forms


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (2.0, math.inf), (-math.inf, 5.0), (-3.0, 7.0)])
def test_bounding_maps_invert_and_their_log_jacobian_is_autograds(low, high):
    margin = torch.tensor([0.01], dtype=torch.float64)
    lo, hi = torch.tensor([low], dtype=torch.float64), torch.tensor([high], dtype=torch.float64)
    inner_low = low if math.isfinite(low) else high - 10.0
    inner_high = high if math.isfinite(high) else low + 10.0
    x = torch.linspace(inner_low, inner_high, 41, dtype=torch.float64)[:, None].requires_grad_()
    y, log_derivative = _bound(x, lo, hi, margin)
    (derivative,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(log_derivative, derivative.abs().log())
    torch.testing.assert_close(_unbound(y.detach(), lo, hi, margin), x.detach())


def test_the_category_dequantisation_puts_each_bit_on_its_half_line(fitted):
    _, flow = fitted
    layout = flow.columns_
    codes, _ = layout.encode(mixed_frame(2000, seed=5))
    uniform = np.random.default_rng(0).uniform(size=codes.shape)
    y, log_weight = layout.to_flow(torch.from_numpy(codes), torch.from_numpy(uniform))
    y = y.numpy()
    sign = np.array([c.kind == "categorical" for c in layout.columns for _ in range(c.width)])
    # the sign of each coordinate is its bit, the magnitude a draw of N(1, s^2) truncated to > 0
    assert (np.sign(y[:, sign]) == codes[:, sign]).all()
    magnitudes = np.abs(y[:, sign]).ravel()
    law = stats.truncnorm(-1.0 / BIT_SPREAD, np.inf, loc=1.0, scale=BIT_SPREAD)
    assert stats.kstest(magnitudes, law.cdf).pvalue > 1e-3
    start = dict(zip([c.name for c in layout.columns], np.cumsum([0] + widths(layout))))
    # integer columns are spread uniformly over their unit cell
    offset = y[:, start["count"]] - codes[:, start["count"]]
    assert (np.abs(offset) <= 0.5).all()
    assert stats.kstest(offset + 0.5, "uniform").pvalue > 1e-3
    # the log-weight: the bounds' log-Jacobians minus the bits' log-density
    share, income = codes[:, start["share"]], codes[:, start["income"]]
    delta_share, delta_income = layout.columns[5].margin, layout.columns[6].margin
    p = (share + delta_share) / (1 + 2 * delta_share)
    expected = (
        -np.log(1 + 2 * delta_share)
        - np.log(p * (1 - p))
        - np.log(income + delta_income)
        - law.logpdf(np.abs(y[:, sign])).sum(axis=1)
    )
    np.testing.assert_allclose(log_weight.numpy(), expected, rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# sampling gives valid values only, in the training frame's form


def test_samples_are_valid_values_in_a_frame_like_the_training_one(fitted):
    X, flow = fitted
    sample = flow.sample(2000, random_state=0)
    assert list(sample.columns) == list(X.columns)
    assert (sample.dtypes == X.dtypes).all()
    assert list(sample["colour"].cat.categories) == list(X["colour"].cat.categories)
    assert set(sample["city"]) <= set(X["city"])
    assert set(sample["flag"]) <= {True, False}
    assert sample["count"].between(X["count"].min(), X["count"].max()).all()
    assert sample["share"].between(0, 1).all() and (sample["income"] >= 0).all()
    back = flow.inverse_transform(flow.transform(X.head(20)))
    assert (back.dtypes == X.dtypes).all()


def test_an_array_with_named_categorical_columns_gives_arrays_back():
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.normal(size=100), rng.choice([10.0, 20.0, 30.0], size=100)])
    sample = (
        FlowMatchingDensity(categorical_features=[1], **FAST).fit(X).sample(300, random_state=1)
    )
    assert sample.dtype == np.float64 and set(np.unique(sample[:, 1])) <= {10.0, 20.0, 30.0}
    strings = np.column_stack([X[:, 0], rng.choice(["a", "b"], size=100)]).astype(object)
    sample = FlowMatchingDensity(categorical_features=[1], **FAST).fit(strings).sample(50)
    assert sample.dtype == object and set(sample[:, 1]) <= {"a", "b"}


# --------------------------------------------------------------------------------------------------
# the densities, against the laws the data came from


def test_a_categorical_column_learns_its_probabilities_and_bounds_them_from_below():
    rng = np.random.default_rng(4)
    probabilities = {"a": 0.2, "b": 0.5, "c": 0.3}
    X = pd.DataFrame(
        {"c": rng.choice(list(probabilities), p=list(probabilities.values()), size=3000)}
    )
    flow = FlowMatchingDensity(**TRAINED).fit(X)
    sample = flow.sample(4000, random_state=0)["c"].value_counts(normalize=True)
    for category, p in probabilities.items():
        assert abs(sample[category] - p) < 0.05
    # the dequantised score is a lower bound on log P: its mean over draws, exponentiated and
    # summed over the categories, stays below 1, and not far below with a good fit
    many = pd.DataFrame({"c": np.repeat(list(probabilities), 400)})
    scores = pd.Series(flow.score_samples(many)).groupby(many["c"]).mean()
    assert 0.8 < np.exp(scores).sum() <= 1.0 + 0.02


def test_an_integer_column_learns_its_probabilities():
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"k": rng.poisson(4.0, size=3000)})
    flow = FlowMatchingDensity(**TRAINED).fit(X)
    sample = flow.sample(4000, random_state=0)["k"]
    assert sample.dtype == np.int64
    frequencies = sample.value_counts(normalize=True).reindex(range(20), fill_value=0.0)
    total_variation = 0.5 * np.abs(frequencies.to_numpy() - stats.poisson.pmf(range(20), 4.0)).sum()
    assert total_variation < 0.08


@pytest.mark.parametrize(
    "law, bounds, grid",
    [
        (stats.beta(2.0, 5.0), "unit", np.linspace(0.0, 1.0, 4001)),
        (stats.expon(scale=2.0), "non-negative", np.linspace(0.0, 40.0, 16001)),
    ],
)
def test_a_bounded_density_integrates_to_one_over_its_bounds(law, bounds, grid):
    X = pd.DataFrame({"v": law.rvs(size=3000, random_state=6)})
    flow = FlowMatchingDensity(bounds={"v": bounds}, **TRAINED).fit(X)
    density = np.exp(flow.score_samples(pd.DataFrame({"v": grid})))
    assert abs(np.trapezoid(density, grid) - 1.0) < 0.03
    # and it is the law's, roughly (in total variation)
    assert 0.5 * np.trapezoid(np.abs(density - law.pdf(grid)), grid) < 0.1
    assert flow.sample(1000, random_state=0)["v"].between(*law.support()).all()


# --------------------------------------------------------------------------------------------------
# scores of impossible rows, reproducibility, persistence, model selection


def test_rows_the_model_cannot_hold_score_minus_infinity(fitted):
    X, flow = fitted
    rows = X.head(4).copy()
    rows["city"] = rows["city"].astype(object)
    rows.loc[0, "city"] = "Atlantis"  # unseen category
    rows.loc[1, "share"] = 1.5  # out of bounds
    rows["count"] = rows["count"].astype(float)
    rows.loc[2, "count"] = 2.5  # a fraction in an integer column
    scores = flow.score_samples(rows)
    assert np.isneginf(scores[:3]).all() and np.isfinite(scores[3])
    with pytest.raises(ValueError, match="Row 0 of X has a value the model cannot hold"):
        flow.transform(rows)
    detector = FlowMatchingOutlierDetector(FlowMatchingDensity(bounds=BOUNDS, **FAST)).fit(X)
    assert (detector.predict(rows)[:3] == -1).all()
    assert np.isneginf(detector.score_samples(rows)[:3]).all()


def test_scores_are_reproducible_and_do_not_depend_on_the_batch(fitted):
    X, flow = fitted
    full = flow.score_samples(X.head(30))
    np.testing.assert_allclose(flow.score_samples(X.iloc[10:30]), full[10:], rtol=1e-9)
    again = FlowMatchingDensity(bounds=BOUNDS, random_state=0, **FAST).fit(X)
    np.testing.assert_array_equal(again.score_samples(X.head(30)), full)
    pd.testing.assert_frame_equal(again.sample(20, random_state=3), flow.sample(20, random_state=3))


def test_a_mixed_model_persists(fitted, tmp_path):
    X, flow = fitted
    skflow.save(flow, tmp_path / "flow.skflow")
    for loaded in (skflow.load(tmp_path / "flow.skflow"), joblib.load(_dumped(flow, tmp_path))):
        np.testing.assert_array_equal(
            loaded.score_samples(X.head(20)), flow.score_samples(X.head(20))
        )
        pd.testing.assert_frame_equal(
            loaded.sample(30, random_state=2), flow.sample(30, random_state=2)
        )


def _dumped(estimator, folder):
    path = folder / "flow.joblib"
    joblib.dump(estimator, path)
    return path


def test_the_bounds_are_tuned_by_grid_search_in_a_pipeline():
    X = mixed_frame(120)
    search = GridSearchCV(
        make_pipeline(FlowMatchingDensity(random_state=0, **FAST)),
        {"flowmatchingdensity__bounds": [None, BOUNDS]},
        cv=2,
    ).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_the_classifier_takes_a_mixed_table_and_samples_valid_rows_per_class():
    X = mixed_frame(200)
    y = np.where(X["flag"], "yes", "no")  # the label is the flag column, dropped from X
    X = X.drop(columns="flag")
    clf = skflow.FlowMatchingClassifier(bounds=BOUNDS, **TRAINED).fit(X, y)
    assert clf.mean_.shape == (clf.columns_.width,)
    rows, labels = clf.sample(y=["yes"] * 50 + ["no"] * 50, random_state=0)
    assert (rows.dtypes == X.dtypes).all() and set(rows["city"]) <= set(X["city"])
    assert rows["share"].between(0, 1).all() and list(labels[:2]) == ["yes", "yes"]
    proba = clf.predict_proba(X.head(10))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    odd = X.head(2).copy()
    odd["city"] = odd["city"].astype(object)
    odd.loc[0, "city"] = "Atlantis"
    scores = clf.score_samples(odd)
    assert np.isneginf(scores[0]) and np.isfinite(scores[1])
    # the posterior of a row no class can hold is the prior
    np.testing.assert_allclose(clf.predict_proba(odd)[0], clf.class_prior_)


def test_a_nan_in_an_array_names_its_column():
    X = np.random.default_rng(7).normal(size=(20, 3))
    X[5, 2] = np.nan
    with pytest.raises(ValueError, match="Column 2 holds NaN"):
        FlowMatchingDensity(**FAST).fit(X)


def test_the_transport_maps_a_mixed_table_to_valid_rows_of_the_target():
    source, target = mixed_frame(200, seed=8), mixed_frame(200, seed=9)
    target["count"] += 5  # the target's counts are larger
    X = pd.concat([source, target], ignore_index=True)
    y = np.repeat([0, 1], 200)
    transport = skflow.InterpolantTransport(bounds=BOUNDS, **TRAINED).fit(X, y)
    assert not transport.columns_.plain and transport.mean_.shape == (transport.columns_.width,)
    moved = transport.transform(source.head(100))
    assert (moved.dtypes == X.dtypes).all() and set(moved["city"]) <= set(X["city"])
    assert moved["share"].between(0, 1).all() and (moved["income"] >= 0).all()
    assert moved["count"].mean() > source["count"].head(100).mean() + 3
    assert np.isfinite(transport.score(X, y))
    odd = source.head(2).copy()
    odd["city"] = odd["city"].astype(object)
    odd.loc[0, "city"] = "Atlantis"
    assert np.isneginf(transport.score_samples(odd)[0])
    with pytest.raises(ValueError, match="cannot hold"):
        transport.transform(odd)
    with pytest.raises(ValueError, match="need every column continuous"):
        transport.velocity(source.head(3), 0.5)


@pytest.mark.parametrize(
    "values, categories",
    [
        (np.array([3, 1, 7, 2, 1]), (1, 2, 3)),
        (np.array([0.5, -1.0, 2.0, np.nan, 0.25]), (-1.0, 0.5)),
        (np.array([True, False, True]), (False,)),
        (np.array([1, 0, 2], dtype=np.uint8), (False, True)),
        (np.array([2**62, 3, -5]), (-5, 2**62)),
        (np.array(["b", 1, None, "a"], dtype=object), ("a", "b", 1)),
    ],
)
def test_category_indices_are_those_of_a_lookup_per_cell(values, categories):
    column = Column("c", "categorical", "object", categories=categories)
    absent = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values])
    expected = [
        0 if gone else next((i for i, c in enumerate(categories) if c == v), -1)
        for v, gone in zip(values.tolist(), absent)
    ]
    assert _category_index(values, column, False, absent).tolist() == expected


def test_two_valued_columns_are_numbers_with_two_observed_values():
    X = pd.DataFrame(
        {
            "binary": [0.0, 1.0, np.nan, 1.0],
            "three": [0.0, 1.0, 2.0, 1.0],
            "constant": [5, 5, 5, 5],
            "flag": [True, False, True, True],  # categorical by its dtype already
            "city": pd.Series(["a", "b", "a", "b"], dtype="category"),
            "words": ["x", "y", "x", "y"],  # not numbers
            "ints": pd.array([1, None, 3, 1], dtype="Int64"),
        }
    )
    rows = np.ones(4, dtype=bool)
    assert two_valued_columns(X, rows).tolist() == [1, 0, 0, 0, 0, 0, 1]
    assert categorical_by_dtype(X).tolist() == [0, 0, 0, 1, 1, 1, 0]
    # among the first two rows only, "three" has two values and "ints" one
    assert two_valued_columns(X, np.array([1, 1, 0, 0], dtype=bool)).tolist() == [
        1,
        1,
        0,
        0,
        0,
        0,
        0,
    ]
    array = X[["binary", "three", "constant"]].to_numpy()
    assert two_valued_columns(array, rows).tolist() == [1, 0, 0]
    assert not categorical_by_dtype(array).any()


def test_training_dequantises_to_the_same_coordinates_without_the_log_weight():
    layout = TableLayout(
        (
            Column("x", "continuous", "float64"),
            Column("k", "integer", "int64", low=0.0, high=9.0, margin=0.01),
            Column("c", "categorical", "object", categories=("a", "b", "c"), one_hot=True),
            Column("b", "categorical", "float64", categories=(0.0, 1.0)),
        )
    )
    rng = np.random.default_rng(0)
    codes = torch.as_tensor(
        np.column_stack([rng.normal(size=20), rng.integers(0, 10, 20), np.ones((20, 4))])
    )
    uniform = torch.as_tensor(rng.uniform(size=codes.shape))
    y, log_weight = layout.to_flow(codes, uniform)
    y_only, nothing = layout.to_flow(codes, uniform, log_weight=False)
    assert torch.equal(y, y_only) and nothing is None and torch.isfinite(log_weight).all()

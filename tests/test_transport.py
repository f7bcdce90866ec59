"""InterpolantTransport and the stochastic-interpolant machinery, checked against closed forms.

What is tested against what
---------------------------
* Gaussian -> Gaussian with the independent coupling has a Gaussian interpolant,
  ``x_t ~ N(mu_t, Sigma_t)`` with ``mu_t = alpha m0 + beta m1`` and
  ``Sigma_t = alpha^2 S0 + beta^2 S1 + gamma^2 I``, exact velocity
  ``b = mu_t' + (1/2) Sigma_t' Sigma_t^{-1} (x - mu_t)`` (the regression of ``alpha' x0 + beta' x1 +
  gamma' z`` on ``x_t``) and exact score ``s = -Sigma_t^{-1} (x - mu_t)``. With these exact fields:
  the SDE sampler of :func:`skflow.solvers.integrate_sde` with ``eps in {0, 0.5, 1}`` reproduces the
  target's mean and covariance forwards and the source's backwards, and
  :func:`skflow.likelihood.flow_log_likelihood` gives ``log rho(t, x)`` at several ``t``.
* A fitted model against the same closed forms: learned velocity and score, ``log_density(X, t)``
  at several ``t``, SDE sample moments for ``eps in {0, 0.5, 1}``.
* The Schrödinger-bridge recipe, errors, reproducibility, pickling, model selection.
"""

import pickle

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skflow import FlowMatchingDensity, InterpolantTransport
from skflow.couplings import SinkhornCoupling
from skflow.likelihood import flow_log_likelihood
from skflow.paths import GAMMAS, PATHS
from skflow.solvers import integrate_sde

M0, M1 = np.array([0.0, 0.0]), np.array([3.0, -1.0])
S0 = np.array([[1.0, 0.3], [0.3, 0.5]])
F1 = np.array([[1.0, 0.0], [0.6, 0.5]])
S1 = F1 @ F1.T
SMALL = dict(hidden_layer_sizes=(64, 64), max_iter=40, batch_size=128, n_steps=10)


def two_gaussians(n, seed):
    rng = np.random.default_rng(seed)
    x0 = rng.multivariate_normal(M0, S0, size=n)
    x1 = rng.multivariate_normal(M1, S1, size=n)
    return np.vstack([x0, x1]), np.repeat([0, 1], n)


class GaussianInterpolant:
    """Closed-form marginals and fields of ``alpha x0 + beta x1 + gamma z`` between Gaussians."""

    def __init__(self, path, m0, s0, m1, s1):
        self.path, self.m0, self.s0, self.m1, self.s1 = path, m0, s0, m1, s1

    def _coefficients(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        p, g = self.path, self.path.noise
        return [
            float(f(t)) for f in (p.alpha, p.beta, g.gamma, p.d_alpha, p.d_beta, g.gamma_d_gamma)
        ]

    def moments(self, t):
        a, b, g, *_ = self._coefficients(t)
        eye = np.eye(len(self.m0))
        return a * self.m0 + b * self.m1, a**2 * self.s0 + b**2 * self.s1 + g**2 * eye

    def velocity_coefficients(self, t):
        """``b(t, x) = c + x A^T``: returns ``(c, A^T)``."""
        a, b, g, da, db, gdg = self._coefficients(t)
        mean, cov = self.moments(t)
        d_mean = da * self.m0 + db * self.m1
        half_d_cov = a * da * self.s0 + b * db * self.s1 + gdg * np.eye(len(self.m0))
        matrix_t = np.linalg.solve(cov, half_d_cov.T)
        return d_mean - mean @ matrix_t, matrix_t

    def velocity(self, t, x):
        c, matrix_t = self.velocity_coefficients(t)
        return c + x @ matrix_t

    def torch_velocity(self, t, x):
        """The same, differentiable in ``x`` (for the divergence)."""
        c, matrix_t = self.velocity_coefficients(float(t.reshape(-1)[0]))
        return torch.from_numpy(c) + x @ torch.from_numpy(matrix_t)

    def score(self, t, x):
        mean, cov = self.moments(t)
        return -np.linalg.solve(cov, (x - mean).T).T

    def log_density(self, t, x):
        mean, cov = self.moments(t)
        return multivariate_normal(mean, cov).logpdf(x)


# --- exact fields: the samplers and the likelihood along the path ---------------------------------

CASES = [("linear", "brownian", 0.5), ("trig", "bsquared", 1.0), ("encdec", "sinesquared", 1.0)]


@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(("path_name", "gamma_name", "sigma"), CASES)
def test_sde_with_exact_fields_reproduces_the_moments(path_name, gamma_name, sigma, eps):
    path = PATHS[path_name]().with_noise(GAMMAS[gamma_name](sigma=sigma))
    exact = GaussianInterpolant(path, M0, S0, M1, S1)
    n, generator = 5000, torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)

    def drift(sign):
        def f(t, x):
            t = float(t)
            xn = x.numpy()
            return torch.from_numpy(exact.velocity(t, xn) + sign * eps * exact.score(t, xn))

        return f

    t0, t1 = 1e-3, 1 - 1e-3
    # forwards from rho_0 with b + eps s, backwards from rho_1 with b - eps s
    for start, end, mean, cov, sign in ((t0, t1, M1, S1, 1.0), (t1, t0, M0, S0, -1.0)):
        x = torch.from_numpy(rng.multivariate_normal(*exact.moments(start), size=n))
        y = integrate_sde(
            drift(sign), lambda t: np.sqrt(2 * eps), x, start, end, n_steps=200, generator=generator
        ).numpy()
        # standard errors at n = 5000: ~0.015 on the means, ~0.02 on the covariances
        np.testing.assert_allclose(y.mean(0), mean, atol=0.06)
        np.testing.assert_allclose(np.cov(y.T), cov, atol=0.08)


@pytest.mark.parametrize(("path_name", "gamma_name", "sigma"), CASES)
def test_likelihood_along_the_path_with_exact_velocity(path_name, gamma_name, sigma):
    """``log rho(t, x) = log rho_0(X_0) - int_0^t div b``: the InterFlow claim, for exact ``b``."""
    path = PATHS[path_name]().with_noise(GAMMAS[gamma_name](sigma=sigma))
    exact = GaussianInterpolant(path, M0, S0, M1, S1)
    t_min = 1e-3
    for t in (0.25, 0.5, 1 - 1e-3):
        x = np.random.default_rng(1).multivariate_normal(*exact.moments(t), size=20)
        z, delta = flow_log_likelihood(
            exact.torch_velocity, torch.from_numpy(x), t_min, t, method="rk4", n_steps=50
        )
        log_rho = exact.log_density(t_min, z.numpy()) + delta.numpy()
        np.testing.assert_allclose(log_rho, exact.log_density(t, x), atol=1e-3)


# --- a fitted model against the closed forms ------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    X, y = two_gaussians(1500, 0)
    return InterpolantTransport(
        gamma="brownian",
        sigma=0.5,
        coupling="independent",
        eps=0.5,
        source_density=GaussianMixture(n_components=1),
        random_state=0,
        **SMALL,
    ).fit(X, y)


def _standardised_exact(model):
    """The closed form of the model's interpolant, in its standardised coordinates."""
    scale, mean = model.scale_, model.mean_

    def std(m, s):
        return (m - mean) / scale, s / np.outer(scale, scale)

    return GaussianInterpolant(model._make_path(), *std(M0, S0), *std(M1, S1))


def _bulk(model, t, n=400, seed=3):
    exact = _standardised_exact(model)
    z = np.random.default_rng(seed).multivariate_normal(*exact.moments(t), size=n)
    return exact, z, z * model.scale_ + model.mean_


@pytest.mark.parametrize("t", [0.25, 0.5, 0.75])
def test_learned_velocity_and_score_match_the_closed_form(fitted, t):
    exact, z, X = _bulk(fitted, t)
    b = fitted.velocity(X, t) / fitted.scale_
    b_true = exact.velocity(t, z)
    assert np.median(np.linalg.norm(b - b_true, axis=1)) < 0.25 * np.median(
        np.linalg.norm(b_true, axis=1)
    )
    s = fitted.grad_log_density(X, t) * fitted.scale_
    s_true = exact.score(t, z)
    assert np.median(np.linalg.norm(s - s_true, axis=1)) < 0.3 * np.median(
        np.linalg.norm(s_true, axis=1)
    )


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_log_density_at_any_time_matches_the_closed_form(fitted, t):
    t_clipped = min(max(t, 1e-3), 1 - 1e-3)
    exact, z, X = _bulk(fitted, t_clipped, n=300)
    truth = exact.log_density(t_clipped, z) - np.log(fitted.scale_).sum()
    got = fitted.log_density(X, t)
    assert abs(got.mean() - truth.mean()) < 0.1
    assert np.median(np.abs(got - truth)) < 0.15


def test_score_samples_is_the_target_log_density(fitted):
    X, y = two_gaussians(300, 9)
    target = X[y == 1]
    np.testing.assert_allclose(fitted.score_samples(target), fitted.log_density(target, 1.0))
    truth = multivariate_normal(M1, S1).logpdf(target)
    assert abs(fitted.score_samples(target).mean() - truth.mean()) < 0.1


@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0])
def test_sde_samples_have_the_target_moments(fitted, eps):
    model = pickle.loads(pickle.dumps(fitted)).set_params(eps=eps, sde_n_steps=100)
    S = model.sample(2000, random_state=0)
    np.testing.assert_allclose(S.mean(0), M1, atol=0.1)
    np.testing.assert_allclose(np.cov(S.T), S1, atol=0.12)
    X, y = two_gaussians(1000, 5)
    back = model.transport(X[y == 1], direction="backward", random_state=0)
    np.testing.assert_allclose(back.mean(0), M0, atol=0.1)
    np.testing.assert_allclose(np.cov(back.T), S0, atol=0.12)


def test_transform_round_trip_and_moments(fitted):
    X, y = two_gaussians(1000, 4)
    moved = fitted.transform(X[y == 0])
    np.testing.assert_allclose(moved.mean(0), M1, atol=0.1)
    np.testing.assert_allclose(np.cov(moved.T), S1, atol=0.15)
    np.testing.assert_allclose(fitted.inverse_transform(moved), X[y == 0], atol=0.05)


def test_sampling_is_seeded_and_reproducible(fitted):
    a = fitted.sample(50, random_state=1)
    np.testing.assert_array_equal(a, fitted.sample(50, random_state=1))
    assert not np.allclose(a, fitted.sample(50, random_state=2))
    X, _ = two_gaussians(20, 6)
    np.testing.assert_array_equal(
        fitted.transport(X, random_state=3), fitted.transport(X, random_state=3)
    )


# --- Schrödinger bridge ---------------------------------------------------------------------------


def test_schrodinger_bridge_recipe():
    """coupling='sinkhorn', gamma='brownian', coupling_reg='sb' is Tong et al.'s SB-CFM: an entropic
    plan of absolute regularisation 2 sigma^2 and the Brownian-bridge noise of the same sigma."""
    sigma = 0.5
    model = InterpolantTransport(
        coupling="sinkhorn",
        gamma="brownian",
        sigma=sigma,
        coupling_reg="sb",
        random_state=0,
        **SMALL,
    )
    coupling = model._make_coupling()
    assert isinstance(coupling, SinkhornCoupling)
    assert coupling.reg == 2 * sigma**2 and coupling.relative is False
    path = model._make_path()
    t = torch.tensor([0.3], dtype=torch.float64)
    assert float(path.noise.gamma(t)) == pytest.approx(sigma * np.sqrt(0.3 * 0.7))
    X, y = two_gaussians(1000, 0)
    model.fit(X, y)
    moved = model.transform(X[y == 0])
    np.testing.assert_allclose(moved.mean(0), M1, atol=0.1)
    np.testing.assert_allclose(np.cov(moved.T), S1, atol=0.15)
    # the bridge straightens the transport: its cost is close to the exact OT cost between the
    # samples
    import ot

    a = np.full(1000, 1e-3)
    w2 = ot.emd2(a, a, ot.dist(X[y == 0], X[y == 1]))
    assert np.mean(np.sum((moved - X[y == 0]) ** 2, axis=1)) < 1.15 * w2


# --- estimator behaviour --------------------------------------------------------------------------

FAST = dict(hidden_layer_sizes=(16,), max_iter=3, batch_size=64, n_steps=4)


def test_same_random_state_same_model_and_global_rng_untouched():
    X, y = two_gaussians(100, 0)
    torch.manual_seed(123)
    np.random.seed(123)
    state_t, state_np = torch.get_rng_state(), np.random.get_state()[1].copy()
    a = InterpolantTransport(random_state=0, gamma="bsquared", sigma=0.3, eps=0.5, **FAST).fit(X, y)
    b = InterpolantTransport(random_state=0, gamma="bsquared", sigma=0.3, eps=0.5, **FAST).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state_t)
    assert np.array_equal(np.random.get_state()[1], state_np)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.sample(7, random_state=0), b.sample(7, random_state=0))
    c = InterpolantTransport(random_state=1, gamma="bsquared", sigma=0.3, eps=0.5, **FAST).fit(X, y)
    assert not np.allclose(a.transform(X), c.transform(X))


def test_labels_order_and_strings():
    X, y = two_gaussians(100, 0)
    labels = np.where(y == 0, "a_source", "b_target")
    model = InterpolantTransport(random_state=0, **FAST).fit(X, labels)
    assert list(model.classes_) == ["a_source", "b_target"]
    assert model.score(X, labels) < 0


def test_density_is_in_the_units_of_X():
    X, y = two_gaussians(200, 0)
    a = InterpolantTransport(random_state=0, **FAST).fit(X, y)
    b = InterpolantTransport(random_state=0, **FAST).fit(10 * X, y)
    np.testing.assert_allclose(
        b.score_samples(10 * X[:20]), a.score_samples(X[:20]) - 2 * np.log(10), rtol=1e-5
    )
    np.testing.assert_allclose(
        b.transform(10 * X[:20]), 10 * a.transform(X[:20]), rtol=1e-5, atol=1e-8
    )


@pytest.mark.parametrize(
    "density",
    [KernelDensity(bandwidth=0.3), FlowMatchingDensity(max_iter=2, hidden_layer_sizes=(8,))],
)
def test_any_density_estimator_as_the_source_density(density):
    X, y = two_gaussians(100, 0)
    model = InterpolantTransport(source_density=density, random_state=0, **FAST).fit(X, y)
    assert model.source_density_ is not density
    assert np.isfinite(model.score_samples(X[:5])).all()
    np.testing.assert_array_equal(model.sample(5, random_state=0), model.sample(5, random_state=0))


def test_grid_search_in_a_pipeline_chooses_by_score():
    X, y = two_gaussians(150, 0)
    order = np.random.default_rng(0).permutation(len(y))
    search = GridSearchCV(
        make_pipeline(StandardScaler(), InterpolantTransport(random_state=0, **FAST)),
        {
            "interpolanttransport__coupling": ["independent", "ot"],
            "interpolanttransport__path": ["linear", "trig"],
        },
        cv=KFold(2, shuffle=True, random_state=0),
    ).fit(X[order], y[order])
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["interpolanttransport__coupling"] in ("independent", "ot")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(path="encdec", gamma="zero"), "pure noise"),
        (dict(path="encdec", gamma="brownian", sigma=0.0), "pure noise"),
        (dict(eps=0.5), "score"),
        (dict(coupling="sinkhorn", coupling_reg="sb", sigma=0.0, gamma="brownian"), "sigma > 0"),
        (dict(path="vp"), "path"),
    ],
)
def test_bad_hyperparameters_are_clear_errors(params, match):
    X, y = two_gaussians(20, 0)
    with pytest.raises(ValueError, match=match):
        InterpolantTransport(**FAST, **params).fit(X, y)


def test_bad_use_after_fit():
    X, y = two_gaussians(30, 0)
    model = InterpolantTransport(random_state=0, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="t must be"):
        model.log_density(X, 1.5)
    with pytest.raises(ValueError, match="eps > 0"):
        model.grad_log_density(X, 0.5)
    with pytest.raises(ValueError, match="eps > 0"):
        model.set_params(eps=0.5, gamma="brownian").sample(3)
    model.set_params(eps=0.0, gamma="zero")
    with pytest.raises(ValueError, match="direction"):
        model.transport(X, direction="sideways")
    with pytest.raises(ValueError, match="both labels"):
        model.score(X[y == 0], y[y == 0])
    with pytest.raises(ValueError, match="switch eps"):
        model.set_params(warm_start=True, eps=0.5, gamma="brownian").fit(X, y)


def test_feature_names_are_kept_and_pandas_output():
    pd = pytest.importorskip("pandas")
    X, y = two_gaussians(50, 0)
    frame = pd.DataFrame(X, columns=["u", "v"])
    model = (
        InterpolantTransport(random_state=0, **FAST).set_output(transform="pandas").fit(frame, y)
    )
    assert list(model.get_feature_names_out()) == ["u", "v"]
    assert list(model.transform(frame).columns) == ["u", "v"]

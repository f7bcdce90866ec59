"""Tests of :mod:`skflow.paths`, the interpolants ``x_t = alpha(t) x0 + beta(t) x1``.

What is tested against what
---------------------------
* ``d_alpha`` / ``d_beta`` of every path in :data:`skflow.paths.PATHS` (several ``sigma`` for the
  linear one) against the :mod:`torch.autograd` derivatives of ``alpha`` / ``beta`` in float64, on a
  grid of times inside ``[t_min, t_max]``.
* ``interpolate`` and ``velocity`` against closed forms written out here in NumPy, independently of
  the package: the linear path ``x_t = (1 - (1 - sigma) t) x0 + t x1``, ``u = x1 - (1 - sigma) x0``;
  the trigonometric path ``cos / sin(pi t / 2)``; the VP path of Lipman et al. (ICLR 2023, eq. 19)
  with ``beta_min = 0.1``, ``beta_max = 20``, i.e. ``T(s) = 0.1 s + 9.95 s^2``.
* The endpoints: ``x_{t_min}`` is (close to) ``x0``; ``x_1 = x1`` exactly for the linear (``sigma =
  0``) and trigonometric paths, and ``x_{t_max}`` is close to ``x1`` for the VP path.
* ``velocity`` against the autograd time derivative of ``interpolate`` for a fixed pair.
"""

import math

import numpy as np
import pytest
import torch

from skflow.paths import (
    DENSITY_PATHS,
    GAMMAS,
    PATHS,
    TRANSPORT_PATHS,
    BrownianGamma,
    EncoderDecoderPath,
    Gamma,
    LinearPath,
    ProbabilityPath,
    SineSquaredGamma,
    TrigonometricPath,
    VPDiffusionPath,
    ZeroGamma,
)

LINEAR_SIGMAS = (0.0, 0.01, 0.1, 0.5)

# every registered path, the linear one at several widths: new paths are picked up automatically
PATH_CASES = [
    (name, sigma) for name in PATHS for sigma in (LINEAR_SIGMAS if name == "linear" else (0.0,))
]
PATH_IDS = [f"{name}-sigma{sigma}" for name, sigma in PATH_CASES]


def _time_grid(path: ProbabilityPath, n: int = 41) -> torch.Tensor:
    """Float64 times strictly inside ``[t_min, t_max]`` plus the two ends."""
    return torch.linspace(path.t_min, path.t_max, n, dtype=torch.float64)


def _pair(n: int = 41, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(loc=2.0, size=(n, d))


# --- closed forms, written independently of skflow -----------------------------------------------


def _linear_reference(sigma):
    def coefficients(t):
        return 1.0 - (1.0 - sigma) * t, t, np.full_like(t, -(1.0 - sigma)), np.ones_like(t)

    return coefficients


def _trig_reference(sigma):
    def coefficients(t):
        a = np.cos(np.pi * t / 2)
        b = np.sin(np.pi * t / 2)
        return a, b, -np.pi / 2 * b, np.pi / 2 * a

    return coefficients


def _vp_reference(sigma):
    # Lipman et al. 2023, eq. 19: mu_t = alpha_{1-t} x1, sigma_t = sqrt(1 - alpha_{1-t}^2),
    # alpha_s = exp(-T(s) / 2), T(s) = int_0^s (0.1 + 19.9 r) dr = 0.1 s + 9.95 s^2.
    def coefficients(t):
        s = 1.0 - t
        big_t = 0.1 * s + 9.95 * s**2
        b = np.exp(-0.5 * big_t)
        a = np.sqrt(1.0 - b**2)
        # d/dt T(1 - t) = -(0.1 + 19.9 s)
        db = 0.5 * (0.1 + 19.9 * s) * b
        da = -b * db / a
        return a, b, da, db

    return coefficients


def _encdec_reference(sigma):
    # Albergo, Boffi & Vanden-Eijnden (2023), eq. 2.17: cos^2(pi t) on x0 before 1/2, on x1 after
    def coefficients(t):
        c2 = np.cos(np.pi * t) ** 2
        dc2 = -2 * np.pi * np.cos(np.pi * t) * np.sin(np.pi * t)
        before, after = t < 0.5, t > 0.5
        return c2 * before, c2 * after, dc2 * before, dc2 * after

    return coefficients


REFERENCES = {
    "linear": _linear_reference,
    "trig": _trig_reference,
    "vp": _vp_reference,
    "encdec": _encdec_reference,
}


def test_registry_classes():
    assert PATHS["linear"] is LinearPath
    assert PATHS["trig"] is TrigonometricPath
    assert PATHS["vp"] is VPDiffusionPath
    for cls in PATHS.values():
        assert issubclass(cls, ProbabilityPath)


@pytest.mark.parametrize("name", list(PATHS))
def test_every_registered_path_has_a_reference(name):
    assert name in REFERENCES, f"add an independent closed form for path {name!r} to REFERENCES"


@pytest.mark.parametrize(("name", "sigma"), PATH_CASES, ids=PATH_IDS)
@pytest.mark.parametrize("coefficient", ["alpha", "beta"])
def test_derivatives_match_autograd(name, sigma, coefficient):
    path = PATHS[name](sigma_min=sigma)
    assert 0.0 <= path.t_min < path.t_max <= 1.0
    t = _time_grid(path).requires_grad_(True)
    value = getattr(path, coefficient)(t)
    (autograd,) = torch.autograd.grad(value.sum(), t)
    analytic = getattr(path, f"d_{coefficient}")(t.detach())
    assert analytic.dtype == torch.float64
    assert analytic.shape == t.shape
    torch.testing.assert_close(analytic, autograd, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "sigma"), PATH_CASES, ids=PATH_IDS)
def test_interpolate_and_velocity_match_closed_form(name, sigma):
    path = PATHS[name](sigma_min=sigma)
    x0, x1 = _pair()
    t = _time_grid(path).numpy()
    a, b, da, db = REFERENCES[name](sigma)(t)
    expected_xt = a[:, None] * x0 + b[:, None] * x1
    expected_u = da[:, None] * x0 + db[:, None] * x1
    xt = path.interpolate(torch.from_numpy(x0), torch.from_numpy(x1), torch.from_numpy(t))
    u = path.velocity(torch.from_numpy(x0), torch.from_numpy(x1), torch.from_numpy(t))
    assert xt.shape == u.shape == x0.shape
    np.testing.assert_allclose(xt.numpy(), expected_xt, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(u.numpy(), expected_u, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sigma", LINEAR_SIGMAS)
def test_linear_path_explicit_formula(sigma):
    # the formula as Lipman et al. (eq. 20-22) write it, not through alpha/beta
    x0, x1 = _pair(n=7)
    t = np.linspace(0.0, 1.0, 7)
    path = LinearPath(sigma)
    xt = path.interpolate(torch.from_numpy(x0), torch.from_numpy(x1), torch.from_numpy(t)).numpy()
    u = path.velocity(torch.from_numpy(x0), torch.from_numpy(x1), torch.from_numpy(t)).numpy()
    expected = (1 - (1 - sigma) * t[:, None]) * x0 + t[:, None] * x1
    np.testing.assert_allclose(xt, expected, atol=1e-14)
    np.testing.assert_allclose(u, x1 - (1 - sigma) * x0, atol=1e-14)


# tolerance on |x_{t_min} - x0| and |x_{t_max} - x1|, relative to the data's scale; None: not close
ENDPOINT_TOLERANCES = {
    "linear": (0.0, 0.0),
    "trig": (1e-15, 1e-15),
    # beta(0) = exp(-10.05 / 2) ~ 6.6e-3; alpha(1 - 1e-3) = sqrt(1 - exp(-1.0995e-4)) ~ 1.05e-2
    "vp": (1e-2, 2e-2),
    "encdec": (0.0, 1e-15),
}


@pytest.mark.parametrize("name", list(PATHS))
def test_endpoints(name):
    path = PATHS[name]()
    x0, x1 = (torch.from_numpy(x) for x in _pair(n=5))
    start_tol, end_tol = ENDPOINT_TOLERANCES[name]
    scale = max(x0.abs().max().item(), x1.abs().max().item())
    t_start = torch.full((5,), path.t_min, dtype=torch.float64)
    t_end = torch.full((5,), path.t_max, dtype=torch.float64)
    assert (path.interpolate(x0, x1, t_start) - x0).abs().max().item() <= start_tol * scale
    assert (path.interpolate(x0, x1, t_end) - x1).abs().max().item() <= end_tol * scale


@pytest.mark.parametrize("name", ["linear", "trig", "encdec"])
def test_paths_reach_data_exactly_at_one(name):
    path = PATHS[name]()
    assert path.t_min == 0.0 and path.t_max == 1.0
    x0, x1 = (torch.from_numpy(x) for x in _pair(n=4))
    ones = torch.ones(4, dtype=torch.float64)
    torch.testing.assert_close(path.interpolate(x0, x1, ones), x1, rtol=0, atol=1e-15)
    torch.testing.assert_close(path.interpolate(x0, x1, 0 * ones), x0, rtol=0, atol=0)


def test_vp_path_is_variance_preserving_and_clipped():
    path = VPDiffusionPath()
    assert path.t_min == 0.0
    assert path.t_max == pytest.approx(1.0 - 1e-3)
    t = _time_grid(path)
    torch.testing.assert_close(path.alpha(t) ** 2 + path.beta(t) ** 2, torch.ones_like(t))
    # the trace of the data left in the base: beta(0) = exp(-T(1) / 2)
    assert path.beta(torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(
        math.exp(-0.5 * 10.05), rel=1e-12
    )
    assert torch.isfinite(path.d_alpha(t)).all()


@pytest.mark.parametrize(("name", "sigma"), PATH_CASES, ids=PATH_IDS)
def test_velocity_is_time_derivative_of_interpolate(name, sigma):
    path = PATHS[name](sigma_min=sigma)
    x0, x1 = (torch.from_numpy(x) for x in _pair())
    t = _time_grid(path).requires_grad_(True)
    xt = path.interpolate(x0, x1, t)
    # row i of x_t depends on t_i only, so the gradient of a column's sum is d x_t / d t row by row
    derivative = torch.stack(
        [torch.autograd.grad(xt[:, k].sum(), t, retain_graph=True)[0] for k in range(xt.shape[1])],
        dim=1,
    )
    velocity = path.velocity(x0, x1, t.detach())
    torch.testing.assert_close(velocity, derivative, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "sigma"), PATH_CASES, ids=PATH_IDS)
def test_float32_inputs_keep_their_dtype(name, sigma):
    path = PATHS[name](sigma_min=sigma)
    x0, x1 = (torch.from_numpy(x).float() for x in _pair(n=6))
    t = torch.linspace(path.t_min, path.t_max, 6)
    assert path.interpolate(x0, x1, t).dtype == torch.float32
    assert path.velocity(x0, x1, t).dtype == torch.float32


# --- the noise scales gamma(t) of stochastic interpolants -----------------------------------------

GAMMA_REFERENCES = {
    "zero": lambda t: (0 * t, 0 * t),
    "brownian": lambda t: (np.sqrt(t * (1 - t)), (1 - 2 * t) / (2 * np.sqrt(t * (1 - t)))),
    "bsquared": lambda t: (t * (1 - t), 1 - 2 * t),
    "sinesquared": lambda t: (
        np.sin(np.pi * t) ** 2,
        2 * np.pi * np.sin(np.pi * t) * np.cos(np.pi * t),
    ),
}
GAMMA_SIGMAS = (0.0, 0.3, 1.0)


def test_gamma_registry_has_references():
    assert set(GAMMAS) == set(GAMMA_REFERENCES)
    for cls in GAMMAS.values():
        assert issubclass(cls, Gamma)
    assert DENSITY_PATHS == {"linear", "trig", "vp"}
    assert TRANSPORT_PATHS == {"linear", "trig", "encdec"}


def _gamma_times(noise: Gamma) -> torch.Tensor:
    return torch.linspace(noise.t_min, noise.t_max, 41, dtype=torch.float64)


@pytest.mark.parametrize("sigma", GAMMA_SIGMAS)
@pytest.mark.parametrize("name", list(GAMMAS))
def test_gamma_derivatives_match_autograd_and_closed_form(name, sigma):
    noise = GAMMAS[name](sigma=sigma)
    t = _gamma_times(noise).requires_grad_(True)
    value = noise.gamma(t)
    if value.requires_grad:
        (autograd,) = torch.autograd.grad(value.sum(), t)
    else:  # the zero noise is a constant with no graph
        autograd = torch.zeros_like(t)
    analytic = noise.d_gamma(t.detach())
    torch.testing.assert_close(analytic, autograd, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        noise.gamma_d_gamma(t.detach()), value.detach() * analytic, rtol=1e-10, atol=1e-12
    )
    g, dg = GAMMA_REFERENCES[name](t.detach().numpy())
    np.testing.assert_allclose(value.detach().numpy(), sigma * g, atol=1e-14)
    np.testing.assert_allclose(analytic.numpy(), sigma * dg, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(GAMMAS))
def test_gamma_vanishes_at_the_ends(name):
    noise = GAMMAS[name](sigma=0.7)
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        noise.gamma(ends), torch.zeros(2, dtype=torch.float64), atol=1e-15, rtol=0
    )


def test_brownian_ends_are_clipped_and_the_product_form_is_finite():
    noise = BrownianGamma(sigma=0.5, t_eps=1e-3)
    assert (noise.t_min, noise.t_max) == (1e-3, 1 - 1e-3)
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    # gamma' is infinite at the ends, gamma gamma' = sigma^2 (1 - 2t) / 2 is not
    assert torch.isinf(noise.d_gamma(ends)).all()
    torch.testing.assert_close(
        noise.gamma_d_gamma(ends), torch.tensor([0.125, -0.125], dtype=torch.float64)
    )
    # near the ends the product equals gamma * gamma' to rounding
    near = torch.tensor([1e-9, 1 - 1e-9], dtype=torch.float64)
    torch.testing.assert_close(noise.gamma_d_gamma(near), noise.gamma(near) * noise.d_gamma(near))
    path = LinearPath().with_noise(noise)
    assert (path.t_min, path.t_max) == (1e-3, 1 - 1e-3)
    t = _gamma_times(noise)
    assert torch.isfinite(noise.d_gamma(t)).all()


@pytest.mark.parametrize("gamma_name", ["brownian", "bsquared", "sinesquared"])
@pytest.mark.parametrize("name", sorted(TRANSPORT_PATHS))
def test_noisy_velocity_is_time_derivative_of_noisy_interpolate(name, gamma_name):
    path = PATHS[name]().with_noise(GAMMAS[gamma_name](sigma=0.6))
    x0, x1 = (torch.from_numpy(x) for x in _pair())
    z = torch.from_numpy(np.random.default_rng(5).normal(size=x0.shape))
    t = torch.linspace(path.t_min, path.t_max, x0.shape[0], dtype=torch.float64).requires_grad_(
        True
    )
    xt = path.interpolate(x0, x1, t, z)
    derivative = torch.stack(
        [torch.autograd.grad(xt[:, k].sum(), t, retain_graph=True)[0] for k in range(xt.shape[1])],
        dim=1,
    )
    torch.testing.assert_close(
        path.velocity(x0, x1, t.detach(), z), derivative, rtol=1e-9, atol=1e-10
    )
    # the noise enters as gamma(t) z exactly
    expected = path.interpolate(x0, x1, t.detach()) + path.noise.gamma(t.detach())[:, None] * z
    torch.testing.assert_close(xt.detach(), expected)


def test_zero_noise_ignores_z():
    path = LinearPath().with_noise(ZeroGamma(sigma=1.0))
    x0, x1 = (torch.from_numpy(x) for x in _pair(n=5))
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    z = torch.ones_like(x0)
    torch.testing.assert_close(path.interpolate(x0, x1, t, z), path.interpolate(x0, x1, t))
    torch.testing.assert_close(path.velocity(x0, x1, t, z), path.velocity(x0, x1, t))


def test_encoder_decoder_is_pure_noise_at_one_half():
    path = EncoderDecoderPath().with_noise(SineSquaredGamma(sigma=1.0))
    x0, x1 = (torch.from_numpy(x) for x in _pair(n=4))
    z = torch.from_numpy(np.random.default_rng(1).normal(size=x0.shape))
    half = torch.full((4,), 0.5, dtype=torch.float64)
    torch.testing.assert_close(path.interpolate(x0, x1, half, z), z, atol=1e-15, rtol=0)
    # alpha and beta are continuously differentiable across t = 1/2
    t = torch.tensor([0.5 - 1e-7, 0.5, 0.5 + 1e-7], dtype=torch.float64)
    assert path.d_alpha(t).abs().max() < 1e-5 and path.d_beta(t).abs().max() < 1e-5
    assert not EncoderDecoderPath.noise_free

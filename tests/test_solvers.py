"""Tests of :func:`skflow.solvers.integrate`, the ODE integrators.

What is tested against what
---------------------------
* Convergence order of each fixed-step method (euler 1, midpoint 2, rk4 4) against the exact
  solution of three problems with known closed forms: ``dy/dt = a y`` (``y0 exp(a (t1 - t0))``), a
  2-D rotation (a rotation matrix), and the time-dependent ``dy/dt = cos(t) y``
  (``y0 exp(sin t1 - sin t0)``), which checks that the stages are evaluated at the right times. The
  observed order ``log2(e_n / e_2n)`` must be within 0.25 of the theoretical order.
* ``dopri5`` reaches the requested tolerance on the same problems.
* Integrating backwards (``t1 < t0``) against the exact backward solution, and as the inverse of the
  forward integration.
* ``return_path``: shape ``(n_steps + 1, *y0.shape)``, first state ``y0``, last state the plain
  result, intermediate states those of shorter integrations; rejected by ``dopri5``.
* Batch independence of the fixed-step methods: a row integrated alone equals the same row
  integrated in a batch (float64, to 1e-12).
* The graded grid (:func:`skflow.solvers.time_grid`, ``step_exponent > 1``): its times against the
  formula, exact ends, one grid for both directions; the methods keep their order on it, and it is
  more accurate than equal steps on a field that is sharp near the later end.
"""

import math

import numpy as np
import pytest
import torch

from skflow.solvers import ADAPTIVE_SOLVERS, FIXED_STEP_SOLVERS, SOLVERS, integrate, time_grid

ORDERS = {"euler": 1, "midpoint": 2, "rk4": 4}
ROTATION = torch.tensor([[0.0, -2.0], [2.0, 0.0]], dtype=torch.float64)


def _exponential(t0, t1, y0):
    return y0 * math.exp(-1.5 * (t1 - t0))


def _rotation(t0, t1, y0):
    angle = 2.0 * (t1 - t0)
    c, s = math.cos(angle), math.sin(angle)
    matrix = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return y0 @ matrix.T


def _time_dependent(t0, t1, y0):
    return y0 * math.exp(math.sin(t1) - math.sin(t0))


# name: (vector field, exact solution, y0 with a batch axis, t0, t1)
PROBLEMS = {
    "exponential": (
        lambda t, y: -1.5 * y,
        _exponential,
        torch.tensor([[1.0], [-0.5], [2.0]], dtype=torch.float64),
        0.0,
        1.0,
    ),
    "rotation": (
        lambda t, y: y @ ROTATION.T,
        _rotation,
        torch.tensor([[1.0, 0.0], [0.3, -0.7]], dtype=torch.float64),
        0.0,
        1.0,
    ),
    "time_dependent": (
        lambda t, y: torch.cos(t) * y,
        _time_dependent,
        torch.tensor([[1.0, -2.0]], dtype=torch.float64),
        0.5,
        1.5,
    ),
}


def test_solver_registries():
    assert set(FIXED_STEP_SOLVERS) == set(ORDERS)
    assert ADAPTIVE_SOLVERS == {"dopri5"}
    assert SOLVERS == set(ORDERS) | {"dopri5"}


@pytest.mark.parametrize("step_exponent", [1.0, 2.0])
@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("method", list(ORDERS))
def test_fixed_step_convergence_order(method, problem, step_exponent):
    f, exact, y0, t0, t1 = PROBLEMS[problem]
    reference = exact(t0, t1, y0)
    steps = [8, 16, 32]
    options = {"method": method, "step_exponent": step_exponent}
    errors = [
        (integrate(f, y0, t0, t1, n_steps=n, **options) - reference).abs().max().item()
        for n in steps
    ]
    observed = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(observed - ORDERS[method]) < 0.25), (errors, observed)


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("tol", [1e-6, 1e-9])
def test_dopri5_reaches_tolerance(problem, tol):
    f, exact, y0, t0, t1 = PROBLEMS[problem]
    result = integrate(f, y0, t0, t1, method="dopri5", atol=tol, rtol=tol)
    assert result.shape == y0.shape and result.dtype == y0.dtype
    error = (result - exact(t0, t1, y0)).abs().max().item()
    assert error < 50 * tol


# tolerance on the error of a 64-step / adaptive integration, per method
ACCURACY = {"euler": 1e-1, "midpoint": 2e-3, "rk4": 1e-6, "dopri5": 1e-6}


@pytest.mark.parametrize("step_exponent", [1.0, 2.0])
@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_backward_integration(method, problem, step_exponent):
    f, exact, y0, t0, t1 = PROBLEMS[problem]
    options = {"method": method, "n_steps": 64, "atol": 1e-9, "rtol": 1e-9}
    options["step_exponent"] = step_exponent
    y1 = exact(t0, t1, y0)
    # backwards from t1 to t0 against the exact backward solution ...
    backward = integrate(f, y1, t1, t0, **options)
    assert (backward - y0).abs().max().item() < ACCURACY[method]
    # ... and as the inverse of the forward integration
    there_and_back = integrate(f, integrate(f, y0, t0, t1, **options), t1, t0, **options)
    assert (there_and_back - y0).abs().max().item() < ACCURACY[method]


@pytest.mark.parametrize("method", list(ORDERS))
def test_return_path(method):
    f, _, y0, t0, t1 = PROBLEMS["time_dependent"]
    n_steps = 6
    path = integrate(f, y0, t0, t1, method=method, n_steps=n_steps, return_path=True)
    assert path.shape == (n_steps + 1, *y0.shape)
    torch.testing.assert_close(path[0], y0, rtol=0, atol=0)
    end = integrate(f, y0, t0, t1, method=method, n_steps=n_steps)
    torch.testing.assert_close(path[-1], end, rtol=0, atol=1e-15)
    # state k is that of k steps of the same size
    h = (t1 - t0) / n_steps
    for k in (1, 3):
        partial = integrate(f, y0, t0, t0 + k * h, method=method, n_steps=k)
        torch.testing.assert_close(path[k], partial, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("t0, t1", [(0.0, 1.0), (0.5, 1.5), (1.0, 0.0), (2.0, -1.0)])
@pytest.mark.parametrize("exponent", [1.0, 1.5, 3.0])
def test_time_grid_follows_its_formula(t0, t1, exponent):
    n_steps = 7
    times = time_grid(t0, t1, n_steps, exponent)
    low, high = min(t0, t1), max(t0, t1)
    ascending = [high - (high - low) * (1 - k / n_steps) ** exponent for k in range(n_steps + 1)]
    expected = ascending if t1 > t0 else ascending[::-1]
    np.testing.assert_allclose(times.numpy(), expected, rtol=0, atol=1e-15)
    assert times[0].item() == t0 and times[-1].item() == t1  # exact ends
    steps = np.diff(times.numpy()) * np.sign(t1 - t0)
    assert np.all(steps > 0)
    # exponent > 1: every step shorter than the one before it on the way to the upper end
    toward_high = steps if t1 > t0 else steps[::-1]
    if exponent > 1:
        assert np.all(np.diff(toward_high) < 0)
    # the step next to the upper end is (high - low) n^-p
    np.testing.assert_allclose(toward_high[-1], (high - low) * n_steps**-exponent, rtol=1e-12)


def test_time_grid_rejects_bad_arguments():
    with pytest.raises(ValueError, match="exponent"):
        time_grid(0.0, 1.0, 4, 0.5)
    with pytest.raises(ValueError, match="n_steps"):
        time_grid(0.0, 1.0, 0)
    assert time_grid(0.0, 1.0, 2, dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("method", ["midpoint", "rk4"])
def test_graded_grid_is_more_accurate_on_a_field_sharp_at_the_end(method):
    # dy/dt = y / (2 sqrt(1.05 - t)) has the closed form y0 exp(sqrt(1.05) - sqrt(1.05 - t)); its
    # k-th time derivative grows like (1.05 - t)^(1/2 - k) toward t = 1, where short steps pay off
    # (20 steps: rk4 2.3e-4 with equal steps, 1.1e-5 with exponent 1.5, both directions alike)
    f = lambda t, y: 0.5 * y / torch.sqrt(1.05 - t)  # noqa: E731
    y0 = torch.tensor([[1.0], [-2.0]], dtype=torch.float64)
    exact = y0 * math.exp(math.sqrt(1.05) - math.sqrt(0.05))
    errors = {}
    for exponent in (1.0, 1.5):
        options = {"method": method, "n_steps": 20, "step_exponent": exponent}
        forward = integrate(f, y0, 0.0, 1.0, **options)
        backward = integrate(f, exact, 1.0, 0.0, **options)
        errors[exponent] = np.array(
            [(forward - exact).abs().max().item(), (backward - y0).abs().max().item()]
        )
    assert np.all(errors[1.5] < errors[1.0] / 2), errors


def test_return_path_rejected_by_adaptive_solver():
    f, _, y0, t0, t1 = PROBLEMS["exponential"]
    with pytest.raises(ValueError, match="return_path"):
        integrate(f, y0, t0, t1, method="dopri5", return_path=True)


def test_unknown_method_raises():
    f, _, y0, t0, t1 = PROBLEMS["exponential"]
    with pytest.raises(KeyError):
        integrate(f, y0, t0, t1, method="no-such-method")


@pytest.mark.parametrize("method", list(ORDERS))
def test_rows_do_not_depend_on_batch_mates(method):
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 3, generator=generator, dtype=torch.float64)

    def f(t, y):
        return torch.tanh(y @ weight.T + t) - 0.5 * y

    batch = torch.randn(9, 3, generator=generator, dtype=torch.float64)
    together = integrate(f, batch, 0.0, 1.0, method=method, n_steps=10)
    for i in (0, 4, 8):
        alone = integrate(f, batch[i : i + 1], 0.0, 1.0, method=method, n_steps=10)
        torch.testing.assert_close(together[i : i + 1], alone, rtol=0, atol=1e-12)
    # and a row's result changes when only that row's start changes
    moved = batch.clone()
    moved[4] += 0.1
    other = integrate(f, moved, 0.0, 1.0, method=method, n_steps=10)
    unchanged = [0, 1, 2, 3, 5, 6, 7, 8]
    torch.testing.assert_close(other[unchanged], together[unchanged], rtol=0, atol=1e-12)
    assert not torch.allclose(other[4], together[4])


@pytest.mark.parametrize("method", list(ORDERS))
def test_float32_state_keeps_dtype(method):
    _, _, y0, t0, t1 = PROBLEMS["rotation"]
    rotation32 = ROTATION.float()
    result = integrate(lambda t, y: y @ rotation32.T, y0.float(), t0, t1, method=method, n_steps=32)
    reference = integrate(lambda t, y: y @ ROTATION.T, y0, t0, t1, method=method, n_steps=32)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result.double(), reference, rtol=1e-5, atol=1e-5)


# --- the Euler–Maruyama SDE integrator ------------------------------------------------------------


def _ou_moments(x0, theta, t):
    """Ornstein–Uhlenbeck ``dX = -theta X dt + sqrt(2) dW``: mean and variance at time ``t``."""
    return x0 * math.exp(-theta * t), (1.0 - math.exp(-2.0 * theta * t)) / theta


def test_sde_reproduces_ornstein_uhlenbeck_moments():
    from skflow.solvers import integrate_sde

    theta, n = 1.5, 20000
    y0 = torch.full((n, 1), 2.0, dtype=torch.float64)
    y = integrate_sde(
        lambda t, y: -theta * y,
        lambda t: math.sqrt(2.0),
        y0,
        0.0,
        1.0,
        n_steps=200,
        generator=torch.Generator().manual_seed(0),
    )
    mean, variance = _ou_moments(2.0, theta, 1.0)
    se = math.sqrt(variance / n)
    assert abs(y.mean().item() - mean) < 4 * se + 0.01  # + Euler-Maruyama's weak error
    assert y.var().item() == pytest.approx(variance, rel=0.05)


def test_sde_backwards_in_time_and_seeded():
    """A backward SDE solved from t0 = 1 down to t1 = 0: ``Y_{k+1} = Y_k + h f + g sqrt(|h|) xi``
    with ``h < 0``; for ``f = -theta y`` this is an OU process in reversed time."""
    from skflow.solvers import integrate_sde

    theta, n = 1.0, 20000
    y0 = torch.full((n, 1), 1.0, dtype=torch.float64)

    def run(seed):
        return integrate_sde(
            lambda t, y: (
                theta * y
            ),  # dY = theta Y dt backwards is -theta Y in forward time s = 1 - t
            lambda t: math.sqrt(2.0),
            y0,
            1.0,
            0.0,
            n_steps=200,
            generator=torch.Generator().manual_seed(seed),
        )

    y = run(0)
    mean, variance = _ou_moments(1.0, theta, 1.0)
    assert abs(y.mean().item() - mean) < 0.03
    assert y.var().item() == pytest.approx(variance, rel=0.05)
    torch.testing.assert_close(run(0), y, rtol=0, atol=0)
    assert not torch.equal(run(1), y)


def test_sde_without_noise_is_euler_and_path_shape():
    from skflow.solvers import integrate_sde

    f, y0 = PROBLEMS["time_dependent"][0], PROBLEMS["time_dependent"][2]
    sde = integrate_sde(f, lambda t: 0.0, y0, 0.5, 1.5, n_steps=16, return_path=True)
    assert sde.shape == (17, *y0.shape)
    ode = integrate(f, y0, 0.5, 1.5, method="euler", n_steps=16)
    torch.testing.assert_close(sde[-1], ode, rtol=1e-14, atol=1e-14)

"""Tests of :mod:`skflow.likelihood`, the instantaneous change of variables.

What is tested against what
---------------------------
* :func:`~skflow.likelihood.divergence_exact` against the trace of
  :func:`torch.autograd.functional.jacobian` computed row by row, for a small random time-dependent
  MLP in float64; its velocity output against a direct call.
* :func:`~skflow.likelihood.divergence_hutchinson` against ``eps^T J eps`` built from that
  Jacobian (probe by probe); its average over all ``2^d`` Rademacher probes equals the trace
  exactly, with the variance ``sum_{i<j} (J_ij + J_ji)^2``; its mean over many random probes
  converges to the trace.
* :func:`~skflow.likelihood.standard_normal_log_density` against :mod:`scipy.stats`.
* :func:`~skflow.likelihood.flow_log_likelihood` on a linear field ``v(t, x) = A x`` against the
  closed form ``z = expm(-A) x``, ``delta = -tr(A)`` (:func:`scipy.linalg.expm`), for rk4 and
  dopri5; with Hutchinson's estimator, ``delta`` is ``-eps^T A eps`` for some Rademacher ``eps`` and
  averages to ``-tr(A)``.
* A field constant in ``x`` (a translation) has zero divergence with either estimator.
* A Gaussian-to-Gaussian flow: the exact marginal velocity of the linear path from ``N(0, I)`` to
  ``N(m, s^2 I)`` (mean ``t m``, standard deviation ``sigma(t) = sqrt((1 - t)^2 + t^2 s^2)``,
  ``v = m + sigma'(t) / sigma(t) (x - t m)``); ``log N(z; 0, I) + delta`` must equal
  :func:`scipy.stats.norm.logpdf` of ``N(m, s^2 I)`` at ``x``, and ``z = (x - m) / s``.
* :func:`~skflow.likelihood.rademacher_probes`: a row's probes are the same alone, shuffled or
  among other rows, change with the seed or one bit of the row, and have fair, uncorrelated signs.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.linalg import expm
from scipy.stats import multivariate_normal, norm

from skflow.likelihood import (
    DIVERGENCES,
    divergence_exact,
    divergence_hutchinson,
    flow_log_likelihood,
    rademacher_probes,
    standard_normal_log_density,
)

D = 3


def _mlp_velocity(seed=0, d=D, hidden=8):
    """A random float64 field ``v(t, x) = W2 tanh(W1 x + w t + b1) + b2 + x * t``."""
    generator = torch.Generator().manual_seed(seed)
    w1 = torch.randn(hidden, d, generator=generator, dtype=torch.float64)
    w = torch.randn(hidden, generator=generator, dtype=torch.float64)
    b1 = torch.randn(hidden, generator=generator, dtype=torch.float64)
    w2 = torch.randn(d, hidden, generator=generator, dtype=torch.float64)
    b2 = torch.randn(d, generator=generator, dtype=torch.float64)

    def velocity(t, x):
        return torch.tanh(x @ w1.T + t[:, None] * w + b1) @ w2.T + b2 + x * t[:, None]

    return velocity


def _points(n=5, d=D, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    t = torch.rand(n, generator=generator, dtype=torch.float64)
    return t, x


def _jacobians(velocity, t, x):
    """Per-row Jacobians ``dv_i / dx_i`` with :func:`torch.autograd.functional.jacobian`."""
    return torch.stack(
        [
            torch.autograd.functional.jacobian(
                lambda row, i=i: velocity(t[i : i + 1], row[None])[0], x[i]
            )
            for i in range(x.shape[0])
        ]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_divergence_exact_is_trace_of_jacobian(seed):
    velocity = _mlp_velocity(seed)
    t, x = _points(seed=seed + 10)
    v, div = divergence_exact(velocity, t, x)
    torch.testing.assert_close(v, velocity(t, x), rtol=1e-12, atol=1e-12)
    jacobians = _jacobians(velocity, t, x)
    expected = torch.diagonal(jacobians, dim1=1, dim2=2).sum(dim=1)
    assert div.shape == (x.shape[0],)
    torch.testing.assert_close(div, expected, rtol=1e-10, atol=1e-12)


def test_divergence_exact_of_linear_field():
    matrix = torch.tensor(
        [[0.3, -1.0, 0.2], [0.5, -0.4, 0.0], [1.0, 2.0, 0.6]], dtype=torch.float64
    )
    t, x = _points(n=4)
    _, div = divergence_exact(lambda t, x: x @ matrix.T, t, x)
    torch.testing.assert_close(div, torch.full((4,), 0.5, dtype=torch.float64))


def _all_probes(d):
    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d)), dtype=torch.float64)


def test_hutchinson_is_quadratic_form_of_probe():
    velocity = _mlp_velocity(seed=3)
    t, x = _points(n=4, seed=4)
    jacobians = _jacobians(velocity, t, x)
    probes = _all_probes(D)
    # every probe at once, the same for every row: one estimate per probe
    batch_probes = probes[:, None, :].expand(probes.shape[0], *x.shape).contiguous()
    v, estimates = divergence_hutchinson(velocity, t, x, batch_probes)
    torch.testing.assert_close(v, velocity(t, x), rtol=1e-12, atol=1e-12)
    assert estimates.shape == (x.shape[0], probes.shape[0])
    expected = torch.einsum("ki,nij,kj->nk", probes, jacobians, probes)
    torch.testing.assert_close(estimates, expected, rtol=1e-10, atol=1e-12)


def test_hutchinson_enumeration_mean_and_variance():
    # over all 2^d Rademacher probes the average is the trace exactly, and the variance is
    # sum_{i<j} (J_ij + J_ji)^2 (not 2 sum_{i != j} J_ij^2 unless J is symmetric)
    velocity = _mlp_velocity(seed=5)
    t, x = _points(n=3, seed=6)
    probes = _all_probes(D)
    k = probes.shape[0]
    estimates = divergence_hutchinson(velocity, t, x, probes[:, None, :].expand(k, 3, D))[1]
    jacobians = _jacobians(velocity, t, x)
    trace = torch.diagonal(jacobians, dim1=1, dim2=2).sum(dim=1)
    torch.testing.assert_close(estimates.mean(dim=1), trace, rtol=1e-10, atol=1e-12)
    symmetric = jacobians + jacobians.transpose(1, 2)
    variance = torch.triu(symmetric**2, diagonal=1).sum(dim=(1, 2))
    torch.testing.assert_close(
        estimates.var(dim=1, unbiased=False), variance, rtol=1e-10, atol=1e-12
    )


def test_hutchinson_random_probes_converge_to_exact():
    # the mean of K random-probe estimates is within 5 standard deviations sqrt(var / K) of the
    # trace, var being the exact variance sum_{i<j} (J_ij + J_ji)^2 from the Jacobian
    velocity = _mlp_velocity(seed=7)
    t, x = _points(n=3, seed=8)
    _, exact = divergence_exact(velocity, t, x)
    jacobians = _jacobians(velocity, t, x)
    variance = torch.triu((jacobians + jacobians.transpose(1, 2)) ** 2, diagonal=1).sum(dim=(1, 2))
    assert (variance > 1e-3).all()
    generator = torch.Generator().manual_seed(0)
    for n_probes in (64, 4096):
        probes = torch.randint(0, 2, (n_probes, 3, D), generator=generator).double() * 2 - 1
        estimates = divergence_hutchinson(velocity, t, x, probes)[1]
        error = (estimates.mean(dim=1) - exact).abs()
        assert (error <= 5 * torch.sqrt(variance / n_probes)).all()


@pytest.mark.parametrize("n_probes", [None, 3])
def test_field_constant_in_x_has_zero_divergence(n_probes):
    # a translation v(t, x) = c is a valid field whose Jacobian is zero: z = x - c, delta = 0
    shift = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    _, x = _points(n=4)
    probes = None if n_probes is None else torch.from_numpy(rademacher_probes(x, n_probes, 0))
    z, delta = flow_log_likelihood(
        lambda t, y: shift.expand(t.shape[0], D),
        x,
        0.0,
        1.0,
        probes=probes,
        method="rk4",
        n_steps=4,
    )
    torch.testing.assert_close(z, x - shift, rtol=1e-12, atol=1e-12)
    assert delta.shape == ((4,) if n_probes is None else (4, n_probes))
    torch.testing.assert_close(delta, torch.zeros_like(delta), rtol=0, atol=1e-12)


def test_standard_normal_log_density_matches_scipy():
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = multivariate_normal(mean=np.zeros(4)).logpdf(z.numpy())
    np.testing.assert_allclose(standard_normal_log_density(z).numpy(), expected, rtol=1e-12)


MATRIX = np.array([[-0.5, 1.2, 0.0], [-0.8, 0.3, 0.4], [0.2, -0.1, -1.1]])
LINEAR_SOLVERS = [
    {"method": "rk4", "n_steps": 20},
    {"method": "dopri5", "atol": 1e-9, "rtol": 1e-9},
]


@pytest.mark.parametrize("options", LINEAR_SOLVERS, ids=lambda o: o["method"])
def test_flow_log_likelihood_linear_field(options):
    matrix = torch.from_numpy(MATRIX)
    _, x = _points(n=6)
    z, delta = flow_log_likelihood(lambda t, y: y @ matrix.T, x, 0.0, 1.0, **options)
    expected_z = x.numpy() @ expm(-MATRIX).T
    np.testing.assert_allclose(z.numpy(), expected_z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(delta.numpy(), np.full(6, -np.trace(MATRIX)), rtol=1e-9, atol=1e-9)


def test_flow_log_likelihood_linear_field_on_other_interval():
    # from t0 = 0.25 to t1 = 0.75 the flow map is expm(0.5 A)
    matrix = torch.from_numpy(MATRIX)
    _, x = _points(n=3)
    z, delta = flow_log_likelihood(
        lambda t, y: y @ matrix.T, x, 0.25, 0.75, method="rk4", n_steps=20
    )
    np.testing.assert_allclose(z.numpy(), x.numpy() @ expm(-0.5 * MATRIX).T, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(delta.numpy(), -0.5 * np.trace(MATRIX), rtol=1e-9)


def test_flow_log_likelihood_hutchinson_on_linear_field():
    matrix = torch.from_numpy(MATRIX)
    n = 2000
    x = _points(n=1)[1].expand(n, D).contiguous()

    # n draws of the probe: one probe for each of n copies of the point (the probes of a row are
    # its own, so copies of one row would share them: draw them here instead)
    probes = torch.randint(0, 2, (1, n, D), generator=torch.Generator().manual_seed(0))
    probes = probes.double() * 2 - 1

    def run():
        z, delta = flow_log_likelihood(
            lambda t, y: y @ matrix.T, x, 0.0, 1.0, probes=probes, method="rk4", n_steps=8
        )
        return z, delta[:, 0]

    z, delta = run()
    # the state follows the same ODE whatever the divergence
    z_exact, _ = flow_log_likelihood(
        lambda t, y: y @ matrix.T, x[:2], 0.0, 1.0, method="rk4", n_steps=8
    )
    torch.testing.assert_close(z, z_exact[:1].expand(n, D), rtol=1e-12, atol=1e-12)
    # with a probe held fixed along the path, delta is -eps^T A eps for one of the 2^d probes
    every = _all_probes(D).numpy()
    possible = -np.einsum("ki,ij,kj->k", every, MATRIX, every)
    distance = np.abs(delta.numpy()[:, None] - possible[None, :]).min(axis=1)
    assert distance.max() < 1e-10
    standard_error = delta.std().item() / math.sqrt(n)
    assert abs(delta.mean().item() + np.trace(MATRIX)) < 5 * standard_error
    torch.testing.assert_close(run()[1], delta, rtol=0, atol=0)


GAUSSIAN_CASES = [((1.0, -2.0), 0.5), ((0.0, 3.0, -1.0), 2.0), ((-0.7,), 1.3)]
# (divergence, solver options, tolerance on the log-likelihood); Hutchinson is cheap and, on this
# isotropic field, exact, so one solver is enough for it
GAUSSIAN_RUNS = [
    ("exact", {"method": "rk4", "n_steps": 20}, 5e-5),
    ("exact", {"method": "dopri5", "atol": 1e-8, "rtol": 1e-8}, 1e-6),
    ("hutchinson", {"method": "rk4", "n_steps": 20}, 5e-5),
]


def _gaussian_marginal_velocity(mean, scale):
    """Exact marginal velocity of the linear path from N(0, I) to N(mean, scale^2 I)."""

    def velocity(t, x):
        t = t[:, None]
        std = torch.sqrt((1 - t) ** 2 + t**2 * scale**2)
        d_std = (t * scale**2 - (1 - t)) / std
        return mean + d_std / std * (x - t * mean)

    return velocity


@pytest.mark.parametrize(
    ("divergence", "options", "tol"),
    GAUSSIAN_RUNS,
    ids=[f"{run[0]}-{run[1]['method']}" for run in GAUSSIAN_RUNS],
)
@pytest.mark.parametrize(("mean", "scale"), GAUSSIAN_CASES)
def test_gaussian_to_gaussian_log_likelihood(mean, scale, divergence, options, tol):
    mean_t = torch.tensor(mean, dtype=torch.float64)
    d = len(mean)
    generator = torch.Generator().manual_seed(3)
    x = mean_t + scale * torch.randn(7, d, generator=generator, dtype=torch.float64)
    probes = None
    if divergence == "hutchinson":
        probes = torch.from_numpy(rademacher_probes(x.numpy(), 2, 0))
    z, delta = flow_log_likelihood(
        _gaussian_marginal_velocity(mean_t, scale), x, 0.0, 1.0, probes=probes, **options
    )
    if probes is not None:  # the field is isotropic in x: every probe's estimate is exact here
        torch.testing.assert_close(delta[:, 0], delta[:, 1], rtol=1e-12, atol=1e-12)
        delta = delta[:, 0]
    log_likelihood = standard_normal_log_density(z) + delta
    expected = norm.logpdf(x.numpy(), loc=np.array(mean), scale=scale).sum(axis=1)
    np.testing.assert_allclose(log_likelihood.numpy(), expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(z.numpy(), (x.numpy() - np.array(mean)) / scale, rtol=tol, atol=tol)
    np.testing.assert_allclose(delta.numpy(), np.full(7, -d * math.log(scale)), rtol=tol, atol=tol)


def test_gaussian_runs_cover_every_divergence():
    assert {run[0] for run in GAUSSIAN_RUNS} == set(DIVERGENCES) - {"auto"}


def test_row_probes_depend_on_the_row_and_the_seed_only():
    rows = np.random.default_rng(0).normal(size=(50, 7))
    probes = rademacher_probes(rows, 5, seed=3)
    assert probes.shape == (5, 50, 7) and set(np.unique(probes)) == {-1.0, 1.0}
    # a row's probes in a batch of one, at another position, or among other rows
    np.testing.assert_array_equal(rademacher_probes(rows[10:11], 5, 3), probes[:, 10:11])
    shuffled = np.random.default_rng(1).permutation(50)
    np.testing.assert_array_equal(rademacher_probes(rows[shuffled], 5, 3), probes[:, shuffled])
    # another seed, or a row changed in one bit, gives other probes
    assert (rademacher_probes(rows, 5, seed=4) != probes).mean() > 0.4
    nudged = rows.copy()
    nudged[0, 0] = np.nextafter(nudged[0, 0], np.inf)
    assert (rademacher_probes(nudged[:1], 5, 3) != probes[:, :1]).mean() > 0.3
    # fair signs, independent across probes and coordinates
    many = rademacher_probes(np.random.default_rng(2).normal(size=(20_000, 8)), 4, 0)
    assert abs(many.mean()) < 0.01
    correlation = np.corrcoef(many.transpose(1, 0, 2).reshape(20_000, -1).T)
    assert np.abs(correlation - np.eye(32)).max() < 0.05

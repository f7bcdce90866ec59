"""Training-time distributions: densities against references, draws against densities."""

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from skflow.times import TIME_DISTRIBUTIONS, ArcsineTimes, LogitNormalTimes


def pdf(distribution, u):
    return distribution.pdf(torch.as_tensor(u, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("name", sorted(TIME_DISTRIBUTIONS))
def test_density_integrates_to_one(name):
    distribution = TIME_DISTRIBUTIONS[name]()
    total, _ = integrate.quad(lambda u: float(pdf(distribution, np.array([u]))[0]), 0.0, 1.0)
    assert total == pytest.approx(1.0, abs=1e-6)


def test_densities_match_references():
    u = np.linspace(0.01, 0.99, 99)
    np.testing.assert_allclose(pdf(ArcsineTimes(), u), stats.arcsine.pdf(u), rtol=1e-12)
    # logit-normal: the normal density of logit(u) times |d logit / du| = 1 / (u (1 - u))
    location, scale = 0.5, 0.7
    reference = stats.norm.pdf(np.log(u / (1 - u)), location, scale) / (u * (1 - u))
    np.testing.assert_allclose(pdf(LogitNormalTimes(location, scale), u), reference, rtol=1e-10)


REFERENCE_CDFS = {
    "uniform": stats.uniform.cdf,
    "arcsine": stats.arcsine.cdf,
    "logit_normal": lambda u: stats.norm.cdf(np.log(u / (1 - u))),
}


@pytest.mark.parametrize("name", sorted(TIME_DISTRIBUTIONS))
def test_draws_follow_the_density(name):
    draws = TIME_DISTRIBUTIONS[name]().sample(
        20000, torch.Generator().manual_seed(0), torch.device("cpu")
    )
    # in float32 the ends themselves can come out, which the paths allow (t_min <= t <= t_max)
    assert draws.shape == (20000,) and bool(((draws >= 0) & (draws <= 1)).all())
    draws = draws.double().numpy().clip(1e-12, 1 - 1e-12)
    assert stats.kstest(draws, REFERENCE_CDFS[name]).pvalue > 1e-3

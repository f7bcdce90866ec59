"""Tests of :mod:`skflow.couplings`, the minibatch pairings of base and data samples.

What is tested against what
---------------------------
* :class:`~skflow.couplings.ExactOTCoupling` against a brute-force search over every
  permutation (:func:`itertools.permutations`) of small batches (``n <= 7``): its pairing attains
  the minimum total squared distance and uses every base row exactly once, also when the cost has
  ties; a larger minibatch is paired optimally within each of its blocks.
* :class:`~skflow.couplings.IndependentCoupling` returns ``x0`` unchanged.
* :class:`~skflow.couplings.SinkhornCoupling`: the plan's marginals are uniform; its transport
  cost lies between the exact OT cost and ``OT + reg * log(n)`` (in units of the mean cost; the
  standard entropic bound ``<P_reg, C> - <P*, C> <= reg (H(P_reg) - H(P*)) <= reg log n``), so it
  approaches the exact cost as ``reg`` shrinks, and it approaches the independent cost ``mean(C)``
  as ``reg`` grows; the cost of the pairs actually drawn follows both limits; the pairs drawn follow
  the plan's columns (checked by frequencies against a plan fixed by the test); the draw is
  reproducible for a fixed seed. Minibatches of 1024 and more rows converge to a plan of total mass
  one (POT's default absorption threshold stalled there), a tiny ``reg`` gives a finite plan, and a
  plan that does not converge raises skflow's ConvergenceWarning naming ``coupling_reg``, not POT's.
* :func:`~skflow.couplings.make_coupling` builds the registered classes.
"""

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning

from skflow.couplings import (
    COUPLINGS,
    Coupling,
    ExactOTCoupling,
    IndependentCoupling,
    SinkhornCoupling,
    make_coupling,
)


def _batches(n, d, seed, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(n, d))
    x1 = rng.normal(loc=0.5, scale=1.5, size=(n, d))
    return torch.tensor(x0, dtype=dtype), torch.tensor(x1, dtype=dtype)


def _cost_matrix(x0, x1):
    """``C[i, j] = |x0_i - x1_j|^2`` in NumPy float64, independently of skflow."""
    a, b = x0.double().numpy(), x1.double().numpy()
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)


def _brute_force_ot(cost):
    """Minimum of ``sum_j C[perm[j], j]`` over every permutation."""
    n = cost.shape[0]
    perms = np.array(list(itertools.permutations(range(n))))
    return cost[perms, np.arange(n)].sum(axis=1).min()


def _source_indices(x0, paired):
    """Index in ``x0`` of every row of ``paired`` (the rows of ``x0`` must be distinct)."""
    matches = (paired[:, None, :] == x0[None, :, :]).all(dim=-1)
    assert (matches.sum(dim=1) == 1).all(), "a paired row is not a row of x0"
    return matches.int().argmax(dim=1).numpy()


def _pairing_cost(paired, x1):
    return ((paired.double() - x1.double()) ** 2).sum().item()


# --- exact OT ------------------------------------------------------------------------------------

OT_CASES = [(n, d, seed) for n in (1, 2, 3, 5, 7) for d, seed in ((1, n), (2, 10 + n), (5, 20 + n))]


@pytest.mark.parametrize(("n", "d", "seed"), OT_CASES)
def test_exact_ot_is_optimal_permutation(n, d, seed):
    x0, x1 = _batches(n, d, seed)
    paired = ExactOTCoupling().pair(x0, x1, np.random.default_rng(0))
    assert paired.shape == x0.shape and paired.dtype == x0.dtype
    source = _source_indices(x0, paired)
    np.testing.assert_array_equal(np.sort(source), np.arange(n))
    optimum = _brute_force_ot(_cost_matrix(x0, x1))
    assert _pairing_cost(paired, x1) == pytest.approx(optimum, rel=1e-12)


def test_exact_ot_with_ties_is_still_a_permutation():
    # duplicated base rows and data rows: many optimal plans, every one of them must be a matching
    rng = np.random.default_rng(3)
    base = rng.normal(size=(3, 2))
    x0 = torch.tensor(np.concatenate([base, base[:2], base[:1]]))
    x1 = torch.tensor(np.concatenate([base[1:], base[1:], base[:2]]) + 0.25)
    paired = ExactOTCoupling().pair(x0, x1, np.random.default_rng(0))
    # as multisets, the paired rows are the rows of x0
    np.testing.assert_array_equal(
        np.sort(paired.numpy().view("f8,f8").ravel()), np.sort(x0.numpy().view("f8,f8").ravel())
    )
    optimum = _brute_force_ot(_cost_matrix(x0, x1))
    assert _pairing_cost(paired, x1) == pytest.approx(optimum, rel=1e-12)


def test_exact_ot_float32_and_translation():
    # a shared translation leaves the optimal matching unchanged
    x0, x1 = _batches(6, 3, seed=42, dtype=torch.float32)
    shift = torch.tensor([3.0, -1.0, 2.0])
    coupling = ExactOTCoupling()
    paired = coupling.pair(x0, x1, np.random.default_rng(0))
    shifted = coupling.pair(x0 + shift, x1 + shift, np.random.default_rng(0))
    assert paired.dtype == torch.float32
    torch.testing.assert_close(shifted - shift, paired)


def test_exact_ot_pairs_large_minibatches_within_blocks():
    # 10 rows in blocks of at most 4 (4, 3, 3): each block is the brute-force optimum of its rows,
    # and every base row is used once
    x0, x1 = _batches(10, 2, seed=3)
    paired = ExactOTCoupling(block_size=4).pair(x0, x1, np.random.default_rng(0))
    used = [int(np.flatnonzero((x0 == row).all(dim=1))[0]) for row in paired]
    assert sorted(used) == list(range(10))
    for block in np.array_split(np.arange(10), 3):
        assert set(np.array(used)[block]) == set(block)  # paired within the block
        optimum = _brute_force_ot(_cost_matrix(x0[block], x1[block]))
        assert _pairing_cost(paired[block], x1[block]) == pytest.approx(optimum, rel=1e-12)


# --- independent ---------------------------------------------------------------------------------


def test_independent_returns_x0_unchanged():
    x0, x1 = _batches(8, 3, seed=1)
    rng = np.random.default_rng(5)
    paired = IndependentCoupling().pair(x0.clone(), x1, rng)
    torch.testing.assert_close(paired, x0, rtol=0, atol=0)
    # it draws nothing from the generator
    assert rng.random() == np.random.default_rng(5).random()


# --- Sinkhorn ------------------------------------------------------------------------------------

SINKHORN_BATCHES = [(6, 2, 0), (7, 3, 1), (8, 1, 2), (5, 4, 3)]


@pytest.mark.parametrize("n", [1000, 1024, 2048])
def test_sinkhorn_plan_converges_on_large_minibatches(n):
    x0, x1 = _batches(n, 2, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither skflow's nor POT's warning
        plan = SinkhornCoupling(0.1).plan(x0, x1)
    assert plan.sum() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(plan.sum(axis=0), np.full(n, 1 / n), rtol=1e-3)
    np.testing.assert_allclose(plan.sum(axis=1), np.full(n, 1 / n), rtol=1e-3)


@pytest.mark.parametrize("reg", [1e-3, 1e-4])
def test_sinkhorn_tiny_reg_gives_a_finite_plan_and_names_coupling_reg(reg):
    x0, x1 = _batches(64, 2, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = SinkhornCoupling(reg).plan(x0, x1)
    assert [w.category for w in caught] == [ConvergenceWarning]
    assert "coupling_reg" in str(caught[0].message)
    assert np.isfinite(plan).all() and (plan >= 0).all()
    assert plan.sum() == pytest.approx(1.0, rel=1e-6)
    # close to exact OT: the transport cost within 1 % of the optimal matching's (SciPy's solver)
    cost = _cost_matrix(x0, x1)
    rows, columns = linear_sum_assignment(cost)
    assert (plan * cost).sum() <= 1.01 * cost[rows, columns].mean()


@pytest.mark.parametrize(("n", "d", "seed"), SINKHORN_BATCHES)
@pytest.mark.parametrize("reg", [0.2, 1.0, 10.0, 100.0])
def test_sinkhorn_plan_has_uniform_marginals(n, d, seed, reg):
    x0, x1 = _batches(n, d, seed)
    plan = SinkhornCoupling(reg).plan(x0, x1)
    assert plan.shape == (n, n)
    assert (plan >= 0).all()
    np.testing.assert_allclose(plan.sum(axis=0), np.full(n, 1 / n), rtol=1e-4)
    np.testing.assert_allclose(plan.sum(axis=1), np.full(n, 1 / n), rtol=1e-4)


def _normalised_gaps(n, d, seed, regs):
    """``(<P_reg, C> - OT / n) / mean(C)`` for each reg, and the same for the independent plan."""
    x0, x1 = _batches(n, d, seed)
    cost = _cost_matrix(x0, x1)
    optimum = _brute_force_ot(cost) / n
    gaps = [
        ((SinkhornCoupling(reg).plan(x0, x1) * cost).sum() - optimum) / cost.mean() for reg in regs
    ]
    return np.array(gaps), (cost.mean() - optimum) / cost.mean()


@pytest.mark.parametrize(("n", "d", "seed"), SINKHORN_BATCHES)
def test_sinkhorn_cost_approaches_exact_ot_as_reg_shrinks(n, d, seed):
    regs = np.array([1.0, 0.5, 0.2])
    gaps, _ = _normalised_gaps(n, d, seed, regs)
    # entropic bound: 0 <= gap <= reg * (H(P_reg) - H(P*)) <= reg * log(n)
    assert (gaps >= -1e-6).all()
    assert (gaps <= regs * math.log(n) + 1e-6).all()
    assert (np.diff(gaps) < 0).all()


@pytest.mark.parametrize(("n", "d", "seed"), SINKHORN_BATCHES)
def test_sinkhorn_cost_approaches_independent_as_reg_grows(n, d, seed):
    regs = np.array([1.0, 10.0, 100.0, 1000.0])
    gaps, independent_gap = _normalised_gaps(n, d, seed, regs)
    assert (np.diff(gaps) > 0).all()
    assert (gaps <= independent_gap + 1e-9).all()
    assert independent_gap - gaps[-1] < 1e-2 * independent_gap


@pytest.mark.parametrize("reg", [0.1, 1e3])
def test_sinkhorn_sampled_pairing_cost_limits(reg):
    # the cost of the pairs actually drawn, averaged over draws: its mean is the plan's expected
    # cost n <P, C>, within the entropic bound of the exact OT cost, and close to the independent
    # cost n mean(C) for a large reg
    n = 4
    x0, x1 = _batches(n, 2, seed=11)
    cost = _cost_matrix(x0, x1)
    optimum, independent = _brute_force_ot(cost), cost.mean() * n
    coupling = SinkhornCoupling(reg)
    rng = np.random.default_rng(0)
    draws = np.array([_pairing_cost(coupling.pair(x0, x1, rng), x1) for _ in range(150)])
    slack = 4 * max(draws.std(), 1e-3 * optimum) / math.sqrt(len(draws))
    expected = (coupling.plan(x0, x1) * cost).sum() * n
    assert abs(draws.mean() - expected) < slack
    assert optimum - slack <= draws.mean() <= optimum + reg * math.log(n) * independent + slack
    if reg > 1:
        assert abs(draws.mean() - independent) < slack + 1e-2 * (independent - optimum)
    else:
        assert draws.mean() - optimum < 0.25 * (independent - optimum)


class _FixedPlanCoupling(SinkhornCoupling):
    """The Sinkhorn sampler fed a plan chosen by the test."""

    def __init__(self, plan):
        super().__init__(reg=1.0)
        self.fixed = plan

    def plan(self, x0, x1):
        return self.fixed


def test_sinkhorn_draws_follow_plan_columns():
    # an unbalanced plan with zero entries: the draws for column j follow plan[:, j] / its sum
    plan = np.array(
        [
            [0.10, 0.00, 0.05, 0.00],
            [0.05, 0.20, 0.00, 0.00],
            [0.00, 0.05, 0.15, 0.10],
            [0.10, 0.00, 0.05, 0.15],
        ]
    )
    x0 = torch.arange(4, dtype=torch.float64)[:, None]  # row i holds the value i
    x1 = torch.zeros(4, 1, dtype=torch.float64)
    coupling = _FixedPlanCoupling(plan)
    rng = np.random.default_rng(123)
    n_draws = 4000
    counts = np.zeros((4, 4))
    for _ in range(n_draws):
        source = coupling.pair(x0, x1, rng)[:, 0].long().numpy()
        counts[source, np.arange(4)] += 1
    expected = plan / plan.sum(axis=0)
    frequencies = counts / n_draws
    assert (frequencies[expected == 0] == 0).all()
    np.testing.assert_allclose(frequencies, expected, atol=4 * 0.5 / math.sqrt(n_draws))


@pytest.mark.parametrize("reg", [0.1, 1.0])
def test_sinkhorn_pairing_reproducible(reg):
    x0, x1 = _batches(8, 2, seed=7)
    coupling = SinkhornCoupling(reg)
    first = coupling.pair(x0, x1, np.random.default_rng(2024))
    again = coupling.pair(x0, x1, np.random.default_rng(2024))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    # every returned row is a base row
    _source_indices(x0, first)
    others = [coupling.pair(x0, x1, np.random.default_rng(seed)) for seed in range(5)]
    assert any(not torch.equal(first, other) for other in others)


# --- factory -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COUPLINGS))
def test_make_coupling_returns_registered_class(name):
    coupling = make_coupling(name, 0.3)
    assert type(coupling) is COUPLINGS[name]
    assert isinstance(coupling, Coupling)


def test_make_coupling_passes_reg_and_rejects_unknown_names():
    assert COUPLINGS == {
        "independent": IndependentCoupling,
        "ot": ExactOTCoupling,
        "sinkhorn": SinkhornCoupling,
    }
    assert make_coupling("sinkhorn", 0.3).reg == 0.3
    with pytest.raises(KeyError):
        make_coupling("no-such-coupling", 0.1)


def test_sinkhorn_absolute_regularisation_is_the_schrodinger_bridge_recipe():
    """``relative=False`` solves POT's entropic problem with the absolute ``reg = 2 sigma^2`` of
    Tong et al. (TMLR 2024, section 3.4) on the raw squared-distance cost."""
    import ot

    rng = np.random.default_rng(0)
    x0 = torch.from_numpy(rng.normal(size=(32, 2)))
    x1 = torch.from_numpy(rng.normal(loc=1.0, size=(32, 2)))
    sigma = 0.5
    coupling = make_coupling("sinkhorn", 2 * sigma**2, relative=False)
    weights = np.full(32, 1 / 32)
    cost = torch.cdist(x0, x1).pow(2).numpy()
    expected = ot.sinkhorn(weights, weights, cost, 2 * sigma**2)
    np.testing.assert_allclose(coupling.plan(x0, x1), expected, atol=1e-6)
    # the relative form differs unless the mean cost is 1
    relative = make_coupling("sinkhorn", 2 * sigma**2).plan(x0, x1)
    assert np.abs(relative - expected).max() > 1e-4

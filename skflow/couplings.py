"""Minibatch couplings: how base samples are paired with data samples before regression.

Conditional flow matching is unbiased for any coupling ``pi(x0, x1)`` whose marginals are the base
and the data (Tong et al., *Improving and Generalizing Flow-Based Generative Models with Minibatch
Optimal Transport*, TMLR 2024, Prop. 3.3). Pairing each minibatch by optimal transport straightens
the learned paths and lowers the variance of the regression target; the entropic plan interpolates
between that and the independent coupling and, with the Brownian noise scale, gives the
Schrödinger-bridge flow.

A coupling re-orders the base minibatch ``x0`` against the data minibatch ``x1``; couplings are
looked up by name in :data:`COUPLINGS`. Plans are solved on the CPU with POT.
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "COUPLINGS",
    "Coupling",
    "ExactOTCoupling",
    "IndependentCoupling",
    "SinkhornCoupling",
]


def _squared_distances(x0: torch.Tensor, x1: torch.Tensor) -> np.ndarray:
    """Cost matrix ``C[i, j] = |x0_i - x1_j|^2`` as a float64 NumPy array."""
    return torch.cdist(x0.detach().double(), x1.detach().double()).pow(2).cpu().numpy()


class Coupling:
    """Base class: pair a minibatch of base samples with a minibatch of data samples."""

    def pair(self, x0: torch.Tensor, x1: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Return the base samples re-ordered so that row ``i`` is paired with ``x1[i]``.

        Parameters
        ----------
        x0, x1 : torch.Tensor of shape (n, d)
            Base and data minibatches of equal size.
        rng : numpy.random.Generator
            Source of randomness for stochastic couplings.

        Returns
        -------
        torch.Tensor of shape (n, d)
        """
        raise NotImplementedError


class IndependentCoupling(Coupling):
    """Independent coupling ``pi = p0 x p1`` (I-CFM): the pairs are kept as drawn."""

    def pair(self, x0: torch.Tensor, x1: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return x0


class ExactOTCoupling(Coupling):
    """Exact minibatch optimal transport for the squared Euclidean cost (OT-CFM).

    Solves the discrete Kantorovich problem between the two uniform empirical measures. For two
    batches of equal size the optimum is attained at a permutation matrix (Birkhoff–von Neumann),
    so it is an exact one-to-one matching, never sampled with replacement: every base and every
    data row is used exactly once; it is found as a linear assignment (Jonker–Volgenant, SciPy's
    :func:`~scipy.optimize.linear_sum_assignment`).

    An exact assignment costs ``O(n^3)``: on 1,024 rows, about 15 training steps. So a minibatch
    of more than ``block_size`` rows is paired within consecutive blocks of at most that many
    rows, each by exact OT (the rows of a minibatch come in random order): minibatch OT at the
    block's size, as Tong et al. use minibatches of a few hundred rows.

    Parameters
    ----------
    block_size : int, default=64
        Most rows paired by one assignment.

    Examples
    --------
    Each data row gets the nearest free base row:

    >>> import numpy as np
    >>> import torch
    >>> from skflow.couplings import ExactOTCoupling
    >>> x0 = torch.tensor([[0.0], [10.0], [20.0]])
    >>> x1 = torch.tensor([[19.0], [1.0], [11.0]])
    >>> ExactOTCoupling().pair(x0, x1, np.random.default_rng(0)).ravel().tolist()
    [20.0, 0.0, 10.0]
    """

    def __init__(self, block_size: int = 64) -> None:
        self.block_size = int(block_size)

    def pair(self, x0: torch.Tensor, x1: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        n = x0.shape[0]
        source = np.empty(n, dtype=np.int64)
        n_blocks = -(-n // self.block_size)
        size, n_larger = divmod(n, n_blocks)  # n_larger blocks of size + 1, then blocks of size
        start = 0
        for block_size, count in ((size + 1, n_larger), (size, n_blocks - n_larger)):
            if count == 0:
                continue
            stop = start + count * block_size
            # the costs of all blocks of one size in one batched call
            costs = _squared_distances(
                x0[start:stop].reshape(count, block_size, -1),
                x1[start:stop].reshape(count, block_size, -1),
            )
            for offset, cost in zip(range(start, stop, block_size), costs):
                rows, columns = linear_sum_assignment(cost)
                source[offset + columns] = offset + rows  # data row j gets base row i
            start = stop
        return x0[torch.as_tensor(source, device=x0.device)]


class SinkhornCoupling(Coupling):
    """Entropic optimal transport (SB-CFM when the noise is Brownian).

    Solves ``min_pi <pi, C / c> - reg * H(pi)`` for the squared Euclidean cost ``C`` of the
    minibatch, measured in units of its mean ``c = mean(C)``, with POT's stabilised (log-absorbing)
    Sinkhorn iterations (Schmitzer, 2019). It then draws, for every data row ``j``, its base partner
    from the plan's column ``pi[:, j]``: each data row is used once; base rows may repeat or be
    skipped, as the plan says. ``reg -> 0`` recovers exact OT and ``reg -> inf`` the independent
    coupling.

    Measuring the cost in units of its mean makes ``reg`` free of the dimension and of the data's
    scale, and keeps ``C / (c reg)`` in a range where the iterations neither underflow nor stall.
    The Schrödinger-bridge recipe of Tong et al. (TMLR 2024, section 3.4), an absolute
    regularisation ``2 sigma^2`` of the unscaled cost ``C``, is ``relative=False`` with
    ``reg = 2 sigma^2``: with the Brownian-bridge noise ``gamma(t) = sigma sqrt(t (1 - t))`` of the
    same ``sigma`` the flow then matches the marginals of the Schrödinger bridge of the Brownian
    motion ``sigma W``.

    The iterations stop when the plan's column sums are within ``tol`` (Euclidean norm) of the
    uniform weights, after at most ``max_iter`` iterations. A plan that is not converged by then is
    still used (its rows are drawn as above) and a
    :class:`~sklearn.exceptions.ConvergenceWarning` names ``coupling_reg``, the estimators'
    hyperparameter to raise: larger regularisation converges faster.

    Parameters
    ----------
    reg : float
        Entropic regularisation, relative to the minibatch's mean squared distance (or absolute).
    relative : bool, default=True
        Whether ``reg`` is in units of the mean squared distance ``c``; False: of the cost itself.
    """

    max_iter: int = 1000
    """Largest number of Sinkhorn iterations per minibatch."""

    tol: float = 1e-6
    """Tolerance on the Euclidean norm of the plan's column-marginal error."""

    def __init__(self, reg: float, relative: bool = True) -> None:
        self.reg = float(reg)
        self.relative = bool(relative)

    def plan(self, x0: torch.Tensor, x1: torch.Tensor) -> np.ndarray:
        """Entropic transport plan between the two uniform minibatches, shape (n, n)."""
        n = x0.shape[0]
        weights = np.full(n, 1.0 / n)
        cost = _squared_distances(x0, x1)
        unit = max(cost.mean(), np.finfo(np.float64).tiny) if self.relative else 1.0
        cost = cost / unit
        # start from c-transform potentials: each row and column of the first kernel
        # exp(-(C - alpha - beta) / reg) then holds an entry exp(0) = 1 and cannot underflow to
        # zero, however small reg is (from zero potentials, reg = 1e-3 gave NaN at the first step)
        alpha = cost.min(axis=1)
        beta = (cost - alpha[:, None]).min(axis=0)
        plan, log = ot.sinkhorn(
            weights,
            weights,
            cost,
            self.reg,
            method="sinkhorn_stabilized",
            numItermax=self.max_iter,
            stopThr=self.tol,
            log=True,
            warn=False,
            warmstart=(alpha, beta),
            # POT absorbs the scalings into the potentials once one exceeds tau and restarts them
            # at 1 / n, after which the next update returns scalings of order n: with its default
            # tau = 1000 and n >= 1000 rows every iteration absorbed and the plan never converged
            # (n = 1024: 1000 iterations, 12 s, total mass 1 / n; with tau = 1000 n: 40, 0.1 s)
            tau=1e3 * n,
        )
        if not log["err"] or not log["err"][-1] <= self.tol:
            unit_text = (
                ", relative to the minibatch's mean squared distance" if self.relative else ""
            )
            warnings.warn(
                f"The Sinkhorn iterations of the entropic coupling did not converge in "
                f"{self.max_iter} iterations at the regularisation {self.reg:g} (the estimator's "
                f"coupling_reg{unit_text}); the minibatch was paired by the unconverged plan. A "
                "larger coupling_reg (with coupling_reg='sb', a larger sigma) converges sooner.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return plan

    def pair(self, x0: torch.Tensor, x1: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        plan = np.clip(self.plan(x0, x1), 0.0, None)
        cumulative = np.cumsum(plan, axis=0)
        # inverse-CDF draw of one source row per column, all columns at once
        u = rng.random(plan.shape[1]) * cumulative[-1]
        source = np.minimum((cumulative < u).sum(axis=0), plan.shape[0] - 1)
        return x0[torch.as_tensor(source, device=x0.device)]


COUPLINGS: dict[str, type[Coupling]] = {
    "independent": IndependentCoupling,
    "ot": ExactOTCoupling,
    "sinkhorn": SinkhornCoupling,
}
"""Registry of couplings by the name that the estimators' ``coupling`` hyperparameter takes."""


def make_coupling(name: str, reg: float, relative: bool = True) -> Coupling:
    """Build the coupling called ``name``; ``reg`` and ``relative`` go to the entropic one only."""
    if name == "sinkhorn":
        return SinkhornCoupling(reg, relative=relative)
    return COUPLINGS[name]()

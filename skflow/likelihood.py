"""Log-likelihood of a continuous normalizing flow through the instantaneous change of variables.

Along the flow ``dx/dt = v(t, x)`` the log-density obeys ``d log p_t(x_t) / dt = -div v(t, x_t)``
(Chen et al., *Neural Ordinary Differential Equations*, NeurIPS 2018, Thm. 1), so a data point
``x1`` at ``t = 1`` has

.. math::

    \\log p_1(x_1) = \\log p_0(x_0) - \\int_0^1 \\nabla \\cdot v(t, x_t)\\, dt,

where ``x_t`` is the backward solution from ``x1`` and ``p_0`` the base density. The divergence is
computed exactly (the trace of the Jacobian, its ``d`` rows obtained in one batched reverse pass
with :mod:`torch.func`) or estimated with Hutchinson's trace estimator ``E[eps^T J eps]`` with
Rademacher ``eps`` fixed along the trajectory (Grathwohl et al., *FFJORD*, ICLR 2019), whose
probes :func:`rademacher_probes` draws from each row's own bits, so that a row's estimate does not
depend on the batch it is scored in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.func import vjp, vmap

from .solvers import integrate

__all__ = [
    "DIVERGENCES",
    "EXACT_DIVERGENCE_MAX_FEATURES",
    "divergence_exact",
    "divergence_hutchinson",
    "flow_log_likelihood",
    "rademacher_probes",
    "row_uniforms",
    "standard_normal_log_density",
]

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def divergence_exact(
    velocity: Velocity, t: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity and exact divergence ``tr(dv/dx)`` at every row of ``x``.

    One forward pass, then the ``d`` vector-Jacobian products ``e_i^T (dv/dx)`` of the unit vectors,
    batched into a single reverse pass with :func:`torch.func.vmap` instead of a Python loop over
    dimensions; the divergence sums their diagonal entries. The velocity acts row by row, so each
    row's products involve that row alone.

    Parameters
    ----------
    velocity : callable
        ``velocity(t, x)`` with ``t`` of shape (n,) and ``x`` of shape (n, d).
    t : torch.Tensor of shape (n,)
        Times.
    x : torch.Tensor of shape (n, d)
        Points.

    Returns
    -------
    v : torch.Tensor of shape (n, d)
    div : torch.Tensor of shape (n,)
    """
    n, d = x.shape
    v, pullback = vjp(lambda y: velocity(t, y), x)
    units = torch.eye(d, dtype=x.dtype, device=x.device)[:, None, :].expand(d, n, d)
    (jacobian_rows,) = vmap(pullback)(units)  # jacobian_rows[i, r] = e_i^T J(x_r)
    return v, torch.einsum("iri->r", jacobian_rows)


def divergence_hutchinson(
    velocity: Velocity, t: torch.Tensor, x: torch.Tensor, probes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity and Hutchinson's unbiased estimates ``eps^T (dv/dx) eps`` of its divergence, one
    per probe.

    One forward pass and one batched reverse pass over the ``K`` probes, whatever the dimension;
    an estimate's variance is ``(1/2) sum_{i != j} (J_ij + J_ji)^2`` per row for Rademacher probes
    (Hutchinson, 1990), which is ``2 sum_{i != j} J_ij^2`` for a symmetric Jacobian.

    Parameters
    ----------
    velocity : callable
        ``velocity(t, x)`` with ``t`` of shape (n,) and ``x`` of shape (n, d).
    t : torch.Tensor of shape (n,)
        Times.
    x : torch.Tensor of shape (n, d)
        Points.
    probes : torch.Tensor of shape (K, n, d)
        The probe vectors ``eps``, entries +1 or -1.

    Returns
    -------
    v : torch.Tensor of shape (n, d)
    div : torch.Tensor of shape (n, K)
    """
    v, pullback = vjp(lambda y: velocity(t, y), x)
    (products,) = vmap(pullback)(probes)  # products[k, r] = eps_kr^T J(x_r)
    return v, (products * probes).sum(dim=2).T


def rademacher_probes(rows: np.ndarray, n_probes: int, seed: int) -> np.ndarray:
    """``n_probes`` Rademacher vectors for each row, a function of the row's float64 bits and
    ``seed`` alone: a row gets the same probes in any batch, at any position.

    Each row's bits are hashed with SplitMix64 (Steele, Lea & Flood, *Fast splittable
    pseudorandom number generators*, OOPSLA 2014) into a key, and the key's counter stream gives
    the signs.

    Parameters
    ----------
    rows : ndarray of shape (n, d)
        The rows (cast to float64).
    n_probes : int
        Probes per row.
    seed : int
        Seed, folded into every key.

    Returns
    -------
    ndarray of shape (n_probes, n, d)
        Entries +1.0 or -1.0.
    """
    n, d = np.shape(rows)
    n_words = -(-n_probes * d // 64)
    words = _row_words(rows, seed, n_words)
    bits = np.unpackbits(words.view(np.uint8), axis=1)[:, : n_probes * d]
    return (2.0 * bits - 1.0).reshape(n, n_probes, d).transpose(1, 0, 2)


def row_uniforms(rows: np.ndarray, n_columns: int, seed: int) -> np.ndarray:
    """``n_columns`` draws of ``U(0, 1)`` for each row, a function of the row's float64 bits and
    ``seed`` alone, as :func:`rademacher_probes` draws its signs: each is ``(k + 1/2) / 2^53``
    for 53 bits ``k`` of the row's stream, so it is never 0 or 1.

    Returns
    -------
    ndarray of shape (n, n_columns)
    """
    words = _row_words(rows, seed, n_columns)
    return ((words >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _row_words(rows: np.ndarray, seed: int, n_words: int) -> np.ndarray:
    """``n_words`` random 64-bit words per row: each row's bits are hashed with SplitMix64 into a
    key, folding in ``seed``, and the key's counter stream gives the words."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    with np.errstate(over="ignore"):
        key = np.full(rows.shape[0], np.uint64(seed % 2**64), dtype=np.uint64)
        for column in rows.view(np.uint64).T:
            key = _splitmix64(key ^ column)
        return np.stack([_splitmix64(key + np.uint64(w + 1)) for w in range(n_words)], axis=1)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser of ``x + golden gamma``, elementwise on uint64 (wrapping)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


DIVERGENCES = frozenset({"exact", "hutchinson", "auto"})
"""Every name the ``divergence`` hyperparameter takes."""

EXACT_DIVERGENCE_MAX_FEATURES = 16
"""``divergence="auto"``: the exact divergence up to this many features, Hutchinson's above."""


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """Log-density of ``N(0, I)`` at every row of ``z``."""
    d = z.shape[1]
    return -0.5 * (z**2).sum(dim=1) - 0.5 * d * math.log(2.0 * math.pi)


def flow_log_likelihood(
    velocity: Velocity,
    x: torch.Tensor,
    t0: float,
    t1: float,
    *,
    probes: torch.Tensor | None = None,
    **solver_options,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pull ``x`` back from ``t1`` to ``t0`` and accumulate the log-volume change.

    Parameters
    ----------
    velocity : callable
        ``velocity(t, x)`` with ``t`` of shape (n,) and ``x`` of shape (n, d).
    x : torch.Tensor of shape (n, d)
        Points at time ``t1``.
    t0, t1 : float
        Base and data times.
    probes : torch.Tensor of shape (K, n, d), optional
        Rademacher probes, held fixed along each row's trajectory, for Hutchinson's estimates of
        the divergence (:func:`divergence_hutchinson`); None for the exact divergence.
    **solver_options
        Passed to :func:`skflow.solvers.integrate` (``method``, ``n_steps``, ``atol``, ``rtol``).

    Returns
    -------
    z : torch.Tensor of shape (n, d)
        The points pulled back to ``t0``.
    delta_log_density : torch.Tensor of shape (n,), or (n, K) with probes
        ``log p_t1(x) - log p_t0(z) = -int_t0^t1 div v dt`` (with probes, one estimate per
        probe); add the base log-density at ``z``.

    Examples
    --------
    The field ``v(t, x) = x`` carries ``N(0, I)`` at ``t = 0`` to ``N(0, e^2 I)`` at ``t = 1``;
    its divergence is ``d``, so in 2-D the log-density drops by exactly 2:

    >>> import torch
    >>> from skflow.likelihood import flow_log_likelihood, standard_normal_log_density
    >>> x = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    >>> z, delta = flow_log_likelihood(lambda t, y: y, x, 0.0, 1.0)
    >>> round(float(delta), 6)
    -2.0
    >>> log_p = standard_normal_log_density(z) + delta  # log N(x; 0, e^2 I)
    >>> round(float(log_p), 4)
    -3.9225
    """
    n, d = x.shape
    k = 1 if probes is None else probes.shape[0]

    def augmented(t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        y = state[:, :d]
        if probes is None:
            v, div = divergence_exact(velocity, t.expand(n), y)
            div = div[:, None]
        else:
            v, div = divergence_hutchinson(velocity, t.expand(n), y, probes)
        return torch.cat([v, div], dim=1)

    start = torch.cat([x, x.new_zeros(n, k)], dim=1)
    end = integrate(augmented, start, t1, t0, **solver_options)
    # the accumulators ran backwards from t1 to t0, so they already hold -int_t0^t1 div v dt
    return end[:, :d], end[:, d] if probes is None else end[:, d:]

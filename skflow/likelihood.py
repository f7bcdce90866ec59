"""Log-likelihood of a continuous normalizing flow through the instantaneous change of variables.

Along the flow ``dx/dt = v(t, x)`` the log-density obeys ``d log p_t(x_t) / dt = -div v(t, x_t)``
(Chen et al., *Neural Ordinary Differential Equations*, NeurIPS 2018, Thm. 1), so a data point
``x1`` at ``t = 1`` has

.. math::

    \\log p_1(x_1) = \\log p_0(x_0) - \\int_0^1 \\nabla \\cdot v(t, x_t)\\, dt,

where ``x_t`` is the backward solution from ``x1`` and ``p_0`` the base density. The divergence is
computed exactly (the trace of the Jacobian, its ``d`` rows obtained in one batched reverse pass
with :mod:`torch.func`) or estimated with Hutchinson's trace estimator ``E[eps^T J eps]`` with
Rademacher ``eps`` fixed along the trajectory (Grathwohl et al., *FFJORD*, ICLR 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.func import vjp, vmap

from .solvers import integrate

__all__ = [
    "DIVERGENCES",
    "divergence_exact",
    "divergence_hutchinson",
    "flow_log_likelihood",
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
    velocity: Velocity, t: torch.Tensor, x: torch.Tensor, probe: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocity and Hutchinson's unbiased estimate ``eps^T (dv/dx) eps`` of its divergence.

    One reverse pass per call whatever the dimension; the estimate's variance is
    ``(1/2) sum_{i != j} (J_ij + J_ji)^2`` per row for Rademacher probes (Hutchinson, 1990), which
    is ``2 sum_{i != j} J_ij^2`` for a symmetric Jacobian.

    Parameters
    ----------
    velocity : callable
        ``velocity(t, x)`` with ``t`` of shape (n,) and ``x`` of shape (n, d).
    t : torch.Tensor of shape (n,)
        Times.
    x : torch.Tensor of shape (n, d)
        Points.
    probe : torch.Tensor of shape (n, d)
        The probe vectors ``eps``, entries +1 or -1.

    Returns
    -------
    v : torch.Tensor of shape (n, d)
    div : torch.Tensor of shape (n,)
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(t, x)
        if not v.requires_grad:  # a field that does not depend on x has zero divergence
            return v, x.new_zeros(x.shape[0])
        (vjp,) = torch.autograd.grad(v, x, probe, allow_unused=True)
    if vjp is None:
        return v.detach(), x.new_zeros(x.shape[0])
    return v.detach(), (vjp * probe).sum(dim=1)


DIVERGENCES = frozenset({"exact", "hutchinson"})
"""Every name the ``divergence`` hyperparameter takes."""


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
    divergence: str = "exact",
    generator: torch.Generator | None = None,
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
    divergence : {"exact", "hutchinson"}, default="exact"
        How the divergence is computed.
    generator : torch.Generator, optional
        Draws the Rademacher probes of ``"hutchinson"``; required by it.
    **solver_options
        Passed to :func:`skflow.solvers.integrate` (``method``, ``n_steps``, ``atol``, ``rtol``).

    Returns
    -------
    z : torch.Tensor of shape (n, d)
        The points pulled back to ``t0``.
    delta_log_density : torch.Tensor of shape (n,)
        ``log p_t1(x) - log p_t0(z) = -int_t0^t1 div v dt``; add the base log-density at ``z``.

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
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(DIVERGENCES)}, got {divergence!r}.")
    n, d = x.shape
    if divergence == "exact":
        field = divergence_exact
    else:
        probe = torch.randint(0, 2, (n, d), generator=generator, device="cpu").to(x) * 2 - 1

        def field(velocity, t, y):
            return divergence_hutchinson(velocity, t, y, probe)

    def augmented(t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        v, div = field(velocity, t.expand(n), state[:, :d])
        return torch.cat([v, div[:, None]], dim=1)

    start = torch.cat([x, x.new_zeros(n, 1)], dim=1)
    end = integrate(augmented, start, t1, t0, **solver_options)
    # the accumulator ran backwards from t1 to t0, so it already holds -int_t0^t1 div v dt
    return end[:, :d], end[:, d]

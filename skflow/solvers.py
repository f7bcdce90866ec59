"""ODE integrators for ``dy/dt = f(t, y)`` between two times, fixed-step and adaptive, and an SDE
integrator for ``dY = f(t, Y) dt + g(t) dW``.

Fixed-step solvers take ``n_steps`` steps on a grid (:func:`time_grid`), equal ones or ones that
shorten toward the upper end of the interval; each row of ``y`` is integrated independently of the
others, so a row's result does not depend on the batch it is in (which keeps scikit-learn's
invariance checks and cross-validation reproducible). The adaptive Dormand–Prince solver comes from
`torchdiffeq <https://github.com/rtqichen/torchdiffeq>`_; its step size is chosen from the error of
the whole batch, so a row's result depends, within the tolerances, on its batch-mates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "ADAPTIVE_SOLVERS",
    "FIXED_STEP_SOLVERS",
    "SOLVERS",
    "integrate",
    "integrate_sde",
    "time_grid",
]

VectorField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _euler_step(f: VectorField, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return y + h * f(t, y)


def _midpoint_step(
    f: VectorField, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor
) -> torch.Tensor:
    return y + h * f(t + 0.5 * h, y + 0.5 * h * f(t, y))


def _rk4_step(f: VectorField, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    k1 = f(t, y)
    k2 = f(t + 0.5 * h, y + 0.5 * h * k1)
    k3 = f(t + 0.5 * h, y + 0.5 * h * k2)
    k4 = f(t + h, y + h * k3)
    return y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


FIXED_STEP_SOLVERS = {"euler": _euler_step, "midpoint": _midpoint_step, "rk4": _rk4_step}
"""Explicit one-step methods of order 1, 2 and 4, by name."""

ADAPTIVE_SOLVERS = frozenset({"dopri5"})
"""Adaptive solvers, delegated to torchdiffeq."""

SOLVERS = frozenset(FIXED_STEP_SOLVERS) | ADAPTIVE_SOLVERS
"""Every name the ``solver`` hyperparameter takes."""


def time_grid(
    t0: float,
    t1: float,
    n_steps: int,
    exponent: float = 1.0,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ``n_steps + 1`` times of a fixed-step solver from ``t0`` to ``t1``.

    With ``a = min(t0, t1)``, ``b = max(t0, t1)`` and ``p = exponent``, the grid is

    .. math::

        \\tau_k = b - (b - a) \\left(1 - \\frac{k}{n}\\right)^{p}, \\qquad k = 0, \\dots, n,

    run from ``t0`` to ``t1`` (reversed when ``t1 < t0``), so both directions step through the
    same times. ``p = 1`` is the uniform grid; ``p > 1`` shortens the steps toward ``b``, the
    step next to ``b`` being ``(b - a) n^{-p}`` and the one next to ``a`` about ``p (b - a) / n``
    instead of ``(b - a) / n``. The grid is a smooth map of the uniform one, so a method keeps
    its order. A flow whose velocity turns sharp near the data end ``t = 1`` (a density with
    cliffs, trained on ends-weighted times) is integrated more accurately for the same number of
    steps; a field as smooth near ``b`` as elsewhere is integrated less accurately. It is the
    polynomial step schedule of Karras et al. (*Elucidating the Design Space of Diffusion-Based
    Generative Models*, NeurIPS 2022; their exponent ``rho``), applied to the time left to ``b``
    rather than to a noise level.

    Parameters
    ----------
    t0, t1 : float
        Start and end times; they may be equal.
    n_steps : int
        Number of steps, at least 1.
    exponent : float, default=1.0
        The exponent ``p >= 1``.
    dtype : torch.dtype, default=torch.float64
        Of the returned times.
    device : torch.device or str, optional
        Of the returned times.

    Returns
    -------
    torch.Tensor of shape (n_steps + 1,)
        The times, ``t0`` first and ``t1`` last, exactly.

    Raises
    ------
    ValueError
        If ``n_steps < 1`` or ``exponent < 1``.

    Examples
    --------
    >>> from skflow.solvers import time_grid
    >>> time_grid(0.0, 1.0, 4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> time_grid(0.0, 1.0, 4, exponent=2.0).tolist()
    [0.0, 0.4375, 0.75, 0.9375, 1.0]
    >>> time_grid(1.0, 0.0, 4, exponent=2.0).tolist()
    [1.0, 0.9375, 0.75, 0.4375, 0.0]
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps!r}.")
    if not exponent >= 1.0:
        raise ValueError(f"exponent must be at least 1, got {exponent!r}.")
    low, high = min(t0, t1), max(t0, t1)
    remaining = 1.0 - torch.arange(n_steps + 1, dtype=torch.float64) / n_steps
    times = high - (high - low) * remaining**exponent
    times[0], times[-1] = low, high  # exact ends, whatever the rounding
    if t1 < t0:
        times = times.flip(0)
    return times.to(dtype=dtype, device=device)


def integrate(
    f: VectorField,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    *,
    method: str = "rk4",
    n_steps: int = 20,
    step_exponent: float = 1.0,
    atol: float = 1e-7,
    rtol: float = 1e-7,
    return_path: bool = False,
) -> torch.Tensor:
    """Integrate ``dy/dt = f(t, y)`` from ``t0`` to ``t1`` (``t1 < t0`` integrates backwards).

    Parameters
    ----------
    f : callable
        Vector field ``f(t, y)`` with ``t`` a 0-dimensional tensor and ``y`` of the shape of ``y0``.
    y0 : torch.Tensor
        State at ``t0``.
    t0, t1 : float
        Start and end times.
    method : {"euler", "midpoint", "rk4", "dopri5"}, default="rk4"
        Integrator.
    n_steps : int, default=20
        Number of steps of a fixed-step method; ignored by ``"dopri5"``.
    step_exponent : float, default=1.0
        Exponent of the fixed-step grid (:func:`time_grid`): 1 takes equal steps, more than 1
        shortens them toward ``max(t0, t1)``; ignored by ``"dopri5"``.
    atol, rtol : float, default=1e-7
        Absolute and relative tolerances of ``"dopri5"``; ignored by fixed-step methods.
    return_path : bool, default=False
        If True, return the states at every step (fixed-step methods) stacked on a new first axis,
        ``y0`` included.

    Returns
    -------
    torch.Tensor
        The state at ``t1``, or the path of shape ``(n_steps + 1, *y0.shape)``.

    Examples
    --------
    ``dy/dt = -y`` from ``y(0) = 1`` to ``t = 1``, whose solution is ``exp(-1)``:

    >>> import torch
    >>> from skflow.solvers import integrate
    >>> y1 = integrate(lambda t, y: -y, torch.ones(1, dtype=torch.float64), 0.0, 1.0)
    >>> round(float(y1), 6), round(float(torch.exp(torch.tensor(-1.0))), 6)
    (0.367879, 0.367879)
    >>> integrate(lambda t, y: -y, torch.ones(3), 0.0, 1.0, n_steps=4, return_path=True).shape
    torch.Size([5, 3])
    """
    if method in ADAPTIVE_SOLVERS:
        if return_path:
            raise ValueError("return_path needs a fixed-step solver, not an adaptive one.")
        from torchdiffeq import odeint

        times = torch.tensor([t0, t1], dtype=y0.dtype, device=y0.device)
        return odeint(f, y0, times, method=method, atol=atol, rtol=rtol)[-1]
    step = FIXED_STEP_SOLVERS[method]
    times = time_grid(t0, t1, n_steps, step_exponent, dtype=y0.dtype, device=y0.device)
    y = y0
    path = [y0]
    for t, t_next in zip(times[:-1], times[1:]):
        y = step(f, t, y, t_next - t)
        if return_path:
            path.append(y)
    return torch.stack(path) if return_path else y


def integrate_sde(
    drift: VectorField,
    diffusion: Callable[[torch.Tensor], torch.Tensor | float],
    y0: torch.Tensor,
    t0: float,
    t1: float,
    *,
    n_steps: int = 100,
    generator: torch.Generator | None = None,
    return_path: bool = False,
) -> torch.Tensor:
    """Integrate the Itô SDE ``dY = f(t, Y) dt + g(t) dW`` from ``t0`` to ``t1`` by Euler–Maruyama.

    .. math::

        Y_{k+1} = Y_k + h\\, f(t_k, Y_k) + g(t_k) \\sqrt{|h|}\\, \\xi_k, \\qquad
        \\xi_k \\sim N(0, I), \\quad h = (t_1 - t_0) / n,

    strong order 1/2, weak order 1 (Kloeden & Platen, 1992, section 10.2). With ``t1 < t0`` the
    steps go backwards in time: this integrates a *backward* SDE ``dY = f dt + g dW^B`` solved from
    ``t0`` down to ``t1``, as the reverse-time samplers of stochastic interpolants need (Albergo et
    al., 2023, eq. 2.33). ``g = 0`` gives the explicit Euler method of :func:`integrate`.

    Parameters
    ----------
    drift : callable
        ``f(t, y)`` with ``t`` a 0-dimensional tensor and ``y`` of the shape of ``y0``.
    diffusion : callable
        ``g(t)``, a scalar (tensor or float) noise amplitude.
    y0 : torch.Tensor
        State at ``t0``.
    t0, t1 : float
        Start and end times.
    n_steps : int, default=100
        Number of equal steps.
    generator : torch.Generator, optional
        Draws the increments ``xi_k``; the same generator state gives the same path.
    return_path : bool, default=False
        If True, return every state, ``y0`` included, stacked on a new first axis.

    Returns
    -------
    torch.Tensor
        The state at ``t1``, or the path of shape ``(n_steps + 1, *y0.shape)``.
    """
    h = torch.tensor((t1 - t0) / n_steps, dtype=y0.dtype, device=y0.device)
    root_h = h.abs().sqrt()
    device = generator.device if generator is not None else y0.device
    y = y0
    path = [y0]
    for k in range(n_steps):
        t = t0 + k * h
        xi = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=device).to(y.device)
        y = y + h * drift(t, y) + diffusion(t) * root_h * xi
        if return_path:
            path.append(y)
    return torch.stack(path) if return_path else y

"""Probability paths (interpolants) between a base sample ``x0`` and a data sample ``x1``.

Every path in this module is a deterministic interpolant

.. math::

    x_t = \\alpha(t)\\, x_0 + \\beta(t)\\, x_1, \\qquad t \\in [0, 1],

with ``t = 0`` the base / source and ``t = 1`` the data / target. Its conditional (target) velocity is
the time derivative along a fixed pair,

.. math::

    u_t(x_0, x_1) = \\dot\\alpha(t)\\, x_0 + \\dot\\beta(t)\\, x_1 ,

which is what conditional flow matching regresses the velocity network onto (Lipman et al., 2023,
eq. 9; Albergo & Vanden-Eijnden, 2023, eq. 2.8). A path is looked up by name in :data:`PATHS`, so adding
one is a class and a registry line.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "PATHS",
    "LinearPath",
    "ProbabilityPath",
    "TrigonometricPath",
    "VPDiffusionPath",
]


class ProbabilityPath:
    """Base class of a two-sided interpolant ``x_t = alpha(t) x0 + beta(t) x1``.

    Subclasses implement :meth:`alpha`, :meth:`beta` and their time derivatives :meth:`d_alpha`,
    :meth:`d_beta`; the base class builds ``x_t`` and the target velocity from them.

    Attributes
    ----------
    t_min, t_max : float
        The interval of times the path is trained and integrated on. It is ``[0, 1]`` unless a
        coefficient's derivative is singular at an end, in which case the end is clipped.
    """

    t_min: float = 0.0
    t_max: float = 1.0

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Coefficient of the base sample ``x0`` at time ``t``."""
        raise NotImplementedError

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """Coefficient of the data sample ``x1`` at time ``t``."""
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Time derivative of :meth:`alpha`."""
        raise NotImplementedError

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        """Time derivative of :meth:`beta`."""
        raise NotImplementedError

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Point ``x_t = alpha(t) x0 + beta(t) x1`` on the path.

        Parameters
        ----------
        x0, x1 : torch.Tensor of shape (n, d)
            Paired base and data samples.
        t : torch.Tensor of shape (n,)
            One time per pair.

        Returns
        -------
        torch.Tensor of shape (n, d)
        """
        t = t[:, None]
        return self.alpha(t) * x0 + self.beta(t) * x1

    def velocity(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Conditional velocity ``u_t = alpha'(t) x0 + beta'(t) x1`` of the pair at time ``t``.

        Parameters
        ----------
        x0, x1 : torch.Tensor of shape (n, d)
            Paired base and data samples.
        t : torch.Tensor of shape (n,)
            One time per pair.

        Returns
        -------
        torch.Tensor of shape (n, d)
        """
        t = t[:, None]
        return self.d_alpha(t) * x0 + self.d_beta(t) * x1


class LinearPath(ProbabilityPath):
    """Linear interpolant: the conditional optimal-transport path of flow matching.

    .. math::

        \\alpha(t) = 1 - (1 - \\sigma) t, \\qquad \\beta(t) = t, \\qquad
        u_t = x_1 - (1 - \\sigma) x_0 .

    With a standard normal ``x0`` this is the Gaussian path of mean ``t x1`` and standard deviation
    ``1 - (1 - sigma) t`` (Lipman et al., *Flow Matching for Generative Modeling*, ICLR 2023, eq. 20,
    ``sigma`` being their ``sigma_min``). ``sigma = 0`` is rectified flow (Liu et al., 2023) and the
    linear interpolant of Albergo & Vanden-Eijnden (2023).

    Parameters
    ----------
    sigma : float, default=0.0
        Width ``sigma_min`` left around each data point at ``t = 1``, in ``[0, 1)``.
    """

    def __init__(self, sigma: float = 0.0) -> None:
        self.sigma = float(sigma)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - (1.0 - self.sigma) * t

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -(1.0 - self.sigma))

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)


class TrigonometricPath(ProbabilityPath):
    """Trigonometric interpolant of Albergo & Vanden-Eijnden.

    .. math::

        \\alpha(t) = \\cos(\\pi t / 2), \\qquad \\beta(t) = \\sin(\\pi t / 2),

    which keeps ``alpha^2 + beta^2 = 1``, so the variance of ``x_t`` stays that of the endpoints when
    both are standardised (*Building Normalizing Flows with Stochastic Interpolants*, ICLR 2023, eq. 2.4).

    Parameters
    ----------
    sigma : float, default=0.0
        Accepted for a uniform interface; the trigonometric path has no width parameter.
    """

    def __init__(self, sigma: float = 0.0) -> None:
        self.sigma = float(sigma)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cos(0.5 * math.pi * t)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(0.5 * math.pi * t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)


class VPDiffusionPath(ProbabilityPath):
    """Variance-preserving diffusion path of flow matching.

    With the diffusion time ``s = 1 - t``, the noise schedule ``b(s) = b_min + s (b_max - b_min)``
    and ``T(s) = b_min s + (b_max - b_min) s^2 / 2``,

    .. math::

        \\beta(t) = e^{-T(1 - t) / 2}, \\qquad \\alpha(t) = \\sqrt{1 - \\beta(t)^2},

        \\dot\\beta(t) = \\tfrac12\\, b(1 - t)\\, \\beta(t), \\qquad
        \\dot\\alpha(t) = -\\beta(t) \\dot\\beta(t) / \\alpha(t)

    (Lipman et al., ICLR 2023, eq. 19; Song et al., 2021). ``alpha`` vanishes at ``t = 1`` with an
    infinite derivative, so the path is used on ``[0, 1 - t_eps]``; at ``t = 0`` it leaves a trace
    ``beta(0) = exp(-T(1)/2)`` (about 0.0066 by default) of the data in the base.

    Parameters
    ----------
    sigma : float, default=0.0
        Accepted for a uniform interface; the VP path has no width parameter.
    beta_min, beta_max : float, default=0.1, 20.0
        Ends of the linear noise schedule ``b``.
    t_eps : float, default=1e-3
        Distance from ``t = 1`` at which the path stops.
    """

    def __init__(
        self,
        sigma: float = 0.0,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        t_eps: float = 1e-3,
    ) -> None:
        self.sigma = float(sigma)
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        self.t_max = 1.0 - float(t_eps)

    def _schedule(self, s: torch.Tensor) -> torch.Tensor:
        return self.beta_min + s * (self.beta_max - self.beta_min)

    def _integrated_schedule(self, s: torch.Tensor) -> torch.Tensor:
        return self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * self._integrated_schedule(1.0 - t))

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        # 1 - beta^2 = -expm1(-T(1 - t)), accurate where beta is close to 1
        return torch.sqrt(-torch.expm1(-self._integrated_schedule(1.0 - t)))

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * self._schedule(1.0 - t) * self.beta(t)

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return -self.beta(t) * self.d_beta(t) / self.alpha(t)


PATHS: dict[str, type[ProbabilityPath]] = {
    "linear": LinearPath,
    "trig": TrigonometricPath,
    "vp": VPDiffusionPath,
}
"""Registry of paths by the name that the estimators' ``path`` hyperparameter takes."""

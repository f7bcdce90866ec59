"""Probability paths (interpolants) between a base sample ``x0`` and a data sample ``x1``.

Every path in this module is a stochastic interpolant

.. math::

    x_t = \\alpha(t)\\, x_0 + \\beta(t)\\, x_1 + \\gamma(t)\\, z, \\qquad
    z \\sim N(0, I), \\quad t \\in [0, 1],

with ``t = 0`` the base / source and ``t = 1`` the data / target (Albergo, Boffi & Vanden-Eijnden,
*Stochastic Interpolants: A Unifying Framework for Flows and Diffusions*, 2023, eq. 2.1). The
coefficients ``alpha`` and ``beta`` are the path's; the noise scale ``gamma`` is a :class:`Gamma`
attached with :meth:`ProbabilityPath.with_noise` (by default :class:`ZeroGamma`, the deterministic
interpolant that flow matching uses). The conditional (target) velocity is the time derivative along
a fixed triple,

.. math::

    u_t(x_0, x_1, z) = \\dot\\alpha(t)\\, x_0 + \\dot\\beta(t)\\, x_1 + \\dot\\gamma(t)\\, z,

which is what conditional flow matching regresses the velocity network onto (Lipman et al., 2023,
eq. 9; Albergo & Vanden-Eijnden, 2023, eq. 2.8; Albergo et al., 2023, eq. 2.10). Paths are looked up
by name in :data:`PATHS` and noise scales in :data:`GAMMAS`, so adding one is a class and a registry
line.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "GAMMAS",
    "PATHS",
    "BSquaredGamma",
    "BrownianGamma",
    "EncoderDecoderPath",
    "Gamma",
    "LinearPath",
    "ProbabilityPath",
    "TrigonometricPath",
    "SineSquaredGamma",
    "VPDiffusionPath",
    "ZeroGamma",
]


class Gamma:
    """Base class of the noise scale ``gamma(t) = sigma g(t)`` of a stochastic interpolant.

    ``g`` vanishes at both ends, so the interpolant still starts at ``x0`` and ends at ``x1``.
    Subclasses implement :meth:`g` and :meth:`d_g`; :meth:`gamma_d_gamma` is the product
    ``gamma gamma'``, which stays finite where ``gamma'`` does not (the velocity's score term is
    ``-gamma gamma' s``, Albergo et al., 2023, eq. 2.13).

    Parameters
    ----------
    sigma : float, default=1.0
        Scale of the noise, ``gamma(t) = sigma g(t)``; non-negative.

    Attributes
    ----------
    t_min, t_max : float
        Times where ``gamma'`` is finite; :class:`ProbabilityPath` clips its interval to them.
    is_zero : bool
        Whether ``gamma`` is identically zero (then no ``z`` is drawn at all).
    """

    t_min: float = 0.0
    t_max: float = 1.0

    def __init__(self, sigma: float = 1.0) -> None:
        self.sigma = float(sigma)

    @property
    def is_zero(self) -> bool:
        return self.sigma == 0.0

    def g(self, t: torch.Tensor) -> torch.Tensor:
        """Unscaled shape ``g(t)``."""
        raise NotImplementedError

    def d_g(self, t: torch.Tensor) -> torch.Tensor:
        """Time derivative of :meth:`g`."""
        raise NotImplementedError

    def g_d_g(self, t: torch.Tensor) -> torch.Tensor:
        """``g g'``; override where the product has a finite closed form and ``g'`` does not."""
        return self.g(t) * self.d_g(t)

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        """Noise scale ``gamma(t) = sigma g(t)``."""
        return self.sigma * self.g(t)

    def d_gamma(self, t: torch.Tensor) -> torch.Tensor:
        """Time derivative ``gamma'(t) = sigma g'(t)``."""
        return self.sigma * self.d_g(t)

    def gamma_d_gamma(self, t: torch.Tensor) -> torch.Tensor:
        """``gamma(t) gamma'(t) = sigma^2 g g'``, finite on all of ``[0, 1]``."""
        return self.sigma**2 * self.g_d_g(t)


class ZeroGamma(Gamma):
    """No noise: ``gamma = 0``, the deterministic interpolant of flow matching."""

    @property
    def is_zero(self) -> bool:
        return True

    def g(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t)

    def d_g(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t)


class BrownianGamma(Gamma):
    """Brownian-bridge noise ``gamma(t) = sigma sqrt(t (1 - t))``.

    .. math::

        \\gamma'(t) = \\sigma \\frac{1 - 2t}{2 \\sqrt{t (1 - t)}}, \\qquad
        \\gamma \\gamma' = \\sigma^2 \\frac{1 - 2t}{2}.

    With the linear path, ``x_t`` given ``(x0, x1)`` is the Brownian bridge of diffusion ``sigma^2``
    (Albergo et al., 2023, eq. 4.4; Tong et al., TMLR 2024, eq. 19). ``gamma'`` is infinite at both
    ends, so paths carrying this noise are trained and integrated on ``[t_eps, 1 - t_eps]``.

    Parameters
    ----------
    sigma : float, default=1.0
        Scale of the noise.
    t_eps : float, default=1e-3
        Distance from each end where the interval is clipped.
    """

    def __init__(self, sigma: float = 1.0, t_eps: float = 1e-3) -> None:
        super().__init__(sigma)
        self.t_min = float(t_eps)
        self.t_max = 1.0 - float(t_eps)

    def g(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(t * (1.0 - t))

    def d_g(self, t: torch.Tensor) -> torch.Tensor:
        return (1.0 - 2.0 * t) / (2.0 * torch.sqrt(t * (1.0 - t)))

    def g_d_g(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 - t


class BSquaredGamma(Gamma):
    """Squared Brownian-bridge noise ``gamma(t) = sigma t (1 - t)``, smooth at the ends.

    .. math:: \\gamma'(t) = \\sigma (1 - 2t)

    (Albergo et al., 2023, section 3.4).
    """

    def g(self, t: torch.Tensor) -> torch.Tensor:
        return t * (1.0 - t)

    def d_g(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - 2.0 * t


class SineSquaredGamma(Gamma):
    """Sine-squared noise ``gamma(t) = sigma sin^2(pi t)``, the noise of the encoder–decoder.

    .. math:: \\gamma'(t) = \\sigma \\pi \\sin(2 \\pi t)

    (Albergo et al., 2023, eq. 2.17; ``sigma = 1`` with :class:`EncoderDecoderPath` is their
    encoder–decoder interpolant, pure noise at ``t = 1/2``).
    """

    def g(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(math.pi * t) ** 2

    def d_g(self, t: torch.Tensor) -> torch.Tensor:
        return math.pi * torch.sin(2.0 * math.pi * t)


GAMMAS: dict[str, type[Gamma]] = {
    "zero": ZeroGamma,
    "brownian": BrownianGamma,
    "bsquared": BSquaredGamma,
    "sinesquared": SineSquaredGamma,
}
"""Registry of noise scales by the name that the ``gamma`` hyperparameter takes."""


class ProbabilityPath:
    """Base class of a two-sided interpolant ``x_t = alpha(t) x0 + beta(t) x1``.

    Subclasses implement :meth:`alpha`, :meth:`beta` and their time derivatives :meth:`d_alpha`,
    :meth:`d_beta`; the base class builds ``x_t`` and the target velocity from them.

    Attributes
    ----------
    t_min, t_max : float
        The interval of times the path is trained and integrated on. It is ``[0, 1]`` unless a
        coefficient's derivative is singular at an end, in which case the end is clipped.
    noise : Gamma
        The noise scale ``gamma``; :class:`ZeroGamma` unless set with :meth:`with_noise`.
    noise_free : bool
        Whether the path is a valid interpolant without noise (a flow between the two ends). The
        encoder–decoder is not: without noise it collapses every point to 0 at ``t = 1/2``.
    any_source : bool
        Whether the path suits any source distribution at ``t = 0``, not only a standard normal one.
    """

    t_min: float = 0.0
    t_max: float = 1.0
    noise: Gamma = ZeroGamma()
    noise_free: bool = True
    any_source: bool = True

    def with_noise(self, noise: Gamma) -> ProbabilityPath:
        """Attach the noise scale ``gamma`` and clip the interval to where ``gamma'`` is finite.

        Returns
        -------
        self : ProbabilityPath
        """
        self.noise = noise
        self.t_min = max(self.t_min, noise.t_min)
        self.t_max = min(self.t_max, noise.t_max)
        return self

    def noise_ratio(self, t: torch.Tensor) -> torch.Tensor:
        """Relative noise ``r(t) = sqrt(alpha(t)^2 + gamma(t)^2) / beta(t)`` of ``x_t``.

        With a standard normal ``x0`` drawn independently of ``x1`` (and of ``z``),
        ``x_t / beta(t) = x1 + r(t) e`` with ``e`` standard normal: the density of ``x_t`` is that
        of the data convolved with ``N(0, r(t)^2 I)``, compressed by ``beta(t)``,

        .. math::

            p_t(\\beta(t)\\, x)\\, \\beta(t)^d = (p_1 * \\mathcal N(0, r(t)^2 I))(x).

        ``r`` is infinite where ``beta`` vanishes (the base end).
        """
        noise = self.noise.gamma(t) if not self.noise.is_zero else torch.zeros_like(t)
        beta = self.beta(t)
        spread = torch.sqrt(self.alpha(t) ** 2 + noise**2)
        return torch.where(beta > 0, spread / beta, torch.full_like(t, math.inf))

    def time_of_noise_ratio(self, ratio: float) -> float:
        """The time at which :meth:`noise_ratio` equals ``ratio``: where ``x_t`` is the data blurred
        by Gaussian noise of standard deviation ``ratio``.

        Found by bisection to float64 precision on ``[t_min, t_max]``, on which ``r(t)`` falls on
        every path here; ``t_max`` where ``ratio <= r(t_max)`` (a path that stops short of the data,
        or ``sigma_min > 0``, is already that blurred at its end).

        Parameters
        ----------
        ratio : float
            Non-negative relative noise.

        Returns
        -------
        t : float

        Raises
        ------
        ValueError
            If ``ratio`` exceeds ``r(t_min)``, the most blur the path reaches.
        """

        def r(t: float) -> float:
            return float(self.noise_ratio(torch.tensor([t], dtype=torch.float64))[0])

        lo, hi = self.t_min, self.t_max
        if ratio <= r(hi):
            return hi
        if ratio > r(lo):
            raise ValueError(
                f"A noise ratio (bandwidth) of {ratio} is more than this path reaches, {r(lo)}."
            )
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            lo, hi = (mid, hi) if r(mid) > ratio else (lo, mid)
        return hi

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

    def interpolate(
        self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Point ``x_t = alpha(t) x0 + beta(t) x1 + gamma(t) z`` on the path.

        Parameters
        ----------
        x0, x1 : torch.Tensor of shape (n, d)
            Paired base and data samples.
        t : torch.Tensor of shape (n,)
            One time per pair.
        z : torch.Tensor of shape (n, d), optional
            Standard normal noise; ignored (and may be None) when the noise is zero.

        Returns
        -------
        torch.Tensor of shape (n, d)
        """
        t = t[:, None]
        xt = self.alpha(t) * x0 + self.beta(t) * x1
        if z is not None and not self.noise.is_zero:
            xt = xt + self.noise.gamma(t) * z
        return xt

    def velocity(
        self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Conditional velocity ``u_t = alpha'(t) x0 + beta'(t) x1 + gamma'(t) z`` at time ``t``.

        Parameters
        ----------
        x0, x1 : torch.Tensor of shape (n, d)
            Paired base and data samples.
        t : torch.Tensor of shape (n,)
            One time per pair.
        z : torch.Tensor of shape (n, d), optional
            The noise of :meth:`interpolate`; ignored when the noise is zero.

        Returns
        -------
        torch.Tensor of shape (n, d)
        """
        t = t[:, None]
        u = self.d_alpha(t) * x0 + self.d_beta(t) * x1
        if z is not None and not self.noise.is_zero:
            u = u + self.noise.d_gamma(t) * z
        return u


class LinearPath(ProbabilityPath):
    """Linear interpolant: the conditional optimal-transport path of flow matching.

    .. math::

        \\alpha(t) = 1 - (1 - \\sigma_{\\min}) t, \\qquad \\beta(t) = t, \\qquad
        u_t = x_1 - (1 - \\sigma_{\\min}) x_0 .

    With a standard normal ``x0`` this is the Gaussian path of mean ``t x1`` and standard deviation
    ``1 - (1 - sigma_min) t`` (Lipman et al., *Flow Matching for Generative Modeling*, ICLR 2023,
    eq. 20). ``sigma_min = 0`` is rectified flow (Liu et al., 2023) and the
    linear interpolant of Albergo & Vanden-Eijnden (2023).

    Parameters
    ----------
    sigma_min : float, default=0.0
        Width left around each data point at ``t = 1``, in ``[0, 1)``.
    """

    def __init__(self, sigma_min: float = 0.0) -> None:
        self.sigma_min = float(sigma_min)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - (1.0 - self.sigma_min) * t

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -(1.0 - self.sigma_min))

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)


class TrigonometricPath(ProbabilityPath):
    """Trigonometric interpolant of Albergo & Vanden-Eijnden.

    .. math::

        \\alpha(t) = \\cos(\\pi t / 2), \\qquad \\beta(t) = \\sin(\\pi t / 2),

    which keeps ``alpha^2 + beta^2 = 1``, so the variance of ``x_t`` stays that of the endpoints
    when both are standardised (*Building Normalizing Flows with Stochastic Interpolants*, ICLR
    2023, eq. 2.4).

    Parameters
    ----------
    sigma_min : float, default=0.0
        Accepted for a uniform interface; the trigonometric path has no width parameter.
    """

    def __init__(self, sigma_min: float = 0.0) -> None:
        self.sigma_min = float(sigma_min)

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

    The path assumes a standard normal base (``alpha`` is a noise level), so it is offered to
    :class:`~skflow.FlowMatchingDensity` only.

    Parameters
    ----------
    sigma_min : float, default=0.0
        Accepted for a uniform interface; the VP path has no width parameter.
    beta_min, beta_max : float, default=0.1, 20.0
        Ends of the linear noise schedule ``b``.
    t_eps : float, default=1e-3
        Distance from ``t = 1`` at which the path stops.
    """

    any_source = False

    def __init__(
        self,
        sigma_min: float = 0.0,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        t_eps: float = 1e-3,
    ) -> None:
        self.sigma_min = float(sigma_min)
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


class EncoderDecoderPath(ProbabilityPath):
    """Encoder–decoder interpolant of Albergo, Boffi & Vanden-Eijnden.

    .. math::

        \\alpha(t) = \\cos^2(\\pi t)\\, 1_{t < 1/2}, \\qquad
        \\beta(t) = \\cos^2(\\pi t)\\, 1_{t > 1/2}, \\qquad
        \\dot\\alpha, \\dot\\beta = -\\pi \\sin(2 \\pi t)\\, 1_{t < 1/2},\\ 1_{t > 1/2},

    continuously differentiable at ``t = 1/2``, where both vanish (*Stochastic Interpolants*, 2023,
    eq. 2.17). With :class:`SineSquaredGamma` the interpolant is pure noise ``gamma(1/2) z`` at
    ``t = 1/2``: the source is encoded into noise, which is decoded into the target. It needs a
    noise (``noise_free = False``).

    Parameters
    ----------
    sigma_min : float, default=0.0
        Accepted for a uniform interface; the path has no width parameter.
    """

    noise_free = False

    def __init__(self, sigma_min: float = 0.0) -> None:
        self.sigma_min = float(sigma_min)

    @staticmethod
    def _cos2(t: torch.Tensor) -> torch.Tensor:
        return torch.cos(math.pi * t) ** 2

    @staticmethod
    def _d_cos2(t: torch.Tensor) -> torch.Tensor:
        return -math.pi * torch.sin(2.0 * math.pi * t)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.where(t < 0.5, self._cos2(t), torch.zeros_like(t))

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.where(t > 0.5, self._cos2(t), torch.zeros_like(t))

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.where(t < 0.5, self._d_cos2(t), torch.zeros_like(t))

    def d_beta(self, t: torch.Tensor) -> torch.Tensor:
        return torch.where(t > 0.5, self._d_cos2(t), torch.zeros_like(t))


PATHS: dict[str, type[ProbabilityPath]] = {
    "linear": LinearPath,
    "trig": TrigonometricPath,
    "vp": VPDiffusionPath,
    "encdec": EncoderDecoderPath,
}
"""Registry of paths by the name that the estimators' ``path`` hyperparameter takes."""

DENSITY_PATHS = frozenset(name for name, cls in PATHS.items() if cls.noise_free)
"""Paths that :class:`~skflow.FlowMatchingDensity` offers: those that need no noise."""

TRANSPORT_PATHS = frozenset(name for name, cls in PATHS.items() if cls.any_source)
"""Paths that :class:`~skflow.InterpolantTransport` offers: those that suit any source."""

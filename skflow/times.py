"""Distributions of the training times ``t`` of the flow-matching loss.

The conditional flow-matching loss is an expectation over ``t``; drawing ``t`` from a density
``pi(t)`` other than the uniform one re-weights the regression towards the times where ``pi`` puts
its mass, without changing the minimiser (the best ``v(t, .)`` at each ``t`` is the same), only how
the network's capacity and the optimiser's steps are shared out between times (Esser et al.,
*Scaling Rectified Flow Transformers for High-Resolution Image Synthesis*, ICML 2024, sec. 3.1).
Each distribution draws ``u`` in ``(0, 1)``; the trainer maps it to the path's ``[t_min, t_max]``.
String names resolve through :data:`TIME_DISTRIBUTIONS`.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "TIME_DISTRIBUTIONS",
    "ArcsineTimes",
    "LogitNormalTimes",
    "TimeDistribution",
    "UniformTimes",
]


class TimeDistribution:
    """A density ``pi(u)`` on ``(0, 1)`` that can be sampled."""

    def sample(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """``n`` draws of shape (n,) on ``device``."""
        raise NotImplementedError

    def pdf(self, u: torch.Tensor) -> torch.Tensor:
        """The density ``pi(u)`` at points of ``(0, 1)``."""
        raise NotImplementedError


class UniformTimes(TimeDistribution):
    """``u ~ U(0, 1)``: the loss of Lipman et al. (2023) and Tong et al. (2024)."""

    def sample(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=device)

    def pdf(self, u: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(u)


class LogitNormalTimes(TimeDistribution):
    """``u = sigmoid(m + s n)`` with ``n ~ N(0, 1)``: more weight on the middle times.

    .. math::

        \\pi(u) = \\frac{1}{s \\sqrt{2 \\pi}} \\frac{1}{u (1 - u)}
            \\exp\\left(-\\frac{(\\operatorname{logit} u - m)^2}{2 s^2}\\right),

    the logit-normal sampling of Esser et al. (2024, eq. 19), whose ``m = 0, s = 1`` was their best
    setting for images.

    Parameters
    ----------
    location, scale : float, default=0.0, 1.0
        ``m`` and ``s``.
    """

    def __init__(self, location: float = 0.0, scale: float = 1.0) -> None:
        self.location = location
        self.scale = scale

    def sample(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        normal = torch.randn(n, generator=generator, device=device)
        return torch.sigmoid(self.location + self.scale * normal)

    def pdf(self, u: torch.Tensor) -> torch.Tensor:
        logit = torch.log(u) - torch.log1p(-u)
        gauss = torch.exp(-0.5 * ((logit - self.location) / self.scale) ** 2)
        return gauss / (self.scale * math.sqrt(2.0 * math.pi) * u * (1.0 - u))


class ArcsineTimes(TimeDistribution):
    """``u = sin^2(pi w / 2)``, ``w ~ U(0, 1)``: the Beta(1/2, 1/2) law, more weight on both ends.

    .. math::

        \\pi(u) = \\frac{1}{\\pi \\sqrt{u (1 - u)}}.

    Its mass near ``t = 1`` (the data end, where the field must resolve the finest detail) and
    ``t = 0`` is the mirror image of the logit-normal's preference for the middle.
    """

    def sample(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        w = torch.rand(n, generator=generator, device=device)
        return torch.sin(0.5 * math.pi * w) ** 2

    def pdf(self, u: torch.Tensor) -> torch.Tensor:
        return 1.0 / (math.pi * torch.sqrt(u * (1.0 - u)))


TIME_DISTRIBUTIONS: dict[str, type[TimeDistribution]] = {
    "uniform": UniformTimes,
    "logit_normal": LogitNormalTimes,
    "arcsine": ArcsineTimes,
}
"""Registry of time distributions by the name the ``time_distribution`` hyperparameter takes."""

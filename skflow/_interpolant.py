"""What a fitted stochastic interpolant says at any time ``t``: its log-density ``rho(t, x)``, its
velocity ``b(t, x)`` and its score ``grad log rho(t, x)``."""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._data import check_not_bool
from ._distributions import SourceSample

__all__ = ["InterpolantFieldsMixin"]


class InterpolantFieldsMixin:
    """The densities and fields of :class:`~skflow.InterpolantTransport`, a
    :class:`~skflow._base.BaseFlow` with a fitted ``source_density_``."""

    def _times(self) -> tuple[float, float]:
        path = self._make_path()
        return path.t_min, path.t_max

    def _check_time(self, t) -> float:
        check_not_bool(t, "t")
        if not (isinstance(t, Real) and 0.0 <= float(t) <= 1.0):
            raise ValueError(f"t must be a number in [0, 1], got {t!r}.")
        t_min, t_max = self._times()
        return min(max(float(t), t_min), t_max)

    def log_density(self, X, t: float = 1.0) -> np.ndarray:
        """Log-density ``log rho(t, x)`` of the interpolant at time ``t``, in the units of ``X``.

        .. math::

            \\log \\rho(t, x) = \\log \\rho_0(X_0) - \\int_0^t \\nabla \\cdot b(s, X_s)\\, ds,

        with ``X_s`` the ODE solution through ``X_t = x`` (Albergo & Vanden-Eijnden, ICLR 2023,
        eq. 2.19) and ``rho_0`` the fitted ``source_density_``. Times are clipped to the path's
        interval (``[1e-3, 1 - 1e-3]`` with the Brownian noise).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points.
        t : float in [0, 1], default=1.0
            Time; ``0`` is the source density, ``1`` the target's (:meth:`score_samples`).

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        Y, log_weight = self._flow_rows(X)
        t = self._check_time(t)
        t_min, _ = self._times()
        Z = self._standardise(Y)
        base_log_prob = SourceSample(self.source_density_).log_prob
        if t == t_min:
            log_density = base_log_prob(Z) + np.zeros(Z.shape[0])
        else:
            log_density, _ = self._log_likelihood(Z, t_min, t, base_log_prob)
        return log_density + log_weight - np.log(self.scale_).sum()

    def score_samples(self, X) -> np.ndarray:
        """Log-density of the target distribution at each row of ``X``, in the units of ``X``:
        ``log_density(X, t=1)``, the source's log-density at the pulled-back point plus the
        integrated divergence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        return self.log_density(X, 1.0)

    def _field(self, X, t, denoiser: bool) -> tuple[np.ndarray, float]:
        check_is_fitted(self, "model_")
        if not self.columns_.plain:
            raise ValueError(
                "velocity and grad_log_density need every column continuous and unbounded (the "
                "fields of the others live in the flow's coordinates); refit with "
                "categorical_features=None, integer_features=None and bounds=None."
            )
        X = self._check_predict_data(X)
        t = self._check_time(t)

        def field(net: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
            times = torch.full((z.shape[0],), t, dtype=z.dtype, device=z.device)
            return (net.denoiser if denoiser else net)(times, z)

        return self._fitted_network().map_rows(X, field, before=self._standardise), t

    def velocity(self, X, t: float) -> np.ndarray:
        """The learned velocity ``b(t, x)`` of the probability-flow ODE, in the units of ``X`` per
        unit time.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        t : float in [0, 1]

        Returns
        -------
        velocity : ndarray of shape (n_samples, n_features)
        """
        b, _ = self._field(X, t, denoiser=False)
        return b * self.scale_

    def grad_log_density(self, X, t: float) -> np.ndarray:
        """The learned score ``s(t, x) = grad_x log rho(t, x) = -eta_z(t, x) / gamma(t)``, in the
        units of ``X`` (needs ``eps > 0``, which learns the denoiser ``eta_z``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        t : float in (0, 1)

        Returns
        -------
        score : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self, "model_")
        if not self.network_spec_.denoiser:
            raise ValueError("The score is learned with eps > 0 only: refit with eps > 0.")
        eta, t = self._field(X, t, denoiser=True)
        gamma = float(self._make_path().noise.gamma(torch.tensor(t, dtype=torch.float64)))
        return -eta / gamma / self.scale_

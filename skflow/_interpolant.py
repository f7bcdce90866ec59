"""What a fitted stochastic interpolant says at any time ``t`` (its log-density ``rho(t, x)``, its
velocity ``b(t, x)`` and its score ``grad log rho(t, x)``), and the maps that carry rows along it
(the ODE, and the SDEs of ``eps > 0``)."""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import StrOptions, validate_params
from sklearn.utils.validation import check_is_fitted

from ._data import check_not_bool, draw_seed, validates_sample_arguments
from ._distributions import SourceSample
from ._inference import interpolant_sde, resolve_device

__all__ = ["InterpolantFieldsMixin", "InterpolantMapsMixin"]


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


class InterpolantMapsMixin:
    """The maps of :class:`~skflow.InterpolantTransport` along its ODE and SDEs, and its sampler;
    with :class:`InterpolantFieldsMixin`, on a :class:`~skflow._base.BaseFlow`."""

    def transform(self, X) -> np.ndarray:
        """Push source rows to the target distribution along the ODE, ``t: 0 -> 1``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source rows.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            Their images, in the units of ``X``.
        """
        return self._carry(X, forward=True)

    def inverse_transform(self, X) -> np.ndarray:
        """Pull target rows back to the source distribution along the ODE, ``t: 1 -> 0``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Target rows.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        return self._carry(X, forward=False)

    def _carry(self, X, forward: bool):
        return self._rows_from_flow(self._carry_coordinates(self._possible_rows(X), forward))

    def _carry_coordinates(self, Y: np.ndarray, forward: bool) -> np.ndarray:
        """Rows in the flow's coordinates carried along the ODE, ``t: 0 -> 1`` or back."""
        t0, t1 = self._times() if forward else self._times()[::-1]
        return self._fitted_network().carry(
            Y, t0, t1, self._solver(), before=self._standardise, after=self._unstandardise
        )

    def _push(self, Z: np.ndarray, forward: bool, random_state) -> np.ndarray:
        """Standardised rows through the SDE (``eps > 0``) or the ODE, forwards or backwards."""
        t0, t1 = self._times() if forward else self._times()[::-1]
        if self.eps == 0:
            return self._fitted_network().carry(Z, t0, t1, self._solver())
        if not self.network_spec_.denoiser:
            raise ValueError(
                "eps > 0 needs the denoiser, which is learned in fit: refit with eps > 0."
            )
        make_drift, diffusion = interpolant_sde(self._make_path().noise, self.eps, forward)
        generator = torch.Generator(device=resolve_device(self.device)).manual_seed(
            draw_seed(check_random_state(random_state))
        )
        return self._fitted_network().carry_stochastic(
            Z, t0, t1, make_drift, diffusion, self.sde_n_steps, generator
        )

    @validate_params(
        {"direction": [StrOptions({"forward", "backward"})], "random_state": ["random_state"]},
        prefer_skip_nested_validation=True,
    )
    def transport(self, X, *, direction: str = "forward", random_state=None) -> np.ndarray:
        """Carry rows with the sampler: the SDE if ``eps > 0``, else the ODE of :meth:`transform`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source rows (``direction="forward"``) or target rows (``"backward"``).
        direction : {"forward", "backward"}, default="forward"
            ``t: 0 -> 1`` or ``t: 1 -> 0``.
        random_state : int, RandomState instance or None, default=None
            Seeds the Brownian increments.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
        """
        Y = self._possible_rows(X)
        Z = self._push(self._standardise(Y), direction == "forward", random_state)
        return self._rows_from_flow(self._unstandardise(Z))

    @validates_sample_arguments
    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Draw new target rows: source draws from ``source_density_`` pushed by the sampler.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows.
        random_state : int, RandomState instance or None, default=None
            Seeds the source draws and the SDE noise.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
        """
        check_is_fitted(self, "model_")
        rng = check_random_state(random_state)
        draws = SourceSample(self.source_density_).draw(n_samples, rng)
        return self._rows_from_flow(self._unstandardise(self._push(draws, True, rng)))

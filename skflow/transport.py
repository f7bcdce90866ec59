"""InterpolantTransport: a transport map between two distributions known by samples, learned with
stochastic interpolants."""

from __future__ import annotations

import copy
import inspect
from numbers import Integral, Real

import numpy as np
import ot
import torch
from sklearn.base import OneToOneFeatureMixin, TransformerMixin, _fit_context, clone
from sklearn.mixture import GaussianMixture
from sklearn.utils import ClassifierTags, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions, validate_params
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._base import BaseFlow, keeps_state_on_error
from ._data import WeightedMoments, check_not_bool, draw_seed
from ._distributions import SourceSample
from ._inference import resolve_device
from ._spec import NetworkSpec
from .couplings import make_coupling
from .paths import GAMMAS, PATHS, TRANSPORT_PATHS, ProbabilityPath

__all__ = ["InterpolantTransport"]


class InterpolantTransport(OneToOneFeatureMixin, TransformerMixin, BaseFlow):
    """Transport between two distributions known only by samples, learned with stochastic interpolants.

    Rows of ``X`` come from two distributions, told apart by ``y``: the rows with the smaller label
    (``classes_[0]``) are the **source** ``rho_0`` at ``t = 0``, those with the larger label
    (``classes_[1]``) the **target** ``rho_1`` at ``t = 1``. A velocity ``b(t, x)`` is regressed onto
    the time derivative of the stochastic interpolant

    .. math::

        x_t = \\alpha(t)\\, x_0 + \\beta(t)\\, x_1 + \\gamma(t)\\, z, \\qquad
        (x_0, x_1) \\sim \\pi, \\quad z \\sim N(0, I),

    by the quadratic loss ``E |b(t, x_t) - (alpha' x0 + beta' x1 + gamma' z)|^2`` (Albergo & Vanden-
    Eijnden, *Building Normalizing Flows with Stochastic Interpolants*, ICLR 2023; Albergo, Boffi &
    Vanden-Eijnden, *Stochastic Interpolants: A Unifying Framework for Flows and Diffusions*, 2023,
    eq. 2.13). The pairs ``(x0, x1)`` of a minibatch are drawn independently or re-paired by
    (entropic) optimal transport (Tong et al., *Improving and Generalizing Flow-Based Generative
    Models with Minibatch Optimal Transport*, TMLR 2024). The probability-flow ODE ``dX/dt = b(t, X)``
    then carries ``rho_0`` onto ``rho_1`` and has the interpolant's density ``rho(t, .)`` at every
    time ``t``:

    - :meth:`transform` / :meth:`inverse_transform` push rows through the ODE (a deterministic map,
      ``0 -> 1`` / ``1 -> 0``);
    - :meth:`log_density` is ``log rho(t, x) = log rho_0(X_0) - int_0^t div b(s, X_s) ds`` at any
      ``t`` (Albergo & Vanden-Eijnden, 2023, eq. 2.19), with ``log rho_0`` from ``source_density``;
      :meth:`score_samples` is the ``t = 1`` case, the target's log-density;
    - with ``eps > 0`` a denoiser ``eta_z(t, x) = E[z | x_t = x]`` is learned alongside ``b`` by the
      loss ``E |eta_z(t, x_t) - z|^2``, giving the score ``s = grad log rho_t = -eta_z / gamma``, and
      :meth:`sample` and :meth:`transport` integrate the SDEs (Albergo et al., 2023, eqs. 2.32-2.33)

      .. math::

          dX = (b + \\epsilon(t) s)\\, dt + \\sqrt{2 \\epsilon(t)}\\, dW \\quad (0 \\to 1), \\qquad
          dX = (b - \\epsilon(t) s)\\, dt + \\sqrt{2 \\epsilon(t)}\\, dW^B \\quad (1 \\to 0),

      with ``epsilon(t) = eps gamma(t) / max gamma``: it vanishes with the noise at the ends, where
      the score ``-eta_z / gamma`` is singular, so ``epsilon s = -eps eta_z / max gamma`` stays
      bounded. Every ``eps`` has the same marginals ``rho(t, .)``; ``eps = 0`` is the ODE.

    For cross-validation pass a splitter that keeps both labels in every fold, e.g.
    ``GridSearchCV(..., cv=StratifiedKFold(5, shuffle=True))``: the default ``KFold`` of a
    non-classifier cuts rows sorted by label into folds that may hold one side only, and
    :meth:`score` needs both.

    Both sides are standardised with **one** pooled affine map (the weighted mean and standard
    deviation of all rows) before training; every density is returned in the units of ``X`` (the
    log-Jacobian ``-sum(log scale_)`` is included) and every map goes back to those units.

    **Schrödinger bridge.** ``coupling="sinkhorn"``, ``gamma="brownian"`` and ``coupling_reg="sb"``
    (an absolute entropic regularisation ``2 sigma^2`` of the squared-distance cost) is the SB-CFM
    recipe of Tong et al. (TMLR 2024, section 3.4): the learned flow has the marginals of the
    Schrödinger bridge between the two samples for the reference Brownian motion ``sigma W`` (in
    the standardised coordinates).

    Parameters
    ----------
    path : {"linear", "trig", "encdec"}, default="linear"
        Coefficients ``alpha``, ``beta``: ``1 - t, t`` (:class:`~skflow.paths.LinearPath`),
        ``cos, sin(pi t / 2)`` (:class:`~skflow.paths.TrigonometricPath`) or the encoder–decoder
        ``cos^2(pi t)`` on either side of ``t = 1/2`` (:class:`~skflow.paths.EncoderDecoderPath`,
        which needs a non-zero ``gamma``; with ``gamma="sinesquared", sigma=1`` it is the paper's).
    gamma : {"zero", "brownian", "bsquared", "sinesquared"}, default="zero"
        Shape ``g`` of the noise ``gamma(t) = sigma g(t)``: none, ``sqrt(t (1 - t))``,
        ``t (1 - t)`` or ``sin^2(pi t)`` (:data:`skflow.paths.GAMMAS`). ``"brownian"`` has an infinite
        derivative at the ends, so its paths run on ``[1e-3, 1 - 1e-3]``.
    sigma : float, default=0.1
        Scale of the noise, ``gamma(t) = sigma g(t)``, in units of the pooled standard deviation
        (the standardised coordinates). Unlike :class:`~skflow.FlowMatchingDensity`, where ``sigma``
        is Lipman's ``sigma_min`` of the linear path, here the path's own coefficients have no width
        and ``sigma`` only scales ``gamma``. Ignored with ``gamma="zero"``.
    coupling : {"independent", "ot", "sinkhorn"}, default="ot"
        How each minibatch of source rows is paired with its target rows (see
        :mod:`skflow.couplings`).
    coupling_reg : float or "sb", default=0.1
        Entropic regularisation of ``coupling="sinkhorn"``, relative to the minibatch's mean squared
        distance; ``"sb"`` is the absolute ``2 sigma^2`` of the Schrödinger-bridge recipe.
    eps : float, default=0.0
        Amplitude of the diffusion ``epsilon(t) = eps gamma(t) / max gamma`` of :meth:`sample` and
        :meth:`transport`. ``eps > 0`` learns the denoiser too (twice the training cost) and needs a
        non-zero ``gamma``; ``0`` samples with the probability-flow ODE.
    step_exponent : float, default=1.0
        Shape of the fixed-step grid, as in :class:`~skflow.FlowMatchingDensity` (whose default is
        1.5, measured with its ends-weighted training times); with the transport's uniform times
        equal steps are kept.
    sde_n_steps : int, default=100
        Euler–Maruyama steps of the SDE samplers (see :func:`skflow.solvers.integrate_sde`).
    source_density : estimator or None, default=None
        Density of the source, for :meth:`sample`, :meth:`score_samples` and :meth:`log_density`:
        any estimator with ``fit``, ``sample`` and ``score_samples`` (a ``GaussianMixture``,
        ``KernelDensity``, :class:`~skflow.FlowMatchingDensity`, ...). A clone is fitted on the
        standardised source rows (with ``random_state`` set from this estimator's, when it has
        one). ``None``: ``GaussianMixture(n_components=min(5, max(1, n_source // 50)),
        covariance_type="full")``.
    max_iter : int or "auto", default=500
        Epochs, as in :class:`~skflow.FlowMatchingDensity` (whose default is ``"auto"``); an epoch
        is a pass over the target rows, each paired with source rows drawn (by weight, with
        replacement) from the source side. The transport keeps the fixed budget its benchmark
        (``benchmarks/bench_transport.py``) was measured with.
    early_stopping : bool, default=False
        As in :class:`~skflow.FlowMatchingDensity`; off here, as measured by the transport
        benchmark. With ``scoring="log_likelihood"`` the monitored score is the held-out
        log-likelihood of target rows under :meth:`score_samples` (source density and flow).
    architecture : {"mlp", "residual"}, default="mlp"
        As in :class:`~skflow.FlowMatchingDensity` (whose default is ``"residual"``); the transport
        keeps the network its benchmark was measured with.
    hidden_layer_sizes, activation, batch_size, learning_rate_init, learning_rate, ema_decay, \
time_distribution, scoring, validation_fraction, n_iter_no_change, tol, solver, n_steps, atol, \
rtol, divergence, device, warm_start, verbose
        As in :class:`~skflow.FlowMatchingDensity`.
    random_state : int, RandomState instance or None, default=None
        Seeds training, the source density and the SDE noise of :meth:`transport`.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The labels; ``classes_[0]`` is the source, ``classes_[1]`` the target.
    source_density_ : estimator
        The fitted source density, in the standardised coordinates.
    model_ : torch.nn.Module
        The fitted velocity (and, with ``eps > 0``, denoiser) network, on the CPU.
    mean_, scale_ : ndarray of shape (`n_features_in_`,)
        The pooled standardisation.
    loss_curve_, validation_loss_curve_, best_loss_, best_iter_, n_iter_, t_, n_features_in_, \
feature_names_in_
        As in :class:`~skflow.FlowMatchingDensity`.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import InterpolantTransport
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(200, 2)), rng.normal(loc=3.0, size=(200, 2))])
    >>> y = np.repeat([0, 1], 200)
    >>> tr = InterpolantTransport(hidden_layer_sizes=(32,), max_iter=5, random_state=0).fit(X, y)
    >>> tr.transform(X[:3]).shape
    (3, 2)
    >>> tr.sample(4, random_state=0).shape
    (4, 2)
    """

    _parameter_constraints: dict = {
        **BaseFlow._parameter_constraints,
        "path": [StrOptions(set(TRANSPORT_PATHS))],
        "gamma": [StrOptions(set(GAMMAS))],
        "sigma": [Interval(Real, 0, None, closed="left")],
        "coupling_reg": [Interval(Real, 0, None, closed="neither"), StrOptions({"sb"})],
        "eps": [Interval(Real, 0, None, closed="left")],
        "sde_n_steps": [Interval(Integral, 1, None, closed="left")],
        "source_density": [HasMethods(["fit", "sample", "score_samples"]), None],
    }

    def __init__(
        self,
        *,
        path: str = "linear",
        gamma: str = "zero",
        sigma: float = 0.1,
        coupling: str = "ot",
        coupling_reg: float | str = 0.1,
        eps: float = 0.0,
        sde_n_steps: int = 100,
        source_density=None,
        hidden_layer_sizes=(128, 128, 128),
        activation: str = "silu",
        architecture: str = "mlp",
        max_iter: int | str = 500,
        batch_size: int = 256,
        learning_rate_init: float = 5e-3,
        learning_rate: str = "cosine",
        ema_decay: float = 0.999,
        time_distribution: str = "uniform",
        early_stopping: bool = False,
        scoring: str = "log_likelihood",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 8,
        tol: float = 1e-4,
        solver: str = "rk4",
        n_steps: int = 20,
        step_exponent: float = 1.0,
        atol: float = 1e-7,
        rtol: float = 1e-7,
        divergence: str = "exact",
        device: str = "cpu",
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
    ) -> None:
        self.path = path
        self.gamma = gamma
        self.sigma = sigma
        self.coupling = coupling
        self.coupling_reg = coupling_reg
        self.eps = eps
        self.sde_n_steps = sde_n_steps
        self.source_density = source_density
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.architecture = architecture
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.ema_decay = ema_decay
        self.time_distribution = time_distribution
        self.early_stopping = early_stopping
        self.scoring = scoring
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.solver = solver
        self.n_steps = n_steps
        self.step_exponent = step_exponent
        self.atol = atol
        self.rtol = rtol
        self.divergence = divergence
        self.device = device
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # ----------------------------------------------------------------------------------------------
    # components (hooks of BaseFlow)

    def _make_path(self) -> ProbabilityPath:
        # the path's own coefficients have no width here: sigma scales gamma only
        return PATHS[self.path]().with_noise(GAMMAS[self.gamma](sigma=self.sigma))

    def _make_coupling(self):
        if self.coupling_reg == "sb":
            return make_coupling(self.coupling, 2.0 * self.sigma**2, relative=False)
        return make_coupling(self.coupling, self.coupling_reg)

    def _network_candidates(self, n_train_rows: int | None) -> list[NetworkSpec]:
        # with eps > 0 the SDE samplers need the denoiser too
        return [self._network_spec(denoiser=self.eps > 0)]

    def _check_components(self) -> ProbabilityPath:
        path = self._make_path()
        if path.noise.is_zero and not path.noise_free:
            raise ValueError(
                f"path={self.path!r} passes through pure noise and needs a non-zero noise: set gamma "
                f"to one of {sorted(set(GAMMAS) - {'zero'})} and sigma > 0."
            )
        if self.eps > 0 and path.noise.is_zero:
            raise ValueError(
                "eps > 0 samples with an SDE whose drift needs the score of the interpolant, which "
                "is learned from its noise: set gamma to a non-zero noise and sigma > 0, or eps=0."
            )
        if self.coupling_reg == "sb" and self.sigma == 0:
            raise ValueError(
                "coupling_reg='sb' is the regularisation 2 sigma^2: it needs sigma > 0."
            )
        return path

    # ----------------------------------------------------------------------------------------------
    # fitting

    def _validate_labels(self, X, y, sample_weight):
        reset = not (self.warm_start and hasattr(self, "model_"))
        X, y = validate_data(
            self, X, y, dtype=np.float64, ensure_min_samples=2, reset=reset, y_numeric=False
        )
        y = column_or_1d(y, warn=True)
        try:
            classes = np.unique(y)
        except TypeError as error:  # labels that cannot be ordered, e.g. strings and numbers
            raise TypeError(
                f"y must hold labels of one kind that can be sorted (numbers or strings): {error}"
            ) from None
        if classes.size != 2:
            raise ValueError(
                "InterpolantTransport.fit needs y with exactly two distinct labels, one per "
                f"distribution (the smaller label is the source); got {classes.size} "
                f"distinct label(s): {classes[:5].tolist()}."
            )
        if not reset and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start: y has labels {classes.tolist()}, the fitted model "
                f"{self.classes_.tolist()}."
            )
        if sample_weight is None:
            weight = np.ones(X.shape[0])
        else:
            weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        for label in classes:
            side = y == label
            if np.count_nonzero(weight[side] > 0) < 2:
                raise ValueError(
                    f"InterpolantTransport needs at least 2 rows (of positive weight) on each side; "
                    f"label {label!r} has {np.count_nonzero(weight[side] > 0)}."
                )
        return X, y, weight, classes

    def _fit_source_density(self, Z: np.ndarray, rng: np.random.RandomState):
        if self.source_density is None:
            estimator = GaussianMixture(
                n_components=min(5, max(1, Z.shape[0] // 50)), covariance_type="full"
            )
        else:
            estimator = clone(self.source_density)
        if "random_state" in estimator.get_params():
            estimator.set_params(random_state=draw_seed(rng))
        return estimator.fit(Z)

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Learn the transport from the rows labelled ``classes_[0]`` to those labelled ``classes_[1]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows of both distributions.
        y : array-like of shape (n_samples,)
            Which distribution each row is from: exactly two distinct labels; the smaller one (in
            :func:`numpy.unique` order) marks the source, the larger one the target. At least two
            rows on each side.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights: target rows weight the loss, source rows are drawn in
            proportion to theirs; both weight the pooled standardisation.

        Returns
        -------
        self : InterpolantTransport
        """
        X, y, weight, classes = self._validate_labels(X, y, sample_weight)
        if self.warm_start and hasattr(self, "model_"):
            if (self.eps > 0) != self.network_spec_.denoiser:
                raise ValueError("warm_start cannot switch eps between zero and positive; refit.")
        else:
            self._set_moments(WeightedMoments.of(X, weight))
        self._check_components()
        self.classes_ = classes
        self._n_features_out = X.shape[1]
        Z = self._standardise(X)
        source, target = y == classes[0], y == classes[1]
        rng = check_random_state(self.random_state)
        self.source_density_ = self._fit_source_density(Z[source & (weight > 0)], rng)

        device = resolve_device(self.device)
        base = SourceSample(
            self.source_density_,
            torch.as_tensor(Z[source], dtype=torch.float32, device=device),
            torch.as_tensor(weight[source], dtype=torch.float32, device=device),
        )
        self._fit_network(Z[target], weight[target], base)
        return self

    # ----------------------------------------------------------------------------------------------
    # maps

    def _times(self) -> tuple[float, float]:
        path = self._make_path()
        return path.t_min, path.t_max

    def transform(self, X) -> np.ndarray:
        """Push source rows to the target distribution along the ODE, ``t: 0 -> 1``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source rows.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            Their images, in the units of ``X``; a deterministic map, the same for a row in any batch.
        """
        X = self._check_predict_data(X)
        t0, t1 = self._times()
        return self._fitted_network().carry(
            X, t0, t1, self._solver(), before=self._standardise, after=self._unstandardise
        )

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
        X = self._check_predict_data(X)
        t0, t1 = self._times()
        return self._fitted_network().carry(
            X, t1, t0, self._solver(), before=self._standardise, after=self._unstandardise
        )

    def _epsilon_over_gamma_max(self) -> float:
        path = self._make_path()
        grid = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
        return self.eps / float(path.noise.gamma(grid).max())

    def _push(self, Z: np.ndarray, forward: bool, random_state) -> np.ndarray:
        """Standardised rows through the SDE (``eps > 0``) or the ODE, forwards or backwards."""
        t0, t1 = self._times() if forward else self._times()[::-1]
        if self.eps == 0:
            return self._fitted_network().carry(Z, t0, t1, self._solver())
        if not self.network_spec_.denoiser:
            raise ValueError(
                "eps > 0 needs the denoiser, which is learned in fit: refit with eps > 0."
            )
        gamma = self._make_path().noise.gamma
        rate = self._epsilon_over_gamma_max()  # epsilon(t) = rate * gamma(t)
        sign = 1.0 if forward else -1.0

        def make_drift(net):
            def drift(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                times = t.expand(y.shape[0])
                # epsilon(t) s = -(rate gamma) (eta / gamma) = -rate eta: bounded at the ends
                return net(times, y) - sign * rate * net.denoiser(times, y)

            return drift

        def diffusion(t: torch.Tensor) -> torch.Tensor:
            return torch.sqrt(2.0 * rate * gamma(t))

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
        """Carry rows with the sampler: the SDE with diffusion ``epsilon(t)`` if ``eps > 0``, else
        the ODE (then it equals :meth:`transform` / :meth:`inverse_transform`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Source rows (``direction="forward"``) or target rows (``"backward"``).
        direction : {"forward", "backward"}, default="forward"
            ``t: 0 -> 1`` with the drift ``b + epsilon s``, or ``t: 1 -> 0`` with ``b - epsilon s``.
        random_state : int, RandomState instance or None, default=None
            Seeds the Brownian increments; the same seed gives the same output.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
        """
        X = self._check_predict_data(X)
        Z = self._push(self._standardise(X), direction == "forward", random_state)
        return self._unstandardise(Z)

    @validate_params(
        {
            "n_samples": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
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
        check_not_bool(n_samples, "n_samples")
        check_is_fitted(self, "model_")
        rng = check_random_state(random_state)
        density = copy.deepcopy(self.source_density_)
        seed = draw_seed(rng)
        if "random_state" in density.get_params():
            density.set_params(random_state=seed)
        if "random_state" in inspect.signature(density.sample).parameters:
            draws = density.sample(n_samples, random_state=seed)
        else:
            draws = density.sample(n_samples)
        if isinstance(draws, tuple):  # GaussianMixture returns (X, labels), sorted by component
            draws = draws[0]
        draws = np.asarray(draws, dtype=np.float64)[rng.permutation(n_samples)]
        return self._unstandardise(self._push(draws, True, rng))

    # ----------------------------------------------------------------------------------------------
    # densities and fields

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
        X = self._check_predict_data(X)
        t = self._check_time(t)
        t_min, _ = self._times()
        Z = self._standardise(X)
        base_log_prob = SourceSample(self.source_density_).log_prob
        if t == t_min:
            log_density = base_log_prob(Z) + np.zeros(Z.shape[0])
        else:
            log_density = self._log_likelihood(Z, t_min, t, base_log_prob)
        return log_density - np.log(self.scale_).sum()

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
        """The learned score ``s(t, x) = grad_x log rho(t, x) = -eta_z(t, x) / gamma(t)``, in the units
        of ``X`` (needs ``eps > 0``, which learns the denoiser ``eta_z``).

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

    # ----------------------------------------------------------------------------------------------
    # model selection

    def score(self, X, y, sample_weight=None) -> float:
        """Minus the squared 2-Wasserstein distance between transported source rows and target rows.

        The source rows of ``X`` (label ``classes_[0]``) are pushed by :meth:`transform` and compared
        with the target rows (label ``classes_[1]``) by the exact optimal-transport cost between the
        two uniform empirical measures, ``W2^2 = min_pi sum pi_ij |T(x_i) - y_j|^2`` (POT's
        :func:`ot.emd2`), in the units of ``X``; higher is better.

        Why this score: it judges the map itself on held-out pairs of samples, the quantity a
        transport is for, and it does not involve ``source_density`` (a held-out target
        log-likelihood would mostly grade that density) nor the noise (with ``gamma`` in the
        likelihood the ends are clipped). It is comparable across paths, gammas, couplings and
        network settings on the same rows, so ``GridSearchCV`` can choose among them. It is biased
        upwards in distance by the finite samples (a perfect map still scores below zero), by the
        same amount for every candidate scored on the same fold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Held-out rows of both distributions.
        y : array-like of shape (n_samples,)
            Their labels, from ``classes_``; both must be present.
        sample_weight : None
            Not supported (a weighted score would need weighted marginals); anything but None
            raises a ValueError rather than being ignored.

        Returns
        -------
        float
            ``-W2^2``.
        """
        if sample_weight is not None:
            raise ValueError(
                "InterpolantTransport.score does not support sample_weight; pass sample_weight=None."
            )
        X = self._check_predict_data(X)
        y = column_or_1d(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(
                f"y has labels {unknown[:5].tolist()} that fit did not see; the labels are "
                f"{self.classes_.tolist()}."
            )
        source, target = y == self.classes_[0], y == self.classes_[1]
        if not source.any() or not target.any():
            raise ValueError(
                f"score needs rows of both labels {self.classes_.tolist()}; got labels "
                f"{np.unique(y).tolist()}."
            )
        moved = self.transform(X[source])
        cost = ot.dist(moved, X[target])  # squared Euclidean
        a = np.full(moved.shape[0], 1.0 / moved.shape[0])
        b = np.full(int(target.sum()), 1.0 / target.sum())
        return -float(ot.emd2(a, b, cost, numItermax=1_000_000))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = True
        # y names one of exactly two distributions: scikit-learn's checks then draw binary labels
        tags.classifier_tags = ClassifierTags(multi_class=False)
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

"""InterpolantTransport: a transport map between two distributions known by samples, learned with
stochastic interpolants."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import ot
import torch
from sklearn.base import OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils import ClassifierTags, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ._base import BaseFlow, keeps_state_on_error
from ._data import (
    WeightedMoments,
    split_two_samples,
    two_sample_labels,
)
from ._distributions import SourceSample, fit_source_density
from ._inference import resolve_device
from ._interpolant import InterpolantFieldsMixin, InterpolantMapsMixin
from ._kinds import COLUMN_CONSTRAINTS
from ._spec import NetworkSpec
from .couplings import make_coupling
from .paths import GAMMAS, PATHS, TRANSPORT_PATHS, ProbabilityPath

__all__ = ["InterpolantTransport"]


class InterpolantTransport(
    OneToOneFeatureMixin,
    TransformerMixin,
    InterpolantMapsMixin,
    InterpolantFieldsMixin,
    BaseFlow,
):
    """Transport between two distributions known only by samples, learned with stochastic
    interpolants.

    Rows of ``X`` come from two distributions told apart by ``y``: the rows with the smaller
    label (``classes_[0]``) are the **source** ``rho_0`` at ``t = 0``, the others the **target**
    ``rho_1`` at ``t = 1``. A velocity ``b(t, x)`` is regressed onto the time derivative of the
    stochastic interpolant

    .. math::

        x_t = \\alpha(t)\\, x_0 + \\beta(t)\\, x_1 + \\gamma(t)\\, z, \\qquad
        (x_0, x_1) \\sim \\pi, \\quad z \\sim N(0, I),

    by the quadratic loss ``E |b(t, x_t) - (alpha' x0 + beta' x1 + gamma' z)|^2`` (Albergo,
    Boffi & Vanden-Eijnden, *Stochastic Interpolants: A Unifying Framework for Flows and
    Diffusions*, 2023, eq. 2.13), with the pairs of a minibatch drawn independently or re-paired
    by (entropic) optimal transport (Tong et al., TMLR 2024). The ODE ``dX/dt = b(t, X)`` carries
    ``rho_0`` onto ``rho_1`` through the interpolant's densities ``rho(t, .)``:
    :meth:`transform` and :meth:`inverse_transform` follow it, and :meth:`log_density` is
    ``log rho(t, x) = log rho_0(X_0) - int_0^t div b(s, X_s) ds`` (Albergo & Vanden-Eijnden,
    ICLR 2023, eq. 2.19) with ``rho_0`` from ``source_density``. With ``eps > 0`` a denoiser
    ``eta_z(t, x) = E[z | x_t = x]`` is learned too, giving the score
    ``s = grad log rho_t = -eta_z / gamma``, and :meth:`sample` and :meth:`transport` integrate the
    SDEs ``dX = (b +- epsilon(t) s) dt + sqrt(2 epsilon(t)) dW`` forwards and backwards (their eqs.
    2.32-2.33) with ``epsilon(t) = eps gamma(t) / max gamma``, which have the same marginals.

    Both sides are standardised by one pooled affine map; densities and maps are in the units of
    ``X``. ``coupling="sinkhorn"``, ``gamma="brownian"`` and ``coupling_reg="sb"`` is the
    Schrödinger-bridge recipe (SB-CFM) of Tong et al. For cross-validation, pass a splitter that
    keeps both labels in every fold, such as ``StratifiedKFold``: :meth:`score` needs both.

    Read more in the :ref:`User Guide <transport>`.

    Parameters
    ----------
    path : {"linear", "trig", "encdec"}, default="linear"
        Coefficients ``alpha``, ``beta`` (:data:`skflow.paths.PATHS`): ``1 - t, t``; ``cos`` and
        ``sin`` of ``pi t / 2``; or the encoder–decoder, which needs a non-zero ``gamma``.
    gamma : {"zero", "brownian", "bsquared", "sinesquared"}, default="zero"
        Shape ``g`` of the noise ``gamma(t) = sigma g(t)`` (:data:`skflow.paths.GAMMAS`): none,
        ``sqrt(t (1 - t))``, ``t (1 - t)`` or ``sin^2(pi t)``.
    sigma : float, default=0.1
        Scale of the noise, in pooled standard deviations; ignored with ``gamma="zero"``.
    coupling : {"independent", "ot", "sinkhorn"}, default="ot"
        How each minibatch of source rows is paired with its target rows
        (:mod:`skflow.couplings`).
    coupling_reg : float or "sb", default=0.1
        Entropic regularisation of ``coupling="sinkhorn"``, relative to the minibatch's mean
        squared distance; ``"sb"`` is the absolute ``2 sigma^2`` of the Schrödinger bridge.
    eps : float, default=0.0
        Amplitude of the diffusion of :meth:`sample` and :meth:`transport`; ``eps > 0`` learns the
        denoiser too (twice the training cost) and needs a non-zero ``gamma``.
    sde_n_steps : int, default=100
        Euler–Maruyama steps of the SDE samplers.
    source_density : estimator or None, default=None
        Density of the source for :meth:`sample`, :meth:`score_samples` and :meth:`log_density`:
        any estimator with ``fit``, ``sample`` and ``score_samples``, cloned and fitted on the
        standardised source rows. None: ``GaussianMixture(n_components=min(5, max(1, n // 50)),
        covariance_type="full")`` for ``n`` source rows.
    hidden_layer_sizes : array-like of int, default=(128, 128, 128)
        Widths of the hidden layers of the velocity network.
    activation : {"silu", "tanh", "gelu", "softplus", "relu"}, default="silu"
        Activation of the hidden layers.
    architecture : {"mlp", "residual"}, default="mlp"
        Shape of the velocity network, as in :class:`~skflow.FlowMatchingDensity`.
    max_iter : int or "auto", default=500
        Epochs; an epoch passes over the target rows, each paired with a source row drawn by
        weight.
    batch_size : int, default=256
        Rows per minibatch.
    time_distribution : {"uniform", "logit_normal", "arcsine"}, default="uniform"
        Law of the training times.
    early_stopping : bool, default=False
        As in :class:`~skflow.FlowMatchingDensity`; with ``scoring="log_likelihood"`` it monitors
        the held-out log-likelihood of target rows.
    step_exponent : float, default=1.0
        Grid of the fixed-step solver, as in :class:`~skflow.FlowMatchingDensity`.
    max_time, learning_rate_init, learning_rate, ema_decay, scoring, validation_fraction, \
n_iter_no_change, tol, solver, n_steps, atol, rtol, divergence, n_probes, device, warm_start, \
verbose, categorical_features, integer_features, bounds
        As in :class:`~skflow.FlowMatchingDensity`. With discrete or bounded columns
        (:ref:`tables`) both samples are carried in the flow's coordinates: the target's
        dequantised afresh for every minibatch, the source's once, at ``fit``; the maps return
        valid values of every column, :meth:`score` is measured in the flow's coordinates, and
        :meth:`velocity` and :meth:`grad_log_density` need continuous, unbounded columns.
    random_state : int, RandomState instance or None, default=None
        Seeds training, the source density and Hutchinson's probes; the samplers take their own
        ``random_state``.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The labels; ``classes_[0]`` is the source, ``classes_[1]`` the target.
    source_density_ : estimator
        The fitted source density, in the standardised coordinates.
    model_ : torch.nn.Module
        The fitted velocity (and, with ``eps > 0``, denoiser) network, on the CPU.
    columns_ : TableLayout
        The kind, categories and bounds of each column, as plain data.
    mean_, scale_ : ndarray of shape (n_components,)
        The pooled standardisation, per coordinate of the flow.
    network_spec_, loss_curve_, validation_loss_curve_, best_loss_, best_iter_, n_iter_, t_, \
stop_reason_, n_features_in_, feature_names_in_
        As in :class:`~skflow.FlowMatchingDensity`.

    See Also
    --------
    FlowMatchingDensity : The flow from a standard normal.

    Notes
    -----
    Its network, minibatch, epochs and training times are not the density's: on 2-D transport
    tasks those cost three times the CPU for no better map (:ref:`User Guide <transport>`).

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
        **COLUMN_CONSTRAINTS,
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
        max_time: float | None = None,
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
        divergence: str = "auto",
        n_probes: int = 8,
        device: str = "cpu",
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
        categorical_features="from_dtype",
        integer_features="from_dtype",
        bounds: dict | None = None,
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
        self.max_time = max_time
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
        self.n_probes = n_probes
        self.device = device
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.categorical_features = categorical_features
        self.integer_features = integer_features
        self.bounds = bounds

    def _make_path(self) -> ProbabilityPath:
        # the path's own coefficients have no width here: sigma scales gamma only
        return PATHS[self.path]().with_noise(GAMMAS[self.gamma](sigma=self.sigma))

    def _make_coupling(self):
        if self.coupling_reg == "sb":
            return make_coupling(self.coupling, 2.0 * self.sigma**2, relative=False)
        return make_coupling(self.coupling, self.coupling_reg)

    def _network_for(self, n_train_rows: int | None) -> NetworkSpec:
        # with eps > 0 the SDE samplers need the denoiser too
        return self._network_spec(denoiser=self.eps > 0)

    def _check_components(self) -> None:
        noisy = f"set gamma to one of {sorted(set(GAMMAS) - {'zero'})} and sigma > 0"
        path = self._make_path()
        if path.noise.is_zero and not path.noise_free:
            raise ValueError(f"path={self.path!r} passes through pure noise: {noisy}.")
        if self.eps > 0 and path.noise.is_zero:
            raise ValueError(f"eps > 0 needs the score, which is learned from noise: {noisy}.")
        if self.coupling_reg == "sb" and self.sigma == 0:
            raise ValueError("coupling_reg='sb' is the regularisation 2 sigma^2: set sigma > 0.")

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Learn the transport from the rows labelled ``classes_[0]`` to the others.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows of both distributions.
        y : array-like of shape (n_samples,)
            Exactly two distinct labels, the smaller one marking the source; at least two rows on
            each side.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights: of the loss for target rows, of the draws for source rows.

        Returns
        -------
        self : InterpolantTransport
        """
        warm = self.warm_start and hasattr(self, "model_")
        Y, weight, codes = self._training_rows(X, sample_weight, warm=warm)
        y, classes = two_sample_labels(
            self, y, weight, fitted_classes=self.classes_ if warm else None
        )
        if warm:
            if (self.eps > 0) != self.network_spec_.denoiser:
                raise ValueError("warm_start cannot switch eps between zero and positive; refit.")
        else:
            self._set_moments(WeightedMoments.of(Y, weight))
        self._check_components()
        self.classes_ = classes
        self._n_features_out = Y.shape[1]
        Z = self._standardise(Y)
        source, target = y == classes[0], y == classes[1]
        rng = check_random_state(self.random_state)
        self.source_density_ = fit_source_density(
            self.source_density, Z[source & (weight > 0)], rng
        )

        device = resolve_device(self.device)
        base = SourceSample(
            self.source_density_,
            torch.as_tensor(Z[source], dtype=torch.float32, device=device),
            torch.as_tensor(weight[source], dtype=torch.float32, device=device),
        )
        self._fit_network(
            Z[target], weight[target], base, codes=None if codes is None else codes[target]
        )
        return self

    def score(self, X, y, sample_weight=None) -> float:
        """Minus the squared 2-Wasserstein distance between transported source rows and target rows.

        The source rows of ``X``, pushed by :meth:`transform`, and the target rows are compared by
        the exact optimal-transport cost between their empirical measures (POT's :func:`ot.emd2`),
        in the units of ``X``. It judges the map itself, not ``source_density``, on the same scale
        for every path, noise, coupling and network, so ``GridSearchCV`` can choose among them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Held-out rows of both distributions.
        y : array-like of shape (n_samples,)
            Their labels, from ``classes_``; both must be present.
        sample_weight : None
            Not supported; anything but None raises a ValueError.

        Returns
        -------
        float
            ``-W2^2``.
        """
        if sample_weight is not None:
            raise ValueError("InterpolantTransport.score does not support sample_weight.")
        Y = self._possible_rows(X)
        source, target = split_two_samples(y, Y.shape[0], self.classes_)
        moved = self._carry_coordinates(Y[source], forward=True)
        cost = ot.dist(moved, Y[target])  # squared Euclidean, in the flow's coordinates
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

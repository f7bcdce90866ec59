"""FlowMatchingDensity: density estimation with a continuous normalizing flow trained by flow
matching."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import BaseFlow, keeps_state_on_error
from ._data import WeightedMoments
from ._kinds import COLUMN_CONSTRAINTS
from ._latent import LatentFlowMixin, PathFlowMixin
from ._stream import StreamingMixin
from .paths import DENSITY_PATHS

__all__ = ["FlowMatchingDensity"]


class FlowMatchingDensity(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    LatentFlowMixin,
    PathFlowMixin,
    StreamingMixin,
    DensityMixin,
    BaseFlow,
):
    """Density estimation with a continuous normalizing flow trained by conditional flow matching.

    A velocity field ``v(t, x)`` is learned so that the ODE ``dx/dt = v(t, x)`` carries the
    standard normal at ``t = 0`` onto the data at ``t = 1``. Training regresses ``v`` onto the
    velocity of a conditional path between a base draw ``x0`` and a data row ``x1`` (for the linear
    path, ``x_t = (1 - (1 - sigma_min) t) x0 + t x1`` with target ``x1 - (1 - sigma_min) x0``),
    which needs no ODE solve (Lipman et al., *Flow Matching for Generative Modeling*, ICLR 2023;
    Albergo & Vanden-Eijnden, *Building Normalizing Flows with Stochastic Interpolants*, ICLR 2023;
    Tong et al., *Improving and Generalizing Flow-Based Generative Models with Minibatch Optimal
    Transport*, TMLR 2024). The log-density follows from the instantaneous change of variables
    (Chen et al., *Neural Ordinary Differential Equations*, NeurIPS 2018),

    .. math::

        \\log p(x) = \\log \\mathcal{N}(z; 0, I) - \\int_0^1 \\nabla \\cdot v(t, x_t)\\, dt,

    with ``z`` the point the ODE pulls ``x`` back to. The data are standardised inside :meth:`fit`
    and every density is returned in the units of ``X``.

    Read more in the :ref:`User Guide <density>`.

    Parameters
    ----------
    path : {"linear", "trig", "vp"}, default="linear"
        Probability path between base and data (:data:`skflow.paths.PATHS`): the rectified-flow
        line, the trigonometric interpolant or the variance-preserving diffusion path.
    sigma_min : float, default=0.0
        Width of the linear path around each data point at ``t = 1``, in ``[0, 1)``; 0 is
        rectified flow. The other paths ignore it.
    coupling : {"independent", "ot", "sinkhorn"}, default="independent"
        How each minibatch of base draws is paired with its data rows (:mod:`skflow.couplings`):
        independently (I-CFM), by exact optimal transport (OT-CFM) or by an entropic plan.
    coupling_reg : float, default=0.1
        Entropic regularisation of ``coupling="sinkhorn"``, relative to the mean squared distance
        within the minibatch: small values approach ``"ot"``, large ones ``"independent"``.
    hidden_layer_sizes : array-like of int, default=(128, 128, 128, 128)
        Widths of the hidden layers of the velocity network.
    activation : {"silu", "tanh", "gelu", "softplus", "relu"}, default="gelu"
        Activation of the hidden layers; smooth activations give smooth flows.
    architecture : {"mlp", "residual"}, default="residual"
        Shape of the velocity network: residual blocks with layer normalisation that each see the
        time (:class:`~skflow.networks.VelocityBlockMLP`), or a plain MLP
        (:class:`~skflow.networks.VelocityMLP`).
    n_fourier_features : int or "auto", default="auto"
        Random Fourier features ``sin(x B)``, ``cos(x B)`` that the network sees beside ``x``
        (:class:`~skflow.networks.FourierFeatureVelocity`); 0 for none. They resolve fine detail
        in few dimensions, such as the cliffs of heaped values, and overfit small data.
        ``"auto"``: 64 features from 10,000 training rows in up to 8 dimensions, else none.
    fourier_scale : float, default=10.0
        Standard deviation of each phase ``x B_k`` of standardised data: the entries of ``B`` are
        ``N(0, fourier_scale^2 / d)``. Ignored without Fourier features.
    max_iter : int or "auto", default="auto"
        Number of epochs (passes over the training rows); the most, with early stopping.
        ``"auto"``: ``clip(3 n / 4, 3000, 12000)`` optimiser steps for ``n`` training rows.
    max_time : float or None, default=None
        Seconds of training at most, counted from the set-up of the network: the budget is
        ``max_iter`` epochs or ``max_time``, whichever runs out first, and the step-size schedule
        follows it. A time budget makes the fit depend on the machine's speed.
    batch_size : int, default=1024
        Rows per minibatch (at most the number of training rows).
    learning_rate_init : float, default=5e-3
        Initial step size of Adam.
    learning_rate : {"constant", "cosine"}, default="cosine"
        Step-size schedule: constant, or a cosine decay to zero over the ``max_iter`` epochs.
    ema_decay : float, default=0.999
        Decay of the exponential moving average of the weights, which is the fitted model; it is
        warmed up as ``min(ema_decay, (1 + k) / (10 + k))`` at step ``k``.
    time_distribution : {"uniform", "logit_normal", "arcsine"}, default="arcsine"
        Law of the training times ``t`` (:mod:`skflow.times`): uniform, logit-normal (more weight
        in the middle; Esser et al., ICML 2024) or arcsine ``Beta(1/2, 1/2)`` (more weight at both
        ends).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows, score the averaged model on them 25 times
        over the budget, keep the best checkpoint and stop after ``n_iter_no_change`` checks
        without improvement. With False, every epoch runs on all rows and the last model is kept.
    scoring : {"log_likelihood", "loss"}, default="log_likelihood"
        What early stopping monitors: the held-out log-likelihood (on at most 1000 rows, with 8
        RK4 steps), or the flow-matching loss of fixed validation pairs.
    validation_fraction : float, default=0.1
        Share of rows held out for early stopping.
    n_iter_no_change : int, default=8
        Validation checks without an improvement of more than ``tol`` before training stops.
    tol : float, default=1e-4
        Smallest decrease of the monitored validation loss that counts as an improvement.
    solver : {"euler", "midpoint", "rk4", "dopri5"}, default="rk4"
        ODE solver of :meth:`score_samples`, :meth:`sample`, :meth:`transform` and
        :meth:`inverse_transform`. Fixed-step solvers give each row a result independent of the
        other rows; ``"dopri5"`` adapts its steps to the batch as a whole.
    n_steps : int, default=20
        Steps of a fixed-step solver.
    step_exponent : float, default=1.5
        Grid of a fixed-step solver, ``t_k = 1 - (1 - k / n_steps) ** step_exponent``: 1 takes
        equal steps, more shortens them toward the data end, where the field turns sharp.
    atol, rtol : float, default=1e-7
        Tolerances of ``solver="dopri5"``.
    divergence : {"auto", "exact", "hutchinson"}, default="auto"
        Divergence in the likelihood: the exact trace of the Jacobian (``d`` backward passes a
        solver step), or Hutchinson's unbiased estimator (``n_probes`` passes), whose probes are
        drawn from each row's own values and ``random_state``, so that a row's estimate does not
        depend on its batch. ``"auto"``: exact up to 16 features.
    n_probes : int, default=8
        Probes of Hutchinson's estimator per row; its standard error falls as
        ``1 / sqrt(n_probes)`` (``score_samples(X, return_std=True)`` gives it).
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where training and inference run; ``"auto"`` uses CUDA when available. The fitted network
        is kept on the CPU, so a pickled model loads on any machine.
    warm_start : bool, default=False
        Continue from the fitted network (and its standardisation) when :meth:`fit` is called
        again.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, minibatches, base draws, times, couplings, the validation split and
        Hutchinson's probes. The global NumPy and torch generators are not touched.
    verbose : int, default=0
        Print progress: a line at each of 25 checks over the budget (step, losses, time), and
        with 2 or more a line every epoch.
    categorical_features : "from_dtype", None or array-like, default="from_dtype"
        Columns of categories, by index, by name (with a DataFrame) or as a boolean mask.
        ``"from_dtype"``: the DataFrame columns of ``category``, ``object``, string or ``bool``
        dtype (an array's columns are numbers). A column of ``K`` categories reaches the flow as
        ``+-1`` bits dequantised onto their half-lines: a one-hot code up to eight categories,
        the binary code of the category's index on ``ceil(log2 K)`` coordinates past that (see
        :ref:`tables`); samples are training categories.
    integer_features : "from_dtype", None or array-like, default="from_dtype"
        Integer-valued columns, given as ``categorical_features`` is. ``"from_dtype"``: the
        columns of an integer dtype (all columns of an integer array). They are dequantised by
        uniform noise on ``[k - 1/2, k + 1/2)``, so that :meth:`score_samples` estimates a lower
        bound on ``log P(k)``; samples are rounded into the training range.
    bounds : dict or None, default=None
        Bounds of continuous or integer columns: ``{column: (low, high)}`` by index or name,
        with None for an open side, or ``"non-negative"`` for ``(0, None)`` and ``"unit"`` for
        ``(0, 1)``. Each bounded column is mapped onto the real line (a log or a logit), whose
        Jacobian :meth:`score_samples` includes; samples stay inside the bounds.
    allow_missing : bool, default=False
        Learn from rows with missing cells (NaN, or None and pandas' NA in a DataFrame) and
        score them. The field then also sees which cells it moves and which it holds
        (:class:`~skflow.networks.MaskedVelocity`); a table with holes is fitted in two stages,
        the law of each row's observed cells and the conditionals first, then the joint law
        from the rows completed by one draw of their missing cells (see
        :ref:`density-missing`). No row is dropped. The log-density of a row with missing cells
        is that of its observed cells, their marginal under the model; :meth:`transform` gives
        NaN for its missing coordinates. Needs ``coupling="independent"``; there is no
        ``partial_fit`` with it.

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted velocity network (an EMA of the trained weights), on the CPU.
    network_spec_ : NetworkSpec
        What ``model_`` is, as plain data (architecture, widths, Fourier features).
    n_fourier_features_ : int
        Fourier features of the fitted network: ``n_fourier_features``, or what ``"auto"`` chose.
        The training record below is that of the network kept.
    columns_ : TableLayout
        The kind, categories and bounds of each column, as plain data.
    mean_, scale_ : ndarray of shape (n_components,)
        Standardisation applied before the flow, per coordinate of the flow: one per feature
        for a table of continuous columns, ``K`` for a column of ``K <= 8`` categories (one-hot)
        and ``ceil(log2 K)`` past that.
    loss_curve_ : list of float
        Training loss of every epoch.
    validation_loss_curve_ : list of float
        Monitored validation loss at every check; empty without early stopping.
    best_loss_ : float
        Best validation loss (with early stopping) or best training loss (without).
    best_iter_ : int
        Epoch of the kept model.
    n_iter_ : int
        Epochs run.
    t_ : int
        Optimiser steps taken.
    stop_reason_ : {"max_iter", "max_time", "early_stopping", "interrupted", "diverged"}
        Why training ended: the budget of epochs or of time, early stopping, a KeyboardInterrupt
        (the best weights so far are kept) or a blow-up after some epochs (the last good weights
        are kept).
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in :meth:`fit`, when ``X`` had string column names.

    See Also
    --------
    FlowMatchingOutlierDetector : Anomaly detection by this density.
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

    Notes
    -----
    The measurements behind the defaults are in the :ref:`User Guide <density>`.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowMatchingDensity
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> flow = FlowMatchingDensity(hidden_layer_sizes=(32,), max_iter=5, random_state=0).fit(X)
    >>> flow.score_samples(X[:3]).shape
    (3,)
    >>> flow.sample(4, random_state=0).shape
    (4, 2)

    A DataFrame of mixed columns gives rows of the same kinds back:

    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame({"height": rng.normal(170, 10, 200),
    ...                       "children": rng.poisson(2, 200),
    ...                       "city": rng.choice(["Oslo", "Lima"], 200)})
    >>> flow = FlowMatchingDensity(hidden_layer_sizes=(32,), max_iter=5, random_state=0,
    ...                            bounds={"height": "non-negative"}).fit(table)
    >>> rows = flow.sample(50, random_state=0)
    >>> rows["children"].dtype, set(rows["city"]) <= {"Oslo", "Lima"}
    (dtype('int64'), True)
    """

    _parameter_constraints: dict = {
        **BaseFlow._parameter_constraints,
        "path": [StrOptions(set(DENSITY_PATHS))],
        "sigma_min": [Interval(Real, 0, 1, closed="left")],
        "n_fourier_features": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "fourier_scale": [Interval(Real, 0, None, closed="neither")],
        **COLUMN_CONSTRAINTS,
        "allow_missing": ["boolean"],
    }

    def __init__(
        self,
        *,
        path: str = "linear",
        sigma_min: float = 0.0,
        coupling: str = "independent",
        coupling_reg: float = 0.1,
        hidden_layer_sizes=(128, 128, 128, 128),
        activation: str = "gelu",
        architecture: str = "residual",
        n_fourier_features: int | str = "auto",
        fourier_scale: float = 10.0,
        max_iter: int | str = "auto",
        max_time: float | None = None,
        batch_size: int = 1024,
        learning_rate_init: float = 5e-3,
        learning_rate: str = "cosine",
        ema_decay: float = 0.999,
        time_distribution: str = "arcsine",
        early_stopping: bool = True,
        scoring: str = "log_likelihood",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 8,
        tol: float = 1e-4,
        solver: str = "rk4",
        n_steps: int = 20,
        step_exponent: float = 1.5,
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
        allow_missing: bool = False,
    ) -> None:
        self.path = path
        self.sigma_min = sigma_min
        self.coupling = coupling
        self.coupling_reg = coupling_reg
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.architecture = architecture
        self.n_fourier_features = n_fourier_features
        self.fourier_scale = fourier_scale
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
        self.allow_missing = allow_missing

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Learn the flow from the standard normal to the distribution of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows; at least two. With ``allow_missing``, cells may be missing, but
            every column needs an observed value.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights of the loss and the standardisation (a weight of 2 matches a
            duplicated row in expectation).

        Returns
        -------
        self : FlowMatchingDensity
        """
        warm = self.warm_start and hasattr(self, "model_")
        self._check_missing_settings(warm)
        Y, weight, codes = self._training_rows(
            X, sample_weight, warm=warm, missing=self.allow_missing
        )
        if not warm:
            self._set_moments(WeightedMoments.of(Y, weight))
        self._n_features_out = Y.shape[1]
        self._fit_flow(Y, weight, codes)
        return self

    def transform(self, X) -> np.ndarray:
        """Map rows of ``X`` to the latent space: the point at ``t = 0`` the flow pulls them to.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data rows.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Latent coordinates, distributed as ``N(0, I)`` when ``X`` follows the model; one per
            coordinate of the flow (``n_features_in_`` for a table of continuous columns). The
            coordinates of a missing cell are NaN; the others are those of the flow of the
            row's observed cells.
        """
        Y = self._possible_rows(X)
        observed = ~np.isnan(Y)
        path = self._make_path()
        Z = self._fitted_network().carry(
            Y,
            path.t_max,
            path.t_min,
            self._solver(),
            before=self._standardise_observed,
            condition=self._generating(observed),
        )
        return np.where(observed, Z, np.nan)

    def inverse_transform(self, X) -> np.ndarray:
        """Map latent rows back to the data space along the flow, from ``t = 0`` to ``t = 1``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent rows, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray or DataFrame of shape (n_samples, n_features)
            Rows in the units of the training data, with valid values in every column; a
            DataFrame with the training columns' names, dtypes and categories if the model was
            fitted on one.
        """
        check_is_fitted(self, "model_")
        Z = check_array(X, dtype=np.float64)
        if Z.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.mean_.shape[0]} features as input (the latent coordinates)."
            )
        return self._latent_to_data(Z)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

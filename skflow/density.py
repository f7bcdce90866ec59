"""FlowMatchingDensity: a density estimator that is a continuous normalizing flow trained by flow matching."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    ClassNamePrefixFeaturesOutMixin,
    DensityMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_is_fitted

from ._base import BaseFlow, keeps_state_on_error
from ._data import WeightedMoments, check_not_bool, validate_rows_and_weights
from ._distributions import StandardNormal
from ._spec import NetworkSpec
from .paths import DENSITY_PATHS, PATHS, ProbabilityPath

__all__ = ["FOURIER_AUTO_FEATURES", "FOURIER_AUTO_MIN_ROWS", "FlowMatchingDensity"]

FOURIER_AUTO_MIN_ROWS = 10_000
"""Training rows (beside the validation split) from which ``n_fourier_features="auto"`` also tries
Fourier features: they won on the 40,455-row diamonds set and lost on every set of a few thousand
rows or fewer (``benchmarks/results/quality_fourier_10.md``), while from this size a validation
split of 1,000 rows or more tells the two networks apart: it kept the better one on diamonds and
on four 30,000-row toys (``quality.md``, ``quality_auto_toys_40k.md``)."""

FOURIER_AUTO_FEATURES = 64
"""Fourier features that ``n_fourier_features="auto"`` tries: the number measured on every
benchmark set."""


class FlowMatchingDensity(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, DensityMixin, BaseFlow
):
    """Density estimation with a continuous normalizing flow trained by conditional flow matching.

    A velocity field ``v(t, x)`` is learned so that the ODE ``dx/dt = v(t, x)`` carries the standard
    normal base at ``t = 0`` onto the data at ``t = 1``. Training regresses ``v`` onto the velocity of
    a conditional path between a base draw ``x0`` and a data row ``x1`` (for the linear path,
    ``x_t = (1 - (1 - sigma_min) t) x0 + t x1`` with target ``x1 - (1 - sigma_min) x0``), which needs no ODE
    solve (Lipman et al., *Flow Matching for Generative Modeling*, ICLR 2023; Albergo &
    Vanden-Eijnden, *Building Normalizing Flows with Stochastic Interpolants*, ICLR 2023; Tong et al.,
    *Improving and Generalizing Flow-Based Generative Models with Minibatch Optimal Transport*, TMLR
    2024). The log-density follows from the instantaneous change of variables,
    ``log p(x) = log N(z; 0, I) - int_0^1 div v(t, x_t) dt``, with ``z`` the point the ODE pulls
    ``x`` back to (Chen et al., 2018).

    The data are standardised inside :meth:`fit` and every density is returned in the units of ``X``
    (the log-Jacobian ``-sum(log scale_)`` of the standardisation is included).

    Parameters
    ----------
    path : {"linear", "trig", "vp"}, default="linear"
        Probability path between base and data: the conditional-OT / rectified-flow line
        (:class:`~skflow.paths.LinearPath`), the trigonometric interpolant
        (:class:`~skflow.paths.TrigonometricPath`) or the variance-preserving diffusion path
        (:class:`~skflow.paths.VPDiffusionPath`).
    sigma_min : float, default=0.0
        Width of the linear path around each data point at ``t = 1`` (Lipman et al.'s
        ``sigma_min``), in ``[0, 1)``; ``0`` is rectified flow. The other paths ignore it.
    coupling : {"independent", "ot", "sinkhorn"}, default="independent"
        How each minibatch of base draws is paired with its data rows: independently (I-CFM), by exact
        minibatch optimal transport (OT-CFM) or by an entropic plan (SB-CFM); see
        :mod:`skflow.couplings`.
    coupling_reg : float, default=0.1
        Entropic regularisation of ``coupling="sinkhorn"``, relative to the mean squared distance
        between the paired minibatches (so it does not depend on the dimension); small values approach
        ``"ot"``, large ones ``"independent"``.
    hidden_layer_sizes : array-like of int, default=(128, 128, 128, 128)
        Widths of the hidden layers of the velocity MLP. With GELU and minibatches of 1024, a
        fourth layer of 128 over the former three brought the non-Gaussian 2-D toys 0.003-0.008
        nats closer to their entropy and diamonds from -0.519 to -0.486 nats, at about 30 % more
        time per step; it cost digits 2 nats (``benchmarks/results/quality_levers.md``).
    activation : {"silu", "tanh", "gelu", "softplus", "relu"}, default="gelu"
        Activation of the hidden layers. Smooth activations give smooth flows. GELU beat SiLU on
        every set of the lever sweep; with minibatches of 1024, by 0.09 nats on diamonds and
        2.4 nats on digits (``benchmarks/results/quality_levers.md``).
    architecture : {"mlp", "residual"}, default="residual"
        Shape of the velocity network: hidden layers after the first as residual blocks with layer
        normalisation that each see the time embedding
        (:class:`~skflow.networks.VelocityBlockMLP`), or a plain MLP
        (:class:`~skflow.networks.VelocityMLP`). Over the MLP of the same widths, the blocks took
        diamonds from -0.486 to -0.419 nats (-0.492 to -0.427 with another seed) and digits from
        -113.9 to -112.9 (-113.6 to -113.1), and kept the 2-D toys within 0.005 nats, for about
        15-30 % more time per step (``benchmarks/results/quality_levers_network.md``).
    n_fourier_features : int or "auto", default="auto"
        Number ``m`` of random Fourier features ``sin(x B)``, ``cos(x B)`` of the standardised
        ``x`` that the network sees beside ``x`` (:class:`~skflow.networks.FourierFeatureVelocity`,
        after Tancik et al., 2020); ``0`` gives none. They let the field resolve fine detail, such
        as the cliffs of a density with heaped values, in few dimensions: 64 features took
        diamonds (40,455 rows, 2-D) from -0.437 to -0.319 nats, past tuned KDE and GMM, but cost
        every smaller benchmark set (the 3,000-row 2-D toys 0.04-0.08 nats, iris 1.7 nats;
        ``benchmarks/results/quality_fourier_10.md``) and smooth data even at 30,000 rows.
        ``"auto"`` decides on the held-out rows of early stopping: with at least
        ``FOURIER_AUTO_MIN_ROWS`` (10,000) training rows beside them, it trains the network
        without and with ``FOURIER_AUTO_FEATURES`` (64) features, from the same seed on the same
        minibatches, and keeps the one with the better validation score (twice the training
        time); with fewer rows, without early stopping and in :meth:`partial_fit`, it uses none.
        The choice is ``n_fourier_features_``.
    fourier_scale : float, default=10.0
        Standard deviation ``sigma`` of each phase ``x B_k`` of standardised data (the entries of
        ``B`` have standard deviation ``sigma / sqrt(d)``); ignored without Fourier features. A
        lower scale does not spare the small sets: at 3, diamonds reached -0.336 and wine and
        breast_cancer lost more than at 10 (``benchmarks/results/quality_fourier_3.md``).
    max_iter : int or "auto", default="auto"
        Number of epochs (passes over the training rows); the most, with early stopping.
        ``"auto"`` sets a budget of optimiser steps that grows with the data,
        ``clip(4 n, 3000, 20000)`` steps for ``n`` training rows, rounded up to whole epochs (see
        :func:`skflow._base.auto_max_iter`). A fixed number of epochs is wrong at both ends: 500
        epochs of 1024 rows are 20,000 steps on the 40,455 rows of the diamonds benchmark set but
        1,500 on a 3,000-row toy. ``"auto"`` takes 20,016 steps on diamonds (208-225 CPU seconds
        of one core for a network without Fourier features, -0.437 nats; twice the steps reached
        -0.386 with uniform times and equal ODE steps, at 2.5 times the CPU; the budget holds for
        each of the two networks that ``n_fourier_features="auto"`` trains there) and 10,800 on
        the toys (with the former network and minibatches of 256, 10,800 steps instead of 6,000
        took the annulus from 0.105 to 0.072 nats from its entropy); small sets get enough steps
        for early stopping to pick from (``benchmarks/README.md``, "Quality").
    batch_size : int, default=1024
        Rows per minibatch (capped at the number of training rows). The flow-matching loss is a
        regression on a random target ``x1 - x0`` whose variance does not shrink as the model
        improves, so larger minibatches buy a more accurate gradient at the same number of steps:
        1024 rows against the former 256 took diamonds from -0.731 to -0.610 nats and the eight
        Gaussians from 0.053 to 0.029 nats from their entropy (former network), for 1.2-2 times
        the time per step (``benchmarks/results/quality_levers.md``).
    learning_rate_init : float, default=5e-3
        Initial step size of Adam.
    learning_rate : {"constant", "cosine"}, default="cosine"
        Step-size schedule: constant, or a cosine decay to zero over the ``max_iter`` epochs (on
        two moons, -0.775 nats against -0.788 with a constant step at 500 epochs,
        ``benchmarks/results/defaults.md``).
    ema_decay : float, default=0.999
        Decay of the exponential moving average of the weights; the average is the fitted model.
        The decay is warmed up as ``min(ema_decay, (1 + k) / (10 + k))`` at step ``k``.
    time_distribution : {"uniform", "logit_normal", "arcsine"}, default="arcsine"
        Law of the training times ``t`` of the flow-matching loss (:mod:`skflow.times`): uniform,
        logit-normal ``sigmoid(N(0, 1))`` (more weight in the middle; Esser et al., *Scaling
        Rectified Flow Transformers*, ICML 2024) or arcsine ``Beta(1/2, 1/2)`` (more weight at
        both ends). With the residual network, arcsine over uniform took digits from -112.9 to
        -111.5 nats, breast_cancer from 36.7 to 37.6 and wine from -17.67 to -17.58; diamonds
        (-0.425 against -0.419) and iris (-1.62 against -1.58) moved by less than the spread
        between seeds or a standard error, and the gaps of the 2-D toys to their entropy by at
        most 0.005 nats (``benchmarks/results/quality_time_arcsine_residual.md``). A grid search
        had chosen it on breast_cancer and wine (``benchmarks/results/model_selection.md``).
        Logit-normal was worse on all five sets of the lever sweep
        (``benchmarks/results/quality_levers.md``).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows, score the averaged model on them
        ``25`` times over the budget (every ``ceil(max_iter / 25)`` epochs), keep the best-scoring
        checkpoint and stop after ``n_iter_no_change`` checks without improvement. With ``False``
        all ``max_iter`` epochs run on all rows and the last epoch's model is kept. Selecting on
        the held-out log-likelihood lets one budget serve every size: on wine (120 training rows)
        it kept step 240 and stopped at step 1200 of 3000 with -18.07 test nats, where the former
        fixed 500 epochs reached -19.28 and 1000 epochs -27.3; breast_cancer 36.57 against
        35.78 (``benchmarks/README.md``, "Quality").
    scoring : {"log_likelihood", "loss"}, default="log_likelihood"
        What early stopping monitors: the held-out log-likelihood (a cheap estimate: at most
        1000 validation rows, 8 RK4 steps, Hutchinson's divergence above 8 features), or the
        flow-matching loss of fixed validation pairs. The loss is a bad stopping signal: it
        bottoms out long before the likelihood does (on two moons it stopped after 193 epochs at
        -0.854 nats where the full budget reached -0.775, ``benchmarks/results/defaults.md``).
    validation_fraction : float, default=0.1
        Share of rows held out for early stopping.
    n_iter_no_change : int, default=8
        Validation checks without an improvement of more than ``tol`` before training stops
        (with ``early_stopping=True``); 8 of the 25 checks is a third of the budget.
    tol : float, default=1e-4
        Smallest decrease of the monitored validation loss (minus the mean log-likelihood, in
        nats per row of standardised data, or the flow-matching loss) that counts as an
        improvement.
    solver : {"euler", "midpoint", "rk4", "dopri5"}, default="rk4"
        ODE solver of :meth:`score_samples`, :meth:`sample`, :meth:`transform` and
        :meth:`inverse_transform`. Fixed-step solvers give each row a result independent of the other
        rows; ``"dopri5"`` adapts its steps to the batch as a whole.
    n_steps : int, default=20
        Steps of a fixed-step solver. With RK4 on the default grid, 20 steps put the mean test
        log-likelihood within 0.0028 nats of dopri5 at ``atol = rtol = 1e-7`` on all nine
        benchmark sets (``benchmarks/results/quality.md``); 10 steps miss 0.01 nats on three.
    step_exponent : float, default=1.5
        Shape of the fixed-step grid, ``t_k = 1 - (1 - k / n_steps) ** step_exponent`` (see
        :func:`skflow.solvers.time_grid`), at least 1: 1 takes equal steps, larger values shorten
        them toward the data end ``t = 1``, where the field learned on ends-weighted times turns
        sharp if the density has cliffs. On diamonds RK4-20 was 0.0105 nats off dopri5 with equal
        steps and is 0.0008 with 1.5; on smooth fields equal steps are slightly more accurate
        (digits 0.0012 against 0.0028).
    atol, rtol : float, default=1e-7
        Tolerances of ``solver="dopri5"``. At ``1e-5`` the log-density of a 2-D Gaussian model was
        off by 2e-3 nats, at ``1e-7`` by 2e-6.
    divergence : {"exact", "hutchinson"}, default="exact"
        Divergence in the likelihood: the exact trace of the Jacobian, or Hutchinson's estimator with
        Rademacher probes seeded by ``random_state`` (cheaper in high dimension, unbiased but noisy,
        and dependent on the row's position in its batch).
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where training and inference run; ``"auto"`` uses CUDA when available. The fitted network is
        kept on the CPU, so a pickled model loads on any machine.
    warm_start : bool, default=False
        Continue from the fitted network (and its standardisation) when :meth:`fit` is called again.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, minibatches, base draws, times, couplings, the validation split and
        Hutchinson probes. The global NumPy and torch generators are not touched.
    verbose : int, default=0
        Print the losses of every epoch.

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted velocity network (an EMA of the trained weights), on the CPU.
    mean_, scale_ : ndarray of shape (`n_features_in_`,)
        Standardisation applied before the flow.
    loss_curve_ : list of float
        Training loss of every epoch.
    validation_loss_curve_ : list of float
        Monitored validation loss of the averaged model at every check (minus the mean held-out
        log-likelihood of standardised rows with ``scoring="log_likelihood"``); empty without
        early stopping.
    best_loss_ : float
        Best validation loss (with early stopping) or best training loss (without).
    best_iter_ : int
        Epoch of the kept model (the best check with early stopping, the last epoch without).
    n_iter_ : int
        Epochs run.
    t_ : int
        Optimiser steps taken.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in :meth:`fit`, when ``X`` had string column names.
    n_fourier_features_ : int
        Fourier features of the fitted network: ``n_fourier_features``, or what ``"auto"`` chose.
        When ``"auto"`` compared two networks, ``loss_curve_``, ``validation_loss_curve_``,
        ``best_loss_``, ``best_iter_``, ``n_iter_`` and ``t_`` are those of the one kept.

    See Also
    --------
    sklearn.neighbors.KernelDensity : Kernel density estimation.
    sklearn.mixture.GaussianMixture : Gaussian mixture density.

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
    """

    _parameter_constraints: dict = {
        **BaseFlow._parameter_constraints,
        "path": [StrOptions(set(DENSITY_PATHS))],
        "sigma_min": [Interval(Real, 0, 1, closed="left")],
        "n_fourier_features": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "fourier_scale": [Interval(Real, 0, None, closed="neither")],
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
        divergence: str = "exact",
        device: str = "cpu",
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
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

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Learn the flow from the standard normal to the distribution of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows; at least two.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights; each row's term in the loss and in the standardisation is
            weighted. Training is stochastic, so a weight of 2 matches a duplicated row in
            expectation, not exactly.

        Returns
        -------
        self : FlowMatchingDensity
            The fitted estimator.
        """
        warm = self.warm_start and hasattr(self, "model_")
        X, weight = validate_rows_and_weights(self, X, sample_weight, reset=not warm)
        if not warm:
            self._set_moments(WeightedMoments.of(X, weight))
        self._n_features_out = X.shape[1]
        self._fit_network(self._standardise(X), weight, StandardNormal(X.shape[1]))
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Train on one chunk of a stream: one epoch over its rows, continuing from the last call.

        Data larger than memory are fitted by calling ``partial_fit`` on chunks of rows, as many
        times and passes over the stream as wanted. Each call

        1. merges the chunk's weighted mean and variance into ``mean_`` and ``scale_``, which are
           always the exact statistics of all rows seen so far (:meth:`fit`'s rows included when
           it was called first), never those of the first chunk alone;
        2. re-expresses the flow learned so far in the coordinates of the new statistics, exactly:
           the network stays in the *reference* coordinates of the first chunk (or of :meth:`fit`)
           and is wrapped in the time-dependent affine change of variables of
           :class:`~skflow.networks.RestandardisedVelocity`, which keeps the base ``N(0, I)`` at
           ``t = 0`` and moves the data end to the new coordinates. The model in the units of
           ``X`` (densities, samples, maps) is unchanged by the update; only training changes it;
        3. runs one epoch over the chunk (``ceil(n / batch_size)`` Adam steps) on the conditional
           flow-matching loss in the new coordinates, continuing Adam's moments and the EMA of
           the weights from the previous call.

        The step size stays at ``learning_rate_init`` (the length of a stream is unknown, so the
        cosine schedule does not apply), ``max_iter``, ``early_stopping`` and ``warm_start`` are
        not used, and ``t_``, ``n_iter_`` (calls) and ``loss_curve_`` (one loss per call) add up
        over the calls. Called after :meth:`fit`, it continues from the fitted network with a
        fresh Adam state; :meth:`fit` starts afresh and forgets the stream. The same
        ``random_state`` and the same chunks give the same model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training rows; the first call sets ``n_features_in_`` and later chunks
            must have as many features.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights of positive sum, in the loss and in the statistics.

        Returns
        -------
        self : FlowMatchingDensity
            The estimator, trained on one more chunk.

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowMatchingDensity
        >>> X = np.random.default_rng(0).normal(loc=5.0, size=(600, 2))
        >>> flow = FlowMatchingDensity(hidden_layer_sizes=(16,), random_state=0)
        >>> for chunk in np.array_split(X, 3):
        ...     flow = flow.partial_fit(chunk)
        >>> bool(np.allclose(flow.mean_, X.mean(axis=0)))
        True
        >>> flow.t_  # three chunks of 200 rows, one batch of 256 or fewer each
        3
        """
        first = not hasattr(self, "model_")
        X, weight = validate_rows_and_weights(self, X, sample_weight, reset=first, min_samples=1)
        self._n_features_out = X.shape[1]
        self._partial_fit_network(X, weight, StandardNormal(X.shape[1]))
        return self

    def score_samples(self, X) -> np.ndarray:
        """Log-density of the model at each row of ``X``, in the units of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``log p(x)``; higher means more typical of the training data.
        """
        return self.smoothed_score_samples(X, 0.0)

    def smoothed_score_samples(self, X, bandwidth: float) -> np.ndarray:
        """Log-density at each row of ``X`` of the model blurred by Gaussian noise of
        ``bandwidth`` standard deviations per feature, in the units of ``X``.

        The blurred model is the density convolved with ``N(0, diag((bandwidth scale_)^2))``. The
        flow gives it without a second model: with a standard normal base drawn independently of
        the data, the path's point at time ``t`` is ``beta(t) (x_1 + r(t) e)``, the data plus
        Gaussian noise of relative scale ``r(t)`` (:meth:`skflow.paths.ProbabilityPath.noise_ratio`),
        so the model's own marginal at the time where ``r(t) = bandwidth`` is the blurred model:
        ``log p_t(beta u) + d log beta - sum(log scale_)`` at the standardised row ``u``. This is
        exact for ``coupling="independent"``; an OT coupling makes ``p_t`` another intermediate
        density. Scoring is cheaper than :meth:`score_samples`, since the ODE is shorter.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.
        bandwidth : float >= 0
            The blur, in standard deviations of each training feature; 0 gives
            :meth:`score_samples`.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        check_not_bool(bandwidth, "bandwidth")
        if not (isinstance(bandwidth, Real) and bandwidth >= 0):
            raise ValueError(f"bandwidth must be a number >= 0, got {bandwidth!r}.")
        X = self._check_predict_data(X)
        path = self._make_path()
        t, shrink = path.t_max, 1.0
        if bandwidth > 0:
            t = path.time_of_noise_ratio(bandwidth)
            shrink = float(path.beta(torch.tensor(t, dtype=torch.float64)))
        log_jacobian = float(np.log(self.scale_).sum()) - X.shape[1] * math.log(shrink)

        def before(rows: np.ndarray) -> np.ndarray:
            standardised = self._standardise(rows)
            return standardised if shrink == 1.0 else shrink * standardised

        return self._log_likelihood(
            X,
            path.t_min,
            t,
            StandardNormal(X.shape[1]).log_prob,
            before=before,
            after=lambda log_density: log_density - log_jacobian,
        )

    def _network_candidates(self, n_train_rows: int | None) -> list[NetworkSpec]:
        """The Fourier features to try (see ``n_fourier_features``): its value, or for ``"auto"``
        none and, on enough training rows beside a validation split, ``FOURIER_AUTO_FEATURES``."""
        if self.n_fourier_features != "auto":
            counts = [self.n_fourier_features]
        elif n_train_rows is None or n_train_rows < FOURIER_AUTO_MIN_ROWS:
            counts = [0]
        else:
            counts = [0, FOURIER_AUTO_FEATURES]
        return [
            self._network_spec(n_fourier_features=count, fourier_scale=self.fourier_scale)
            for count in counts
        ]

    @property
    def n_fourier_features_(self) -> int:
        """Fourier features of the fitted network: ``n_fourier_features``, or what ``"auto"``
        chose."""
        return self.network_spec_.n_fourier_features

    def _make_path(self) -> ProbabilityPath:
        return PATHS[self.path](sigma_min=self.sigma_min)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of ``X`` under the model, so that model selection needs no scorer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        float
            ``mean(score_samples(X))``.
        """
        return float(np.mean(self.score_samples(X)))

    @validate_params(
        {
            "n_samples": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """Draw new rows from the model by pushing standard normal draws through the flow.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows.
        random_state : int, RandomState instance or None, default=None
            Seeds the base draws.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
        """
        check_not_bool(n_samples, "n_samples")
        check_is_fitted(self, "model_")
        rng = check_random_state(random_state)
        z = rng.standard_normal((n_samples, self.n_features_in_))
        return self._latent_to_data(z)

    def transform(self, X) -> np.ndarray:
        """Map rows of ``X`` to the latent space: the base point at ``t = 0`` the flow pulls them to.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data rows.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_features)
            Latent coordinates, distributed as ``N(0, I)`` when ``X`` follows the model.
        """
        X = self._check_predict_data(X)
        path = self._make_path()
        return self._fitted_network().carry(
            X, path.t_max, path.t_min, self._solver(), before=self._standardise
        )

    def inverse_transform(self, X) -> np.ndarray:
        """Map latent rows back to the data space by integrating the flow from ``t = 0`` to ``t = 1``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Latent rows, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Rows in the units of the training data.
        """
        check_is_fitted(self, "model_")
        Z = check_array(X, dtype=np.float64)
        if Z.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return self._latent_to_data(Z)

    def _latent_to_data(self, Z: np.ndarray) -> np.ndarray:
        path = self._make_path()
        return self._fitted_network().carry(
            Z, path.t_min, path.t_max, self._solver(), after=self._unstandardise
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

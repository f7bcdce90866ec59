"""What the flow estimators share: their hyperparameters' constraints, and fitting and inference
written once over the pieces in :mod:`~skflow._spec`, :mod:`~skflow._trainer`,
:mod:`~skflow._inference` and :mod:`~skflow._data`.

Data flow in ``fit``: validate and standardise (:mod:`~skflow._rows`), the network specification
(:class:`~skflow._spec.NetworkSpec`), the trainer (:mod:`~skflow._trainer`), the fitted network
``model_``. In ``score_samples`` and the maps: validate and standardise, then
:class:`~skflow._inference.FittedNetwork` (solver and likelihood). ``partial_fit``'s training
step is :mod:`~skflow._stream`'s.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ._callbacks import EarlyStopping, LastEpoch
from ._data import draw_seed
from ._inference import (
    FittedNetwork,
    ODESolver,
    chunk_rows,
    resolve_device,
    validation_negative_log_likelihood,
)
from ._masked import MaskedFlowMatchingTrainer, masks, with_labels
from ._rows import TableRowsMixin
from ._run import TrainingConfig, TrainState, auto_max_iter
from ._spec import NetworkSpec, check_hidden_layer_sizes
from ._trainer import FlowMatchingTrainer
from .couplings import COUPLINGS, Coupling, IndependentCoupling, make_coupling
from .likelihood import DIVERGENCES, EXACT_DIVERGENCE_MAX_FEATURES
from .networks import ACTIVATIONS, ARCHITECTURES
from .paths import ProbabilityPath
from .solvers import SOLVERS
from .times import TIME_DISTRIBUTIONS

__all__ = ["BaseFlow", "keeps_state_on_error"]


def keeps_state_on_error(fit):
    """Decorate ``fit`` so that an exception leaves the estimator as it was before the call.

    A fit that fails half-way (bad labels, a diverged first epoch, an invalid network size) would
    otherwise leave new ``n_features_in_``, ``mean_`` or ``scale_`` beside the old ``model_``: a
    model that answers silently wrong. Fitted attributes are replaced, never mutated in place, so a
    shallow copy of ``__dict__`` is enough to restore them.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        state = self.__dict__.copy()
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    return wrapper


class BaseFlow(TableRowsMixin, BaseEstimator):
    """Base class of the flow estimators; not meant to be used directly.

    Subclasses give the path, the coupling, the candidate networks and the base distribution;
    this class trains and integrates the learned ODE, on rows that
    :class:`~skflow._rows.TableRowsMixin` validates and standardises.
    """

    _parameter_constraints: dict = {
        "coupling": [StrOptions(set(COUPLINGS))],
        "coupling_reg": [Interval(Real, 0, None, closed="neither")],
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_time": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"constant", "cosine"})],
        "ema_decay": [Interval(Real, 0, 1, closed="left")],
        "time_distribution": [StrOptions(set(TIME_DISTRIBUTIONS))],
        "early_stopping": ["boolean"],
        "scoring": [StrOptions({"log_likelihood", "loss"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions(set(SOLVERS))],
        "n_steps": [Interval(Integral, 1, None, closed="left")],
        "step_exponent": [Interval(Real, 1, None, closed="left")],
        "atol": [Interval(Real, 0, None, closed="neither")],
        "rtol": [Interval(Real, 0, None, closed="neither")],
        "divergence": [StrOptions(set(DIVERGENCES))],
        "n_probes": [Interval(Integral, 1, None, closed="left")],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # ----------------------------------------------------------------------------------------------
    # the pieces, from the hyperparameters

    def _make_path(self) -> ProbabilityPath:
        """The probability path (subclasses build it from their hyperparameters)."""
        raise NotImplementedError

    def _make_coupling(self) -> Coupling:
        return make_coupling(self.coupling, self.coupling_reg)

    def _network_spec(self, **changes) -> NetworkSpec:
        """The network that the hyperparameters describe (with ``changes``)."""
        return NetworkSpec(
            architecture=self.architecture,
            hidden_layer_sizes=check_hidden_layer_sizes(self.hidden_layer_sizes),
            activation=self.activation,
            **changes,
        )

    def _network_for(self, n_train_rows: int | None) -> NetworkSpec:
        """The network to train on ``n_train_rows`` rows (None: unknown, as in ``partial_fit``).
        By default, the one the hyperparameters describe."""
        return self._network_spec()

    def _monitors_likelihood(self) -> bool:
        """Whether early stopping monitors the held-out log-likelihood (else the flow-matching
        loss of fixed validation pairs)."""
        return self.scoring == "log_likelihood"

    def _solver(self) -> ODESolver:
        return ODESolver(self.solver, self.n_steps, self.step_exponent, self.atol, self.rtol)

    def _training_config(self, max_iter: int, max_time: float | None = None) -> TrainingConfig:
        return TrainingConfig(
            max_iter=max_iter,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            ema_decay=self.ema_decay,
            verbose=self.verbose,
            max_time=max_time,
        )

    def _trainer(
        self,
        base,
        config: TrainingConfig,
        rng,
        spec: NetworkSpec,
        prepare=None,
        tasks: tuple[float, float] = (0.0, 0.0),
    ) -> FlowMatchingTrainer:
        times = TIME_DISTRIBUTIONS[self.time_distribution]()
        if spec.masked:
            conditional, completed = tasks
            return MaskedFlowMatchingTrainer(
                self._make_path(),
                IndependentCoupling(),
                base,
                times,
                config,
                rng,
                prepare=prepare,
                conditional=conditional,
                completed=completed,
            )
        return FlowMatchingTrainer(
            self._make_path(),
            self._make_coupling(),
            base,
            times,
            config,
            rng,
            learn_denoiser=spec.denoiser,
            prepare=prepare,
        )

    # ----------------------------------------------------------------------------------------------
    # training

    def _fit_network(
        self,
        X_std: np.ndarray,
        weight: np.ndarray,
        base,
        condition: np.ndarray | None = None,
        stratify: np.ndarray | None = None,
        codes: np.ndarray | None = None,
        tasks: tuple[float, float] = (0.0, 0.0),
        resume: bool = False,
    ) -> None:
        """Fit (or, with ``warm_start``, continue fitting) the velocity network on standardised
        rows ``X_std`` (the ``t = 1`` end) with row weights ``weight``; ``base`` is the ``t = 0``
        end (:mod:`skflow._distributions`). A conditional network trains on each row's
        ``condition`` (None: unconditional). With early stopping, a validation split is held out
        first, stratified by the labels ``stratify`` if given. With ``codes`` (the rows' codes
        in the layout ``columns_``, of which ``X_std`` is one dequantisation), training
        dequantises them afresh for every minibatch (:meth:`_dequantise`). A masked network
        trains the ``tasks`` of :class:`~skflow._masked.MaskedFlowMatchingTrainer` (the shares
        ``conditional`` and ``completed``). ``resume`` continues from the fitted network as a
        second stage of one fit: the training record then adds up over both."""
        started = time.perf_counter()  # max_time counts from here: the set-up is part of the fit
        rng = check_random_state(self.random_state)
        device = resolve_device(self.device)
        continuing = resume or (self.warm_start and hasattr(self, "model_"))
        init_seed = None if continuing else draw_seed(rng)
        rows = np.arange(X_std.shape[0])
        if self.early_stopping:
            # train_test_split rounds the validation share up; say which parameter leaves no rows
            if math.ceil(self.validation_fraction * rows.size) >= rows.size:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} holds out all "
                    f"{rows.size} training rows: lower it, add rows or set early_stopping=False."
                )
            train_rows, val_rows = train_test_split(
                rows, test_size=self.validation_fraction, random_state=rng, stratify=stratify
            )
        else:
            train_rows, val_rows = rows, None
        if np.all(weight == weight[0]):
            weight = None  # equal weights: the plain mean, exactly as without sample_weight
        max_iter = self.max_iter
        if max_iter == "auto":
            max_iter = auto_max_iter(train_rows.size, self.batch_size)
        validation_nll = None
        if self.early_stopping and self._monitors_likelihood():
            validation_nll = validation_negative_log_likelihood(
                X_std[val_rows],
                None if weight is None else weight[val_rows],
                rng,
                path=self._make_path(),
                base_log_prob=base.log_prob,
                device=device,
                condition=None if condition is None else condition[val_rows],
            )
        generator_seed, trainer_seed = draw_seed(rng), draw_seed(rng)
        if continuing:
            # train a copy, so that the fitted model stays intact if training is cut short
            spec, network = self.network_spec_, copy.deepcopy(self.model_).requires_grad_(True)
        else:
            spec = self._network_for(train_rows.size)
            # initialise under a forked RNG: the user's global torch RNG is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                network = spec.build(X_std.shape[1])
        network = network.to(device=device, dtype=torch.float32).train()

        def to_tensor(a):
            return None if a is None else torch.as_tensor(a, dtype=torch.float32, device=device)

        def as_condition(a):  # conditions keep their dtype (e.g. class indices)
            return torch.as_tensor(a, device=device)

        stored = X_std if codes is None else codes  # what the trainer draws its rows from
        x_train = to_tensor(stored[train_rows])
        generator = torch.Generator(device=device).manual_seed(generator_seed)
        config = self._training_config(max_iter, self.max_time)
        prepare = None if codes is None else self._dequantise
        trainer = self._trainer(
            base, config, np.random.default_rng(trainer_seed), spec, prepare, tasks
        )
        state = TrainState.start(network, self.learning_rate_init, started=started)
        trainer.schedule(state, x_train.shape[0])
        if val_rows is None:
            checkpoint = LastEpoch(state.ema)
        else:
            validation_loss = validation_nll or trainer.pairs_validation_loss(
                to_tensor(stored[val_rows]),
                None if weight is None else to_tensor(weight[val_rows]),
                generator,
                None if condition is None else as_condition(condition[val_rows]),
            )
            checkpoint = EarlyStopping(state.ema, validation_loss, self.n_iter_no_change, self.tol)
        w_train = None if weight is None else to_tensor(weight[train_rows])
        c_train = None if condition is None else as_condition(condition[train_rows])
        trainer.run(state, x_train, w_train, generator, max_iter, checkpoint, condition=c_train)
        history = state.history
        before = (
            (self.loss_curve_, self.validation_loss_curve_, self.n_iter_, self.t_)
            if resume
            else ([], [], 0, 0)
        )
        self.network_spec_ = spec
        # the fitted network lives on the CPU so that a pickle loads anywhere
        self.model_ = state.ema.to("cpu").eval()
        self.loss_curve_ = before[0] + history.loss_curve
        self.validation_loss_curve_ = before[1] + history.validation_loss_curve
        self.best_loss_ = history.best_loss
        self.best_iter_ = before[2] + history.best_iter
        self.n_iter_ = before[2] + history.n_iter
        self.t_ = before[3] + state.step
        self.stop_reason_ = history.stop_reason
        self.__dict__.pop("_stream", None)  # a new fit starts a new stream

    # ----------------------------------------------------------------------------------------------
    # inference

    def _fitted_network(self, dtype: torch.dtype = torch.float64) -> FittedNetwork:
        """The fitted network, ready for inference in ``dtype`` on the estimator's device."""
        device = resolve_device(self.device)
        chunk = chunk_rows(self.mean_.shape[0], self.network_spec_.width, device)
        return FittedNetwork(self.model_, device, chunk, dtype)

    def _draw_missing(
        self,
        X_std: np.ndarray,
        known: np.ndarray,
        rng: np.random.RandomState,
        n_draws: int = 1,
        labels: np.ndarray | None = None,
    ) -> np.ndarray:
        """``n_draws`` draws of the coordinates of standardised rows ``X_std`` that are not
        ``known``, given the known ones (and each row's class index ``labels``), from a masked
        network: integrated from ``N(0, I)`` draws of ``rng``; shape ``(n_draws, n, d)``, the
        known coordinates as they are."""
        n, d = X_std.shape
        start = np.where(known, X_std, rng.standard_normal((n_draws, n, d))).reshape(-1, d)
        given = masks(known, ~known)
        path = self._make_path()
        drawn = self._fitted_network().carry(
            start,
            path.t_min,
            path.t_max,
            self._solver(),
            condition=np.tile(with_labels(given, labels), (n_draws, 1)),
        )
        return np.where(known, X_std, drawn.reshape(n_draws, n, d))

    def _log_likelihood(
        self, X: np.ndarray, t0: float, t1: float, base_log_prob, before=None, condition=None
    ):
        """``log p_t1`` at the rows of ``X`` pulled back to ``t0``, where the base has
        ``base_log_prob``, and its standard error (see
        :meth:`skflow._inference.FittedNetwork.log_likelihood`): the exact divergence, or
        Hutchinson's estimator with ``n_probes`` probes per row seeded by ``random_state``; with
        ``condition``, given each row's condition."""
        probes = None
        hutchinson = self.divergence == "hutchinson" or (
            self.divergence == "auto" and X.shape[1] > EXACT_DIVERGENCE_MAX_FEATURES
        )
        if hutchinson:
            probes = self.n_probes, draw_seed(check_random_state(self.random_state))
        return self._fitted_network().log_likelihood(
            X, t0, t1, base_log_prob, self._solver(), probes, before=before, condition=condition
        )

"""Machinery shared by the flow estimators: hyperparameters, standardisation, training and integration."""

from __future__ import annotations

import copy
import functools
import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._trainer import FlowMatchingTrainer, TrainingConfig
from .couplings import COUPLINGS, make_coupling
from ._moments import WeightedMoments
from .likelihood import DIVERGENCES, flow_log_likelihood
from .networks import ACTIVATIONS, ARCHITECTURES, RestandardisedVelocity
from .paths import DENSITY_PATHS, PATHS, ProbabilityPath
from .solvers import SOLVERS, integrate, integrate_sde
from .times import TIME_DISTRIBUTIONS

# Rows per inference chunk are chosen so that the largest intermediate (the d x rows x width block of
# the batched Jacobian) stays near this many float64 numbers. On the CPU 8 MiB stays in cache: at
# d = 32, 1024-row chunks took 24 s for 1024 rows and 256-row chunks 16 s. A GPU wants big launches:
# on an H200, 2^20-number chunks scored 2095 rows/s at d = 32 and 2^24 ones 30569
# (benchmarks/results/speed.md and gpu.md).
_CHUNK_ELEMENTS = {"cpu": 2**20, "cuda": 2**24}


# max_iter="auto": the number of optimiser steps grows with the training rows, between these bounds
# (see auto_max_iter; the numbers are in benchmarks/README.md, "Training budget").
AUTO_STEPS_PER_ROW = 4
AUTO_MIN_STEPS = 3000
AUTO_MAX_STEPS = 20000

# Early stopping checks the validation score this many times over the max_iter epochs.
N_VALIDATION_CHECKS = 25

# The held-out log-likelihood of early stopping (scoring="log_likelihood") is a cheaper estimate than
# score_samples: on at most this many validation rows, with this many RK4 steps, and with the exact
# divergence up to EXACT_DIVERGENCE_MAX_FEATURES features (d + 1 network passes per evaluation) and
# Hutchinson's estimator with probes fixed across checks above (2 passes). It only has to rank the
# checkpoints of one fit, and the same rows, steps and probes at every check make it consistent.
VALIDATION_ROWS = 1000
VALIDATION_STEPS = 8
EXACT_DIVERGENCE_MAX_FEATURES = 8


def auto_max_iter(n_rows: int, batch_size: int) -> int:
    """Epochs of ``max_iter="auto"``: a budget of optimiser steps that grows with the data.

    The budget is ``clip(AUTO_STEPS_PER_ROW * n_rows, AUTO_MIN_STEPS, AUTO_MAX_STEPS)`` steps, turned
    into whole epochs of ``ceil(n_rows / batch_size)`` steps. A fixed number of epochs is wrong at
    both ends: a few hundred rows get too few steps (and need held-out selection against
    overfitting), tens of thousands get far more steps than they need.

    Parameters
    ----------
    n_rows : int
        Training rows (after the validation split).
    batch_size : int
        Rows per minibatch.

    Returns
    -------
    int
        Number of epochs, at least 1.
    """
    steps = min(max(AUTO_STEPS_PER_ROW * n_rows, AUTO_MIN_STEPS), AUTO_MAX_STEPS)
    batches_per_epoch = math.ceil(n_rows / min(batch_size, n_rows))
    return max(1, math.ceil(steps / batches_per_epoch))


def resolve_device(device: str) -> torch.device:
    """Turn the ``device`` hyperparameter into a :class:`torch.device`.

    ``"auto"`` picks CUDA when it is available and the CPU otherwise; ``"cuda"`` without CUDA raises.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch cannot see a CUDA device.")
    return torch.device(device)


def _seed(rng: np.random.RandomState) -> int:
    return int(rng.randint(np.iinfo(np.int32).max))


def keeps_state_on_error(fit):
    """Decorate a ``fit`` method so that an exception leaves the estimator as it was before the call.

    A fit that fails half-way (bad labels, a diverged first epoch, an invalid network size) would
    otherwise leave new ``n_features_in_``, ``mean_`` or ``scale_`` beside the old ``model_``: a
    model that answers silently wrong. The fitted attributes are replaced, never mutated in place,
    so a shallow copy of ``__dict__`` is enough to restore them.
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


def check_not_bool(value, name: str) -> None:
    """Raise a TypeError if ``value`` is a bool: a number is expected, and bool is one to Python.

    Parameters
    ----------
    value : object
        The argument.
    name : str
        Its name, for the message.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, not a bool; got {value!r}.")


class BaseFlow(BaseEstimator):
    """Base class of the flow-matching estimators; not meant to be used directly.

    It holds the hyperparameters that every flow shares, validates and standardises the data, trains
    the velocity network with :class:`skflow._trainer.FlowMatchingTrainer` and integrates the learned
    ODE in memory-bounded chunks. Subclasses say what the base sample is and which public methods exist.
    """

    _parameter_constraints: dict = {
        "path": [StrOptions(set(DENSITY_PATHS))],
        "sigma": [Interval(Real, 0, 1, closed="left")],
        "coupling": [StrOptions(set(COUPLINGS))],
        "coupling_reg": [Interval(Real, 0, None, closed="neither")],
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
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
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # ----------------------------------------------------------------------------------------------
    # hyperparameters and components

    def _check_hidden_layer_sizes(self) -> tuple[int, ...]:
        sizes = np.atleast_1d(np.asarray(self.hidden_layer_sizes))
        if sizes.ndim != 1 or sizes.size == 0 or not np.issubdtype(sizes.dtype, np.integer):
            raise ValueError(
                "hidden_layer_sizes must be a non-empty sequence of positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        if (sizes < 1).any():
            raise ValueError(
                f"hidden_layer_sizes must hold positive integers, got {self.hidden_layer_sizes!r}."
            )
        return tuple(int(s) for s in sizes)

    def _make_path(self) -> ProbabilityPath:
        return PATHS[self.path](sigma=self.sigma)

    def _make_coupling(self):
        return make_coupling(self.coupling, self.coupling_reg)

    def _make_network(self, n_features: int) -> torch.nn.Module:
        """A fresh network; subclasses that learn more than a velocity override it."""
        network = ARCHITECTURES[self.architecture]
        return network(n_features, self._check_hidden_layer_sizes(), self.activation)

    def _network_candidates(self, n_train_rows: int | None) -> list[dict[str, Any]]:
        """The networks that :meth:`_train` fits and compares, as the fitted attributes that
        :meth:`_make_network` reads for each (set on the estimator before it builds one).

        Every candidate is trained from the same initial seed on the same minibatches, and the one
        with the lowest validation loss is kept, with its attributes. ``n_train_rows`` is the number
        of training rows beside a validation split, or None where there is none (no early stopping,
        ``partial_fit``): then only the first candidate is trained. By default, one network.
        """
        return [{}]

    def _learns_denoiser(self) -> bool:
        """Whether training also regresses a denoiser (the network must have ``denoiser``)."""
        return False

    def _base_log_density(self, z: np.ndarray) -> np.ndarray:
        """Log-density of the ``t = 0`` end of the path at standardised rows ``z``."""
        raise NotImplementedError

    def _solver_options(self) -> dict:
        return {
            "method": self.solver,
            "n_steps": self.n_steps,
            "step_exponent": self.step_exponent,
            "atol": self.atol,
            "rtol": self.rtol,
        }

    def _make_trainer(
        self, draw_base, rng: np.random.Generator, max_iter: int
    ) -> FlowMatchingTrainer:
        """The trainer of :meth:`fit` (``max_iter`` epochs) and of ``partial_fit`` (one epoch per
        call), with this estimator's path, coupling, time distribution and optimisation settings."""
        return FlowMatchingTrainer(
            path=self._make_path(),
            coupling=self._make_coupling(),
            draw_base=draw_base,
            config=TrainingConfig(
                max_iter=max_iter,
                batch_size=self.batch_size,
                learning_rate_init=self.learning_rate_init,
                learning_rate=self.learning_rate,
                ema_decay=self.ema_decay,
                early_stopping=self.early_stopping,
                n_iter_no_change=self.n_iter_no_change,
                tol=self.tol,
                verbose=self.verbose,
                validation_interval=max(1, math.ceil(max_iter / N_VALIDATION_CHECKS)),
            ),
            rng=rng,
            learn_denoiser=self._learns_denoiser(),
            times=TIME_DISTRIBUTIONS[self.time_distribution](),
        )

    # ----------------------------------------------------------------------------------------------
    # data

    def _validate_fit_data(
        self, X, sample_weight, *, reset: bool | None = None, min_samples: int = 2
    ) -> tuple[np.ndarray, np.ndarray]:
        """Check ``X`` (and weights) for fitting; returns float64 arrays, never views of the input.

        ``reset`` (whether ``n_features_in_`` is set anew) defaults to "unless warm-starting".
        """
        if reset is None:
            reset = not (self.warm_start and hasattr(self, "model_"))
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=min_samples, reset=reset)
        if sample_weight is None:
            weight = np.ones(X.shape[0])
        else:
            weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
            if not weight.sum() > 0:
                raise ValueError("sample_weight must have a positive sum.")
        return X, weight

    def _set_standardisation(self, X: np.ndarray, weight: np.ndarray) -> None:
        """Weighted per-feature mean and scale; a constant feature keeps a scale of 1.

        The moments (total weight, mean, weighted sum of squared deviations) are kept, so that
        ``partial_fit`` can add rows to them.
        """
        self._set_moments(WeightedMoments.of(X, weight))

    def _set_moments(self, moments: WeightedMoments) -> None:
        self._moments = moments
        self.mean_ = moments.mean
        self.scale_ = moments.scale()

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def _unstandardise(self, Z: np.ndarray) -> np.ndarray:
        return Z * self.scale_ + self.mean_

    def _check_predict_data(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return validate_data(self, X, dtype=np.float64, reset=False)

    # ----------------------------------------------------------------------------------------------
    # training

    def _train(self, X_std: np.ndarray, weight: np.ndarray, draw_base) -> None:
        """Fit (or continue fitting) the velocity network on standardised rows.

        Parameters
        ----------
        X_std : ndarray of shape (n_samples, n_features)
            Standardised data rows, the ``t = 1`` end of the path.
        weight : ndarray of shape (n_samples,)
            Non-negative row weights.
        draw_base : callable
            ``draw_base(n, generator)`` returns ``n`` base rows (the ``t = 0`` end) on the device.
        """
        rng = check_random_state(self.random_state)
        device = resolve_device(self.device)
        continuing = self.warm_start and hasattr(self, "model_")
        init_seed = None if continuing else _seed(rng)

        rows = np.arange(X_std.shape[0])
        if self.early_stopping:
            # train_test_split rounds the validation share up; say which parameter leaves no rows
            if math.ceil(self.validation_fraction * rows.size) >= rows.size:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} holds out all "
                    f"{rows.size} training rows: lower it, add rows or set early_stopping=False."
                )
            train_rows, val_rows = train_test_split(
                rows, test_size=self.validation_fraction, random_state=rng
            )
        else:
            train_rows, val_rows = rows, None

        def to_tensor(a):
            return None if a is None else torch.as_tensor(a, dtype=torch.float32, device=device)

        if np.all(weight == weight[0]):
            weight = None  # equal weights: the plain mean, exactly as without sample_weight

        if self.max_iter == "auto":
            max_iter = auto_max_iter(train_rows.size, self.batch_size)
        else:
            max_iter = self.max_iter
        validation_loss = None
        if self.early_stopping and self.scoring == "log_likelihood":
            validation_loss = self._validation_negative_log_likelihood(
                X_std[val_rows], None if weight is None else weight[val_rows], rng
            )
        generator_seed, trainer_seed = _seed(rng), _seed(rng)
        if continuing:
            candidates = [{}]  # the fitted network goes on, as it is
        else:
            candidates = self._network_candidates(None if val_rows is None else train_rows.size)
            candidates = candidates[: 1 if val_rows is None else None]
        data = (
            to_tensor(X_std[train_rows]),
            None if weight is None else to_tensor(weight[train_rows]),
            None if val_rows is None else to_tensor(X_std[val_rows]),
            None if val_rows is None or weight is None else to_tensor(weight[val_rows]),
        )
        best, interrupted = None, False
        for settings in candidates:
            if continuing:
                # train a copy, so that the fitted model stays intact if training is cut short
                model = copy.deepcopy(self.model_).requires_grad_(True)
            else:
                vars(self).update(settings)
                # initialise under a forked RNG: the user's global torch RNG is left as it was
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(init_seed)
                    model = self._make_network(X_std.shape[1])
            model = model.to(device=device, dtype=torch.float32).train()
            # every candidate sees the same minibatches, times and base draws
            generator = torch.Generator(device=device).manual_seed(generator_seed)
            trainer = self._make_trainer(draw_base, np.random.default_rng(trainer_seed), max_iter)
            ema, history = trainer.fit(model, *data, generator, validation_loss)
            if len(candidates) > 1 and self.verbose:
                print(f"Network {settings}: best validation loss {history.best_loss:.6f}.")
            if best is None or history.best_loss < best[2].best_loss:
                best = settings, ema, history
            if history.interrupted:  # no further candidate: the user asked to stop
                interrupted = True
                break
        settings, ema, history = best
        vars(self).update(settings)
        # the fitted network lives on the CPU so that a pickle loads anywhere
        self.model_ = ema.to("cpu").eval()
        self.loss_curve_ = history.loss_curve
        self.validation_loss_curve_ = history.validation_loss_curve
        self.best_loss_ = history.best_loss
        self.best_iter_ = history.best_iter
        self.n_iter_ = history.n_iter
        self.t_ = history.n_steps
        # whether a KeyboardInterrupt cut this fit short (the trainer kept the best weights so far)
        self._interrupted = interrupted
        self._forget_stream()

    def _partial_train(self, X: np.ndarray, weight: np.ndarray, draw_base) -> None:
        """One pass of training over a chunk of a stream (the work of ``partial_fit``).

        The chunk's moments are merged into the standardisation, the network is re-expressed
        exactly in the new standardised coordinates (:class:`~skflow.networks.RestandardisedVelocity`
        around the network of the reference coordinates: those of the first chunk, or of
        :meth:`fit`), and one epoch over the chunk continues Adam and the EMA from the previous
        call. Nothing is assigned until the pass has succeeded.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            The chunk, in the units of the data.
        weight : ndarray of shape (n_samples,)
            Non-negative row weights of positive sum.
        draw_base : callable
            As in :meth:`_train`.
        """
        device = resolve_device(self.device)
        calls = getattr(self, "_partial_fit_calls", 0)
        # a new stream of random numbers for every call, reproducible from random_state
        rng = np.random.default_rng([_seed(check_random_state(self.random_state)), calls])
        moments = WeightedMoments.of(X, weight)
        if hasattr(self, "_online_model"):  # continue the stream
            online, ema = copy.deepcopy(self._online_model), copy.deepcopy(self.model_)
            reference = self._reference
            moments = self._moments.merge(moments)
        elif hasattr(self, "model_"):  # after fit: its network and coordinates are the reference
            online = RestandardisedVelocity(copy.deepcopy(self.model_), X.shape[1])
            ema = copy.deepcopy(online)
            reference = (self.mean_, self.scale_)
            moments = self._moments.merge(moments)
        else:  # the first chunk sets the reference coordinates
            vars(self).update(self._network_candidates(None)[0])
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(np.iinfo(np.int32).max)))
                online = RestandardisedVelocity(self._make_network(X.shape[1]), X.shape[1])
            ema = copy.deepcopy(online)
            reference = (moments.mean, moments.scale())
        scale = moments.scale()
        for network in (online, ema):
            network.a.copy_(torch.as_tensor(reference[1] / scale))
            network.b.copy_(torch.as_tensor((reference[0] - moments.mean) / scale))
        online = online.to(device=device, dtype=torch.float32).train().requires_grad_(True)
        ema = ema.to(device=device, dtype=torch.float32).requires_grad_(False)
        optimizer = torch.optim.Adam(online.parameters(), lr=self.learning_rate_init)
        if hasattr(self, "_optimizer_state"):
            optimizer.load_state_dict(self._optimizer_state)

        X_std = torch.as_tensor((X - moments.mean) / scale, dtype=torch.float32, device=device)
        w = None  # equal weights: the plain mean, as in _train
        if not np.all(weight == weight[0]):
            w = torch.as_tensor(weight, dtype=torch.float32, device=device)
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        trainer = self._make_trainer(draw_base, rng, max_iter=1)
        loss, steps = trainer.train_epoch(
            online, ema, optimizer, X_std, w, generator, getattr(self, "t_", 0)
        )

        self._set_moments(moments)
        self._reference = reference
        self.model_ = ema.to("cpu").eval()
        self._online_model = online.to("cpu")
        state = optimizer.state_dict()
        state["state"] = {
            i: {k: v.detach().to("cpu", copy=True) for k, v in values.items()}
            for i, values in state["state"].items()
        }
        self._optimizer_state = state
        self._partial_fit_calls = calls + 1
        self.loss_curve_ = [*getattr(self, "loss_curve_", []), loss]
        self.validation_loss_curve_ = getattr(self, "validation_loss_curve_", [])
        self.best_loss_ = min(getattr(self, "best_loss_", np.inf), loss)
        self.n_iter_ = getattr(self, "n_iter_", 0) + 1
        self.t_ = steps

    def _forget_stream(self) -> None:
        """Drop the state that ``partial_fit`` carries between calls (a new fit starts afresh)."""
        for name in ("_online_model", "_optimizer_state", "_reference", "_partial_fit_calls"):
            self.__dict__.pop(name, None)

    def _validation_negative_log_likelihood(
        self, X_val: np.ndarray, weight: np.ndarray | None, rng: np.random.RandomState
    ):
        """The early-stopping score of ``scoring="log_likelihood"``: a callable giving a network's
        (weighted) mean negative log-likelihood of the validation rows, in standardised units.

        It integrates the log-density ODE with ``VALIDATION_STEPS`` RK4 steps on at most
        ``VALIDATION_ROWS`` rows, in the training precision, with the exact divergence up to
        ``EXACT_DIVERGENCE_MAX_FEATURES`` features and Hutchinson's estimator (the same probes at
        every call) above: a consistent ranking of one fit's checkpoints at a small share of the
        training cost, not the converged value of :meth:`score_samples`.
        """
        if X_val.shape[0] > VALIDATION_ROWS:
            keep = rng.choice(X_val.shape[0], VALIDATION_ROWS, replace=False)
            X_val, weight = X_val[keep], None if weight is None else weight[keep]
        weight = np.ones(X_val.shape[0]) if weight is None else weight
        if not weight.sum() > 0:
            weight = np.ones(X_val.shape[0])  # only zero-weight rows held out: count them all
        device = resolve_device(self.device)
        x = torch.as_tensor(X_val, dtype=torch.float32, device=device)
        exact = X_val.shape[1] <= EXACT_DIVERGENCE_MAX_FEATURES
        probe_seed = _seed(rng)
        path = self._make_path()

        def negative_log_likelihood(network: torch.nn.Module) -> float:
            with torch.no_grad():
                z, delta = flow_log_likelihood(
                    network,
                    x,
                    path.t_min,
                    path.t_max,
                    divergence="exact" if exact else "hutchinson",
                    generator=torch.Generator().manual_seed(probe_seed),
                    method="rk4",
                    n_steps=VALIDATION_STEPS,
                )
            log_likelihood = self._base_log_density(z.double().cpu().numpy()) + delta.cpu().numpy()
            return -float(np.average(log_likelihood, weights=weight))

        return negative_log_likelihood

    # ----------------------------------------------------------------------------------------------
    # inference

    def _inference_network(self, device: torch.device) -> torch.nn.Module:
        """A float64 copy of the fitted network on ``device`` (float64 keeps a row's result
        independent of the batch it is computed in, to rounding)."""
        return copy.deepcopy(self.model_).to(device=device, dtype=torch.float64).eval()

    def _chunks(self, n_rows: int, n_features: int, device: torch.device):
        width = max([n_features, *self._check_hidden_layer_sizes()])
        size = max(1, _CHUNK_ELEMENTS[device.type] // (n_features * width))
        for start in range(0, n_rows, size):
            yield slice(start, start + size)

    def _map_rows(
        self, X: np.ndarray, function, *, standardise: bool = False, unstandardise: bool = False
    ) -> list[np.ndarray]:
        """Apply ``function(net, x)`` to rows chunk by chunk, without gradients.

        ``net`` is the float64 inference network on the estimator's device and ``x`` a chunk of rows
        as a float64 tensor there; ``function`` returns one tensor or a tuple of tensors whose first
        axis runs over the chunk's rows. Returns one array per returned tensor, over all rows.
        ``standardise`` standardises each chunk of ``X`` on its way in and ``unstandardise`` maps
        the first output back to the units of the data on its way out, so that no temporary array
        is as long as ``X``: the memory beyond the inputs and the outputs is that of one chunk.
        """
        device = resolve_device(self.device)
        net = self._inference_network(device)
        outputs: list[np.ndarray] = []
        with torch.no_grad():
            for rows in self._chunks(*X.shape, device):
                chunk = self._standardise(X[rows]) if standardise else X[rows]
                # a copy: the rows may be the caller's array (read-only, or to be left untouched)
                result = function(net, torch.tensor(chunk, dtype=torch.float64, device=device))
                result = result if isinstance(result, tuple) else (result,)
                if not outputs:
                    outputs = [np.empty((X.shape[0], *r.shape[1:])) for r in result]
                for out, r in zip(outputs, result):
                    out[rows] = r.cpu().numpy()
                if unstandardise:
                    outputs[0][rows] = self._unstandardise(outputs[0][rows])
        return outputs

    def _integrate_flow(self, X: np.ndarray, t0: float, t1: float, **scaling: bool) -> np.ndarray:
        """Carry rows along the learned ODE from ``t0`` to ``t1``, chunk by chunk; ``scaling``
        (``standardise``, ``unstandardise``) as in :meth:`_map_rows`."""

        def carry(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
            def field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return net(t.expand(y.shape[0]), y)

            return integrate(field, x, t0, t1, **self._solver_options())

        (out,) = self._map_rows(X, carry, **scaling)
        return out

    def _integrate_stochastic(
        self,
        X_std: np.ndarray,
        t0: float,
        t1: float,
        make_drift,
        diffusion,
        n_steps: int,
        generator: torch.Generator,
    ) -> np.ndarray:
        """Carry standardised rows along an SDE of the fitted network from ``t0`` to ``t1`` by
        Euler–Maruyama (:func:`skflow.solvers.integrate_sde`), chunk by chunk.

        ``make_drift(net)`` builds the drift ``f(t, y)`` from the float64 inference network and
        ``diffusion(t)`` is the scalar noise amplitude; ``generator`` draws the increments.
        """
        (out,) = self._map_rows(
            X_std,
            lambda net, x: integrate_sde(
                make_drift(net), diffusion, x, t0, t1, n_steps=n_steps, generator=generator
            ),
        )
        return out

    def _flow_log_likelihood(
        self,
        X: np.ndarray,
        t0: float,
        t1: float,
        *,
        standardise: bool = False,
        shrink: float = 1.0,
        finish=None,
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Pull rows back from ``t1`` to ``t0``; returns the points and ``-int div v dt`` (see
        :func:`skflow.likelihood.flow_log_likelihood`), or, with ``finish``, the array of
        ``finish(z, delta)`` computed chunk by chunk. ``standardise`` as in :meth:`_map_rows`;
        the rows are multiplied by ``shrink`` (after standardising) before the pull-back."""
        generator = None
        if self.divergence == "hutchinson":
            generator = torch.Generator().manual_seed(_seed(check_random_state(self.random_state)))

        def pull_back(net: torch.nn.Module, x: torch.Tensor):
            z, delta = flow_log_likelihood(
                net,
                x if shrink == 1.0 else shrink * x,
                t0,
                t1,
                divergence=self.divergence,
                generator=generator,
                **self._solver_options(),
            )
            return (z, delta) if finish is None else finish(z, delta)

        outputs = self._map_rows(X, pull_back, standardise=standardise)
        return tuple(outputs) if finish is None else outputs[0]

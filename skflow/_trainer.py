"""The internal training loop: conditional flow matching with Adam, an EMA of the weights and early stopping.

Each step draws a minibatch of data rows ``x1`` and base rows ``x0``, re-pairs them with the coupling,
draws times ``t`` in ``[t_min, t_max]`` from a :class:`~skflow.times.TimeDistribution` and regresses
the network onto the conditional velocity,

.. math::

    L(\\theta) = \\mathbb{E}_{t, (x_0, x_1) \\sim \\pi}\\,
        \\lVert v_\\theta(t, x_t) - u_t(x_0, x_1) \\rVert^2 / d,

the simulation-free conditional flow-matching loss (Lipman et al., 2023, eq. 9; Tong et al., 2024,
eq. 11). When the path carries noise ``gamma(t) z`` the target is ``u_t = alpha' x0 + beta' x1 +
gamma' z``, the quadratic loss of the velocity ``b`` of stochastic interpolants (Albergo, Boffi &
Vanden-Eijnden, 2023, eq. 2.13), and a denoiser ``eta_z`` may be learned alongside by the loss
``E |eta_z(t, x_t) - z|^2 / d`` (their eq. 2.15). The model kept is the exponential moving average
of the weights. With early stopping, that average is scored every ``validation_interval`` epochs,
either by the flow-matching loss on fixed validation pairs or by a callable the estimator supplies
(its negative held-out log-likelihood), and the best-scoring average is the one returned.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from .couplings import Coupling
from .paths import ProbabilityPath
from .times import TimeDistribution, UniformTimes

BaseSampler = Callable[[int, torch.Generator], torch.Tensor]
ValidationLoss = Callable[[nn.Module], float]

DIVERGENCE_FACTOR = 1e6
"""An epoch whose loss exceeds this many times the loss of the untrained network (the first
minibatch's) has diverged, even if the loss is finite: the weights have blown up."""


def cosine_decay(step: int, total: int) -> float:
    """Factor ``(1 + cos(pi min(step, total) / total)) / 2`` of the learning rate at ``step`` of a
    cosine decay from 1 to 0 over ``total`` steps (Loshchilov & Hutter, *SGDR*, ICLR 2017)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


@dataclass
class TrainingConfig:
    """Optimisation settings, one field per estimator hyperparameter of the same name."""

    max_iter: int
    batch_size: int
    learning_rate_init: float
    learning_rate: str
    ema_decay: float
    early_stopping: bool
    n_iter_no_change: int
    tol: float
    verbose: int
    validation_interval: int = 1
    """Epochs between two validation checks (with early stopping)."""


@dataclass
class TrainingHistory:
    """What a fit recorded: per-epoch losses, the best monitored loss, epochs and steps taken."""

    loss_curve: list[float] = field(default_factory=list)
    validation_loss_curve: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_iter: int = 0
    n_iter: int = 0
    n_steps: int = 0
    interrupted: bool = False


def _weighted_mse(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None
) -> torch.Tensor:
    """Mean squared error per coordinate, averaged over rows with ``weight`` (None: equally)."""
    if weight is None:
        return (prediction - target).pow(2).mean()
    per_row = (prediction - target).pow(2).mean(dim=1)
    return (per_row * weight).sum() / weight.sum()


def _all_finite(parameters: list[torch.Tensor]) -> bool:
    """Whether every entry of every tensor is finite (one host synchronisation)."""
    return bool(torch.stack([p.isfinite().all() for p in parameters]).all())


def _rows(weight: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    return None if weight is None else weight[index]


def _total(weight: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | int:
    """Total weight of the rows ``index``: their count when rows are weighted equally."""
    return index.numel() if weight is None else weight[index].sum()


class FlowMatchingTrainer:
    """Fits a velocity network by conditional flow matching.

    Parameters
    ----------
    path : ProbabilityPath
        The interpolant that defines ``x_t`` and the regression target.
    coupling : Coupling
        How each base minibatch is paired with its data minibatch.
    draw_base : callable
        ``draw_base(n, generator)`` returns ``n`` base samples ``x0`` on the training device.
    config : TrainingConfig
        Optimisation settings.
    rng : numpy.random.Generator
        Seeds the torch generator of the loop and drives stochastic couplings.
    learn_denoiser : bool, default=False
        Also regress ``model.denoiser(t, x_t)`` onto the noise ``z`` (the path must carry noise).
    times : TimeDistribution, optional
        Law of the training times on ``(0, 1)``, mapped to ``[t_min, t_max]``; uniform by default.
    """

    def __init__(
        self,
        path: ProbabilityPath,
        coupling: Coupling,
        draw_base: BaseSampler,
        config: TrainingConfig,
        rng: np.random.Generator,
        learn_denoiser: bool = False,
        times: TimeDistribution | None = None,
    ) -> None:
        self.path = path
        self.coupling = coupling
        self.draw_base = draw_base
        self.config = config
        self.rng = rng
        self.learn_denoiser = learn_denoiser
        self.times = UniformTimes() if times is None else times

    def _draw_times(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        u = self.times.sample(n, generator, device)
        return self.path.t_min + (self.path.t_max - self.path.t_min) * u

    def _regression_pairs(
        self, x1: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Times, points ``x_t``, target velocities and noises ``z`` (None without noise) for one
        minibatch of data rows."""
        x0 = self.coupling.pair(self.draw_base(x1.shape[0], generator), x1, self.rng)
        t = self._draw_times(x1.shape[0], generator, x1.device)
        z = None
        if not self.path.noise.is_zero:
            z = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        return t, self.path.interpolate(x0, x1, t, z), self.path.velocity(x0, x1, t, z), z

    def _loss(
        self,
        model: nn.Module,
        t: torch.Tensor,
        xt: torch.Tensor,
        ut: torch.Tensor,
        z: torch.Tensor | None,
        weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """Velocity loss, plus the denoiser's when it is learned."""
        loss = _weighted_mse(model(t, xt), ut, weight)
        if self.learn_denoiser:
            loss = loss + _weighted_mse(model.denoiser(t, xt), z, weight)
        return loss

    def _validation_batches(
        self, x_val: torch.Tensor, w_val: torch.Tensor | None, generator: torch.Generator
    ) -> list[tuple[torch.Tensor, ...]]:
        """Fixed validation pairs, drawn once so that every epoch is scored on the same targets."""
        repeats = max(1, math.ceil(2048 / x_val.shape[0]))
        rows = x_val.repeat(repeats, 1)
        weights = None if w_val is None else w_val.repeat(repeats)
        return [
            (*self._regression_pairs(rows[index], generator), _rows(weights, index), index)
            for index in self._batches(torch.arange(rows.shape[0], device=rows.device))
        ]

    def _batches(self, order: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split row indices into near-equal batches of at most ``batch_size``: no tiny remainder
        batch, whose minibatch coupling would be meaningless and whose gradient would be noisy."""
        return torch.tensor_split(order, math.ceil(order.numel() / self.config.batch_size))

    @torch.no_grad()
    def _validation_loss(self, model: nn.Module, batches: list[tuple[torch.Tensor, ...]]) -> float:
        total, weight = 0.0, 0.0
        for t, xt, ut, z, w, index in batches:
            batch_weight = float(index.numel() if w is None else w.sum())
            total += float(self._loss(model, t, xt, ut, z, w)) * batch_weight
            weight += batch_weight
        return total / weight

    def fit(
        self,
        model: nn.Module,
        x_train: torch.Tensor,
        w_train: torch.Tensor | None,
        x_val: torch.Tensor | None,
        w_val: torch.Tensor | None,
        generator: torch.Generator,
        validation_loss: ValidationLoss | None = None,
    ) -> tuple[nn.Module, TrainingHistory]:
        """Train ``model`` in place and return its EMA with the history.

        Parameters
        ----------
        model : torch.nn.Module
            Velocity network ``model(t, x)``; its weights are the starting point.
        x_train, w_train : torch.Tensor
            Training rows (n, d) and their weights (n,), None when all rows weigh the same.
        x_val, w_val : torch.Tensor or None
            Validation rows and weights; required when ``config.early_stopping`` is True.
        generator : torch.Generator
            Random source of the loop (on the training device).
        validation_loss : callable, optional
            ``validation_loss(ema) -> float``, lower is better, monitored instead of the
            flow-matching loss on validation pairs built from ``x_val`` (with early stopping).

        Returns
        -------
        ema : torch.nn.Module
            The averaged network at the best validation check (with early stopping) or at the last
            completed epoch (without it).
        history : TrainingHistory
        """
        cfg = self.config
        ema = copy.deepcopy(model).requires_grad_(False)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate_init)
        ema_parameters, model_parameters = list(ema.parameters()), list(model.parameters())
        scheduler = self._scheduler(optimizer, len(self._batches(torch.arange(x_train.shape[0]))))
        history = TrainingHistory()
        if cfg.early_stopping and validation_loss is None:
            batches = self._validation_batches(x_val, w_val, generator)

            def validation_loss(network: nn.Module) -> float:
                return self._validation_loss(network, batches)

        validation = validation_loss if cfg.early_stopping else None
        best_state = copy.deepcopy(ema.state_dict())
        checks_without_improvement = 0
        diverged_epoch = None
        initial_loss = None  # the first minibatch's loss, before any step: the divergence yardstick
        start_time = time.perf_counter()
        try:
            for epoch in range(cfg.max_iter):
                epoch_loss, first_loss, history.n_steps = self._epoch(
                    model,
                    optimizer,
                    ema_parameters,
                    model_parameters,
                    x_train,
                    w_train,
                    generator,
                    history.n_steps,
                    scheduler,
                )
                if initial_loss is None:
                    initial_loss = first_loss
                # a finite loss can still have blown up, and a step can overflow the weights after
                # a finite loss: check the loss against the untrained network's and the weights
                if not epoch_loss <= DIVERGENCE_FACTOR * float(initial_loss) or not _all_finite(
                    ema_parameters
                ):
                    raise FloatingPointError
                history.loss_curve.append(epoch_loss)
                history.n_iter = epoch + 1
                if validation is None:
                    # the training loss is dominated by the irreducible variance of the conditional
                    # targets, too noisy to stop on: without validation, run the whole budget
                    history.best_loss = min(history.best_loss, history.loss_curve[-1])
                    history.best_iter = epoch + 1
                    best_state = copy.deepcopy(ema.state_dict())
                    self._report(epoch, history, start_time)
                    continue
                if (epoch + 1) % cfg.validation_interval and epoch + 1 < cfg.max_iter:
                    self._report(epoch, history, start_time)
                    continue
                monitored = validation(ema)
                if not math.isfinite(monitored):
                    monitored = math.inf  # a blown-up check never counts as the best
                history.validation_loss_curve.append(monitored)
                self._report(epoch, history, start_time)
                if monitored < history.best_loss - cfg.tol:
                    checks_without_improvement = 0
                else:
                    checks_without_improvement += 1
                if monitored < history.best_loss:
                    history.best_loss = monitored
                    history.best_iter = epoch + 1
                    best_state = copy.deepcopy(ema.state_dict())
                if checks_without_improvement >= cfg.n_iter_no_change:
                    if cfg.verbose:
                        print(
                            f"Validation loss did not improve by more than tol={cfg.tol} for "
                            f"{cfg.n_iter_no_change} consecutive checks. Stopping."
                        )
                    break
        except FloatingPointError:
            # no good weights to fall back on: the first epoch, or (with early stopping) any
            # epoch before the first validation check, whose checkpoint is the only one kept
            if not history.loss_curve or (validation is not None and not history.best_iter):
                raise ValueError(
                    f"Training diverged in epoch {history.n_iter + 1}, before any weights were "
                    f"kept: the flow-matching loss grew {DIVERGENCE_FACTOR:.0e}-fold or became "
                    "non-finite, or the weights did. Lower learning_rate_init or check the data "
                    "for extreme values."
                ) from None
            diverged_epoch = history.n_iter + 1
        except KeyboardInterrupt:
            history.interrupted = True
            warnings.warn(
                f"Training interrupted after {history.n_iter} epochs; the model holds the best "
                "weights reached so far.",
                RuntimeWarning,
                stacklevel=4,
            )
        ema.load_state_dict(best_state)
        # the loss of an epoch is measured before its last step: check the weights that are kept
        if history.n_iter and not self._within_divergence_limit(
            ema, x_train, generator, initial_loss
        ):
            raise ValueError(
                "Training diverged: the weights kept from the last good epoch give a flow-matching "
                f"loss over {DIVERGENCE_FACTOR:.0e} times the untrained network's. Lower "
                "learning_rate_init."
            )
        if diverged_epoch is not None:
            warnings.warn(
                f"Training diverged (the loss or the weights blew up) in epoch {diverged_epoch}; "
                "keeping the weights of the last good epoch. Lower learning_rate_init to train "
                "further.",
                RuntimeWarning,
                stacklevel=4,
            )
        return ema, history

    @torch.no_grad()
    def _within_divergence_limit(
        self,
        model: nn.Module,
        x: torch.Tensor,
        generator: torch.Generator,
        reference: torch.Tensor,
    ) -> bool:
        """Whether ``model``'s unweighted loss on fresh pairs of the first rows is finite and at
        most ``DIVERGENCE_FACTOR`` times ``reference``."""
        pairs = self._regression_pairs(x[: self.config.batch_size], generator)
        loss = float(self._loss(model, *pairs, None))
        return loss <= DIVERGENCE_FACTOR * float(reference)

    def _epoch(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        ema_parameters: list[torch.Tensor],
        model_parameters: list[torch.Tensor],
        x_train: torch.Tensor,
        w_train: torch.Tensor | None,
        generator: torch.Generator,
        steps_done: int,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ) -> tuple[float, torch.Tensor, int]:
        """One pass over ``x_train`` in a random order: an optimiser step per minibatch, then the
        schedule's step (if any) and the EMA update, whose warm-up counts from ``steps_done``.

        Returns the weighted mean loss of the pass, the loss of its first minibatch (before any
        of its steps) and the number of optimiser steps taken so far, this pass included. The
        losses are summed on the device: one host synchronisation per pass.
        """
        order = torch.randperm(x_train.shape[0], generator=generator, device=x_train.device)
        total = torch.zeros((), device=x_train.device)
        first_loss = None
        for index in self._batches(order):
            pairs = self._regression_pairs(x_train[index], generator)
            loss = self._loss(model, *pairs, _rows(w_train, index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss = loss.detach()
            if first_loss is None:
                first_loss = loss
            if scheduler is not None:
                scheduler.step()
            steps_done += 1
            self._update_ema(ema_parameters, model_parameters, steps_done)
            total += loss * _total(w_train, index)
        return total.item() / float(_total(w_train, order)), first_loss, steps_done

    def train_epoch(
        self,
        model: nn.Module,
        ema: nn.Module,
        optimizer: torch.optim.Optimizer,
        x_train: torch.Tensor,
        w_train: torch.Tensor | None,
        generator: torch.Generator,
        steps_done: int,
    ) -> tuple[float, int]:
        """One pass over ``x_train`` with an optimiser and an EMA that live across calls.

        The building block of ``partial_fit``: the caller keeps ``model``, its average ``ema`` and
        ``optimizer`` (Adam's moments) between chunks of a stream. The step size is the
        optimiser's as given (no schedule: the length of a stream is not known in advance), and
        the EMA's warm-up continues from ``steps_done``.

        Parameters
        ----------
        model : torch.nn.Module
            Network trained in place.
        ema : torch.nn.Module
            Its exponential moving average, updated in place after every step.
        optimizer : torch.optim.Optimizer
            Optimiser over ``model``'s parameters.
        x_train, w_train : torch.Tensor
            Rows (n, d) and their weights (n,), None when all rows weigh the same.
        generator : torch.Generator
            Random source of the pass (on the training device).
        steps_done : int
            Optimiser steps taken before this pass.

        Returns
        -------
        loss : float
            Mean training loss of the pass.
        steps_done : int
            Optimiser steps taken, this pass included.

        Raises
        ------
        ValueError
            If the loss becomes non-finite; ``model`` and ``ema`` are then in an undefined state.
        """
        ema_parameters, model_parameters = list(ema.parameters()), list(model.parameters())
        mean_loss, _, steps_done = self._epoch(
            model,
            optimizer,
            ema_parameters,
            model_parameters,
            x_train,
            w_train,
            generator,
            steps_done,
        )
        if not math.isfinite(mean_loss) or not _all_finite(ema_parameters):
            raise ValueError(
                "Training diverged: the flow-matching loss became non-finite. Lower "
                "learning_rate_init or check the data for extreme values."
            )
        return mean_loss, steps_done

    def _scheduler(
        self, optimizer: torch.optim.Optimizer, batches_per_epoch: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """Per-step learning-rate schedule: constant, or a cosine decay from ``learning_rate_init``
        to zero over the ``max_iter`` epochs (Loshchilov & Hutter, *SGDR*, ICLR 2017)."""
        if self.config.learning_rate == "constant":
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        total = self.config.max_iter * batches_per_epoch
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_decay(step, total))

    def _report(self, epoch: int, history: TrainingHistory, start_time: float) -> None:
        if not self.config.verbose:
            return
        valid = history.validation_loss_curve
        valid = f", validation loss {valid[-1]:.5f}" if valid else ""
        print(
            f"Epoch {epoch + 1}: loss {history.loss_curve[-1]:.5f}{valid}, "
            f"{time.perf_counter() - start_time:.1f} s"
        )

    def _update_ema(
        self, averaged: list[torch.Tensor], current: list[torch.Tensor], step: int
    ) -> None:
        """Move the averaged parameters towards the current ones (lists made once per fit, off the
        per-step path)."""
        # warm-up of the decay so that short runs are not dominated by the initial weights
        decay = min(self.config.ema_decay, (1.0 + step) / (10.0 + step))
        get_ema_multi_avg_fn(decay)(averaged, current, None)

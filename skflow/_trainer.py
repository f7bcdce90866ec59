"""The training loop: conditional flow matching with Adam, an EMA of the weights and checkpoints.

Each step draws a minibatch of data rows ``x1`` and base rows ``x0``, re-pairs them with the
coupling, draws times ``t`` in ``[t_min, t_max]`` from a :class:`~skflow.times.TimeDistribution`
and regresses the network onto the conditional velocity,

.. math::

    L(\\theta) = \\mathbb{E}_{t, (x_0, x_1) \\sim \\pi}\\,
        \\lVert v_\\theta(t, x_t) - u_t(x_0, x_1) \\rVert^2 / d,

the simulation-free conditional flow-matching loss (Lipman et al., 2023, eq. 9; Tong et al., 2024,
eq. 11). When the path carries noise ``gamma(t) z`` the target is ``u_t = alpha' x0 + beta' x1 +
gamma' z``, the quadratic loss of the velocity ``b`` of stochastic interpolants (Albergo, Boffi &
Vanden-Eijnden, 2023, eq. 2.13), and a denoiser ``eta_z`` may be learned alongside by the loss
``E |eta_z(t, x_t) - z|^2 / d`` (their eq. 2.15).

A class-conditional field ``v(t, x | y)`` is trained the same way on rows that carry their
conditions (class indices), which travel with them through minibatches and validation pairs; the
coupling then pairs base draws with data rows of one condition at a time, so that the base given
the class stays ``N(0, I)``.

Everything a run moves lives in one :class:`~skflow._run.TrainState` (network, EMA, optimiser,
schedule, step count, history), and :meth:`FlowMatchingTrainer.run` is the one loop that ``fit``,
``warm_start`` and ``partial_fit`` use. What the loop keeps and when it stops is the decision of a
checkpoint from :mod:`skflow._callbacks`."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ._callbacks import Checkpoint
from ._inference import flushing_denormals
from ._run import TrainingConfig, TrainState, cosine_decay
from .couplings import Coupling
from .paths import ProbabilityPath
from .times import TimeDistribution

__all__ = ["FlowMatchingTrainer"]

DIVERGENCE_FACTOR = 1e6
"""An epoch whose loss exceeds this many times the loss of the untrained network (the first
minibatch's) has diverged, even if the loss is finite: the weights have blown up."""

N_CHECKS = 25
"""A run reports (and early stopping scores the model) this many times over its budget."""


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


def _rows(values: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    return None if values is None else values[index]


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
    base : object with ``sample(n, generator)``
        The ``t = 0`` end: ``n`` rows on the generator's device (see :mod:`skflow._distributions`).
    times : TimeDistribution
        Law of the training times on ``(0, 1)``, mapped to ``[t_min, t_max]``.
    config : TrainingConfig
        Optimisation settings.
    rng : numpy.random.Generator
        Drives stochastic couplings.
    learn_denoiser : bool, default=False
        Also regress ``network.denoiser(t, x_t)`` onto the noise ``z`` (the path must carry noise).
    prepare : callable, optional
        ``prepare(rows, generator)`` makes each minibatch's data rows from the stored ones, e.g.
        dequantises discrete columns afresh (:meth:`skflow._columns.TableLayout.to_flow`).
    """

    def __init__(
        self,
        path: ProbabilityPath,
        coupling: Coupling,
        base,
        times: TimeDistribution,
        config: TrainingConfig,
        rng: np.random.Generator,
        learn_denoiser: bool = False,
        prepare: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ) -> None:
        self.path = path
        self.coupling = coupling
        self.base = base
        self.times = times
        self.config = config
        self.rng = rng
        self.learn_denoiser = learn_denoiser
        self.prepare = prepare

    def _regression_pairs(
        self, x1: torch.Tensor, generator: torch.Generator, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Times, points ``x_t``, target velocities, noises ``z`` (None without noise) and the
        network's conditions (those of the rows; None without) for one minibatch of data rows,
        made by ``prepare`` if given."""
        if self.prepare is not None:
            x1 = self.prepare(x1, generator)
        x0 = self._pair(self.base.sample(x1.shape[0], generator), x1, condition)
        u = self.times.sample(x1.shape[0], generator, x1.device)
        t = self.path.t_min + (self.path.t_max - self.path.t_min) * u
        z = None
        if not self.path.noise.is_zero:
            z = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        xt, ut = self.path.interpolate(x0, x1, t, z), self.path.velocity(x0, x1, t, z)
        return t, xt, ut, z, condition

    def _pair(
        self, x0: torch.Tensor, x1: torch.Tensor, condition: torch.Tensor | None
    ) -> torch.Tensor:
        """The base draws ``x0`` re-paired with the data rows ``x1`` by the coupling; rows with
        conditions are paired only with base draws given to rows of the same condition. The base
        draws are independent of the conditions, so each condition's share of them is still a
        sample of the base, and the coupling's marginals given the condition are the base and the
        data of that condition."""
        if condition is None:
            return self.coupling.pair(x0, x1, self.rng)
        _, group = torch.unique(condition, dim=0, return_inverse=True)
        paired = torch.empty_like(x0)
        for g in range(int(group.max()) + 1):
            rows = torch.nonzero(group == g)[:, 0]
            paired[rows] = self.coupling.pair(x0[rows], x1[rows], self.rng)
        return paired

    def _loss(self, network: nn.Module, t, xt, ut, z, condition, weight) -> torch.Tensor:
        """Velocity loss, plus the denoiser's when it is learned; a conditional network also
        takes the rows' conditions (None: an unconditional one)."""
        v = network(t, xt) if condition is None else network(t, xt, condition)
        loss = _weighted_mse(v, ut, weight)
        if self.learn_denoiser:
            loss = loss + _weighted_mse(network.denoiser(t, xt), z, weight)
        return loss

    def _batches(self, order: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split row indices into near-equal batches of at most ``batch_size``: no tiny remainder
        batch, whose minibatch coupling would be meaningless and whose gradient would be noisy."""
        return torch.tensor_split(order, math.ceil(order.numel() / self.config.batch_size))

    def pairs_validation_loss(
        self,
        x_val: torch.Tensor,
        w_val: torch.Tensor | None,
        generator: torch.Generator,
        condition: torch.Tensor | None = None,
    ) -> Callable[[nn.Module], float]:
        """The flow-matching loss of fixed validation pairs (drawn now, once), as a callable;
        ``condition``: the rows' conditions, for a conditional network."""
        repeats = max(1, math.ceil(2048 / x_val.shape[0]))
        rows = x_val.repeat(repeats, 1)
        weights = None if w_val is None else w_val.repeat(repeats)
        conditions = None if condition is None else torch.cat([condition] * repeats)
        batches = []
        for index in self._batches(torch.arange(rows.shape[0], device=rows.device)):
            pairs = self._regression_pairs(rows[index], generator, _rows(conditions, index))
            batches.append((pairs, _rows(weights, index), index))

        @torch.no_grad()
        def validation_loss(network: nn.Module) -> float:
            total, weight = 0.0, 0.0
            for pairs, w, index in batches:
                batch_weight = float(index.numel() if w is None else w.sum())
                total += float(self._loss(network, *pairs, w)) * batch_weight
                weight += batch_weight
            return total / weight

        return validation_loss

    def schedule(self, state: TrainState, n_rows: int) -> None:
        """Give ``state`` the step-size schedule of ``config``: constant, or a cosine decay from
        ``learning_rate_init`` to zero over the budget (``max_iter`` epochs of ``n_rows`` rows,
        or ``max_time`` seconds when that runs out first)."""
        if self.config.learning_rate == "constant":
            factor = lambda step: 1.0  # noqa: E731
        else:
            total = self.config.max_iter * len(self._batches(torch.arange(n_rows)))
            factor = lambda step: cosine_decay(self._progress(state, step / total))  # noqa: E731
        state.scheduler = torch.optim.lr_scheduler.LambdaLR(state.optimizer, factor)

    def _progress(self, state: TrainState, done: float) -> float:
        """The share of the budget used: ``done`` (of the steps or epochs), or of ``max_time``
        where that is larger."""
        if self.config.max_time is None:
            return done
        return max(done, (time.perf_counter() - state.started) / self.config.max_time)

    def run(
        self,
        state: TrainState,
        x_train: torch.Tensor,
        w_train: torch.Tensor | None,
        generator: torch.Generator,
        n_epochs: int,
        checkpoint: Checkpoint,
        *,
        interruptible: bool = True,
        condition: torch.Tensor | None = None,
    ) -> None:
        """Train ``state`` for up to ``n_epochs`` passes over ``x_train`` (weights ``w_train``, None
        when equal; conditions ``condition`` of a conditional network, one row per row of
        ``x_train``, None without), or until ``max_time`` runs out, and leave the checkpoint's
        kept weights in ``state.ema``.

        The checkpoint sees every epoch, and a check ``N_CHECKS`` times over the budget and at its
        end (where early stopping scores the model); with ``max_time``, training stops so that the
        last check ends within the budget (``history.stop_reason = "max_time"``). If
        ``interruptible``, a KeyboardInterrupt ends the run with a warning (``"interrupted"``);
        otherwise it propagates. An epoch whose loss or weights blow up ends it too: with weights
        kept before, they stay (``"diverged"``, with a warning); without, a ValueError is raised.
        """
        with flushing_denormals():
            self._run(
                state, x_train, w_train, condition, generator, n_epochs, checkpoint, interruptible
            )

    def _run(
        self, state, x_train, w_train, c_train, generator, n_epochs, checkpoint, interruptible
    ) -> None:
        history, ema_parameters = state.history, list(state.ema.parameters())
        initial_loss = None  # the first minibatch's loss, before any step: the yardstick
        max_time = self.config.max_time
        deadline = None if max_time is None else state.started + max_time
        check_seconds, checks_done = 0.0, 0  # the last check's duration: kept free at the end
        try:
            for epoch in range(n_epochs):
                end = None if deadline is None else deadline - check_seconds
                epoch_loss, first_loss = self._epoch(
                    state, x_train, w_train, c_train, generator, end
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
                progress = self._progress(state, (epoch + 1) / n_epochs)
                out_of_time = end is not None and time.perf_counter() >= end
                # checks are due at every 1/N_CHECKS of the epochs (counted exactly) or of the time
                due = (epoch + 1) * N_CHECKS // n_epochs
                if max_time is not None:
                    due = max(due, math.floor(progress * N_CHECKS))
                check = epoch + 1 == n_epochs or out_of_time or due > checks_done
                check_start = time.perf_counter()
                stop = checkpoint.on_epoch_end(state.ema, history, epoch, check)
                if check:
                    checks_done, check_seconds = due, time.perf_counter() - check_start
                self._report(state, epoch, progress, check)
                if stop is not None:
                    if self.config.verbose:
                        print(stop)
                    history.stop_reason = "early_stopping"
                    break
                if out_of_time:
                    history.stop_reason = "max_time"
                    break
        except FloatingPointError:
            if not checkpoint.has_kept():
                raise ValueError(
                    f"Training diverged in epoch {history.n_iter + 1}, before any weights were "
                    f"kept: the flow-matching loss grew {DIVERGENCE_FACTOR:.0e}-fold or became "
                    "non-finite, or the weights did. Lower learning_rate_init or check the data "
                    "for extreme values."
                ) from None
            history.stop_reason = "diverged"
        except KeyboardInterrupt:
            if not interruptible:
                raise
            history.stop_reason = "interrupted"
            warnings.warn(
                f"Training interrupted after {history.n_iter} epochs; the model holds the best "
                "weights reached so far.",
                RuntimeWarning,
                stacklevel=5,
            )
        checkpoint.restore(state.ema)
        # the loss of an epoch is measured before its last step: check the weights that are kept
        if history.n_iter and not self._within_divergence_limit(
            state.ema, x_train, c_train, generator, initial_loss
        ):
            raise ValueError(
                "Training diverged: the weights kept from the last good epoch give a flow-matching "
                f"loss over {DIVERGENCE_FACTOR:.0e} times the untrained network's. Lower "
                "learning_rate_init."
            )
        if history.stop_reason == "diverged":
            warnings.warn(
                f"Training diverged (the loss or the weights blew up) in epoch "
                f"{history.n_iter + 1}; keeping the weights of the last good epoch. Lower "
                "learning_rate_init to train further.",
                RuntimeWarning,
                stacklevel=5,
            )

    @torch.no_grad()
    def _within_divergence_limit(
        self,
        network: nn.Module,
        x: torch.Tensor,
        condition: torch.Tensor | None,
        generator: torch.Generator,
        reference,
    ) -> bool:
        """Whether ``network``'s unweighted loss on fresh pairs of the first rows (with their
        conditions) is finite and at most ``DIVERGENCE_FACTOR`` times ``reference``."""
        first = slice(self.config.batch_size)
        c = None if condition is None else condition[first]
        pairs = self._regression_pairs(x[first], generator, c)
        loss = float(self._loss(network, *pairs, None))
        return loss <= DIVERGENCE_FACTOR * float(reference)

    def _epoch(
        self,
        state: TrainState,
        x_train: torch.Tensor,
        w_train: torch.Tensor | None,
        c_train: torch.Tensor | None,
        generator: torch.Generator,
        end: float | None = None,
    ) -> tuple[float, torch.Tensor]:
        """One pass over ``x_train`` (with the rows' conditions ``c_train``, if any) in a random
        order: an optimiser step per minibatch, then the schedule's step (if any) and the EMA
        update; cut short after the first step that ends past ``end`` (a
        :func:`time.perf_counter` time), if given.

        Returns the weighted mean loss of the steps taken and the loss of the first minibatch
        (before its step). The losses are summed on the device: one host synchronisation per pass.
        """
        ema_parameters, parameters = list(state.ema.parameters()), list(state.network.parameters())
        order = torch.randperm(x_train.shape[0], generator=generator, device=x_train.device)
        total, weight = torch.zeros((), device=x_train.device), 0.0
        first_loss = None
        for index in self._batches(order):
            c = _rows(c_train, index)
            pairs = self._regression_pairs(x_train[index], generator, c)
            loss = self._loss(state.network, *pairs, _rows(w_train, index))
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            loss = loss.detach()
            if first_loss is None:
                first_loss = loss
            if state.scheduler is not None:
                state.scheduler.step()
            state.step += 1
            self._update_ema(ema_parameters, parameters, state.step)
            rows = _total(w_train, index)
            total += loss * rows
            weight += float(rows)
            if end is not None and time.perf_counter() >= end:
                break
        return total.item() / weight, first_loss

    def _report(self, state: TrainState, epoch: int, progress: float, check: bool) -> None:
        """With ``verbose``, a line at every check (``verbose >= 2``: every epoch) with the step,
        the share of the budget, the losses and the time."""
        if self.config.verbose < (1 if check else 2):
            return
        valid = state.history.validation_loss_curve
        valid = f", validation loss {valid[-1]:.5f}" if check and valid else ""
        print(
            f"Epoch {epoch + 1}, step {state.step} ({min(progress, 1.0):4.0%} of the budget): "
            f"loss {state.history.loss_curve[-1]:.5f}{valid}, "
            f"{time.perf_counter() - state.started:.1f} s"
        )

    def _update_ema(
        self, averaged: list[torch.Tensor], current: list[torch.Tensor], step: int
    ) -> None:
        """Move the averaged parameters towards the current ones, with a decay warmed up as
        ``min(ema_decay, (1 + step) / (10 + step))`` so that short runs are not dominated by the
        initial weights."""
        decay = min(self.config.ema_decay, (1.0 + step) / (10.0 + step))
        get_ema_multi_avg_fn(decay)(averaged, current, None)

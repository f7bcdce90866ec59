"""What a training run keeps and when it stops: the checkpoints of :mod:`skflow._trainer`'s loop,
and the record of a run.

The loop calls a checkpoint after every epoch. :class:`LastEpoch` keeps every completed epoch and
never stops early; :class:`EarlyStopping` scores the averaged network on held-out rows, keeps the
best-scoring one and stops when the score stops improving.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

__all__ = ["Checkpoint", "EarlyStopping", "LastEpoch", "TrainingHistory"]

ValidationLoss = Callable[[nn.Module], float]


@dataclass
class TrainingHistory:
    """What a run recorded: per-epoch losses, the best monitored loss, epochs, and why it ended
    (``"max_iter"``, ``"max_time"``, ``"early_stopping"``, ``"interrupted"`` or ``"diverged"``)."""

    loss_curve: list[float] = field(default_factory=list)
    validation_loss_curve: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_iter: int = 0
    n_iter: int = 0
    stop_reason: str = "max_iter"


def snapshot(module: nn.Module) -> dict:
    """A copy of ``module``'s weights (its ``state_dict``), unchanged by later training steps:
    each tensor cloned, which is several times cheaper than a deep copy of the dict."""
    return {
        name: value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
        for name, value in module.state_dict().items()
    }


class Checkpoint(Protocol):
    """What a run keeps and when it stops; called after every epoch."""

    def on_epoch_end(
        self, ema: nn.Module, history: TrainingHistory, epoch: int, check: bool
    ) -> str | None:
        """Record the epoch (``check``: one of the run's checks); return a message to stop
        training, or None to go on."""

    def has_kept(self) -> bool:
        """Whether weights worth falling back on were kept."""

    def restore(self, ema: nn.Module) -> None:
        """Load the kept weights into ``ema``."""


class LastEpoch:
    """Without validation: keep the EMA of every completed epoch (the training loss is dominated by
    the irreducible variance of the conditional targets, too noisy to stop on), so the whole budget
    runs; ``best_loss`` is the lowest epoch loss."""

    def __init__(self, ema: nn.Module) -> None:
        self.state = snapshot(ema)
        self.kept = False

    def on_epoch_end(
        self, ema: nn.Module, history: TrainingHistory, epoch: int, check: bool
    ) -> str | None:
        history.best_loss = min(history.best_loss, history.loss_curve[-1])
        history.best_iter = epoch + 1
        self.state, self.kept = snapshot(ema), True
        return None

    def has_kept(self) -> bool:
        return self.kept

    def restore(self, ema: nn.Module) -> None:
        ema.load_state_dict(self.state)


class EarlyStopping:
    """Score the EMA at the run's checks, keep the best-scoring one and stop after
    ``n_iter_no_change`` checks without an improvement of more than ``tol``.

    Parameters
    ----------
    ema : torch.nn.Module
        The averaged network (its initial weights are kept until a check improves on them).
    validation_loss : callable
        ``validation_loss(ema) -> float``, lower is better; a non-finite value never counts as best.
    n_iter_no_change : int
    tol : float
    """

    def __init__(
        self,
        ema: nn.Module,
        validation_loss: ValidationLoss,
        n_iter_no_change: int,
        tol: float,
    ) -> None:
        self.state = snapshot(ema)
        self.validation_loss = validation_loss
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.checks_without_improvement = 0
        self.kept = False

    def on_epoch_end(
        self, ema: nn.Module, history: TrainingHistory, epoch: int, check: bool
    ) -> str | None:
        if not check:
            return None
        monitored = self.validation_loss(ema)
        if not math.isfinite(monitored):
            monitored = math.inf
        history.validation_loss_curve.append(monitored)
        if monitored < history.best_loss - self.tol:
            self.checks_without_improvement = 0
        else:
            self.checks_without_improvement += 1
        if monitored < history.best_loss:
            history.best_loss, history.best_iter = monitored, epoch + 1
            self.state, self.kept = snapshot(ema), True
        if self.checks_without_improvement >= self.n_iter_no_change:
            return (
                f"Validation loss did not improve by more than tol={self.tol} for "
                f"{self.n_iter_no_change} consecutive checks. Stopping."
            )
        return None

    def has_kept(self) -> bool:
        return self.kept

    def restore(self, ema: nn.Module) -> None:
        ema.load_state_dict(self.state)

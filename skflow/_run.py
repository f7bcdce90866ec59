"""What a training run is set up with and what it moves: the budget of ``max_iter="auto"``, the
step-size schedule, the configuration the loop reads (:class:`TrainingConfig`) and the state it
moves (:class:`TrainState`). The loop itself is :class:`skflow._trainer.FlowMatchingTrainer`."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ._callbacks import TrainingHistory

__all__ = [
    "AUTO_MAX_STEPS",
    "AUTO_MIN_STEPS",
    "AUTO_STEPS_PER_ROW",
    "TrainState",
    "TrainingConfig",
    "auto_max_iter",
    "cosine_decay",
]

AUTO_STEPS_PER_ROW = 0.75
AUTO_MIN_STEPS = 3000
AUTO_MAX_STEPS = 12000
"""``max_iter="auto"``: optimiser steps per training row, and the bounds of the step budget."""


def auto_max_iter(n_rows: int, batch_size: int) -> int:
    """Epochs of ``max_iter="auto"``: ``clip(3 n / 4, 3000, 12000)`` optimiser steps for ``n``
    training rows, in whole epochs of ``ceil(n / batch_size)`` steps (at least one epoch)."""
    steps = min(max(AUTO_STEPS_PER_ROW * n_rows, AUTO_MIN_STEPS), AUTO_MAX_STEPS)
    batches_per_epoch = math.ceil(n_rows / min(batch_size, n_rows))
    return max(1, math.ceil(steps / batches_per_epoch))


def cosine_decay(progress: float) -> float:
    """Factor ``(1 + cos(pi min(progress, 1))) / 2`` of the learning rate after the share
    ``progress`` of the budget: a cosine decay from 1 to 0 (Loshchilov & Hutter, *SGDR*, ICLR
    2017)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class TrainingConfig:
    """What the loop reads of the estimator's hyperparameters of the same names: ``max_iter``
    epochs and ``max_time`` seconds (None: no limit) make the budget, whichever runs out first;
    what is kept and when to stop early is the checkpoint's."""

    max_iter: int
    batch_size: int
    learning_rate: str
    ema_decay: float
    verbose: int
    max_time: float | None = None


@dataclass
class TrainState:
    """Everything a training run moves.

    Attributes
    ----------
    network : torch.nn.Module
        The weights the optimiser steps.
    ema : torch.nn.Module
        Their exponential moving average: the model that is kept.
    optimizer : torch.optim.Optimizer
        Adam over ``network``'s parameters.
    scheduler : torch.optim.lr_scheduler.LRScheduler or None
        The step-size schedule, if any.
    step : int
        Optimiser steps taken; the EMA's warm-up counts from it.
    history : TrainingHistory
        The run's record.
    started : float
        When the fit began (:func:`time.perf_counter`; by default when the state was made): the
        start of a time budget.
    """

    network: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    step: int = 0
    history: TrainingHistory = field(default_factory=TrainingHistory)
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(
        cls,
        network: nn.Module,
        learning_rate_init: float,
        *,
        ema: nn.Module | None = None,
        optimizer_state: dict | None = None,
        step: int = 0,
        started: float | None = None,
    ) -> TrainState:
        """A state around ``network``: its EMA (a copy of it unless given) and a fresh Adam, or
        one that continues from ``optimizer_state``; ``started`` is when the fit began (None:
        now)."""
        started = time.perf_counter() if started is None else started
        ema = (copy.deepcopy(network) if ema is None else ema).requires_grad_(False)
        optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate_init)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        return cls(network, ema, optimizer, step=step, started=started)

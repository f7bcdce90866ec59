"""The training loop's schedule and averaging, against their formulas; conditioned rows are
paired within their class."""

import math
import time

import numpy as np
import pytest
import torch

from skflow._callbacks import EarlyStopping, LastEpoch
from skflow._distributions import StandardNormal
from skflow._run import (
    AUTO_MAX_STEPS,
    AUTO_MIN_STEPS,
    AUTO_STEPS_PER_ROW,
    TrainingConfig,
    TrainState,
    auto_max_iter,
)
from skflow._trainer import FlowMatchingTrainer
from skflow.couplings import ExactOTCoupling, IndependentCoupling, SinkhornCoupling
from skflow.paths import LinearPath
from skflow.times import UniformTimes


def make_trainer(learning_rate: str, max_iter: int = 3, ema_decay: float = 0.999):
    config = TrainingConfig(
        max_iter=max_iter,
        batch_size=4,
        learning_rate=learning_rate,
        ema_decay=ema_decay,
        verbose=0,
    )
    return FlowMatchingTrainer(
        LinearPath(),
        IndependentCoupling(),
        StandardNormal(1),
        UniformTimes(),
        config,
        np.random.default_rng(0),
    )


@pytest.mark.parametrize("learning_rate", ["constant", "cosine"])
def test_learning_rate_schedule_follows_its_formula(learning_rate):
    batches_per_epoch, max_iter = 5, 3
    total = batches_per_epoch * max_iter
    state = TrainState.start(torch.nn.Linear(1, 1), 0.1)
    # batches of 4 rows: batches_per_epoch batches in an epoch of 4 * batches_per_epoch rows
    make_trainer(learning_rate, max_iter).schedule(state, 4 * batches_per_epoch)
    optimizer, scheduler = state.optimizer, state.scheduler
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    rates.append(optimizer.param_groups[0]["lr"])
    if learning_rate == "constant":
        expected = [0.1] * (total + 1)
    else:
        expected = [0.05 * (1 + math.cos(math.pi * k / total)) for k in range(total + 1)]
    np.testing.assert_allclose(rates, expected, atol=1e-12)
    assert rates[-1] == pytest.approx(0.1 if learning_rate == "constant" else 0.0, abs=1e-12)


def test_ema_update_uses_the_warmed_up_decay():
    trainer = make_trainer("constant", ema_decay=0.9)
    ema, model = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    for step in (1, 100):
        before = [p.detach().clone() for p in ema.parameters()]
        trainer._update_ema(list(ema.parameters()), list(model.parameters()), step)
        decay = min(0.9, (1 + step) / (10 + step))
        for old, new, current in zip(before, ema.parameters(), model.parameters()):
            torch.testing.assert_close(new, decay * old + (1 - decay) * current)


def test_batches_are_near_equal_and_cover_every_row():
    batches = make_trainer("constant")._batches(torch.arange(10))
    assert [len(b) for b in batches] == [4, 3, 3]
    assert torch.equal(torch.cat(batches), torch.arange(10))


class AffineField(torch.nn.Module):
    """The smallest velocity network ``v(t, x) = a x + b``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def test_checkpoint_selection_keeps_the_best_check_and_stops_on_patience():
    # a scripted validation score, lowest at the third check: the weights of that check come back
    scores = iter([3.0, 2.0, 1.0, 1.5, 2.5, 0.0])
    snapshots = []

    def validation_loss(ema):
        snapshots.append([p.detach().clone() for p in ema.parameters()])
        return next(scores)

    trainer = make_trainer("constant", max_iter=75)  # a check every 75 / 25 = 3 epochs
    x = torch.randn(8, 1, generator=torch.Generator().manual_seed(0))
    state = TrainState.start(AffineField(), 0.1)
    checkpoint = EarlyStopping(state.ema, validation_loss, n_iter_no_change=2, tol=0.0)
    trainer.run(state, x, None, torch.Generator().manual_seed(1), 75, checkpoint)
    ema, history = state.ema, state.history
    assert history.stop_reason == "early_stopping"
    assert history.validation_loss_curve == [3.0, 2.0, 1.0, 1.5, 2.5]  # 2 checks without gain
    assert history.n_iter == 15 and history.best_iter == 9 and history.best_loss == 1.0
    for kept, snapshot in zip(ema.parameters(), snapshots[2]):
        torch.testing.assert_close(kept, snapshot)


@pytest.mark.parametrize("n_rows", [1, 50, 700, 3000, 10**5])
def test_auto_budget_is_clipped_steps_in_whole_epochs(n_rows):
    batch_size = 256
    epochs = auto_max_iter(n_rows, batch_size)
    batches = math.ceil(n_rows / min(batch_size, n_rows))
    steps = min(max(AUTO_STEPS_PER_ROW * n_rows, AUTO_MIN_STEPS), AUTO_MAX_STEPS)
    assert (epochs - 1) * batches < steps <= epochs * batches


def test_a_time_budget_drives_the_schedule_and_ends_the_run():
    """With max_time, the cosine decay follows the share of the time used when that is larger
    than the share of the epochs: the step size is near zero when time runs out."""
    config = TrainingConfig(
        max_iter=10**6, batch_size=4, learning_rate="cosine", ema_decay=0.9, verbose=0, max_time=0.3
    )
    trainer = FlowMatchingTrainer(
        LinearPath(), IndependentCoupling(), StandardNormal(1), UniformTimes(), config,
        np.random.default_rng(0),
    )  # fmt: skip
    x = torch.randn(8, 1, generator=torch.Generator().manual_seed(0))
    TrainState.start(AffineField(), 0.1)  # torch's first Adam imports torch._dynamo (about 1 s)
    state = TrainState.start(AffineField(), 0.1)
    trainer.schedule(state, x.shape[0])
    scores = []
    checkpoint = EarlyStopping(
        state.ema, lambda ema: scores.append(len(scores)) or 1.0, n_iter_no_change=10**6, tol=0.0
    )
    trainer.run(state, x, None, torch.Generator().manual_seed(1), 10**6, checkpoint)
    assert state.history.stop_reason == "max_time"
    assert time.perf_counter() - state.started < 0.3 + 0.2
    assert state.optimizer.param_groups[0]["lr"] < 0.01  # cos(pi p) near -1: p near 1
    # a check at each 1/25 of the time, and one at the end
    assert 20 <= len(scores) <= 26


@pytest.mark.parametrize("flushed", [False, True])
def test_denormals_are_flushed_while_training_and_the_setting_restored(flushed):
    seen = []

    class Probe(AffineField):
        def forward(self, t, x):
            seen.append(float(torch.tensor([1e-40]) * 1.0) == 0.0)  # a denormal product
            return super().forward(t, x)

    torch.set_flush_denormal(flushed)
    try:
        state = TrainState.start(Probe(), 0.1)
        make_trainer("constant", max_iter=2).run(
            state,
            torch.randn(8, 1),
            None,
            torch.Generator().manual_seed(0),
            2,
            LastEpoch(state.ema),
        )
        assert seen and all(seen)  # flushed inside the loop
        assert (float(torch.tensor([1e-40]) * 1.0) == 0.0) is flushed  # restored after
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("coupling", [ExactOTCoupling(), SinkhornCoupling(0.5)])
def test_conditioned_rows_are_paired_within_their_class(coupling):
    generator = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(40, 2, generator=generator), torch.randn(40, 2, generator=generator)
    labels = torch.arange(40) % 3
    trainer = make_trainer("constant")
    trainer.coupling = coupling
    paired = trainer._pair(x0, x1, labels)
    for label in range(3):
        rows = torch.nonzero(labels == label)[:, 0]
        # each class's partners are drawn among the base rows given to that class only
        members = {tuple(r) for r in x0[rows].tolist()}
        assert {tuple(r) for r in paired[rows].tolist()} <= members
    # exact OT within a class is the class's own assignment: a permutation of its base rows
    if isinstance(coupling, ExactOTCoupling):
        rows = torch.nonzero(labels == 1)[:, 0]
        expected = coupling.pair(x0[rows], x1[rows], np.random.default_rng(0))
        torch.testing.assert_close(paired[rows], expected)
    # without conditions the coupling pairs across the whole minibatch
    across = trainer._pair(x0, x1, None)
    assert not torch.equal(across, paired)


def test_independent_pairs_stay_as_drawn_with_conditions():
    x0, x1 = torch.randn(10, 2), torch.randn(10, 2)
    trainer = make_trainer("constant")
    torch.testing.assert_close(trainer._pair(x0, x1, torch.arange(10) % 2), x0)

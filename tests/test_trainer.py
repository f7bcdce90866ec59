"""The training loop's schedule and averaging, against their formulas."""

import math

import numpy as np
import pytest
import torch

from skflow._trainer import FlowMatchingTrainer, TrainingConfig
from skflow.couplings import IndependentCoupling
from skflow.paths import LinearPath


def make_trainer(learning_rate: str, max_iter: int = 3, ema_decay: float = 0.999):
    config = TrainingConfig(
        max_iter=max_iter,
        batch_size=4,
        learning_rate_init=0.1,
        learning_rate=learning_rate,
        ema_decay=ema_decay,
        early_stopping=False,
        n_iter_no_change=1,
        tol=0.0,
        verbose=0,
    )
    return FlowMatchingTrainer(
        LinearPath(), IndependentCoupling(), lambda n, g: torch.randn(n, 1, generator=g), config,
        np.random.default_rng(0),
    )


@pytest.mark.parametrize("learning_rate", ["constant", "cosine"])
def test_learning_rate_schedule_follows_its_formula(learning_rate):
    batches_per_epoch, max_iter = 5, 3
    total = batches_per_epoch * max_iter
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=0.1)
    scheduler = make_trainer(learning_rate, max_iter)._scheduler(optimizer, batches_per_epoch)
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

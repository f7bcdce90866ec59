"""The neural-spline-flow baseline of the quality benchmarks: zuko's NSF trained by maximum
likelihood for a fixed time budget, keeping the best epoch on a validation split of the training
rows.

The model is ``zuko.flows.NSF`` (Durkan et al., *Neural Spline Flows*, NeurIPS 2019: autoregressive
rational-quadratic spline transforms), with 3 transforms of 8 bins and a (128, 128) conditioner, on
standardised features. Training minimises the negative log-likelihood with Adam (step 1e-3) on
minibatches of 256 training rows until the time spent in :meth:`SplineFlow.fit` (process CPU time,
or wall time with ``clock="wall"``) reaches ``budget``; the validation log-likelihood (10 % of the
training rows, never the test rows) is measured about every 50 steps and the best weights are
kept. ``score_samples`` adds the standardisation's log-Jacobian back, so densities are in the
units of ``X``.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
import zuko
from sklearn.model_selection import train_test_split

BATCH_SIZE = 256
LEARNING_RATE = 1e-3
STEPS_PER_CHECK = 50


class SplineFlow:
    """NSF density trained for ``cpu_budget`` CPU seconds; ``fit`` / ``score_samples`` like sklearn.

    Parameters
    ----------
    budget : float
        Seconds the fit may take (the check happens between validation rounds, so a fit overruns
        it by at most one round).
    random_state : int
        Seeds the initialisation, the validation split and the minibatches.
    clock : {"cpu", "wall"}, default="cpu"
        Whether ``budget`` counts the process's CPU time or the wall time.
    """

    def __init__(self, budget: float, random_state: int = 0, clock: str = "cpu") -> None:
        self.budget = budget
        self.random_state = random_state
        self.clock = clock

    def fit(self, X: np.ndarray) -> SplineFlow:
        now = time.process_time if self.clock == "cpu" else time.perf_counter
        start = now()
        self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0)
        Z = self._standardise(X)
        train, val = train_test_split(Z, test_size=0.1, random_state=self.random_state)
        generator = torch.Generator().manual_seed(self.random_state)
        torch.manual_seed(self.random_state)
        self.flow_ = zuko.flows.NSF(X.shape[1], transforms=3, bins=8, hidden_features=(128, 128))
        optimizer = torch.optim.Adam(self.flow_.parameters(), lr=LEARNING_RATE)
        train, val = (torch.as_tensor(a, dtype=torch.float32) for a in (train, val))
        batches_per_epoch = math.ceil(len(train) / BATCH_SIZE)
        epochs_per_check = max(1, round(STEPS_PER_CHECK / batches_per_epoch))
        best, best_state, self.n_epochs_, self.best_epoch_ = -math.inf, None, 0, 0
        while now() - start < self.budget:
            for _ in range(epochs_per_check):
                for index in torch.randperm(len(train), generator=generator).split(BATCH_SIZE):
                    loss = -self.flow_().log_prob(train[index]).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                self.n_epochs_ += 1
            with torch.no_grad():
                score = float(self.flow_().log_prob(val).mean())
            if score > best:
                best, self.best_epoch_ = score, self.n_epochs_
                best_state = copy.deepcopy(self.flow_.state_dict())
        if best_state is not None:
            self.flow_.load_state_dict(best_state)
        return self

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        flow = copy.deepcopy(self.flow_).double()  # float64 scoring, like the other models
        with torch.no_grad():
            log_prob = flow().log_prob(torch.as_tensor(self._standardise(X))).numpy()
        return log_prob - np.log(self.scale_).sum()

    def describe(self) -> str:
        return f"best epoch {self.best_epoch_} of {self.n_epochs_}"

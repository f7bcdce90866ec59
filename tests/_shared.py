"""Data and training budgets shared by the estimator tests."""

import numpy as np
import torch

FAST = dict(hidden_layer_sizes=(16,), max_iter=3, n_steps=4, batch_size=64)
"""A budget for scikit-learn's checks: the model is not good, only quick."""

SMALL = dict(hidden_layer_sizes=(64, 64), max_iter=40, batch_size=128, n_steps=10)
"""A budget that learns a 2-D Gaussian well in a few seconds."""

MEAN = np.array([3.0, -1.0])
FACTOR = np.array([[1.0, 0.0], [0.6, 0.5]])
COVARIANCE = FACTOR @ FACTOR.T


def gaussian(n, seed):
    """Rows of N(MEAN, COVARIANCE) in units far from standard, to exercise the standardisation."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) @ FACTOR.T + MEAN


class ExactGaussianVelocity(torch.nn.Module):
    """Marginal velocity of the linear path from N(0, I) to N(m, C):
    ``E[x1 - x0 | x_t = x] = m + (t C - (1 - t) I) S_t^{-1} (x - t m)``,
    ``S_t = (1 - t)^2 I + t^2 C``.
    """

    def __init__(self, mean, covariance):
        super().__init__()
        self.register_buffer("m", torch.as_tensor(mean))
        self.register_buffer("C", torch.as_tensor(covariance))

    def forward(self, t, x):
        t = t.to(x.dtype)[:, None, None]
        eye = torch.eye(x.shape[1], dtype=x.dtype)
        S = (1 - t) ** 2 * eye + t**2 * self.C
        gain = torch.linalg.solve(S, (t * self.C - (1 - t) * eye).transpose(1, 2))
        return self.m + ((x - t[:, :, 0] * self.m)[:, None, :] @ gain)[:, 0, :]

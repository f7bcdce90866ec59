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


def column_kinds(estimator) -> list[str]:
    """The kind of each column of a fitted estimator's layout (``columns_``), in order."""
    return [column.kind for column in estimator.columns_.columns]


def with_holes(X, share, seed):
    """A copy of ``X`` with each cell NaN with probability ``share``."""
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < share] = np.nan
    return X


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


def exact_gaussian_loss(flow, X, times) -> np.ndarray:
    """``(n_rows, n_times)``: the flow-matching loss at the rows of ``X`` of the exact velocity
    field (:class:`ExactGaussianVelocity`) of the law N(MEAN, COVARIANCE) standardised by
    ``flow``, in closed form. With ``v(t, y) = m + (y - t m) G_t`` the error at
    ``x_t = (1 - t) x0 + t x`` is ``a + x0 B`` with ``a = m + t (x - m) G_t - x`` and
    ``B = (1 - t) G_t + I``, so its mean square over ``x0 ~ N(0, I)`` is
    ``|a|^2 + trace(B^T B)``."""
    m = (MEAN - flow.mean_) / flow.scale_
    C = COVARIANCE / np.outer(flow.scale_, flow.scale_)
    u = (X - flow.mean_) / flow.scale_
    eye = np.eye(len(m))
    columns = []
    for t in times:
        G = np.linalg.solve((1 - t) ** 2 * eye + t**2 * C, (t * C - (1 - t) * eye).T)
        a = m + t * (u - m) @ G - u
        B = (1 - t) * G + eye
        columns.append((a**2).sum(axis=1) + (B**2).sum())
    return np.column_stack(columns)

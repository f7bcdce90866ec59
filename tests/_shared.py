"""Data and training budgets shared by the estimator tests."""

import numpy as np

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

"""
===============================================
Density estimation on two-dimensional shapes
===============================================

:class:`~skflow.FlowMatchingDensity` learns a velocity field :math:`v_\\theta(t, x)` whose ODE
carries standard normal noise at :math:`t = 0` onto the data at :math:`t = 1`. This example fits it
to two 2-D shapes, two interleaved half-moons and a ring of eight Gaussians, and shows for each

1. the training rows,
2. the learned density, ``exp(score_samples(grid))``,
3. new rows drawn with ``sample``,
4. the trajectories along which noise becomes data.

**Training budget.** To build in seconds, each flow is smaller than the default and trained for
fewer steps: 1000 rows, ``hidden_layer_sizes=(64, 64, 64)``, ``batch_size=128``,
``max_iter=300`` with a larger first step, ``learning_rate_init=1e-2``. Early stopping (on by
default) holds out 100 of the rows to score the model on 25 times during training and keeps the
best check; here the held-out likelihood was still improving at the end, so all 300 epochs of the
other 900 rows run (2400 optimiser steps, seconds on one core). The densities are accordingly a
little blurred; the defaults (four hidden layers of 128 with GELU, minibatches of up to 1024 rows
and ``max_iter="auto"``, at least 3,000 steps) give sharper ones. Every number and comparison the
text states is checked by an ``assert`` in the code.
"""

# %%
# Two shapes
# ----------
# ``make_moons`` from scikit-learn, and eight Gaussians of standard deviation 0.1 on a circle of
# radius 2 (drawn with NumPy).
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import make_moons

from skflow import FlowMatchingDensity
from skflow.solvers import integrate


def eight_gaussians(n_rows, seed):
    rng = np.random.default_rng(seed)
    centres = 2 * np.exp(2j * np.pi * rng.integers(0, 8, size=n_rows) / 8)
    return np.column_stack([centres.real, centres.imag]) + 0.1 * rng.normal(size=(n_rows, 2))


X_moons, _ = make_moons(n_samples=1000, noise=0.06, random_state=0)
shapes = {"two moons": X_moons, "eight Gaussians": eight_gaussians(1000, seed=0)}

# %%
# Fit one flow per shape
# ----------------------
# Every hyperparameter not named here keeps its default: the linear path (rectified flow), the
# independent coupling, RK4 with 20 steps and the exact divergence for the likelihood.
budget = dict(
    hidden_layer_sizes=(64, 64, 64),
    batch_size=128,
    max_iter=300,
    learning_rate_init=1e-2,
    random_state=0,
)
flows = {name: FlowMatchingDensity(**budget).fit(X) for name, X in shapes.items()}
for name, flow in flows.items():
    print(f"{name}: {flow.n_iter_} epochs, {flow.t_} steps, last loss {flow.loss_curve_[-1]:.3f}")
    assert flow.stop_reason_ == "max_iter" and flow.t_ == 2400

# %%
# Trajectories from noise to data
# -------------------------------
# ``sample`` and ``inverse_transform`` return the end points of the ODE only. The intermediate
# points come from the same public pieces they use: the fitted network ``model_`` (a velocity field
# on the standardised data, called as ``model_(t, x)``), the solver
# :func:`skflow.solvers.integrate` with ``return_path=True`` on the flow's time grid (its steps
# shorten toward the data, ``step_exponent``), and the standardisation ``mean_`` and ``scale_``.
# The linear path runs from ``t = 0`` to ``t = 1``.


def trajectories(flow, n_rows, n_steps=20, seed=0):
    """Points of ``n_rows`` base draws at each of the ``n_steps + 1`` times, in the units of X."""
    z = torch.randn(n_rows, flow.n_features_in_, generator=torch.Generator().manual_seed(seed))

    def velocity(t, x):
        return flow.model_(t.expand(x.shape[0]), x)

    with torch.no_grad():
        path = integrate(
            velocity,
            z,
            0.0,
            1.0,
            method=flow.solver,
            n_steps=n_steps,
            step_exponent=flow.step_exponent,
            return_path=True,
        )
    return path.numpy() * flow.scale_ + flow.mean_


# %%
# Data, density, samples and trajectories
# ---------------------------------------
# The density is evaluated on a 70 x 70 grid with ``score_samples`` (log-density in the units of
# ``X``). The samples are fresh draws pushed through the flow. The trajectories start at grey
# noise and end at the coloured points. The linear path moves each training *pair* of a base draw
# and a data row along a straight line, but the independent coupling pairs a base draw with rows
# of every mode, and the learned field averages their directions: the trajectories bend, most of
# them clearly (the median ratio of the distance between a trajectory's end points to its length
# is below 0.75, where a straight line has 1). Minibatch optimal transport (``coupling="ot"``)
# straightens them: see :doc:`plot_paths_couplings`.


def straightness(paths):
    """Ratio of the distance between the end points to the length, per trajectory."""
    length = np.linalg.norm(np.diff(paths, axis=0), axis=2).sum(axis=0)
    return np.linalg.norm(paths[-1] - paths[0], axis=1) / length


fig, axes = plt.subplots(len(shapes), 4, figsize=(13, 6.6))
for row, (name, X) in zip(axes, shapes.items()):
    flow = flows[name]
    paths = trajectories(flow, 60)
    assert np.median(straightness(paths)) < 0.75
    new_rows = flow.sample(1000, random_state=1)
    # one frame per shape, wide enough for the data and most of the noise the trajectories start at
    lo = np.minimum(X.min(axis=0), np.percentile(paths[0], 2, axis=0)) - 0.3
    hi = np.maximum(X.max(axis=0), np.percentile(paths[0], 98, axis=0)) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 70), np.linspace(lo[1], hi[1], 70))
    density = np.exp(flow.score_samples(np.column_stack([gx.ravel(), gy.ravel()])))

    row[0].scatter(*X.T, s=2, color="tab:blue")
    row[0].set_title(f"{name}: training rows")
    row[1].pcolormesh(gx, gy, density.reshape(gx.shape), cmap="viridis", shading="auto")
    row[1].set_title("learned density")
    row[2].scatter(*new_rows.T, s=2, color="tab:orange")
    row[2].set_title("sample(1000)")
    row[3].plot(paths[:, :, 0], paths[:, :, 1], color="tab:grey", lw=0.6, alpha=0.6)
    row[3].scatter(*paths[0].T, s=5, color="tab:grey", label="t = 0 (noise)")
    row[3].scatter(*paths[-1].T, s=5, color="tab:red", label="t = 1 (data)")
    row[3].set_title("trajectories")
    row[3].legend(loc="lower right", fontsize="x-small", markerscale=2)
    for ax in row:
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
fig.tight_layout()

# %%
# Held-out log-likelihood
# -----------------------
# ``score`` is the mean log-likelihood, the number that ``GridSearchCV`` maximises. On new draws
# from the same shapes:
X_moons_test, _ = make_moons(n_samples=500, noise=0.06, random_state=1)
for name, X_test in zip(shapes, [X_moons_test, eight_gaussians(500, seed=1)]):
    print(f"{name}: held-out mean log-likelihood {flows[name].score(X_test):.3f} nats per row")

plt.show()

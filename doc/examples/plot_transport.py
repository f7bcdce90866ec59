"""
==============================================
Transport between two distributions
==============================================

:class:`~skflow.InterpolantTransport` learns a map between two distributions that are known only
by samples, here two interleaved half-moons (the **source**, :math:`t = 0`) and eight Gaussians on
a circle (the **target**, :math:`t = 1`). Both sets of rows go into one ``X``; ``y`` says which
distribution each row comes from, and the smaller label is the source. This example

1. fits two transports, one with the independent coupling (I-CFM) and one with minibatch optimal
   transport (OT-CFM, the estimator's default ``coupling="ot"``),
2. pushes held-out source rows to the target with ``transform`` and draws their trajectories,
   built from the public ``velocity(X, t)``,
3. scores each map with ``score`` (minus the squared 2-Wasserstein distance between transported
   source rows and held-out target rows) and measures how far each point travels,
4. shows the interpolant's density at intermediate times with ``log_density(X, t)``.

**Training budget.** Each model has ``hidden_layer_sizes=(64, 64, 64)`` and trains for
``max_iter=150`` epochs of ``batch_size=128`` over 1000 target rows (1200 steps) with
``learning_rate_init=1e-2``: seconds on one core.
``benchmarks/results/transport.md`` runs the same comparison with larger models and more steps.
Every comparison the text makes is checked by an ``assert`` in the code.
"""

# %%
# Two samples in one ``X``
# ------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.neighbors import KernelDensity

from skflow import InterpolantTransport


def eight_gaussians(n_rows, rng):
    centres = 2 * np.exp(2j * np.pi * rng.integers(0, 8, size=n_rows) / 8)
    return np.column_stack([centres.real, centres.imag]) + 0.1 * rng.normal(size=(n_rows, 2))


def two_samples(n_rows, seed):
    source, _ = make_moons(n_samples=n_rows, noise=0.06, random_state=seed)
    source = 1.5 * (source - [0.5, 0.25])  # centred, about the size of the target
    target = eight_gaussians(n_rows, np.random.default_rng(seed))
    return np.vstack([source, target]), np.repeat([0, 1], n_rows)


X, y = two_samples(1000, 0)
X_test, y_test = two_samples(500, 1)
source_test, target_test = X_test[y_test == 0], X_test[y_test == 1]

budget = dict(
    hidden_layer_sizes=(64, 64, 64),
    batch_size=128,
    max_iter=150,
    learning_rate_init=1e-2,
    random_state=0,
    source_density=KernelDensity(bandwidth=0.1),
)
transports = {
    "independent (I-CFM)": InterpolantTransport(coupling="independent", **budget).fit(X, y),
    "minibatch OT (OT-CFM)": InterpolantTransport(coupling="ot", **budget).fit(X, y),
}

# %%
# Maps and trajectories
# ---------------------
# ``transform`` integrates the learned ODE from :math:`t = 0` to :math:`t = 1` (RK4, 20 steps).
# The intermediate points of a trajectory come from ``velocity(X, t)``, the learned field in the
# units of ``X``, with explicit Euler steps.


def trajectory(transport, X, n_steps=20):
    points = [X]
    for k in range(n_steps):
        x = points[-1]
        points.append(x + transport.velocity(x, k / n_steps) / n_steps)
    return np.stack(points)


shown = source_test[:150]
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
axes[0].scatter(*source_test.T, s=3, label="source (t = 0)")
axes[0].scatter(*target_test.T, s=3, label="target (t = 1)")
axes[0].set_title("held-out rows of the two samples")
axes[0].legend(loc="lower right", fontsize="small", markerscale=3)
for ax, (name, transport) in zip(axes[1:], transports.items()):
    path = trajectory(transport, shown)
    ax.plot(path[:, :, 0], path[:, :, 1], color="tab:grey", lw=0.5, alpha=0.6)
    ax.scatter(*shown.T, s=4, color="tab:blue")
    ax.scatter(*transport.transform(shown).T, s=4, color="tab:red")
    ax.set_title(f"{name}: trajectories")
for ax in axes:
    ax.set_aspect("equal")
    ax.set_xlim(-2.8, 2.8)
    ax.set_ylim(-2.8, 2.8)
fig.tight_layout()

# %%
# Both maps carry most points onto the eight modes: at least 80 % of the held-out source rows land
# within 0.5 of a mode's centre (the modes have a standard deviation of 0.1). The OT-coupled one
# moves each source point to a nearby mode along an almost straight line (the median ratio of the
# distance between a trajectory's end points to its length is above 0.95, where a straight line
# has 1); the independent one sends points across the picture on curved paths (a median below
# 0.8). ``score`` judges where the points land, and is higher for the OT map here; the mean squared
# displacement :math:`E\,\lVert T(x) - x \rVert^2` judges how far they travel, which optimal
# transport minimises: it is smaller for the OT map too.
modes = 2 * np.exp(2j * np.pi * np.arange(8) / 8)
modes = np.column_stack([modes.real, modes.imag])
score, cost, straightness = {}, {}, {}
for name, transport in transports.items():
    moved = transport.transform(source_test)
    to_mode = np.linalg.norm(moved[:, None, :] - modes[None], axis=2).min(axis=1)
    assert np.mean(to_mode < 0.5) >= 0.8
    path = trajectory(transport, shown)
    length = np.linalg.norm(np.diff(path, axis=0), axis=2).sum(axis=0)
    straightness[name] = np.median(np.linalg.norm(path[-1] - path[0], axis=1) / length)
    score[name] = transport.score(X_test, y_test)
    cost[name] = np.mean(np.sum((moved - source_test) ** 2, axis=1))
    print(
        f"{name:22s} score {score[name]:.3f}, displacement {cost[name]:.3f}, "
        f"straightness {straightness[name]:.3f}"
    )
independent, ot_coupled = transports
assert straightness[ot_coupled] > 0.95 and straightness[independent] < 0.8
assert score[ot_coupled] > score[independent] and cost[ot_coupled] < cost[independent]

# %%
# The density of the interpolant at intermediate times
# ----------------------------------------------------
# ``log_density(X, t)`` is the log-density of the interpolant at time ``t``: the source density at
# the point the ODE pulls ``x`` back to, plus the integrated divergence. The source density is the
# ``source_density`` estimator fitted on the (standardised) source rows; the models above use a
# :class:`~sklearn.neighbors.KernelDensity` of bandwidth 0.1, sharper on the moons than the
# default five-component Gaussian mixture. At ``t = 0`` it is the source density,
# at ``t = 1`` the learned target density (``score_samples``). Each panel costs one likelihood
# ODE per grid point, so the grid is coarse. The colours span the top 6 nats of each panel.
transport = transports["minibatch OT (OT-CFM)"]
gx, gy = np.meshgrid(np.linspace(-2.8, 2.8, 50), np.linspace(-2.8, 2.8, 50))
grid = np.column_stack([gx.ravel(), gy.ravel()])
times = [0.0, 0.25, 0.5, 0.75, 1.0]
fig, axes = plt.subplots(1, len(times), figsize=(14, 3.1))
for ax, t in zip(axes, times):
    log_density = transport.log_density(grid, t=t).reshape(gx.shape)
    ax.pcolormesh(gx, gy, log_density, vmin=log_density.max() - 6, cmap="viridis", shading="auto")
    ax.set_title(f"t = {t}")
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %%
# The moons flow onto the circle and gather at the eight modes. A continuous map cannot tear
# them apart, so at ``t = 1`` thin filaments of low density still join the modes: halfway between
# two neighbouring modes the log-density is 2 to 6 nats below its value at the modes, on average
# over the eight gaps. That is the mass between the modes that ``benchmarks/results/transport.md``
# blames for OT-CFM stalling a little above the W2 noise floor there.
halfway = 2 * np.exp(2j * np.pi * (np.arange(8) + 0.5) / 8)
halfway = np.column_stack([halfway.real, halfway.imag])
gap = transport.log_density(modes, t=1.0).mean() - transport.log_density(halfway, t=1.0).mean()
print(f"log-density at the modes minus halfway between them: {gap:.2f} nats")
assert 2 < gap < 6

plt.show()

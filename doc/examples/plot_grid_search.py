"""
==========================================================
Choosing hyperparameters with GridSearchCV in a Pipeline
==========================================================

:meth:`FlowMatchingDensity.score <skflow.FlowMatchingDensity.score>` is the mean log-likelihood of
the rows it is given, so :class:`~sklearn.model_selection.GridSearchCV` can compare flows by
held-out likelihood without a ``scoring`` argument. This example

1. puts the flow behind a preprocessing step in a :class:`~sklearn.pipeline.Pipeline` (a log
   transform of skewed, positive data),
2. searches over the probability path and the minibatch coupling by 3-fold cross-validation,
3. reads the results, refits the best candidate with a larger budget, and turns its log-density
   back into the units of the raw data.

**Training budget.** Every candidate is small and trained briefly, so that each of the 6
candidates x 3 folds = 18 fits takes seconds on one core (the table below gives the mean fit
times): ``hidden_layer_sizes=(64, 64, 64)``, 500
training rows per fold, ``max_iter=40`` epochs of ``batch_size=128`` with
``learning_rate_init=1e-2``. Early stopping (on by default) holds out 50 of each fold's 500 rows
and keeps the best of its checks, so at most 160 steps are trained on the other 450. The ranking
of such short fits is noisy and may change with the budget. The winner is then refitted once on
all 750 rows with ``max_iter=400`` (at most 2400 steps on the 675 rows left after the held-out
split). With real budgets pass ``n_jobs`` to spread the fits over cores (see the user
guide).
"""

# %%
# Skewed, positive data
# ---------------------
# Two features that are positive and skewed, like prices or durations: the exponential of two
# interleaved half-moons. A density model is easier to fit on their logarithms, so the pipeline
# takes ``log`` first.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_moons
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skflow import FlowMatchingDensity

moons, _ = make_moons(n_samples=750, noise=0.08, random_state=0)
X = np.exp(moons)

pipeline = make_pipeline(
    FunctionTransformer(np.log, inverse_func=np.exp),
    FlowMatchingDensity(
        hidden_layer_sizes=(64, 64, 64),
        batch_size=128,
        max_iter=40,
        learning_rate_init=1e-2,
        random_state=0,
    ),
)

# %%
# The search
# ----------
# Parameters of a step are named ``<step>__<parameter>``; ``make_pipeline`` names the steps after
# their classes in lower case. Every candidate's held-out score is the mean log-density of the
# held-out fold's rows *after* the log transform: the same transform for every candidate, so the
# scores are comparable (to compare pipelines with different transforms, correct for their
# Jacobians as in the last section). ``KFold(shuffle=True)`` mixes the rows before cutting the
# folds.
# ``refit=False``: the winner is refitted below with a larger budget instead.
param_grid = {
    "flowmatchingdensity__path": ["linear", "trig", "vp"],
    "flowmatchingdensity__coupling": ["independent", "ot"],
}
search = GridSearchCV(pipeline, param_grid, cv=KFold(3, shuffle=True, random_state=0), refit=False)
search.fit(X)
print("best parameters:", search.best_params_)
print(f"best mean held-out log-likelihood: {search.best_score_:.3f} nats per row")

# %%
# The results
# -----------
# ``cv_results_`` holds every candidate's fold scores and fit times (``pandas.DataFrame(
# search.cv_results_)`` makes a table of it).
results = search.cv_results_
print(f"{'path':>7} {'coupling':>12} {'mean LL':>8} {'std':>6} {'fit s':>6} {'rank':>4}")
for k in np.argsort(results["rank_test_score"]):
    params = results["params"][k]
    print(
        f"{params['flowmatchingdensity__path']:>7} {params['flowmatchingdensity__coupling']:>12} "
        f"{results['mean_test_score'][k]:8.3f} {results['std_test_score'][k]:6.3f} "
        f"{results['mean_fit_time'][k]:6.2f} {results['rank_test_score'][k]:4d}"
    )

# %%
# The mean held-out log-likelihood of each path and coupling, with its standard deviation over the
# folds:
paths = param_grid["flowmatchingdensity__path"]
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for offset, coupling in [(-0.1, "independent"), (0.1, "ot")]:
    index = [
        results["params"].index(
            {"flowmatchingdensity__coupling": coupling, "flowmatchingdensity__path": path}
        )
        for path in paths
    ]
    ax.errorbar(
        np.arange(len(paths)) + offset,
        results["mean_test_score"][index],
        yerr=results["std_test_score"][index],
        fmt="o",
        capsize=3,
        label=f"coupling={coupling!r}",
    )
ax.set_xticks(range(len(paths)), paths)
ax.set_xlabel("path")
ax.set_ylabel("mean held-out log-likelihood")
ax.set_title("3-fold cross-validation")
ax.legend()
fig.tight_layout()

# %%
# The best pipeline, in the units of the raw data
# -----------------------------------------------
# The best parameters, with a budget 10 times larger, refitted on all rows (this is what
# ``refit=True`` does, at the search's budget). The pipeline's ``score_samples`` is
# the log-density of :math:`u = \log x`; the density of :math:`x` itself follows from the change
# of variables :math:`p_X(x) = p_U(\log x) \prod_j 1 / x_j`, that is
# ``score_samples(x) - log(x).sum(axis=1)``. Its ``inverse_transform`` runs the steps backwards:
# the flow maps latent standard normal rows to log-space rows, and ``exp`` maps those to new rows
# of ``X``.
best = clone(pipeline).set_params(**search.best_params_, flowmatchingdensity__max_iter=400).fit(X)
gx, gy = np.meshgrid(np.linspace(0.25, 8.5, 60), np.linspace(0.45, 3.3, 60))
grid = np.column_stack([gx.ravel(), gy.ravel()])
log_density_x = best.score_samples(grid) - np.log(grid).sum(axis=1)
new_rows = best.inverse_transform(np.random.default_rng(1).standard_normal((600, 2)))

fig, (ax_data, ax_density) = plt.subplots(1, 2, figsize=(11, 4))
ax_data.scatter(*X.T, s=3, label="data")
ax_data.scatter(*new_rows.T, s=3, alpha=0.6, label="best.inverse_transform(N(0, I) draws)")
ax_data.set_title("data and new rows")
ax_data.legend(fontsize="small", markerscale=3)
log_density_x = log_density_x.reshape(gx.shape)
mesh = ax_density.pcolormesh(
    gx, gy, log_density_x, vmin=log_density_x.max() - 8, cmap="viridis", shading="auto"
)
fig.colorbar(mesh, ax=ax_density, label="log-density (top 8 nats)")
ax_density.set_title("log-density of the best pipeline, units of X")
for ax in (ax_data, ax_density):
    ax.set_xlim(0.25, 8.5)
    ax.set_ylim(0.45, 3.3)
fig.tight_layout()

plt.show()

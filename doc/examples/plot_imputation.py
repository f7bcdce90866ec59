"""
==========================================================
Imputing missing values, with their uncertainty
==========================================================

:class:`~skflow.FlowMatchingImputer` learns, from the observed cells of an incomplete table, the
law of any of its columns given the others, and fills each hole with draws from that law. This
example removes the second coordinate of a third of the points of a noisy circle, where the
missing value given the first is one of two: above or below the centre. It compares

1. the draws of :meth:`~skflow.FlowMatchingImputer.sample_imputations` with the truth,
2. the point imputations of :meth:`~skflow.FlowMatchingImputer.transform` (the median of the
   draws) and of :class:`~sklearn.impute.IterativeImputer`, whose regression predicts the mean
   of the two arcs,
3. the coverage of the 90 % intervals of the draws.

**Training budget.** The imputer's network has two hidden layers of 64 instead of the default
four of 128; early stopping, on by default, ends the fit. Every number and comparison the text
states is checked by an ``assert`` in the code.
"""

# %%
# A circle with holes
# -------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer

from skflow import FlowMatchingImputer

rng = np.random.default_rng(0)
angle = rng.uniform(0, 2 * np.pi, 1500)
X = np.column_stack([np.cos(angle), np.sin(angle)]) + 0.05 * rng.standard_normal((1500, 2))
X_missing = X.copy()
holes = rng.random(1500) < 1 / 3
X_missing[holes, 1] = np.nan

imputer = FlowMatchingImputer(hidden_layer_sizes=(64, 64), random_state=0).fit(X_missing)
draws = imputer.sample_imputations(X_missing, n_imputations=20, random_state=0)
point = imputer.transform(X_missing)
iterative = IterativeImputer(random_state=0).fit_transform(X_missing)

fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
axes[0].scatter(*X[~holes].T, s=3, c="0.7", label="observed rows")
axes[0].scatter(*X[holes].T, s=3, c="C0", label="rows with a hole (truth)")
axes[1].scatter(*X[~holes].T, s=3, c="0.7")
axes[1].scatter(*draws[0, holes].T, s=3, c="C1", label="one draw of the flow")
axes[2].scatter(*X[~holes].T, s=3, c="0.7")
axes[2].scatter(*point[holes].T, s=3, c="C2", label="flow: median of 16 draws")
axes[2].scatter(*iterative[holes].T, s=3, c="C3", label="IterativeImputer")
for ax in axes:
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=8)
axes[0].set_title("truth")
axes[1].set_title("sample_imputations")
axes[2].set_title("point imputations")
fig.tight_layout()

# %%
# Draws land on the circle
# ------------------------
# A draw is a plausible value: nearly every drawn point lies on the circle. IterativeImputer's
# values, conditional means, mostly sit between the arcs; the median of the flow's draws falls on
# the likelier arc when one is, and between them when both are about as likely.


def on_circle(points):
    return np.mean(np.abs(np.linalg.norm(points, axis=1) - 1) < 0.2)


shares = {
    "draws": on_circle(draws[:, holes].reshape(-1, 2)),
    "median of draws": on_circle(point[holes]),
    "IterativeImputer": on_circle(iterative[holes]),
}
for name, share in shares.items():
    print(f"{name:>17}: {share:.0%} of the imputed points within 0.2 of the circle")
assert shares["draws"] > 0.9 and shares["IterativeImputer"] < 0.5

# %%
# Honest intervals
# ----------------
# The 5 % and 95 % quantiles of the 20 draws of a hole bound its value with probability 0.9 when
# the draws follow the right law. Of 20 draws, the ``j``-th smallest lies below a new value of the
# same law with probability ``j / 21``: NumPy's ``method="weibull"`` takes the quantiles at those
# ranks (its default interpolation would give an interval of about 81 %, not 90 %). The share of
# the true values inside their interval is close to 0.9.
truth = X[holes, 1]
low, high = np.quantile(draws[:, holes, 1], [0.05, 0.95], axis=0, method="weibull")
coverage = np.mean((low <= truth) & (truth <= high))
print(f"coverage of the 90 % intervals: {coverage:.2f}")
assert 0.85 <= coverage <= 0.95

"""
============================================
Outlier detection with a flow-matching model
============================================

:class:`~skflow.FlowMatchingOutlierDetector` fits a continuous normalizing flow to mostly-normal
rows and scores new rows by its density: the lower ``score_samples``, the more abnormal the
row. By default the score combines the density with two blurred versions of it (a multi-scale
score, last section); the first three sections use the density itself, ``bandwidth=0``, whose
score is the log-density. This example

1. fits the detector on normal data (two interleaved half-moons),
2. compares the score distributions of new inliers and of outliers and draws the ROC curve,
3. shows how ``contamination`` sets the threshold ``offset_`` that ``predict`` and
   ``decision_function`` use,
4. scores outliers that came as a small cluster among the training rows, where a blurred
   density (``bandwidth``) and the default multi-scale score do what the density itself cannot.

To build in seconds, the flow is smaller than the default and trained on 300 rows with a small
budget (``hidden_layer_sizes=(64, 64)``, ``max_iter=400``, ``batch_size=64``); early stopping, on
by default, holds out 30 of the rows to choose the best checkpoint, and here runs the whole budget
on the other 270: 2000 steps, a few seconds on one core. More steps give a sharper density.
Every number and comparison the text states is checked by an ``assert`` in the code.
"""

# %%
# Normal data to train on, new inliers and outliers to test on
# ------------------------------------------------------------
# The training rows are all normal. The test rows are new draws from the same two moons and rows
# drawn uniformly over a box around them: most of those fall off the moons, a few land on them.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from sklearn.datasets import make_moons
from sklearn.metrics import RocCurveDisplay, roc_auc_score

from skflow import FlowMatchingDensity, FlowMatchingOutlierDetector
from skflow.outlier import DENSITY_DEFAULTS

X_train, _ = make_moons(n_samples=300, noise=0.08, random_state=0)
X_inliers, _ = make_moons(n_samples=300, noise=0.08, random_state=1)
X_outliers = np.random.default_rng(2).uniform([-1.5, -1.0], [2.5, 1.5], size=(60, 2))
X_test = np.vstack([X_inliers, X_outliers])
is_outlier = np.r_[np.zeros(len(X_inliers), dtype=bool), np.ones(len(X_outliers), dtype=bool)]

# the detector's default density (estimator=None) with a smaller network and budget
density = FlowMatchingDensity(
    **DENSITY_DEFAULTS, hidden_layer_sizes=(64, 64), max_iter=400, batch_size=64
)
detector = FlowMatchingOutlierDetector(density, bandwidth=0.0, random_state=0).fit(X_train)
assert detector.estimator_.stop_reason_ == "max_iter" and detector.estimator_.t_ == 2000

# %%
# Scores of inliers and outliers, and the ROC curve
# -------------------------------------------------
# With ``bandwidth=0``, ``score_samples`` is the log-density of the flow (in the units of
# ``X``). New inliers score about as high as the training rows (medians within half a nat);
# outliers score far lower (a median at least 2 nats below), except those that landed on the
# moons. The ROC curve ranks the test rows by ``-score_samples``: no threshold is involved.
scores = detector.score_samples(X_test)
auc = roc_auc_score(is_outlier, -scores)
median_train = np.median(detector.score_samples(X_train))
assert abs(np.median(scores[~is_outlier]) - median_train) < 0.5
assert np.median(scores[is_outlier]) < np.median(scores[~is_outlier]) - 2

fig, (ax_hist, ax_roc) = plt.subplots(1, 2, figsize=(11, 4))
bins = np.linspace(scores.min(), scores.max(), 40)
ax_hist.hist(scores[~is_outlier], bins=bins, alpha=0.6, label="test inliers")
ax_hist.hist(scores[is_outlier], bins=bins, alpha=0.6, label="test outliers")
ax_hist.axvline(detector.offset_, color="k", linestyle="--", label='offset_ ("auto")')
ax_hist.set_xlabel("score_samples (log-density)")
ax_hist.set_ylabel("rows")
ax_hist.legend()
RocCurveDisplay.from_predictions(is_outlier, -scores, ax=ax_roc, name="flow")
ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
ax_roc.set_title(f"ROC-AUC = {auc:.3f}")
fig.tight_layout()

# %%
# How ``contamination`` sets the threshold
# ----------------------------------------
# ``predict`` flags a row when ``decision_function = score_samples - offset_`` is negative, and
# ``offset_`` comes from the scores of the training rows:
#
# - ``contamination="auto"`` (the default) scores each training row with a flow fitted on the
#   other half of the rows (``held_out_scores_``), fits a chi-squared law to the median and the
#   quartiles of those scores and cuts at its 1 % tail: for Gaussian data this is the chi-squared
#   test of the Mahalanobis distance at level 1 %, a threshold meant for new rows;
# - ``contamination=0.1`` says that 10 % of the training rows are outliers: the rows in the lowest
#   10 % of the held-out scores are left out of the final fit, and ``offset_`` is the 10 %
#   quantile of the final flow's scores of the training rows, so that ``fit_predict`` flags 10 %
#   of them; new inliers are flagged at about that rate (within 5 points).
#
# A larger ``contamination`` raises the threshold: more outliers are caught, and more inliers are
# flagged too.
detectors = {
    '"auto"': detector,
    "0.1": FlowMatchingOutlierDetector(
        density, contamination=0.1, bandwidth=0.0, random_state=0
    ).fit(X_train),
}
flagged_share = {}
for name, fitted in detectors.items():
    flagged = fitted.predict(X_test) == -1
    flagged_share[name] = flagged[~is_outlier].mean(), flagged[is_outlier].mean()
    print(
        f"contamination={name:>6}: offset_={fitted.offset_:7.3f}, flags "
        f"{flagged[~is_outlier].mean():5.1%} of the test inliers and "
        f"{flagged[is_outlier].mean():5.1%} of the outliers"
    )

assert abs(flagged_share["0.1"][0] - 0.1) <= 0.05
assert detectors["0.1"].offset_ > detector.offset_
assert flagged_share["0.1"][1] > flagged_share['"auto"'][1]
assert flagged_share["0.1"][0] >= flagged_share['"auto"'][0]


# %%
# The region each threshold calls normal is the set where ``decision_function >= 0``, a level set
# of the learned density.
def light_greys(levels):
    """Filled-contour colours in the light half of the grey scale, under the points and
    boundaries drawn on top."""
    return dict(cmap="Greys", vmin=levels[0], vmax=2 * levels[-1] - levels[0], extend="min")


grid_x, grid_y = np.meshgrid(np.linspace(-1.7, 2.7, 88), np.linspace(-1.2, 1.7, 58))
grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
grid_scores = detector.score_samples(grid).reshape(grid_x.shape)

fig, ax = plt.subplots(figsize=(7, 4.5))
levels = np.linspace(grid_scores.max() - 8.0, grid_scores.max(), 17)  # the top 8 nats
ax.contourf(grid_x, grid_y, grid_scores, levels=levels, **light_greys(levels))
handles = []
for (name, fitted), color in zip(detectors.items(), ["k", "tab:red"]):
    boundary = fitted.decision_function(grid).reshape(grid_x.shape)
    ax.contour(grid_x, grid_y, boundary, levels=[0.0], colors=color)
    handles.append(Line2D([], [], color=color, label=f"boundary, contamination={name}"))
handles.append(ax.scatter(*X_inliers.T, s=6, color="tab:blue", label="test inliers"))
handles.append(
    ax.scatter(*X_outliers.T, s=14, color="tab:orange", marker="x", label="test outliers")
)
ax.set_title("Log-density of the flow and the boundaries of predict")
ax.legend(handles=handles, loc="lower left", fontsize="small")
fig.tight_layout()

# %%
# Outliers that come as a cluster: ``bandwidth``
# ----------------------------------------------
# Here the training rows are not clean: 300 normal rows from a Gaussian blob and 25 anomalies
# that sit together, as a rare class would. A density learns the tight little cluster as a mode of
# its own, so many of its rows score as high as normal ones: the density ranks them as outliers
# only in part (ROC-AUC below 0.85). ``bandwidth=1.0`` scores the density blurred by one standard
# deviation per feature instead, which weighs a region by the share of rows around it: 25 rows of
# 325 spread over the blur score low (ROC-AUC above 0.9). The flow's marginal at an earlier time
# of its path is that blurred density, so no second model is trained. A blur also smears thin
# normal data such as the moons above, so the default, ``bandwidth=(0.0, 0.5, 1.0)``, takes the
# lowest of the standardised scores at three blurs: a row is as abnormal as at its most telling
# scale (here also above 0.9). Its score is in interquartile ranges of the training rows' scores,
# not in nats.
rng = np.random.default_rng(3)
cluster_centre = np.array([2.2, 2.2])
X_mixed = np.vstack([rng.normal(size=(300, 2)), cluster_centre + 0.1 * rng.normal(size=(25, 2))])
X_new = np.vstack([rng.normal(size=(300, 2)), cluster_centre + 0.1 * rng.normal(size=(25, 2))])
from_cluster = np.r_[np.zeros(300, dtype=bool), np.ones(25, dtype=bool)]

fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True)
grid_x, grid_y = np.meshgrid(np.linspace(-3.5, 3.5, 71), np.linspace(-3.5, 3.5, 71))
grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
cluster_auc = {}
for ax, bandwidth in zip(axes, [0.0, 1.0, (0.0, 0.5, 1.0)]):
    blurred = FlowMatchingOutlierDetector(density, bandwidth=bandwidth, random_state=0)
    blurred.fit(X_mixed)
    auc = cluster_auc[bandwidth] = roc_auc_score(from_cluster, -blurred.score_samples(X_new))
    print(f"bandwidth={bandwidth}: ROC-AUC {auc:.3f} for the clustered anomalies")
    surface = blurred.score_samples(grid).reshape(grid_x.shape)
    levels = np.linspace(np.quantile(surface, 0.25), surface.max(), 17)
    ax.contourf(grid_x, grid_y, surface, levels=levels, **light_greys(levels))
    ax.scatter(*X_mixed[~from_cluster].T, s=4, color="tab:blue")
    ax.scatter(*X_mixed[from_cluster].T, s=14, color="tab:orange", marker="x")
    ax.set_title(f"bandwidth={bandwidth}: ROC-AUC {auc:.2f}")
fig.suptitle("Scores with 25 clustered anomalies (orange) among the training rows")
fig.tight_layout()
assert cluster_auc[0.0] < 0.85
assert cluster_auc[1.0] > 0.9 and cluster_auc[(0.0, 0.5, 1.0)] > 0.9

plt.show()

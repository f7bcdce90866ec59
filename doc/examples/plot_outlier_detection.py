"""
============================================
Outlier detection with a flow-matching model
============================================

:class:`~skflow.FlowMatchingOutlierDetector` fits a flow-matching model to mostly-normal rows and
scores each row by how badly the model explains it: by default minus its flow-matching loss, the
loss that training minimises, averaged over ten noise levels of the path. The lower
``score_samples``, the more abnormal the row. This example

1. fits the detector on normal data (two interleaved half-moons) with its defaults,
2. compares the score distributions of new inliers and of outliers, and the ROC curves of the
   default score and of the flow's log-density (``method="log_density"``),
3. shows how ``contamination`` sets the threshold ``offset_`` that ``predict`` and
   ``decision_function`` use,
4. scores outliers that came as a small cluster among the training rows, which a density fitted
   on every training row learns as a mode, and which the detector's second fit, on the most
   normal rows (``support_fraction``), leaves out.

The default detector trains a small network on 100, then 300 minibatches' worth of rows: a
fraction of a second here. Every number and comparison the text states is checked by an
``assert`` in the code.
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

from skflow import FlowMatchingOutlierDetector

X_train, _ = make_moons(n_samples=300, noise=0.08, random_state=0)
X_inliers, _ = make_moons(n_samples=300, noise=0.08, random_state=1)
X_outliers = np.random.default_rng(2).uniform([-1.5, -1.0], [2.5, 1.5], size=(60, 2))
X_test = np.vstack([X_inliers, X_outliers])
is_outlier = np.r_[np.zeros(len(X_inliers), dtype=bool), np.ones(len(X_outliers), dtype=bool)]

detector = FlowMatchingOutlierDetector(random_state=0).fit(X_train)

# %%
# Scores of inliers and outliers, and the ROC curves
# --------------------------------------------------
# New inliers score about as high as the training rows (medians within 0.2); outliers score far
# lower (a median at least 2 below), except those that landed on the moons. The ROC curve ranks
# the test rows by ``-score_samples``: no threshold is involved. On thin, curved normal data such
# as these moons, the flow's log-density (``method="log_density"``, an ODE solve per row) ranks
# the rows better than the default score: the loss at high noise levels sees little of the
# moons' fine shape.
scores = detector.score_samples(X_test)
auc = roc_auc_score(is_outlier, -scores)
median_train = np.median(detector.score_samples(X_train))
assert abs(np.median(scores[~is_outlier]) - median_train) < 0.2
assert np.median(scores[is_outlier]) < np.median(scores[~is_outlier]) - 2

log_density = FlowMatchingOutlierDetector(method="log_density", random_state=0).fit(X_train)
log_density_scores = log_density.score_samples(X_test)
auc_log_density = roc_auc_score(is_outlier, -log_density_scores)
assert auc_log_density > auc

fig, (ax_hist, ax_roc) = plt.subplots(1, 2, figsize=(11, 4))
bins = np.linspace(scores.min(), scores.max(), 40)
ax_hist.hist(scores[~is_outlier], bins=bins, alpha=0.6, label="test inliers")
ax_hist.hist(scores[is_outlier], bins=bins, alpha=0.6, label="test outliers")
ax_hist.axvline(detector.offset_, color="k", linestyle="--", label='offset_ ("auto")')
ax_hist.set_xlabel("score_samples (minus the flow-matching loss)")
ax_hist.set_ylabel("rows")
ax_hist.legend()
RocCurveDisplay.from_predictions(is_outlier, -scores, ax=ax_roc, name="flow-matching loss")
RocCurveDisplay.from_predictions(is_outlier, -log_density_scores, ax=ax_roc, name="log-density")
ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":")
ax_roc.set_title(f"ROC-AUC {auc:.3f} (loss), {auc_log_density:.3f} (log-density)")
fig.tight_layout()

# %%
# How ``contamination`` sets the threshold
# ----------------------------------------
# ``predict`` flags a row when ``decision_function = score_samples - offset_`` is negative, and
# ``offset_`` comes from the scores of the training rows:
#
# - ``contamination="auto"`` (the default) fits a chi-squared law to the median and the quartiles
#   of those scores and cuts at its 1 % tail: for standard Gaussian data this is the chi-squared
#   test of the distance from the mean at level 1 %, a threshold meant for new rows;
# - ``contamination=0.1`` says that 10 % of the training rows are outliers: ``offset_`` is the
#   10 % quantile of their scores, so that ``fit_predict`` flags 10 % of them; new inliers are
#   flagged at about that rate (within 5 points).
#
# A larger ``contamination`` raises the threshold: more outliers are caught, and more inliers are
# flagged too. The training rows' outlier scores and labels are also there under PyOD's names,
# ``decision_scores_`` and ``labels_`` (1 for an outlier).
detectors = {
    '"auto"': detector,
    "0.1": FlowMatchingOutlierDetector(contamination=0.1, random_state=0).fit(X_train),
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
assert detectors["0.1"].labels_.mean() == 0.1


# %%
# The region each threshold calls normal is the set where ``decision_function >= 0``, a level set
# of the score.
def light_greys(levels):
    """Filled-contour colours in the light half of the grey scale, under the points and
    boundaries drawn on top."""
    return dict(cmap="Greys", vmin=levels[0], vmax=2 * levels[-1] - levels[0], extend="min")


grid_x, grid_y = np.meshgrid(np.linspace(-1.7, 2.7, 88), np.linspace(-1.2, 1.7, 58))
grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
grid_scores = detector.score_samples(grid).reshape(grid_x.shape)

fig, ax = plt.subplots(figsize=(7, 4.5))
levels = np.linspace(grid_scores.max() - 8.0, grid_scores.max(), 17)  # the top 8 units
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
ax.set_title("Score of the detector and the boundaries of predict")
ax.legend(handles=handles, loc="lower left", fontsize="small")
fig.tight_layout()

# %%
# Outliers that come as a cluster
# -------------------------------
# Here the training rows are not clean: 300 normal rows from a Gaussian blob and 25 anomalies
# that sit together, as a rare class would. A density fitted on every training row learns the
# tight little cluster as a mode of its own, so many of its rows score as high as normal ones:
# with one fit (``support_fraction=1``) the log-density ranks new rows of the cluster as outliers
# only in part (ROC-AUC below 0.9). The detector's default fits twice: the second fit is on the
# three quarters of the training rows that the first scores as most normal. That leaves out
# enough of the cluster that the second fit explains it badly, and both the log-density and the
# default score (the flow-matching loss) rank its new rows as outliers (ROC-AUC above 0.95).
rng = np.random.default_rng(3)
cluster_centre = np.array([2.2, 2.2])
X_mixed = np.vstack([rng.normal(size=(300, 2)), cluster_centre + 0.1 * rng.normal(size=(25, 2))])
X_new = np.vstack([rng.normal(size=(300, 2)), cluster_centre + 0.1 * rng.normal(size=(25, 2))])
from_cluster = np.r_[np.zeros(300, dtype=bool), np.ones(25, dtype=bool)]

fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharex=True, sharey=True)
grid_x, grid_y = np.meshgrid(np.linspace(-3.5, 3.5, 71), np.linspace(-3.5, 3.5, 71))
grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
settings = {
    "log-density, one fit": dict(method="log_density", support_fraction=1.0),
    "log-density, two fits": dict(method="log_density"),
    "default (loss, two fits)": dict(),
}
cluster_auc = {}
for ax, (name, params) in zip(axes, settings.items()):
    fitted = FlowMatchingOutlierDetector(random_state=0, **params).fit(X_mixed)
    auc = cluster_auc[name] = roc_auc_score(from_cluster, -fitted.score_samples(X_new))
    print(f"{name}: ROC-AUC {auc:.3f} for the clustered anomalies")
    surface = fitted.score_samples(grid).reshape(grid_x.shape)
    levels = np.linspace(np.quantile(surface, 0.25), surface.max(), 17)
    ax.contourf(grid_x, grid_y, surface, levels=levels, **light_greys(levels))
    ax.scatter(*X_mixed[~from_cluster].T, s=4, color="tab:blue")
    ax.scatter(*X_mixed[from_cluster].T, s=14, color="tab:orange", marker="x")
    ax.set_title(f"{name}: ROC-AUC {auc:.2f}")
fig.suptitle("Scores with 25 clustered anomalies (orange) among the training rows")
fig.tight_layout()
assert cluster_auc["log-density, one fit"] < 0.9
assert cluster_auc["log-density, two fits"] > 0.95
assert cluster_auc["default (loss, two fits)"] > 0.95

plt.show()

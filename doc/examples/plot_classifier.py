"""
================================================
Classifying with a flow, and rows of no class
================================================

:class:`~skflow.FlowMatchingClassifier` is a generative classifier: one flow, conditioned on the
class, gives the density ``p(x | c)`` of every class, and Bayes' rule turns those densities and the
class frequencies into ``predict_proba``. Because it models ``x`` itself, it also knows how likely
a row is under any class: ``score_samples`` returns ``log p(x)``, the log-density of the mixture of
the classes. This example

1. draws the reliability diagram of its probabilities on a real data set, against two baselines,
   Gaussian naive Bayes (another generative classifier) and logistic regression,
2. fits it on the digits 0 to 4 and shows that ``score_samples`` tells the unseen digits 5 to 9
   apart from new zeros to fours, where the confidence of a logistic regression, which gives most
   of them a class with a probability above 0.9, does not.

**Training budget.** Both flows have two hidden layers of 64 instead of the default four of 128,
and at most 400 epochs (``max_iter=400``); with so few rows an epoch is one minibatch. Early
stopping, on by default, keeps the best of its checks. The benchmark ``bench_classification.py``
measures the default classifier on nine data sets. Every number and comparison the text states is
checked by an ``assert`` in the code.
"""

# %%
# Calibration on breast-cancer data
# ---------------------------------
# A classifier is calibrated when, among the rows it gives a probability of 0.8, about 80 % are
# of that class. The reliability diagram bins the test rows by their predicted probability of the
# positive class and plots the share of positives in each bin against the mean prediction; a
# calibrated model follows the diagonal. Most predictions here are close to 0 or 1, so the bins
# hold equal numbers of test rows (``strategy="quantile"``) rather than equal widths.
#
# Gaussian naive Bayes treats the 30 features as independent given the class. They are not (the
# radius, perimeter and area of a nucleus move together), so it counts the same evidence several
# times and pushes its probabilities to 0 and 1. The flow models the features jointly and needs no
# scaler: it standardises them itself.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import CalibrationDisplay
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skflow import FlowMatchingClassifier

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)
small = dict(hidden_layer_sizes=(64, 64), max_iter=400, random_state=0)
classifiers = {
    "FlowMatchingClassifier": FlowMatchingClassifier(**small),
    "GaussianNB": GaussianNB(),
    "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
}
test_loss = {}
fig, ax = plt.subplots(figsize=(6, 5))
for name, classifier in classifiers.items():
    proba = classifier.fit(X_train, y_train).predict_proba(X_test)[:, 1]
    test_loss[name] = log_loss(y_test, proba)
    accuracy = np.mean((proba > 0.5) == y_test)
    print(f"{name:>22}: accuracy {accuracy:.3f}, log-loss {test_loss[name]:.3f}")
    CalibrationDisplay.from_predictions(
        y_test, proba, n_bins=6, strategy="quantile", name=name, ax=ax
    )
ax.set_title("Reliability diagram, breast cancer (285 test rows)")
fig.tight_layout()

# %%
# The flow's log-loss is well below naive Bayes's, whose confident mistakes cost it dearly, and
# within reach of logistic regression's, the discriminative model made for this task.
assert test_loss["FlowMatchingClassifier"] < test_loss["GaussianNB"] / 2
assert test_loss["FlowMatchingClassifier"] < 2 * test_loss["LogisticRegression"]

# %%
# A row that belongs to no class
# ------------------------------
# A discriminative classifier spreads all of its probability over the classes it was trained on,
# whatever the row. Here the classifiers learn the digits 0 to 4, projected on their first ten
# principal components (the projection is part of the pipeline), and are shown the digits 5 to 9,
# which they have never seen. The pipeline's ``score_samples`` is the flow's log-density of the
# ten components, ``log p(x)``.
#
# The flow integrates one ODE per row and class to score a row; to keep this example short it
# scores with 8 steps of the Runge-Kutta solver (``n_steps=8``) instead of 20, and on 150 test rows
# of each kind.
digits, labels = load_digits(return_X_y=True)
seen = labels < 5
X_train, X_seen, y_train, _ = train_test_split(
    digits[seen], labels[seen], test_size=150, stratify=labels[seen], random_state=0
)
rng = np.random.default_rng(0)
X_unseen = digits[~seen][rng.choice(np.count_nonzero(~seen), 150, replace=False)]
X_new = np.vstack([X_seen, X_unseen])
is_unseen = np.r_[np.zeros(len(X_seen), dtype=bool), np.ones(len(X_unseen), dtype=bool)]

flow = make_pipeline(PCA(10, random_state=0), FlowMatchingClassifier(n_steps=8, **small))
logistic = make_pipeline(PCA(10, random_state=0), LogisticRegression(max_iter=1000))
flow.fit(X_train, y_train)
logistic.fit(X_train, y_train)

log_density = flow.score_samples(X_new)
flow_confidence = flow.predict_proba(X_new).max(axis=1)
logistic_confidence = logistic.predict_proba(X_new).max(axis=1)
auc = {
    "flow, -score_samples": roc_auc_score(is_unseen, -log_density),
    "flow, -max predict_proba": roc_auc_score(is_unseen, -flow_confidence),
    "logistic, -max predict_proba": roc_auc_score(is_unseen, -logistic_confidence),
}
for name, value in auc.items():
    print(f"ROC-AUC for telling unseen digits apart, {name:>28}: {value:.3f}")
confident = {
    "flow": np.mean(flow_confidence[is_unseen] > 0.9),
    "logistic": np.mean(logistic_confidence[is_unseen] > 0.9),
}
print(
    f"unseen digits given a class with probability above 0.9: {confident['flow']:.0%} by the "
    f"flow, {confident['logistic']:.0%} by logistic regression"
)

# %%
# Logistic regression gives most unseen digits a class with a probability above 0.9, and ranking
# the rows by its confidence tells them apart from new zeros to fours only poorly (ROC-AUC below
# 0.85). The flow's own posterior is less sure of them, though it still gives a class with a
# probability above 0.9 to about half of them. Its log-density is the score made for the
# question: the unseen digits score far lower than the seen ones, and ``-score_samples`` ranks
# them best (ROC-AUC above 0.95, a little ahead of the flow's confidence). A threshold on
# ``score_samples`` turns this into a "none of these classes" answer.
assert confident["logistic"] > 0.7 and 0.4 < confident["flow"] < confident["logistic"]
assert auc["logistic, -max predict_proba"] < 0.85
assert auc["flow, -score_samples"] > max(0.95, auc["flow, -max predict_proba"])

fig, (ax_hist, ax_conf) = plt.subplots(1, 2, figsize=(11, 4))
bins = np.linspace(np.quantile(log_density, 0.01), log_density.max(), 40)
ax_hist.hist(log_density[~is_unseen], bins=bins, alpha=0.6, label="digits 0-4 (seen classes)")
ax_hist.hist(log_density[is_unseen], bins=bins, alpha=0.6, label="digits 5-9 (unseen)")
ax_hist.set_xlabel("flow: score_samples, log p(x) of the 10 components")
ax_hist.set_ylabel("test rows")
ax_hist.set_title(f"ROC-AUC {auc['flow, -score_samples']:.3f}")
ax_hist.legend(loc="upper left")
confidence_bins = np.linspace(0.2, 1.0, 33)
for rows, label in [(~is_unseen, "digits 0-4"), (is_unseen, "digits 5-9")]:
    ax_conf.hist(logistic_confidence[rows], bins=confidence_bins, alpha=0.6, label=label)
ax_conf.set_xlabel("logistic regression: max predict_proba")
ax_conf.set_title(f"ROC-AUC {auc['logistic, -max predict_proba']:.3f}")
ax_conf.legend(loc="upper left")
fig.tight_layout()

plt.show()

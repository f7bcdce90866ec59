"""How good are FlowMatchingClassifier's probabilities with its defaults, against the generative
and the discriminative baselines?

``FlowMatchingClassifier`` is a generative classifier: one class-conditional flow gives
``log p(x | c)`` for every class, and Bayes' rule with the class frequencies gives
``predict_proba``. Its natural rivals are the other generative classifiers, Gaussian naive Bayes
and quadratic discriminant analysis (one Gaussian per class); the discriminative ones, logistic
regression and a random forest, model ``p(c | x)`` directly and set the bar it should come within
reach of. The issue that asked for this benchmark set the target: the best log-loss of the
generative baselines on every set, within reach of the discriminative ones.

Protocol: on each of nine real tables, five stratified 70/30 splits (seeds 0-4); every model is
fitted on the 70 % and scored on the 30 %. The scores of the predicted probabilities: accuracy,
log-loss (the true class's probability clipped at 1e-15), the multiclass Brier score (the mean over
rows of the squared distance between the probability vector and the one-hot label, 0 to 2) and the
expected calibration error (15 equal-width bins of the top-class probability, the gap between
accuracy and mean confidence weighted by the bin's share of rows); and the CPU seconds of ``fit``
and of ``predict_proba``. The models, with their defaults, the scaling a user would add in a
Pipeline where it matters:

* ``flow``: ``FlowMatchingClassifier(random_state=seed)`` (it standardises internally);
* ``gnb``: ``GaussianNB()`` (scale-free);
* ``qda``: ``StandardScaler`` + ``QuadraticDiscriminantAnalysis()`` (``reg_param=0``). Where it
  fails on a split of a set (a class's covariance is singular, which scikit-learn reports as an
  error, or the probabilities are not finite), the set's column is instead a regularised QDA,
  ``solver="eigen"`` with the ``shrinkage`` of each class's correlation matrix towards the
  identity, ``(1 - s) R + s I``, tuned from {0, 0.01, 0.1, 0.5} by a stratified 5-fold inner CV
  on the training part, by log-loss; the result file marks those sets. (``reg_param`` cannot
  serve: scikit-learn's svd solver, the only one that reads it, refuses a class with no more
  rows than features whatever its value.)
* ``logreg``: ``StandardScaler`` + ``LogisticRegression(max_iter=1000)``;
* ``forest``: ``RandomForestClassifier(n_estimators=300, random_state=seed)``.

The tables are read at run time, nothing is committed: scikit-learn's bundled iris, wine and
breast_cancer, and mlbench's PimaIndiansDiabetes, Glass, Vehicle, Ionosphere, Sonar and Vowel (the
R package's data files from the Debian package ``r-cran-mlbench``, through
``_outlier_data._rda``). Factors become numbers as in ``_outlier_data._numeric``, constant columns
are dropped and so is Vowel's speaker column; the result file lists each set's source.

Reproduce (from the repository root; about 15 minutes with two processes; needs pyreadr, the
``benchmarks`` extras, and ``apt-get download`` or ``SKFLOW_DEB_DIR``)::

    OMP_NUM_THREADS=1 python benchmarks/bench_classification.py --jobs 2
    OMP_NUM_THREADS=1 python benchmarks/bench_classification.py --quick    # 1 seed, 3 small sets

The first writes ``benchmarks/results/classification.md`` and, beside it, the points of the
reliability diagram pooled over the sets and seeds (``classification_reliability.csv``); the
reading is written by hand below the tables after a run. ``--quick`` checks that the script runs
and only prints, unless ``--output`` names a file.
"""

from __future__ import annotations

import _common  # first: sets one thread before torch is imported

# isort: split

import argparse
import datetime
import multiprocessing
import warnings
from collections.abc import Callable
from functools import partial

import _outlier_data
import numpy as np
import pandas as pd
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skflow import FlowMatchingClassifier

N_BINS = 15  # of the calibration error and the reliability diagram
EPS = 1e-15  # probabilities are clipped here in the log-loss
QDA_SHRINKAGES = [0.0, 0.01, 0.1, 0.5]
METHODS = ["flow", "gnb", "qda", "logreg", "forest"]
GENERATIVE = ["gnb", "qda"]
DISCRIMINATIVE = ["logreg", "forest"]
QUICK_SETS = ["iris", "wine", "glass"]

_MLBENCH = partial(_outlier_data._rda, "mlbench")
READERS: dict[str, tuple[Callable[[], tuple[pd.DataFrame, pd.Series, str]], tuple[str, ...]]] = {
    # name: (reader of features, labels and origin; columns dropped), small to large
    "iris": (partial(_outlier_data._sklearn, "iris"), ()),
    "wine": (partial(_outlier_data._sklearn, "wine"), ()),
    "sonar": (partial(_MLBENCH, "Sonar", "Class"), ()),
    "glass": (partial(_MLBENCH, "Glass", "Type"), ()),
    "ionosphere": (partial(_MLBENCH, "Ionosphere", "Class"), ()),
    "breast_cancer": (partial(_outlier_data._sklearn, "breast_cancer"), ()),
    "pima": (partial(_MLBENCH, "PimaIndiansDiabetes", "diabetes"), ()),
    "vehicle": (partial(_MLBENCH, "Vehicle", "Class"), ()),
    "vowel": (partial(_MLBENCH, "Vowel", "Class"), ("V1",)),
}


def load(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Features (float64, no constant column), string labels and the provenance of set ``name``."""
    read, columns_out = READERS[name]
    features, labels, origin = read()
    X = _outlier_data._numeric(features.drop(columns=list(columns_out))).to_numpy(np.float64)
    notes = [f"column {', '.join(columns_out)} (speaker) dropped"] if columns_out else []
    constant = np.ptp(X, axis=0) == 0
    if constant.any():
        notes.append(f"{constant.sum()} constant column(s) dropped")
        X = X[:, ~constant]
    return X, labels.astype(str).to_numpy(), "; ".join([origin, *notes])


# --------------------------------------------------------------------------------------------------
# scores of probabilities


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean of minus the log of the true class's probability, clipped at ``EPS``."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(y.size), y], EPS, 1.0))))


def brier(y: np.ndarray, proba: np.ndarray) -> float:
    """Multiclass Brier score: mean squared distance of the probabilities to the one-hot label."""
    onehot = np.eye(proba.shape[1])[y]
    return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))


def reliability(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per bin of the top-class probability (``N_BINS`` equal widths, each closed on the right):
    rows ``(count, summed confidence, summed correctness)``, shape (N_BINS, 3)."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    bins = np.clip(np.ceil(confidence * N_BINS).astype(int) - 1, 0, N_BINS - 1)
    return np.column_stack(
        [
            np.bincount(bins, minlength=N_BINS),
            np.bincount(bins, weights=confidence, minlength=N_BINS),
            np.bincount(bins, weights=correct, minlength=N_BINS),
        ]
    )


def calibration_error(table: np.ndarray) -> float:
    """Expected calibration error from a ``reliability`` table: the bins' gaps between accuracy
    and mean confidence, weighted by their shares of the rows."""
    count, confidence, correct = table.T
    return float(np.abs(correct - confidence).sum() / count.sum())


# --------------------------------------------------------------------------------------------------
# one split


def models(seed: int) -> dict:
    return {
        "flow": FlowMatchingClassifier(random_state=seed),
        "gnb": GaussianNB(),
        "qda": make_pipeline(StandardScaler(), QuadraticDiscriminantAnalysis()),
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "forest": RandomForestClassifier(n_estimators=300, random_state=seed),
    }


def tuned_qda(seed: int) -> GridSearchCV:
    """QDA with the shrinkage of its class covariances chosen by log-loss in a stratified 5-fold
    inner CV."""
    return GridSearchCV(
        make_pipeline(StandardScaler(), QuadraticDiscriminantAnalysis(solver="eigen")),
        {"quadraticdiscriminantanalysis__shrinkage": QDA_SHRINKAGES},
        scoring="neg_log_loss",
        cv=StratifiedKFold(5, shuffle=True, random_state=seed),
    )


def evaluate(model, X_train, X_test, y_train, y_test) -> dict:
    """Fit and score one model: its metrics, CPU seconds and reliability table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes; the inner CV's failed folds
        _, fit_s, _ = _common.timed(model.fit, X_train, y_train)
        proba, predict_s, _ = _common.timed(model.predict_proba, X_test)
    if not np.all(np.isfinite(proba)):
        raise FloatingPointError("non-finite probabilities")
    table = reliability(y_test, proba)
    return {
        "accuracy": float(np.mean(proba.argmax(axis=1) == y_test)),
        "log_loss": log_loss(y_test, proba),
        "brier": brier(y_test, proba),
        "ece": calibration_error(table),
        "fit_s": fit_s,
        "predict_s": predict_s,
        "reliability": table,
    }


def run_split(name: str, seed: int) -> dict:
    """Every model on the stratified 70/30 split ``seed`` of set ``name`` (a task of the process
    pool): {model: {metric: value}}, with ``qda_tuned`` beside the default QDA, which is None
    where it failed (a singular class covariance, non-finite probabilities)."""
    X, labels, _ = load(name)
    y = np.unique(labels, return_inverse=True)[1]  # integer codes: proba columns in this order
    split = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    results = {}
    for method, model in models(seed).items():
        try:
            results[method] = evaluate(model, *split)
        except (np.linalg.LinAlgError, FloatingPointError):
            if method != "qda":
                raise
            results[method] = None
    results["qda_tuned"] = evaluate(tuned_qda(seed), *split)
    return results


# --------------------------------------------------------------------------------------------------
# tables


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` in increasing order (lower is better), ties sharing their
    mean rank."""
    return np.array([(values < v).sum() + ((values == v).sum() + 1) / 2 for v in values])


def per_set_records(found: dict[str, list[dict]]) -> tuple[dict[str, list[dict]], list[str]]:
    """The QDA column of each set (the default, or the tuned one where the default failed on a
    split), and the names of the sets where it is the tuned one."""
    tuned_sets = [s for s, splits in found.items() if any(r["qda"] is None for r in splits)]
    records = {}
    for s, splits in found.items():
        records[s] = [
            {**{m: r[m] for m in METHODS}, "qda": r["qda_tuned" if s in tuned_sets else "qda"]}
            for r in splits
        ]
    return records, tuned_sets


def tables(found: dict[str, list[dict]]) -> tuple[str, np.ndarray]:
    """The markdown tables and the pooled reliability tables of every method (method, bin, 3)."""
    records, tuned_sets = per_set_records(found)
    sets = list(records)

    def per_set(metric: str) -> np.ndarray:  # (sets, methods) of split means
        return np.array(
            [[np.mean([r[m][metric] for r in records[s]]) for m in METHODS] for s in sets]
        )

    def spread(s: str, m: str, metric: str) -> float:
        return float(np.std([r[m][metric] for r in records[s]], ddof=1))

    means = {metric: per_set(metric) for metric in ("accuracy", "log_loss", "brier", "ece")}
    times = {metric: per_set(metric) for metric in ("fit_s", "predict_s")}
    ranks = np.array([_ranks(row) for row in means["log_loss"]])
    pooled = np.array([sum(r[m]["reliability"] for s in sets for r in records[s]) for m in METHODS])
    order = np.argsort(means["log_loss"].mean(axis=0), kind="stable")
    summary = [
        {
            "method": METHODS[j],
            "mean log-loss": f"{means['log_loss'][:, j].mean():.3f}",
            "mean rank (log-loss)": f"{ranks[:, j].mean():.2f}",
            "mean accuracy": f"{means['accuracy'][:, j].mean():.3f}",
            "mean Brier": f"{means['brier'][:, j].mean():.3f}",
            "mean ECE": f"{means['ece'][:, j].mean():.3f}",
            "pooled ECE": f"{calibration_error(pooled[j]):.3f}",
            "fit CPU s": f"{times['fit_s'][:, j].mean():.2f}",
            "predict CPU s": f"{times['predict_s'][:, j].mean():.3f}",
        }
        for j in order
    ]

    def qda_name(s: str) -> str:
        return f"{s} †" if s in tuned_sets else s

    def detail(metric: str, digits: int, with_ranks: bool) -> str:
        rows = []
        for i, s in enumerate(sets):
            row = {"data set": qda_name(s)}
            for j, m in enumerate(METHODS):
                cell = f"{means[metric][i, j]:.{digits}f} ± {spread(s, m, metric):.{digits}f}"
                row[m] = cell + (f" ({ranks[i, j]:g})" if with_ranks else "")
            rows.append(row)
        return _common.markdown_table(rows, ["data set", *METHODS])

    flow = METHODS.index("flow")
    generative = [METHODS.index(m) for m in GENERATIVE]
    discriminative = [METHODS.index(m) for m in DISCRIMINATIVE]
    versus = []
    for i, s in enumerate(sets):
        best = min(generative, key=lambda j: means["log_loss"][i, j])
        other = min(discriminative, key=lambda j: means["log_loss"][i, j])
        gaps = [r["flow"]["log_loss"] - r[METHODS[best]]["log_loss"] for r in records[s]]
        tuned = np.mean([r["qda_tuned"]["log_loss"] for r in found[s]])
        versus.append(
            {
                "data set": qda_name(s),
                "flow": f"{means['log_loss'][i, flow]:.3f}",
                "best generative": f"{METHODS[best]} {means['log_loss'][i, best]:.3f}",
                "flow - best generative": f"{np.mean(gaps):+.3f} ± {np.std(gaps, ddof=1):.3f}",
                "beats both": "yes" if np.mean(gaps) < 0 else "no",
                "tuned QDA": f"{tuned:.3f}",
                "beats tuned QDA": "yes" if means["log_loss"][i, flow] < tuned else "no",
                "best discriminative": f"{METHODS[other]} {means['log_loss'][i, other]:.3f}",
            }
        )
    wins = sum(row["beats both"] == "yes" for row in versus)
    tuned_wins = sum(row["beats tuned QDA"] == "yes" for row in versus)
    time_rows = [
        {
            "data set": s,
            **{
                m: f"{times['fit_s'][i, j]:.2f} / {times['predict_s'][i, j]:.3f}"
                for j, m in enumerate(METHODS)
            },
        }
        for i, s in enumerate(sets)
    ]
    text = (
        "### Summary over the data sets (by mean log-loss)\n\n"
        + _common.markdown_table(summary, list(summary[0]))
        + f"\n\n### Flow against the generative baselines: lower log-loss than both on {wins} "
        f"of {len(sets)} sets, than the tuned QDA on {tuned_wins}\n\n"
        + _common.markdown_table(versus, list(versus[0]))
        + "\n\n### Test log-loss per data set (mean ± std over the splits; rank)\n\n"
        + detail("log_loss", 3, with_ranks=True)
        + "\n\n### Test accuracy per data set (mean ± std over the splits)\n\n"
        + detail("accuracy", 3, with_ranks=False)
        + "\n\n### Test Brier score per data set (mean ± std over the splits)\n\n"
        + detail("brier", 3, with_ranks=False)
        + "\n\n### Expected calibration error per data set (mean ± std over the splits)\n\n"
        + detail("ece", 3, with_ranks=False)
        + "\n\n### CPU seconds of fit / predict_proba per split\n\n"
        + _common.markdown_table(time_rows, ["data set", *METHODS])
    )
    notes = (
        "\n\nRanks: 1 = lowest log-loss on the set (ties share their mean rank). Flow - best "
        "generative: the mean over the splits of the paired difference ± its standard deviation. "
        "Tuned QDA: QDA with tuned shrinkage, as described for the † sets, on every set. "
        "Pooled ECE: the "
        "calibration error of every test row of every set and split together, the reliability "
        "diagram's points in `classification_reliability.csv`. "
        + (
            f"† QDA with `reg_param=0` failed (a singular class covariance) on a split of "
            f'{", ".join(tuned_sets)}: there its column is `solver="eigen"` with the '
            f"`shrinkage` of the class covariances tuned from {QDA_SHRINKAGES} by a stratified "
            "5-fold inner CV (log-loss)."
            if tuned_sets
            else "QDA with `reg_param=0` ran on every split."
        )
    )
    return text + notes, pooled


def reliability_csv(pooled: np.ndarray) -> str:
    """The reliability diagram's points: one line per method and bin of the top-class
    probability, pooled over the sets and splits."""
    lines = ["method,bin,bin_low,bin_high,count,mean_confidence,accuracy"]
    for m, table in zip(METHODS, pooled):
        for b, (count, confidence, correct) in enumerate(table):
            mean_confidence = f"{confidence / count:.4f}" if count else ""
            accuracy = f"{correct / count:.4f}" if count else ""
            lines.append(
                f"{m},{b},{b / N_BINS:.4f},{(b + 1) / N_BINS:.4f},{int(count)},"
                f"{mean_confidence},{accuracy}"
            )
    return "\n".join(lines) + "\n"


def sources(names: list[str]) -> str:
    rows = []
    for name in names:
        X, labels, origin = load(name)
        classes, counts = np.unique(labels, return_counts=True)
        rows.append(
            {
                "data set": name,
                "rows": X.shape[0],
                "features": X.shape[1],
                "classes": classes.size,
                "smallest / largest class": f"{counts.min()} / {counts.max()}",
                "source": origin,
            }
        )
    return "### Data sets\n\n" + _common.markdown_table(rows, list(rows[0]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=list(READERS), default=None)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 seed, three small sets; prints")
    parser.add_argument(
        "--output", help="result file (default classification.md; none with --quick)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="splits run at once, one per process")
    args = parser.parse_args(argv)
    names = args.sets or (QUICK_SETS if args.quick else list(READERS))
    seeds = range(1 if args.quick else args.seeds)
    date, load_start = datetime.date.today().isoformat(), _common.load_average()
    code_at_start = _common.code_version()
    for name in names:  # unpack the R data files once, before the workers read them
        load(name)
    tasks = [(name, seed) for name in names for seed in seeds]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.starmap(run_split, tasks, chunksize=1)
    found = {name: [] for name in names}
    for (name, seed), result in zip(tasks, results):
        found[name].append(result)
        losses = ", ".join(
            f"{m} {'failed' if v is None else format(v['log_loss'], '.3f')}"
            for m, v in result.items()
        )
        print(f"{name} seed {seed}: log-loss {losses}", flush=True)

    body, pooled = tables(found)
    header = (
        "## Classification benchmark\n\n"
        f"`{_common.command_line(argv, script=__file__)}`, {date}; "
        f"{_common.code_version_since(code_at_start)}; {_common.machine_description()}. "
        f"1-minute load average {load_start} at the start, {_common.load_average()} at the end. "
        f"{len(seeds)} seeds (stratified 70/30 splits); default hyperparameters.\n\n"
    )
    text = header + body + "\n\n" + sources(names) + "\n"
    print(text)
    output = args.output or (None if args.quick else "classification.md")
    if output is not None:
        path = _common.write_result(output, text)
        csv = _common.write_result(
            str(path.with_name(f"{path.stem}_reliability.csv")), reliability_csv(pooled)
        )
        print(f"written to {path} and {csv}")


if __name__ == "__main__":
    main()

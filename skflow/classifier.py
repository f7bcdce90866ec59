"""FlowMatchingClassifier: a generative classifier from one class-conditional flow trained by flow
matching."""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral

import numpy as np
from scipy.special import logsumexp
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_y, check_consistent_length, check_is_fitted

from ._base import BaseFlow, keeps_state_on_error
from ._data import WeightedMoments, can_stratify, check_not_bool, label_indices
from ._distributions import StandardNormal
from ._kinds import COLUMN_CONSTRAINTS
from ._latent import PathFlowMixin
from ._masked import with_labels
from ._spec import NetworkSpec
from .density import FlowMatchingDensity

__all__ = ["FlowMatchingClassifier"]


class FlowMatchingClassifier(ClassifierMixin, PathFlowMixin, BaseFlow):
    """Generative classifier: one continuous normalizing flow per class, in one class-conditional
    velocity network trained by flow matching.

    A single field ``v(t, x | y)``, a network that sees the one-hot class ``e_y`` beside ``x``
    (:class:`~skflow.networks.ClassConditionalVelocity`), is learned so that for every class ``c``
    the ODE ``dx/dt = v(t, x | c)`` carries the standard normal at ``t = 0`` onto the rows of class
    ``c`` at ``t = 1``: the conditional flow-matching loss of
    :class:`~skflow.FlowMatchingDensity` (Lipman et al., *Flow Matching for Generative Modeling*,
    ICLR 2023) with the class as the condition (Zheng et al., *Guided Flows for Generative Modeling
    and Decision Making*, 2023; Dao et al., *Flow Matching in Latent Space*, 2023). The coupling
    pairs base draws with data rows within each class, so that the base given the class stays
    ``N(0, I)``. Each class-conditional log-density follows from the instantaneous change of
    variables (Chen et al., NeurIPS 2018), and Bayes' rule with the weighted class frequencies
    ``pi_c`` gives the posterior:

    .. math::

        \\log p(x \\mid c) = \\log \\mathcal{N}(z_c; 0, I)
            - \\int_0^1 \\nabla \\cdot v(t, x_t \\mid c)\\, dt, \\qquad
        p(c \\mid x) = \\frac{\\pi_c\\, p(x \\mid c)}{\\sum_k \\pi_k\\, p(x \\mid k)},

    with ``z_c`` the point the ODE of class ``c`` pulls ``x`` back to. The marginal log-density
    ``log p(x) = log sum_c pi_c p(x | c)`` (:meth:`score_samples`) is low at rows that belong to no
    class. All rows are standardised together inside :meth:`fit`, and every density is returned
    in the units of ``X``.

    Parameters
    ----------
    path : {"linear", "trig", "vp"}, default="linear"
        Probability path between base and data (:data:`skflow.paths.PATHS`).
    sigma_min : float, default=0.0
        Width of the linear path around each data point at ``t = 1``, in ``[0, 1)``.
    coupling : {"independent", "ot", "sinkhorn"}, default="independent"
        How each minibatch of base draws is paired with its data rows (:mod:`skflow.couplings`),
        within each class: independently, by exact optimal transport or by an entropic plan.
    coupling_reg : float, default=0.1
        Entropic regularisation of ``coupling="sinkhorn"``, relative to the mean squared distance.
    hidden_layer_sizes : array-like of int, default=(128, 128, 128, 128)
        Widths of the hidden layers of the velocity network, which all classes share.
    n_fourier_features : int or "auto", default="auto"
        Random Fourier features of the network's input ``[x, e_y]`` (so the one-hot class shifts
        their phases); 0 for none. ``"auto"``: 64 features from 10,000 training rows in up to 8
        dimensions, else none.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows, stratified by class (where every class has
        two rows and the split leaves each side a row per class; otherwise at random), score the
        averaged model on them 25 times over the budget and keep the best checkpoint.
    scoring : {"log_likelihood", "loss"}, default="log_likelihood"
        What early stopping monitors: the held-out log-likelihood of each row given its class,
        ``log p(x | y)`` (on at most 1000 rows, with 8 RK4 steps), or the flow-matching loss of
        fixed validation pairs.
    warm_start : bool, default=False
        Continue from the fitted network and its standardisation when :meth:`fit` is called again;
        the classes must be those of the fitted model (``class_prior_`` follows the new rows).
    activation, architecture, fourier_scale, max_iter, max_time, batch_size, \
learning_rate_init, learning_rate, ema_decay, time_distribution, validation_fraction, \
n_iter_no_change, tol, solver, n_steps, step_exponent, atol, rtol, divergence, n_probes, device, \
random_state, verbose, categorical_features, integer_features, bounds, allow_missing
        As in :class:`~skflow.FlowMatchingDensity`, with the same defaults; the divergence of
        ``divergence="auto"`` is exact up to 16 features. The column kinds (:ref:`tables`) are
        those of the features; the label is ``y``. With ``allow_missing``, a row with missing
        features is classified by its observed ones, ``p(c | x_o)`` (:ref:`density-missing`);
        every label must be present.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.
    class_prior_ : ndarray of shape (n_classes,)
        Weighted frequency of each class in the training rows: the prior ``pi_c``.
    model_ : torch.nn.Module
        The fitted class-conditional velocity network (an EMA of the trained weights), on the CPU.
    network_spec_ : NetworkSpec
        What ``model_`` is, as plain data (``n_classes`` included).
    n_fourier_features_ : int
        Fourier features of the fitted network.
    columns_ : TableLayout
        The kind, categories and bounds of each column, as plain data.
    mean_, scale_ : ndarray of shape (n_components,)
        Standardisation applied before the flow, from all rows, per coordinate of the flow.
    loss_curve_, validation_loss_curve_, best_loss_, best_iter_, n_iter_, t_, stop_reason_
        The training record, as in :class:`~skflow.FlowMatchingDensity`.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in :meth:`fit`, when ``X`` had string column names.

    See Also
    --------
    FlowMatchingDensity : The unconditional flow.
    sklearn.naive_bayes.GaussianNB : Generative classifier with Gaussian class densities.
    sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis : Ditto, full covariances.

    Notes
    -----
    Every prediction integrates one ODE per row and class, with the divergence: with ``K`` classes
    it costs ``K`` times :meth:`FlowMatchingDensity.score_samples`.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowMatchingClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-2.0, 1.0, (100, 2)), rng.normal(2.0, 1.0, (100, 2))])
    >>> y = np.repeat(["a", "b"], 100)
    >>> clf = FlowMatchingClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    >>> clf = clf.fit(X, y)
    >>> clf.predict([[-2.0, -2.0], [2.0, 2.0]]).tolist()
    ['a', 'b']
    >>> clf.predict_proba(X[:3]).shape
    (3, 2)
    >>> X_new, y_new = clf.sample(4, random_state=0)
    >>> X_new.shape, y_new.shape
    ((4, 2), (4,))
    """

    _parameter_constraints: dict = {
        **BaseFlow._parameter_constraints,
        # the density's own hyperparameters of the flow from N(0, I)
        **{
            name: FlowMatchingDensity._parameter_constraints[name]
            for name in PathFlowMixin.hyperparameters
        },
        **COLUMN_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        path: str = "linear",
        sigma_min: float = 0.0,
        coupling: str = "independent",
        coupling_reg: float = 0.1,
        hidden_layer_sizes=(128, 128, 128, 128),
        activation: str = "gelu",
        architecture: str = "residual",
        n_fourier_features: int | str = "auto",
        fourier_scale: float = 10.0,
        max_iter: int | str = "auto",
        max_time: float | None = None,
        batch_size: int = 1024,
        learning_rate_init: float = 5e-3,
        learning_rate: str = "cosine",
        ema_decay: float = 0.999,
        time_distribution: str = "arcsine",
        early_stopping: bool = True,
        scoring: str = "log_likelihood",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 8,
        tol: float = 1e-4,
        solver: str = "rk4",
        n_steps: int = 20,
        step_exponent: float = 1.5,
        atol: float = 1e-7,
        rtol: float = 1e-7,
        divergence: str = "auto",
        n_probes: int = 8,
        device: str = "cpu",
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
        categorical_features="from_dtype",
        integer_features="from_dtype",
        bounds: dict | None = None,
        allow_missing: bool = False,
    ) -> None:
        self.path = path
        self.sigma_min = sigma_min
        self.coupling = coupling
        self.coupling_reg = coupling_reg
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.architecture = architecture
        self.n_fourier_features = n_fourier_features
        self.fourier_scale = fourier_scale
        self.max_iter = max_iter
        self.max_time = max_time
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.ema_decay = ema_decay
        self.time_distribution = time_distribution
        self.early_stopping = early_stopping
        self.scoring = scoring
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.solver = solver
        self.n_steps = n_steps
        self.step_exponent = step_exponent
        self.atol = atol
        self.rtol = rtol
        self.divergence = divergence
        self.n_probes = n_probes
        self.device = device
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.categorical_features = categorical_features
        self.integer_features = integer_features
        self.bounds = bounds
        self.allow_missing = allow_missing

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Learn the flow of every class from the standard normal to its rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows; at least two.
        y : array-like of shape (n_samples,)
            Class labels (numbers or strings); at least two classes of positive weight.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights of the loss, the standardisation and the class prior.

        Returns
        -------
        self : FlowMatchingClassifier
        """
        warm = self.warm_start and hasattr(self, "model_")
        self._check_missing_settings(warm)
        Y, weight, codes = self._training_rows(
            X, sample_weight, warm=warm, missing=self.allow_missing
        )
        y = _check_y(y, estimator=self)
        check_consistent_length(Y, y)
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        class_weight = np.bincount(labels, weights=weight, minlength=classes.size)
        if np.count_nonzero(class_weight > 0) < 2:
            raise ValueError(
                f"{type(self).__name__} needs rows of at least two classes (of positive weight); "
                f"got the class(es) {classes[class_weight > 0].tolist()}."
            )
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start: y has the classes {classes.tolist()}, the fitted model "
                f"{self.classes_.tolist()}."
            )
        if not warm:
            self._set_moments(WeightedMoments.of(Y, weight))
        self.classes_ = classes
        self.class_prior_ = class_weight / class_weight.sum()
        stratify = labels if can_stratify(labels, self.validation_fraction) else None
        self._fit_flow(Y, weight, codes, labels, stratify)
        return self

    def _network_for(self, n_train_rows: int | None) -> NetworkSpec:
        """The density's network, with the one-hot class as input."""
        return replace(super()._network_for(n_train_rows), n_classes=self.classes_.size)

    # ----------------------------------------------------------------------------------------------
    # densities and probabilities

    def predict_joint_log_proba(self, X) -> np.ndarray:
        """Joint log-density ``log p(x, c) = log p(x | c) + log pi_c`` of each row and class.

        ``log p(x | c)`` is the change of variables along the ODE of class ``c``, as
        :meth:`FlowMatchingDensity.score_samples` computes it (exact divergence up to 16 features,
        Hutchinson's estimator above), in the units of ``X``; all rows and classes are integrated
        together, in chunks.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.

        Returns
        -------
        log_joint : ndarray of shape (n_samples, n_classes)
            ``-inf`` for a class of prior 0.
        """
        Y, log_weight = self._flow_rows(X)
        observed = ~np.isnan(Y)
        n_classes = self.classes_.size
        path = self._make_path()
        given = self._generating(observed)
        # each row once per class, the class running fastest: rows x classes in one pass
        log_density, _ = self._log_likelihood(
            np.repeat(Y, n_classes, axis=0),
            path.t_min,
            path.t_max,
            StandardNormal(Y.shape[1]).log_prob,
            before=self._standardise_observed,
            condition=with_labels(
                None if given is None else np.repeat(given, n_classes, axis=0),
                np.tile(np.arange(n_classes), Y.shape[0]),
            ),
        )
        log_density = log_density.reshape(Y.shape[0], n_classes)
        log_density += self._marginal_offset(observed)[:, None]
        with np.errstate(divide="ignore"):
            return log_density + log_weight[:, None] + np.log(self.class_prior_)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log-posterior ``log p(c | x)`` of each class, by Bayes' rule.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to classify.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; the log-prior for a row that no class can hold
            (a category unseen in fit, a value out of bounds: see :ref:`tables`).
        """
        log_joint = self.predict_joint_log_proba(X)
        log_evidence = logsumexp(log_joint, axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            # a row that no class can hold (log p(x) = -inf) keeps the prior
            return np.where(
                np.isneginf(log_evidence), np.log(self.class_prior_), log_joint - log_evidence
            )

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability ``p(c | x)`` of each class, by Bayes' rule.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to classify.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns in the order of ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to classify.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        best = np.argmax(self.predict_log_proba(X), axis=1)
        return self.classes_[best]

    def score_samples(self, X) -> np.ndarray:
        """Log-density of the model, ``log p(x) = log sum_c pi_c p(x | c)``, in the units of
        ``X``: low at rows that belong to no class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        return logsumexp(self.predict_joint_log_proba(X), axis=1)

    @validate_params(
        {
            "n_samples": [Interval(Integral, 1, None, closed="left")],
            "y": ["array-like", None],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def sample(
        self, n_samples: int = 1, y=None, random_state=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw rows from the model: a class, then standard normal draws pushed through the ODE
        of that class.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows, when ``y`` is None; ignored when ``y`` is given.
        y : array-like of shape (n_labels,), default=None
            The class of each row to draw (labels from ``classes_``): one row per label. None:
            ``n_samples`` classes drawn from ``class_prior_``.
        random_state : int, RandomState instance or None, default=None
            Seeds the classes and the base draws.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples or n_labels, `n_features_in_`)
            The rows, in the order of their labels (not grouped by class), with valid values in
            every column; a DataFrame like the training one if the model was fitted on one.
        y : ndarray of shape (n_samples or n_labels,)
            Their labels.
        """
        check_is_fitted(self, "model_")
        check_not_bool(n_samples, "n_samples")
        rng = check_random_state(random_state)
        if y is None:
            labels = rng.choice(self.classes_.size, size=n_samples, p=self.class_prior_)
        else:
            labels = label_indices(self.classes_, y)
        z = rng.standard_normal((labels.size, self.mean_.shape[0]))
        path = self._make_path()
        Y = self._fitted_network().carry(
            z,
            path.t_min,
            path.t_max,
            self._solver(),
            after=self._unstandardise,
            condition=with_labels(self._generating(np.ones(z.shape, dtype=bool)), labels),
        )
        return self._rows_from_flow(Y), self.classes_[labels]

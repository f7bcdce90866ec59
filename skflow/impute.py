"""FlowMatchingImputer: missing values drawn from a flow of every conditional law of the columns."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._base import BaseFlow, keeps_state_on_error
from ._cells import is_frame
from ._columns import Column
from ._data import WeightedMoments, check_not_bool
from ._distributions import StandardNormal
from ._kinds import COLUMN_CONSTRAINTS
from ._masked import marginal_masks
from ._spec import NetworkSpec
from .paths import DENSITY_PATHS, PATHS, ProbabilityPath

__all__ = ["FlowMatchingImputer"]

_NOT_USED = {"coupling", "coupling_reg", "scoring", "divergence", "n_probes"}


class FlowMatchingImputer(TransformerMixin, BaseFlow):
    """Imputation of missing values by a flow of each row's missing cells given its observed ones.

    One velocity field ``v(t, x | k, g)`` carries ``N(0, I)`` onto the conditional law of any
    subset ``g`` of the columns given any other subset ``k``
    (:class:`~skflow.networks.MaskedVelocity`). It is learned from the incomplete rows
    themselves: every minibatch splits each row's observed cells at random into known and
    generated ones and regresses the flow-matching velocity on the generated cells only, so no
    missing cell is ever filled in before training (Lipman et al.,
    *Flow Matching for Generative Modeling*, ICLR 2023; Ivanov, Figurnov & Vetrov, *Variational
    Autoencoder with Arbitrary Conditioning*, ICLR 2019). Imputing a row integrates its missing
    cells from ``N(0, I)`` given its observed ones: each draw is a plausible completion, and
    several draws give multiple imputations whose spread is the uncertainty.

    The model learns the law of the observed values; it is that of the missing ones when cells
    are missing completely at random, and given the observed cells of the row when they are
    missing at random in the cells the model conditions on (see the :ref:`User Guide <impute>`).
    Columns keep their kinds (:ref:`tables`): an imputed category is a training category, an
    imputed integer an integer in the training range, and a bounded column stays in its bounds.

    Read more in the :ref:`User Guide <impute>`.

    Parameters
    ----------
    missing_values : float, default=np.nan
        The placeholder of a missing cell (with NaN, a DataFrame's None and pandas' NA are
        missing too); every other number must be finite.
    add_indicator : bool, default=False
        Append to :meth:`transform`'s output a 0/1 column for every feature with a missing cell
        in :meth:`fit`, 1 where the cell was missing (as
        :class:`~sklearn.impute.MissingIndicator` with ``features="missing-only"``).
    n_draws : int, default=16
        Draws whose typical value :meth:`transform` returns: the median in a continuous column,
        the lower median in an integer one, the most frequent category in a categorical one.
    path : {"linear", "trig", "vp"}, default="linear"
        Probability path between the base and the data (:data:`skflow.paths.PATHS`).
    sigma_min : float, default=0.0
        Width of the linear path at ``t = 1``; the other paths ignore it.
    hidden_layer_sizes : array-like of int, default=(128, 128, 128, 128)
        Widths of the hidden layers of the velocity network.
    activation : {"silu", "tanh", "gelu", "softplus", "relu"}, default="gelu"
        Activation of the hidden layers.
    architecture : {"mlp", "residual"}, default="residual"
        Shape of the velocity network (:class:`~skflow.networks.VelocityBlockMLP` or
        :class:`~skflow.networks.VelocityMLP`).
    max_iter : int or "auto", default="auto"
        Number of epochs; the most, with early stopping. ``"auto"``: ``clip(3 n / 4, 3000,
        12000)`` optimiser steps for ``n`` training rows.
    max_time : float or None, default=None
        Seconds of training at most, as in :class:`FlowMatchingDensity`.
    batch_size : int, default=1024
        Rows per minibatch.
    learning_rate_init : float, default=5e-3
        Initial step size of Adam.
    learning_rate : {"constant", "cosine"}, default="cosine"
        Step-size schedule.
    ema_decay : float, default=0.999
        Decay of the exponential moving average of the weights, which is the fitted model.
    time_distribution : {"uniform", "logit_normal", "arcsine"}, default="arcsine"
        Law of the training times (:mod:`skflow.times`).
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows and keep the network whose loss on fixed
        random splits of their observed cells is lowest, stopping after ``n_iter_no_change``
        checks without improvement.
    validation_fraction : float, default=0.1
        Share of rows held out for early stopping.
    n_iter_no_change : int, default=8
        Validation checks without an improvement of more than ``tol`` before training stops.
    tol : float, default=1e-4
        Smallest decrease of the validation loss that counts as an improvement.
    solver : {"euler", "midpoint", "rk4", "dopri5"}, default="rk4"
        ODE solver of the imputations.
    n_steps : int, default=20
        Steps of a fixed-step solver.
    step_exponent : float, default=1.5
        Grid of a fixed-step solver, ``t_k = 1 - (1 - k / n_steps) ** step_exponent``.
    atol, rtol : float, default=1e-7
        Tolerances of ``solver="dopri5"``.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where training and imputation run.
    warm_start : bool, default=False
        Continue from the fitted network (and its standardisation) when :meth:`fit` is called
        again.
    random_state : int, RandomState instance or None, default=None
        Seeds training and the draws of :meth:`transform` (and of :meth:`sample_imputations`
        when it is given none): with an int, :meth:`transform` returns the same values at every
        call.
    verbose : int, default=0
        Print training progress.
    categorical_features, integer_features, bounds
        The column kinds, as in :class:`FlowMatchingDensity` (``"from_dtype"``: a DataFrame's
        category, string and bool columns are categorical, its integer columns, nullable ones
        included, integer).

    Attributes
    ----------
    model_ : torch.nn.Module
        The fitted velocity network (an EMA of the trained weights), on the CPU.
    network_spec_ : NetworkSpec
        What ``model_`` is, as plain data.
    columns_ : TableLayout
        The kind, categories and bounds of each column, as plain data.
    mean_, scale_ : ndarray of shape (n_components,)
        Mean and standard deviation of the observed values of each coordinate of the flow (one
        per feature for a table of continuous columns; see :class:`FlowMatchingDensity`).
    indicator_features_ : ndarray of shape (n_indicators,)
        Indices of the features with a missing cell in :meth:`fit`: those of ``add_indicator``.
    loss_curve_, validation_loss_curve_, best_loss_, best_iter_, n_iter_, t_, stop_reason_
        The training record, as in :class:`FlowMatchingDensity`.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names seen in :meth:`fit`, when ``X`` had string column names.

    See Also
    --------
    sklearn.impute.IterativeImputer : Imputation by a regression of each feature on the others.
    sklearn.impute.KNNImputer : Imputation by the nearest neighbours' values.

    Examples
    --------
    >>> import numpy as np
    >>> from skflow import FlowMatchingImputer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> X[:, 2] = X[:, 0] + 0.1 * X[:, 2]
    >>> X[rng.random(X.shape) < 0.2] = np.nan
    >>> imputer = FlowMatchingImputer(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    >>> imputer.fit_transform(X).shape
    (200, 3)
    >>> imputer.sample_imputations(X[:5], n_imputations=10, random_state=0).shape
    (10, 5, 3)

    A category is imputed as a category:

    >>> import pandas as pd
    >>> table = pd.DataFrame({"x": rng.normal(size=200)})
    >>> table["sign"] = np.where(table["x"] > 0, "plus", "minus")
    >>> table.loc[:20, "sign"] = None
    >>> filled = imputer.fit_transform(table)
    >>> sorted(set(filled[:, 1]))
    ['minus', 'plus']
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in BaseFlow._parameter_constraints.items() if k not in _NOT_USED},
        "missing_values": [Real],
        "add_indicator": ["boolean"],
        "n_draws": [Interval(Integral, 1, None, closed="left")],
        "path": [StrOptions(set(DENSITY_PATHS))],
        "sigma_min": [Interval(Real, 0, 1, closed="left")],
        **COLUMN_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        missing_values: float = np.nan,
        add_indicator: bool = False,
        n_draws: int = 16,
        path: str = "linear",
        sigma_min: float = 0.0,
        hidden_layer_sizes=(128, 128, 128, 128),
        activation: str = "gelu",
        architecture: str = "residual",
        max_iter: int | str = "auto",
        max_time: float | None = None,
        batch_size: int = 1024,
        learning_rate_init: float = 5e-3,
        learning_rate: str = "cosine",
        ema_decay: float = 0.999,
        time_distribution: str = "arcsine",
        early_stopping: bool = True,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 8,
        tol: float = 1e-4,
        solver: str = "rk4",
        n_steps: int = 20,
        step_exponent: float = 1.5,
        atol: float = 1e-7,
        rtol: float = 1e-7,
        device: str = "cpu",
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
        categorical_features="from_dtype",
        integer_features="from_dtype",
        bounds: dict | None = None,
    ) -> None:
        self.missing_values = missing_values
        self.add_indicator = add_indicator
        self.n_draws = n_draws
        self.path = path
        self.sigma_min = sigma_min
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.architecture = architecture
        self.max_iter = max_iter
        self.max_time = max_time
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.ema_decay = ema_decay
        self.time_distribution = time_distribution
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.solver = solver
        self.n_steps = n_steps
        self.step_exponent = step_exponent
        self.atol = atol
        self.rtol = rtol
        self.device = device
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.categorical_features = categorical_features
        self.integer_features = integer_features
        self.bounds = bounds

    # ----------------------------------------------------------------------------------------------
    # the pieces

    def _make_path(self) -> ProbabilityPath:
        return PATHS[self.path](sigma_min=self.sigma_min)

    def _network_for(self, n_train_rows: int | None) -> NetworkSpec:
        return self._network_spec(masked=True)

    def _monitors_likelihood(self) -> bool:
        return False

    def _placeholder(self) -> float:
        return self.missing_values

    def _rows_with_holes(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of ``X`` checked against the fitted model: in the flow's coordinates (NaN in
        those of a missing cell), each cell's value (the input's, as numbers or objects) and
        the mask of the missing cells."""
        Y = self._possible_rows(X)
        if not is_frame(X):
            X = check_array(X, dtype=None, ensure_all_finite=False)
        cells = X.to_numpy(dtype=object) if is_frame(X) else X
        missing = np.isnan(Y[:, self.columns_.starts])
        cells = np.where(missing, np.nan, cells)  # pandas' NA is no float
        return Y, cells.astype(np.float64 if self.columns_.numeric else object), missing

    # ----------------------------------------------------------------------------------------------
    # fitting and imputing

    @keeps_state_on_error
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the conditional laws of the columns from the observed cells of ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Training rows, with missing cells marked by ``missing_values`` (in a DataFrame, also
            None or pandas' NA when it is NaN); every column needs an observed cell. Rows
            without an observed cell are allowed and teach nothing.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : FlowMatchingImputer
        """
        warm = self.warm_start and hasattr(self, "model_")
        Y, weight, codes = self._training_rows(X, None, warm=warm, missing=True)
        if not warm:
            self._set_moments(WeightedMoments.of(Y, weight))
        observed = ~np.isnan(Y)
        self._fit_network(
            self._standardise_observed(Y),
            weight,
            StandardNormal(Y.shape[1]),
            condition=marginal_masks(observed),
            codes=codes,
            tasks=(1.0, 0.0),
        )
        self.indicator_features_ = np.flatnonzero(~observed[:, self.columns_.starts].all(axis=0))
        return self

    @validate_params(
        {
            "X": ["array-like"],
            "n_imputations": [Interval(Integral, 1, None, closed="left")],
            "random_state": ["random_state"],
        },
        prefer_skip_nested_validation=True,
    )
    def sample_imputations(self, X, n_imputations: int = 5, random_state=None) -> np.ndarray:
        """Draw ``n_imputations`` completions of ``X``: its observed cells, and missing cells
        drawn from the model given the observed cells of their row.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows with missing cells marked by ``missing_values``, in any feature (a row without
            an observed cell gets draws from the model's law of whole rows).
        n_imputations : int, default=5
            Number of completions.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; None: the estimator's ``random_state``.

        Returns
        -------
        imputations : ndarray of shape (n_imputations, n_samples, n_features)
            The completions; the spread of a cell over them is its uncertainty under the model,
            e.g. for multiple imputation (Rubin, 1987). Float, or objects where a categorical
            column holds strings; every drawn value is one the column can hold (a training
            category, an integer in the training range, a value within the bounds).
        """
        check_is_fitted(self, "model_")
        check_not_bool(n_imputations, "n_imputations")
        return self._completions(*self._rows_with_holes(X), n_imputations, random_state)

    def _completions(
        self,
        Y: np.ndarray,
        cells: np.ndarray,
        missing: np.ndarray,
        n_imputations: int,
        random_state,
    ) -> np.ndarray:
        """``n_imputations`` completions of the rows ``Y`` in the flow's coordinates, whose
        values are ``cells`` and missing cells ``missing`` (see :meth:`sample_imputations`)."""
        rng = check_random_state(self.random_state if random_state is None else random_state)
        out = np.repeat(cells[None], n_imputations, axis=0)
        rows = np.flatnonzero(missing.any(axis=1))
        if rows.size == 0:
            return out
        known = ~np.isnan(Y[rows])
        drawn = self._draw_missing(self._standardise_observed(Y[rows]), known, rng, n_imputations)
        drawn = drawn.reshape(-1, Y.shape[1])
        drawn = self._rows_from_flow(self._unstandardise(drawn))
        if is_frame(drawn):
            drawn = drawn.to_numpy(dtype=object)
        drawn = drawn.astype(out.dtype).reshape(n_imputations, rows.size, -1)
        out[:, rows] = np.where(missing[rows], drawn, out[:, rows])
        return out

    def transform(self, X) -> np.ndarray:
        """Impute the missing cells of ``X`` by ``n_draws`` draws: their median in a continuous
        column, their lower median in an integer one, their most frequent value in a
        categorical one.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows with missing cells marked by ``missing_values``.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features + n_indicators)
            ``X`` with every missing cell replaced (float, or objects where a categorical
            column holds strings), then the missing indicators of ``add_indicator``.
        """
        check_is_fitted(self, "model_")
        Y, cells, missing = self._rows_with_holes(X)
        draws = self._completions(Y, cells, missing, self.n_draws, None)
        X_imputed = cells.copy()
        for j, column in enumerate(self.columns_.columns):
            rows = missing[:, j]
            typical = _typical(draws[:, rows, j], column)
            if column.kind == "integer" and X_imputed.dtype == object:
                typical = typical.astype(np.int64)  # as the observed integers are
            X_imputed[rows, j] = typical
        if not self.add_indicator:
            return X_imputed
        indicators = missing[:, self.indicator_features_].astype(np.float64)
        return np.hstack([X_imputed, indicators.astype(X_imputed.dtype)])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output columns: the input features, then ``missingindicator_<name>``
        for each indicator of ``add_indicator``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; by default ``feature_names_in_``, or ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "model_")
        names = _check_feature_names_in(self, input_features)
        if not self.add_indicator:
            return names
        indicators = [f"missingindicator_{names[j]}" for j in self.indicator_features_]
        return np.concatenate([names, np.asarray(indicators, dtype=object)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags


def _typical(draws: np.ndarray, column: Column) -> np.ndarray:
    """The typical value of each row's ``draws`` (shape (n_draws, n)) of one column: the median
    of a continuous column, the lower median of an integer one (a value that was drawn), the
    most frequent category (the first in the column's order on a tie)."""
    if column.kind == "continuous":
        return np.median(draws.astype(np.float64), axis=0)
    if column.kind == "integer":
        return np.quantile(draws.astype(np.float64), 0.5, axis=0, method="lower")
    index = {category: i for i, category in enumerate(column.categories)}
    codes = np.vectorize(index.__getitem__, otypes=[np.int64])(draws)
    counts = (codes[..., None] == np.arange(len(column.categories))).sum(axis=0)
    return np.asarray(column.categories, dtype=object)[counts.argmax(axis=1)]

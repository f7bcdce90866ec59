"""Rows on their way in and out of a flow: a table's rows checked and laid out in the flow's
coordinates (:mod:`~skflow._columns`), with NaN in those of a missing cell, standardised by the
moments of the training rows, and rows decoded back from the flow."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    validate_data,
)

from ._cells import is_frame
from ._data import WeightedMoments, draw_seed, row_weights, validate_rows_and_weights
from ._kinds import fit_layout
from .likelihood import row_uniforms

__all__ = ["TableRowsMixin"]


class TableRowsMixin:
    """The rows of a :class:`~skflow._base.BaseFlow`: validation, the layout of the columns
    (``columns_``), the standardisation (``mean_``, ``scale_``) and missing cells."""

    def _set_moments(self, moments: WeightedMoments) -> None:
        """Standardise by ``moments`` from now on (kept, so that ``partial_fit`` can add rows)."""
        self._moments = moments
        self.mean_ = moments.mean
        self.scale_ = moments.scale()

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def _standardise_observed(self, X: np.ndarray) -> np.ndarray:
        """``X`` standardised, with its missing cells (NaN) at 0, where a masked field
        (:class:`~skflow.networks.MaskedVelocity`) expects the coordinates it does not move."""
        return np.nan_to_num(self._standardise(X), nan=0.0, posinf=np.inf, neginf=-np.inf)

    def _unstandardise(self, Z: np.ndarray) -> np.ndarray:
        return Z * self.scale_ + self.mean_

    def _placeholder(self) -> float:
        """What marks a missing cell besides NaN, None and pandas' NA: nothing (NaN) but for an
        imputer's ``missing_values``."""
        return math.nan

    def _marked_missing(self, X: np.ndarray, missing: bool) -> np.ndarray:
        """Plain rows ``X`` with their missing cells as NaN (the cells of the placeholder, where
        ``missing`` cells are allowed)."""
        placeholder = self._placeholder()
        if not missing or math.isnan(placeholder):
            return X
        return np.where(X == placeholder, np.nan, X)

    def _check_predict_data(self, X) -> np.ndarray:
        """``X`` checked against the fitted model: finite, or with missing cells (as NaN) for a
        masked network."""
        check_is_fitted(self, "model_")
        masked = self.network_spec_.masked
        X = validate_data(
            self,
            X,
            dtype=np.float64,
            ensure_all_finite="allow-nan" if masked and math.isnan(self._placeholder()) else True,
            reset=False,
        )
        return self._marked_missing(X, masked)

    def _training_rows(
        self, X, sample_weight, *, warm: bool, min_samples: int = 2, missing: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Training rows checked and laid out (``columns_``, ``n_features_in_`` and
        ``feature_names_in_`` set, unless ``warm`` continues a fit): the rows in the flow's
        coordinates (one dequantisation of discrete columns; NaN in every coordinate of a
        missing cell, allowed with ``missing``), their weights, and their codes (None for a
        plain table, whose rows are the coordinates)."""
        if not is_frame(X):
            X = check_array(X, dtype=None, ensure_all_finite=False, input_name="X")
        layout = (
            self.columns_
            if warm
            else fit_layout(
                self,
                X,
                self.categorical_features,
                self.integer_features,
                self.bounds,
                missing=missing,
                placeholder=self._placeholder(),
            )
        )
        if layout.plain:
            X, weight = validate_rows_and_weights(
                self,
                X,
                sample_weight,
                reset=not warm,
                min_samples=min_samples,
                allow_nan=missing and math.isnan(self._placeholder()),
            )
            self.columns_ = layout
            return self._marked_missing(X, missing), weight, None
        if warm:
            _check_feature_names(self, X, reset=False)
            _check_n_features(self, X, reset=False)
        if X.shape[0] < min_samples:
            raise ValueError(
                f"Found array with {X.shape[0]} sample(s) while a minimum of {min_samples} is "
                "required."
            )
        codes, _ = layout.encode(X, fitting=True, missing=missing, placeholder=self._placeholder())
        weight = row_weights(sample_weight, codes)
        uniform = check_random_state(self.random_state).uniform(size=codes.shape)
        flow_rows, _ = layout.to_flow(
            torch.from_numpy(codes), torch.from_numpy(uniform), log_weight=False
        )
        self.columns_ = layout
        return flow_rows.numpy(), weight, codes

    def _flow_rows(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``X`` checked against the fitted model, in the flow's coordinates (before
        standardisation), and each row's log-weight (:meth:`skflow._columns.TableLayout.to_flow`):
        0 for a plain table; -inf for a row the model cannot hold (an unseen category, a value out
        of bounds, a fraction in an integer column), whose coordinates are set to 0. A masked
        model takes missing cells: NaN in their coordinates."""
        check_is_fitted(self, "model_")
        layout = self.columns_
        if layout.plain:
            X = self._check_predict_data(X)
            return X, np.zeros(X.shape[0])
        if not is_frame(X):
            X = check_array(X, dtype=None, ensure_all_finite=False, input_name="X")
        _check_feature_names(self, X, reset=False)
        _check_n_features(self, X, reset=False)
        codes, valid = layout.encode(
            X, missing=self.network_spec_.masked, placeholder=self._placeholder()
        )
        seed = draw_seed(check_random_state(self.random_state))
        uniform = row_uniforms(codes, layout.width, seed)
        flow_rows, log_weight = layout.to_flow(torch.from_numpy(codes), torch.from_numpy(uniform))
        flow_rows, log_weight = flow_rows.numpy(), log_weight.numpy()
        flow_rows[~valid] = 0.0
        log_weight[~valid] = -np.inf
        return flow_rows, log_weight

    def _possible_rows(self, X) -> np.ndarray:
        """The rows of ``X`` in the flow's coordinates; a ValueError for a row the model cannot
        hold (a category unseen in fit, a value out of bounds, a fraction in an integer
        column)."""
        Y, log_weight = self._flow_rows(X)
        if np.isneginf(log_weight).any():
            row = int(np.flatnonzero(np.isneginf(log_weight))[0])
            raise ValueError(
                f"Row {row} of X has a value the model cannot hold (a category unseen in fit, a "
                "value outside its column's bounds or a fraction in an integer column)."
            )
        return Y

    def _rows_from_flow(self, Y: np.ndarray):
        """Rows of the table from the flow's coordinates (unstandardised): valid values of every
        column, as a DataFrame if the training rows were one."""
        return self.columns_.decode(self.columns_.from_flow(Y))

    def _dequantise(self, codes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Standardised rows of the flow from ``codes`` in the layout ``columns_``, with fresh
        dequantisation noise from ``generator``."""
        uniform = torch.rand(codes.shape, generator=generator, device=codes.device)
        y, _ = self.columns_.to_flow(codes, uniform.to(codes.dtype), log_weight=False)
        mean, scale = (
            torch.as_tensor(a, dtype=y.dtype, device=y.device) for a in (self.mean_, self.scale_)
        )
        return (y - mean) / scale

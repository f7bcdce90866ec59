"""Streaming: ``partial_fit``'s training of a flow one chunk of rows at a time, and the
record it carries from one call to the next."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if

from ._callbacks import LastEpoch
from ._data import WeightedMoments, draw_seed, validate_rows_and_weights
from ._distributions import StandardNormal
from ._inference import resolve_device
from ._run import TrainState
from .networks import RestandardisedVelocity

__all__ = ["Stream", "StreamingMixin"]


@dataclass
class Stream:
    """What ``partial_fit`` carries from one call to the next.

    Attributes
    ----------
    network : torch.nn.Module
        The weights the optimiser moves: a :class:`~skflow.networks.RestandardisedVelocity`
        around a network in the reference coordinates.
    optimizer_state : dict
        Adam's state.
    reference : tuple of ndarray
        Mean and scale of the reference coordinates.
    calls : int
        Calls so far (each call draws its own random numbers).
    """

    network: torch.nn.Module
    optimizer_state: dict
    reference: tuple[np.ndarray, np.ndarray]
    calls: int


def _streams(estimator) -> bool:
    """Whether ``partial_fit`` is available: not with ``allow_missing`` (a stream's moments
    would need each column's observed share)."""
    return not estimator.allow_missing


class StreamingMixin:
    """``partial_fit`` for a :class:`~skflow._base.BaseFlow` from ``N(0, I)`` with the
    hyperparameter ``allow_missing``, and its training step."""

    @available_if(_streams)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Train on one chunk of a stream: one epoch over its rows, continuing from the last call.
        Available without ``allow_missing``.

        Each call merges the chunk's moments into ``mean_`` and ``scale_`` (the exact statistics of
        every row seen so far), re-expresses the flow in the new standardised coordinates exactly
        (:class:`~skflow.networks.RestandardisedVelocity`), and continues Adam and the EMA from the
        previous call at the step size ``learning_rate_init``; ``t_``, ``n_iter_`` and
        ``loss_curve_`` add up over the calls. After :meth:`fit` it continues from the fitted
        network; :meth:`fit` forgets the stream.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training rows.
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights of positive sum.

        Returns
        -------
        self : FlowMatchingDensity

        Examples
        --------
        >>> import numpy as np
        >>> from skflow import FlowMatchingDensity
        >>> X = np.random.default_rng(0).normal(loc=5.0, size=(600, 2))
        >>> flow = FlowMatchingDensity(hidden_layer_sizes=(16,), random_state=0)
        >>> for chunk in np.array_split(X, 3):
        ...     flow = flow.partial_fit(chunk)
        >>> bool(np.allclose(flow.mean_, X.mean(axis=0)))
        True
        """
        first = not hasattr(self, "model_")
        if first:
            X, weight, _ = self._training_rows(X, sample_weight, warm=False, min_samples=1)
        if not self.columns_.plain:
            raise ValueError(
                "partial_fit needs every column continuous and unbounded (a stream's later "
                "chunks could bring categories and ranges that the first did not show); use fit, "
                "or set categorical_features=None, integer_features=None and bounds=None."
            )
        if not first:
            X, weight = validate_rows_and_weights(
                self, X, sample_weight, reset=False, min_samples=1
            )
        self._n_features_out = X.shape[1]
        self._partial_fit_network(X, weight, StandardNormal(X.shape[1]))
        return self

    def _partial_fit_network(self, X: np.ndarray, weight: np.ndarray, base) -> None:
        """One pass of training over a chunk of a stream (the work of ``partial_fit``).

        The chunk's moments are merged into the standardisation, the network is re-expressed
        exactly in the new standardised coordinates
        (:class:`~skflow.networks.RestandardisedVelocity` around the network of the reference
        coordinates: those of the first chunk, or of ``fit``), and one epoch over the chunk
        continues Adam and the EMA from the previous call. Nothing is assigned until the pass has
        succeeded.
        """
        device = resolve_device(self.device)
        stream: Stream | None = getattr(self, "_stream", None)
        calls = 0 if stream is None else stream.calls
        # a new stream of random numbers for every call, reproducible from random_state
        rng = np.random.default_rng([draw_seed(check_random_state(self.random_state)), calls])
        moments = WeightedMoments.of(X, weight)
        if stream is not None:  # continue the stream
            spec = self.network_spec_
            online, ema = copy.deepcopy(stream.network), copy.deepcopy(self.model_)
            reference = stream.reference
            moments = self._moments.merge(moments)
        elif hasattr(self, "model_"):  # after fit: its network and coordinates are the reference
            spec = self.network_spec_
            online = RestandardisedVelocity(copy.deepcopy(self.model_), X.shape[1])
            ema = copy.deepcopy(online)
            reference = (self.mean_, self.scale_)
            moments = self._moments.merge(moments)
        else:  # the first chunk sets the reference coordinates
            spec = self._network_for(None)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(np.iinfo(np.int32).max)))
                online = RestandardisedVelocity(spec.build(X.shape[1]), X.shape[1])
            ema = copy.deepcopy(online)
            reference = (moments.mean, moments.scale())
        scale = moments.scale()
        for network in (online, ema):
            network.a.copy_(torch.as_tensor(reference[1] / scale))
            network.b.copy_(torch.as_tensor((reference[0] - moments.mean) / scale))
        online = online.to(device=device, dtype=torch.float32).train().requires_grad_(True)
        ema = ema.to(device=device, dtype=torch.float32)
        state = TrainState.start(
            online,
            self.learning_rate_init,
            ema=ema,
            optimizer_state=None if stream is None else stream.optimizer_state,
            step=getattr(self, "t_", 0),
        )
        X_std = torch.as_tensor((X - moments.mean) / scale, dtype=torch.float32, device=device)
        w = None  # equal weights: the plain mean, as in fit
        if not np.all(weight == weight[0]):
            w = torch.as_tensor(weight, dtype=torch.float32, device=device)
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        trainer = self._trainer(base, self._training_config(1), rng, spec)
        trainer.run(state, X_std, w, generator, 1, LastEpoch(state.ema), interruptible=False)
        (loss,) = state.history.loss_curve

        self._set_moments(moments)
        self.network_spec_ = spec
        self.model_ = state.ema.to("cpu").eval()
        optimizer_state = state.optimizer.state_dict()
        optimizer_state["state"] = {
            i: {k: v.detach().to("cpu", copy=True) for k, v in values.items()}
            for i, values in optimizer_state["state"].items()
        }
        self._stream = Stream(online.to("cpu"), optimizer_state, reference, calls + 1)
        self.loss_curve_ = [*getattr(self, "loss_curve_", []), loss]
        self.validation_loss_curve_ = getattr(self, "validation_loss_curve_", [])
        self.best_loss_ = min(getattr(self, "best_loss_", np.inf), loss)
        self.n_iter_ = getattr(self, "n_iter_", 0) + 1
        self.t_ = state.step
        self.stop_reason_ = "max_iter"

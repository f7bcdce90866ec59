"""Streaming: ``partial_fit``'s training of a flow one chunk of rows at a time, and the
record it carries from one call to the next."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._callbacks import LastEpoch
from ._data import WeightedMoments, draw_seed
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


class StreamingMixin:
    """``partial_fit``'s training step for a :class:`~skflow._base.BaseFlow`."""

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

"""Inference with a fitted velocity network: ODE and SDE integration and the log-likelihood, on rows
taken in memory-bounded chunks.

Inference runs in float64, so that a row's result does not depend on the batch it is computed in
(to rounding) with fixed-step solvers and the exact divergence. The chunk size is an argument:
:func:`chunk_rows` gives the default, which keeps the largest intermediate (the ``d x rows x
width`` block of the batched Jacobian) near ``CHUNK_ELEMENTS[device]`` numbers: in cache on a CPU,
large launches on a GPU.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ._data import draw_seed
from .likelihood import flow_log_likelihood, rademacher_probes
from .networks import ConditionedVelocity
from .paths import Gamma, ProbabilityPath
from .solvers import integrate, integrate_sde

__all__ = [
    "CHUNK_ELEMENTS",
    "FittedNetwork",
    "ODESolver",
    "chunk_rows",
    "flushing_denormals",
    "interpolant_sde",
    "resolve_device",
    "validation_negative_log_likelihood",
]

CHUNK_ELEMENTS = {"cpu": 2**20, "cuda": 2**24}
"""Float64 numbers in the largest intermediate of one chunk, by device type: 8 MiB stays in a
CPU's cache, a GPU wants large launches."""

VALIDATION_ROWS = 1000
VALIDATION_STEPS = 8
VALIDATION_EXACT_MAX_FEATURES = 8
"""The held-out log-likelihood of early stopping: at most this many validation rows, this many
equal RK4 steps, and the exact divergence up to this many features (Hutchinson's above, with one
probe per row)."""

RowFunction = Callable[[torch.nn.Module, torch.Tensor], "torch.Tensor | np.ndarray"]


@contextlib.contextmanager
def flushing_denormals() -> Iterator[None]:
    """Run the block with denormal floats flushed to zero on the CPU, then restore the setting.

    Training drives some weights, Adam moments and activations (GELU far in its negative tail)
    into the denormal range, where CPU arithmetic is many times slower: a default fit on 5,000
    rows of 16 features took 129 s with them and 31 s flushed, to the same model. torch has no
    getter for the flag, so the setting before the block is read off a denormal product.
    """
    flushed = float(torch.tensor([1e-40]) * 1.0) == 0.0
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(flushed)


def resolve_device(device: str) -> torch.device:
    """The ``device`` hyperparameter as a :class:`torch.device`: ``"auto"`` picks CUDA when it is
    available and the CPU otherwise; ``"cuda"`` without CUDA is a ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch cannot see a CUDA device.")
    return torch.device(device)


def chunk_rows(n_features: int, width: int, device: torch.device) -> int:
    """Rows per chunk that keep ``n_features x rows x max(n_features, width)`` near
    ``CHUNK_ELEMENTS[device.type]``."""
    return max(1, CHUNK_ELEMENTS[device.type] // (n_features * max(n_features, width)))


@dataclass(frozen=True)
class ODESolver:
    """An ODE solver and its settings (see :func:`skflow.solvers.integrate`)."""

    method: str
    n_steps: int
    step_exponent: float
    atol: float
    rtol: float

    def options(self) -> dict:
        """The keyword arguments of :func:`skflow.solvers.integrate`."""
        return {
            "method": self.method,
            "n_steps": self.n_steps,
            "step_exponent": self.step_exponent,
            "atol": self.atol,
            "rtol": self.rtol,
        }


class FittedNetwork:
    """A copy of a fitted network on ``device`` in ``dtype`` (float64 for ODE solves and
    likelihoods), applied to rows ``chunk`` at a time.

    Every method takes rows as a NumPy array and returns one array over all of them. ``before``
    maps each chunk of rows on its way in (e.g. standardises it) and ``after`` each chunk of results
    on its way out, so that no temporary array is as long as the input: the memory beyond the
    inputs and outputs is that of one chunk. A conditional network
    (:class:`~skflow.networks.ClassConditionalVelocity`) takes each row's ``condition``, an array
    whose rows travel with the rows of ``X``: each chunk sees the plain field
    :class:`~skflow.networks.ConditionedVelocity` of its rows' conditions.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        chunk: int,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.network = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
        self.device = device
        self.chunk = chunk
        self.dtype = dtype

    def map_rows(
        self,
        X: np.ndarray,
        function: RowFunction,
        *,
        before: Callable[[np.ndarray], np.ndarray] | None = None,
        after: Callable[[np.ndarray], np.ndarray] | None = None,
        condition: np.ndarray | None = None,
    ) -> np.ndarray:
        """``function(network, x)`` over the rows of ``X``, chunk by chunk, without gradients;
        ``x`` is a tensor of the network's dtype on the device and the result's first axis runs
        over its rows.
        With ``condition`` (one row per row of ``X``), ``network`` is the field given the
        conditions of the chunk's rows."""
        out = None
        with torch.no_grad(), flushing_denormals():
            for start in range(0, X.shape[0], self.chunk):
                rows = slice(start, start + self.chunk)
                chunk = X[rows] if before is None else before(X[rows])
                network = self.network
                if condition is not None:
                    given = torch.as_tensor(condition[rows], device=self.device)
                    network = ConditionedVelocity(network, given)
                # a copy: the rows may be the caller's array (read-only, or to be left untouched)
                result = function(
                    network, torch.tensor(chunk, dtype=self.dtype, device=self.device)
                )
                if isinstance(result, torch.Tensor):
                    result = result.cpu().numpy()
                if after is not None:
                    result = after(result)
                if out is None:
                    out = np.empty((X.shape[0], *result.shape[1:]))
                out[rows] = result
        return out

    def carry(self, X: np.ndarray, t0: float, t1: float, solver: ODESolver, **maps) -> np.ndarray:
        """Carry rows along the ODE ``dx/dt = v(t, x)`` from ``t0`` to ``t1``."""

        def carry(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
            def field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return net(t.expand(y.shape[0]), y)

            return integrate(field, x, t0, t1, **solver.options())

        return self.map_rows(X, carry, **maps)

    def carry_stochastic(
        self,
        X: np.ndarray,
        t0: float,
        t1: float,
        make_drift: Callable[[torch.nn.Module], Callable],
        diffusion: Callable[[torch.Tensor], torch.Tensor],
        n_steps: int,
        generator: torch.Generator,
    ) -> np.ndarray:
        """Carry rows along an SDE from ``t0`` to ``t1`` by Euler–Maruyama
        (:func:`skflow.solvers.integrate_sde`): drift ``make_drift(network)``, scalar noise
        amplitude ``diffusion(t)``, increments drawn from ``generator``."""
        return self.map_rows(
            X,
            lambda net, x: integrate_sde(
                make_drift(net), diffusion, x, t0, t1, n_steps=n_steps, generator=generator
            ),
        )

    def log_likelihood(
        self,
        X: np.ndarray,
        t0: float,
        t1: float,
        base_log_prob: Callable[[np.ndarray], np.ndarray],
        solver: ODESolver,
        probes: tuple[int, int] | None = None,
        *,
        before: Callable[[np.ndarray], np.ndarray] | None = None,
        condition: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``log p_t1(x) = log p_t0(z) - int_t0^t1 div v dt`` at each row, with ``z`` the point the
        ODE pulls the row back to and ``log p_t0 = base_log_prob`` (see
        :func:`skflow.likelihood.flow_log_likelihood`), and its standard error; with
        ``condition``, of the field given each row's condition.

        ``probes`` = ``(n_probes, seed)`` estimates the divergence by Hutchinson's estimator with
        each row's own Rademacher probes (:func:`skflow.likelihood.rademacher_probes`): the
        log-density is the mean of the ``n_probes`` estimates and the standard error their
        standard deviation over ``sqrt(n_probes)`` (NaN for one probe). None: the exact
        divergence, error 0.
        """

        def pull_back(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
            eps = None
            if probes is not None:
                eps = rademacher_probes(x.cpu().numpy(), *probes)
                eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
            z, delta = flow_log_likelihood(net, x, t0, t1, probes=eps, **solver.options())
            delta = delta.cpu().numpy().reshape(x.shape[0], -1)
            if probes is None:  # exact
                error = np.zeros(x.shape[0])
            elif delta.shape[1] > 1:
                error = delta.std(axis=1, ddof=1) / np.sqrt(delta.shape[1])
            else:  # unknown from one probe
                error = np.full(x.shape[0], np.nan)
            return np.column_stack([base_log_prob(z.cpu().numpy()) + delta.mean(axis=1), error])

        out = self.map_rows(X, pull_back, before=before, condition=condition)
        return out[:, 0], out[:, 1]


def interpolant_sde(noise: Gamma, eps: float, forward: bool) -> tuple[Callable, Callable]:
    """Drift and diffusion of the SDE samplers of a stochastic interpolant with noise ``gamma``
    and a learned denoiser ``eta_z`` (Albergo, Boffi & Vanden-Eijnden, 2023, eqs. 2.32-2.33):
    ``dX = (b +- epsilon s) dt + sqrt(2 epsilon) dW`` forwards (+) or backwards (-), with
    ``epsilon(t) = eps gamma(t) / max gamma``, which vanishes with the noise at the ends, and the
    score ``s = -eta_z / gamma``, so that ``epsilon s = -eps eta_z / max gamma`` stays bounded.

    Returns ``make_drift(network)``, the drift of a network with ``denoiser``, and
    ``diffusion(t)``, as :meth:`FittedNetwork.carry_stochastic` takes them.
    """
    grid = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    rate = eps / float(noise.gamma(grid).max())  # epsilon(t) = rate * gamma(t)
    sign = 1.0 if forward else -1.0

    def make_drift(net: torch.nn.Module) -> Callable:
        def drift(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            times = t.expand(y.shape[0])
            return net(times, y) - sign * rate * net.denoiser(times, y)

        return drift

    def diffusion(t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(2.0 * rate * noise.gamma(t))

    return make_drift, diffusion


def validation_negative_log_likelihood(
    X_val: np.ndarray,
    weight: np.ndarray | None,
    rng: np.random.RandomState,
    *,
    path: ProbabilityPath,
    base_log_prob: Callable[[np.ndarray], np.ndarray],
    device: torch.device,
    condition: np.ndarray | None = None,
) -> Callable[[torch.nn.Module], float]:
    """The early-stopping score of ``scoring="log_likelihood"``: a callable giving a network's
    (weighted) mean negative log-likelihood of the validation rows, in standardised units; with
    ``condition`` (the rows' conditions), the log-likelihood given them of a conditional network.

    It integrates the log-density ODE with ``VALIDATION_STEPS`` equal RK4 steps on at most
    ``VALIDATION_ROWS`` rows, in the training precision, with the exact divergence up to
    ``VALIDATION_EXACT_MAX_FEATURES`` features and Hutchinson's estimator (the same probes at every
    call) above: a consistent ranking of one fit's checkpoints at a small share of the training
    cost, not the converged value of ``score_samples``.
    """
    if X_val.shape[0] > VALIDATION_ROWS:
        keep = rng.choice(X_val.shape[0], VALIDATION_ROWS, replace=False)
        X_val, weight = X_val[keep], None if weight is None else weight[keep]
        condition = None if condition is None else condition[keep]
    weight = np.ones(X_val.shape[0]) if weight is None else weight
    if not weight.sum() > 0:
        weight = np.ones(X_val.shape[0])  # only zero-weight rows held out: count them all
    x = torch.as_tensor(X_val, dtype=torch.float32, device=device)
    given = None if condition is None else torch.as_tensor(condition, device=device)
    probe_seed = draw_seed(rng)
    probes = None
    if X_val.shape[1] > VALIDATION_EXACT_MAX_FEATURES:
        probes = torch.as_tensor(rademacher_probes(X_val, 1, probe_seed), dtype=x.dtype).to(device)

    def negative_log_likelihood(network: torch.nn.Module) -> float:
        with torch.no_grad():
            z, delta = flow_log_likelihood(
                network if given is None else ConditionedVelocity(network, given),
                x,
                path.t_min,
                path.t_max,
                probes=probes,
                method="rk4",
                n_steps=VALIDATION_STEPS,
            )
        delta = delta.reshape(x.shape[0], -1).mean(dim=1)
        log_likelihood = base_log_prob(z.double().cpu().numpy()) + delta.cpu().numpy()
        return -float(np.average(log_likelihood, weights=weight))

    return negative_log_likelihood

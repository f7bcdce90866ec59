"""Flow matching on incomplete rows: one field for every conditional law of some coordinates given
others (:class:`~skflow.networks.MaskedVelocity`), learned from the observed cells alone.

Each minibatch splits every row's observed coordinates ``o`` at random into known ones ``k``
(each observed coordinate independently with a probability ``s = sqrt(u)``, ``u`` uniform, drawn
per row: every share of known coordinates is trained, from none to all, and the large shares that
imputation conditions on more often) and generated ones ``g = o - k``. The
field sees the known values, the path's points ``x_t = alpha(t) x0 + beta(t) x1`` on ``g`` and 0 on
the missing coordinates, and regresses the path's velocity on ``g`` only,

.. math::

    L(\\theta) = \\mathbb{E}\\, \\bigl\\lVert g \\odot \\bigl(v_\\theta(t, x_t \\mid k, g)
        - \\dot\\alpha(t) x_0 - \\dot\\beta(t) x_1\\bigr)\\bigr\\rVert^2 \\big/ \\mathbb{E}\\,|g|,

so a missing cell is never needed: it is neither known nor generated. When cells are missing
completely at random, the observed cells of a row, split this way, are draws of ``x_g`` given
``x_k`` from the data's law, and the minimiser is the conditional flow of ``x_g`` given ``x_k``
(Lipman et al., 2023, with the conditioning of Zheng et al., 2023, on random masks as in the
arbitrary-conditional models of Ivanov, Figurnov & Vetrov, ICLR 2019). Imputation integrates the
missing coordinates of a row from ``N(0, I)`` given all its observed ones (:func:`masks`).

Without the split (every observed coordinate generated, none known) the minimiser is, for each
mask, the flow of the law of the observed coordinates: the marginal laws that a density with
``allow_missing`` scores rows with holes by. Rows whose missing cells were drawn from such a field
can also train the joint law of whole rows (:class:`MaskedFlowMatchingTrainer`'s ``completed``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._trainer import FlowMatchingTrainer

__all__ = ["MaskedFlowMatchingTrainer", "marginal_masks", "masks", "with_labels"]


def masks(known: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """The condition of :class:`~skflow.networks.MaskedVelocity` for boolean masks ``known`` and
    ``generated`` of shape (n, d): both as 0/1, side by side, shape (n, 2 d)."""
    return np.concatenate([known, generated], axis=1).astype(np.float64)


def marginal_masks(observed: np.ndarray) -> np.ndarray:
    """The condition of the law of the ``observed`` coordinates of each row: none known, every
    observed one generated (``masks(0, observed)``)."""
    return masks(np.zeros_like(observed), observed)


def with_labels(masked: np.ndarray | None, labels: np.ndarray | None) -> np.ndarray | None:
    """The condition of each row: the masks of a masked field (:func:`masks`), then the class
    index of a class-conditional one, either as given (None: none)."""
    if masked is None or labels is None:
        return labels if masked is None else masked
    return np.column_stack([masked, labels])


class MaskedFlowMatchingTrainer(FlowMatchingTrainer):
    """Fits a :class:`~skflow.networks.MaskedVelocity` on incomplete rows.

    The rows' conditions are ``masks(0, observed)`` (:func:`masks`; ``observed`` is 1 where a
    cell is observed, 0 where it is missing, and a missing cell holds any value, NaN included),
    followed by each row's class index for a class-conditional field; the coupling is
    independent, as the generated coordinates differ from row to row.

    Each row of a minibatch trains one of three tasks: with probability ``conditional`` a
    conditional law (its observed cells split into known and generated ones, for imputation),
    with probability ``completed`` the joint law of all its cells (for rows whose missing cells
    were filled in by draws, which the stored rows then hold), and otherwise the law of its
    observed cells (all generated, none known: the marginals that a density scores rows with
    holes by).

    Parameters
    ----------
    *args, **kwargs
        As :class:`FlowMatchingTrainer`'s.
    conditional, completed : float, default=0.0
        The shares of the rows that train a conditional law and the joint law of a completed
        row.
    """

    def __init__(self, *args, conditional: float = 0.0, completed: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.conditional = conditional
        self.completed = completed

    def _regression_pairs(
        self, x1: torch.Tensor, generator: torch.Generator, condition: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        if self.prepare is not None:
            x1 = self.prepare(x1, generator)
        n, d = x1.shape
        observed = condition[:, d : 2 * d].to(x1.dtype)
        if self.completed == 0:  # the stored rows may hold anything in a missing cell
            x1 = torch.where(observed > 0, x1, 0.0)
        x0 = self.base.sample(n, generator)
        u = self.times.sample(n, generator, x1.device)
        t = self.path.t_min + (self.path.t_max - self.path.t_min) * u
        known, generated = torch.zeros_like(observed), observed
        if self.conditional > 0:
            share = torch.rand((n, 1), generator=generator, device=x1.device, dtype=x1.dtype)
            draws = torch.rand((n, d), generator=generator, device=x1.device, dtype=x1.dtype)
            known = observed * (draws < share.sqrt()).to(x1.dtype)
        if 0 < self.conditional < 1 or self.completed > 0:  # a task per row
            task = torch.rand((n, 1), generator=generator, device=x1.device, dtype=x1.dtype)
            known = known * (task < self.conditional).to(x1.dtype)
            generated = torch.where(task >= 1 - self.completed, 1.0, observed)
        generated = generated - known
        xt = generated * self.path.interpolate(x0, x1, t) + known * x1
        ut = generated * self.path.velocity(x0, x1, t)
        given = torch.cat([known, generated, condition[:, 2 * d :].to(x1.dtype)], dim=1)
        return t, xt, ut, None, given

    def _loss(self, network: nn.Module, t, xt, ut, z, condition, weight) -> torch.Tensor:
        """Squared error of the velocity over the generated cells, per generated cell (rows
        weighted by ``weight``, None: equally)."""
        d = xt.shape[1]
        generated = condition[:, d : 2 * d]
        error = (network(t, xt, condition) - ut).pow(2).sum(dim=1)
        cells = generated.sum(dim=1)
        if weight is not None:
            error, cells = error * weight, cells * weight
        return error.sum() / cells.sum().clamp_min(1e-12)

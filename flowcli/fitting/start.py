"""Where a candidate starts: its data-set layers and categories fitted to the training rows,
a mixture base fitted by EM, and the start's weights and held-out scores."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import torch

from ..config import MIXTURE_ROWS
from ..engine.distributions import fit_context_mixture, select_mixture
from ..engine.mixed import MixedDensity
from ..engine.passes import in_passes, rows_per_pass
from ..training import fit_chain
from .data import Encoded

__all__ = ["Start", "fit_mixture_base", "initialize", "score_start"]


class Start(NamedTuple):
    """Where a candidate's training started: its weights, per-row held-out scores (table
    units), and their mean in the flow's units, as training reports validation scores."""

    state: dict[str, torch.Tensor]
    scores: np.ndarray
    val_ll: float


def initialize(density: MixedDensity, x_train: torch.Tensor, x_val: torch.Tensor,
               widths: torch.Tensor, generator: torch.Generator,
               categories: dict[str, torch.Tensor] | None) -> torch.Tensor:
    """Fit the data-set layers and the categories (or load ``categories``, a fitted chain's
    state); returns the training rows dequantized as training sees them."""
    # integer cells at their corners would make two equal integer columns look exactly
    # collinear to a whitening layer
    rows = x_train + torch.rand_like(x_train) * widths
    density.init_from(rows)
    chain = density.chain
    if chain is not None and categories is not None:
        chain.load_state_dict(categories)
    elif chain is not None:
        _, c_train, g_train = density.split(x_train)
        _, c_val, g_val = density.split(x_val)
        fit_chain(chain, c_train, c_val, generator, g_train=g_train, g_val=g_val)
    return rows


def score_start(density: MixedDensity, data: Encoded) -> Start | None:
    """The untrained density's weights and held-out scores, when there are validation rows."""
    if not data.has_val:
        return None
    density.eval()
    state = {k: v.detach().clone() for k, v in density.state_dict().items()}
    device = next(density.parameters()).device
    flow_scores = in_passes(density.log_prob, data.x_held, device,
                            step=rows_per_pass(density, device))
    return Start(state, flow_scores + data.ld_held, float(np.mean(flow_scores)))


def fit_mixture_base(density: MixedDensity, rows: torch.Tensor, x_val: torch.Tensor,
                     generator: torch.Generator, shift: float, seconds: float | None,
                     target: float | None) -> dict[str, Any] | None:
    """Fit the flow's mixture base by EM to the rows as the untrained flow maps them (the
    identity after its data-set layers), its size chosen on the validation rows.

    Rows with gaps are left out (and then no ``target`` applies); without validation rows, a
    tenth of the training rows chooses the size. The search over sizes stops after
    ``seconds``, or once no size can reach ``target`` (a validation log-likelihood in table
    units; :func:`~flowcli.engine.distributions.select_mixture`). ``shift`` (the encoding's
    mean log-determinant on the validation rows) turns scores into the table's units.
    A conditional model's mixture then learns how its weights and means move with the
    condition (:func:`~flowcli.engine.distributions.fit_context_mixture`), so that its
    training starts from a base that depends on the condition.
    Returns the record of the sizes tried; None (and the standard normal base kept) with
    fewer than 5 complete rows.
    """
    flow = density.flow
    assert flow is not None
    d = density.continuous
    keep = ~torch.isnan(rows[:, :d]).any(dim=1)
    held = x_val if x_val.shape[0] else rows
    n_held = held.shape[0]
    held = held[~torch.isnan(held[:, :d]).any(dim=1)]
    if int(keep.sum()) < 5 or held.shape[0] == 0:
        return None
    # EM's rounds cost rows x features^2 per component: fewer rows for wide tables
    most = min(MIXTURE_ROWS, max(5000, 50_000_000 // d**2))
    pick = torch.randperm(int(keep.sum()), generator=generator)[:most]
    fitted = rows[keep][pick.to(rows.device)]
    if not x_val.shape[0]:
        # the rows EM fits would always choose the largest size
        cut = max(fitted.shape[0] // 10, 1)
        fitted, held = fitted[cut:], fitted[:cut]
    if held.shape[0] < n_held or density.given:
        # rows with gaps left out, or a mixture that does not yet see the condition: its
        # scores are not comparable with the target
        target = None
    z_train, z_val, offset = _to_latent(density, fitted, held, shift)
    mixture, scores = select_mixture(
        z_train, z_val, generator=generator, max_seconds=seconds,
        target=None if target is None else target - offset)
    flow.set_mixture(mixture, condition=density.given)
    if density.given:
        context = density.flow_context(fitted)
        assert context is not None
        deadline = None if seconds is None else time.perf_counter() + seconds
        with torch.enable_grad():
            fit_context_mixture(flow.base, z_train.to(context), context, generator,
                                deadline=deadline)
    return {"components": mixture.components,
            "val_by_components": {str(k): v + offset for k, v in scores.items()}}


def _to_latent(density: MixedDensity, fitted: torch.Tensor, held: torch.Tensor,
               shift: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The rows EM fits and the held-out rows in latent space, and what the rest of the
    model adds to the base's log-density of a held-out row (the categories, the data-set
    layers' log-determinants, the encoding's ``shift``), so that the mixture's scores read in
    table units like every validation log-likelihood."""
    flow = density.flow
    assert flow is not None
    density.eval()
    with torch.no_grad():
        z_train, z_val = density.to_latent(fitted), density.to_latent(held)
        offset = shift + float(density.log_prob(held).mean() - flow.base.log_prob(z_val).mean())
    return z_train, z_val, offset

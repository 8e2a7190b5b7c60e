"""One training loop for every engine-level flow (flowcli, zuko, nflows), so they differ only in
the model.

Recipe: Adam (lr 1e-3), batch 512, gradient-norm clipping at 5, validation after each epoch,
early stopping with patience 20, the best validation weights restored; capped by ``max_epochs``
and ``max_seconds`` (checked after each epoch, as flowcli's own loop does). A batch whose loss or
gradient is not finite is skipped and counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Recipe", "batched_log_prob", "fit_flow"]

LogProb = Callable[[Tensor], Tensor]


@dataclass
class Recipe:
    """Optimization settings shared by every system."""

    lr: float = 1e-3
    batch_size: int = 512
    patience: int = 20
    max_epochs: int = 200
    max_seconds: float = 25.0
    clip_norm: float = 5.0
    seed: int = 0


@torch.no_grad()
def batched_log_prob(log_prob: LogProb, x: Tensor, batch_size: int = 4096) -> Tensor:
    """``log_prob`` over ``x`` in batches of 4,096 rows, without gradients.

    On CPU, 4k-row batches run about 2.5x faster than one 30k-65k-row batch for every library
    measured here (the activations stay in cache), so this is the fair "large batch".
    """
    return torch.cat([log_prob(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def fit_flow(module: nn.Module, log_prob: LogProb, x_train: Tensor, x_val: Tensor,
             recipe: Recipe) -> dict[str, Any]:
    """Maximum likelihood training of ``module``; returns epochs, seconds and diagnostics."""
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=recipe.lr)
    generator = torch.Generator().manual_seed(recipe.seed)
    n = x_train.shape[0]
    best_val, best_epoch, bad, skipped = -math.inf, 0, 0, 0
    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    start = time.perf_counter()
    stopped, epoch = "max_epochs", 0
    for epoch in range(1, recipe.max_epochs + 1):
        module.train()
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, recipe.batch_size):
            loss = -log_prob(x_train[order[i:i + recipe.batch_size]]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(params, recipe.clip_norm)
            if not (torch.isfinite(loss) and torch.isfinite(norm)):
                skipped += 1
                continue
            optimizer.step()
        module.eval()
        val = float(batched_log_prob(log_prob, x_val).mean())
        if val > best_val:  # a NaN validation score never counts as an improvement
            best_val, best_epoch, bad = val, epoch, 0
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            bad += 1
        if bad >= recipe.patience:
            stopped = "patience"
            break
        if time.perf_counter() - start > recipe.max_seconds:
            stopped = "time"
            break
    seconds = time.perf_counter() - start
    module.load_state_dict(best_state)
    module.eval()
    return {"epochs": epoch, "best_epoch": best_epoch, "stopped": stopped,
            "train_seconds": seconds, "skipped_batches": skipped}

"""Fitting the categorical part of a mixed density on its own, before the flow trains."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .loop import device_generator
from .params import adam, snapshot

__all__ = ["fit_chain"]


def fit_chain(
    chain: nn.Module,
    c_train: Tensor,
    c_val: Tensor,
    generator: torch.Generator | None = None,
    lr: float = 1e-2,
    steps: int = 3000,
    patience: int = 100,
    batch_size: int = 65536,
    g_train: Tensor | None = None,
    g_val: Tensor | None = None,
) -> None:
    """Fit a categorical model (``chain.log_prob(c, g)``, ``g`` the condition of a
    conditional model or None) to convergence.

    The categories' likelihood does not depend on the flow's parameters, so this part is
    fitted on its own: large batches (the whole table when it fits), Adam, and early stopping
    on the validation rows, keeping the best weights. Afterwards the caller freezes it.
    """
    optimizer = adam(list(chain.parameters()), lr, 0.0)
    sampler = device_generator(generator, c_train.device)
    held_out, held_g = (c_val, g_val) if c_val.shape[0] else (c_train, g_train)
    if held_g is not None:
        held_g = held_g[:batch_size]
    best, best_state, bad = -math.inf, snapshot(chain), 0
    n = c_train.shape[0]
    for _ in range(steps):
        batch, g = c_train, g_train
        if n > batch_size:
            idx = torch.randint(0, n, (batch_size,), generator=sampler, device=c_train.device)
            batch, g = c_train[idx], g_train[idx] if g_train is not None else None
        loss = -chain.log_prob(batch, g).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            score = float(chain.log_prob(held_out[:batch_size], held_g).mean())
        if score > best + 1e-6:
            best, best_state, bad = score, snapshot(chain), 0
        else:
            bad += 1
            if bad >= patience:
                break
    chain.load_state_dict(best_state)

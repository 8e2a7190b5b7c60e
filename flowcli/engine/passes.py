"""Applying a density's function to many rows in passes sized for the device."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from ..config import pass_rows

__all__ = ["in_passes", "rows_per_second"]

SPEED_ROWS = 8192  # rows timed for a scoring speed: enough passes to average out their cost


@torch.inference_mode()
def in_passes(fn: Callable[[torch.Tensor], torch.Tensor], rows: np.ndarray | torch.Tensor,
              device: torch.device, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """``fn`` applied to ``rows`` in passes sized for ``device``; float64 numpy out."""
    step = pass_rows(device.type)
    x = torch.as_tensor(rows, dtype=dtype, device=device)
    if x.shape[0] == 0:
        return fn(x).double().cpu().numpy()
    return torch.cat([fn(x[i : i + step]) for i in range(0, x.shape[0], step)]
                     ).double().cpu().numpy()


def rows_per_second(fn: Callable[[torch.Tensor], torch.Tensor], rows: np.ndarray,
                    device: torch.device) -> float:
    """How fast ``fn`` goes through rows like ``rows`` (repeated up to ``SPEED_ROWS``), in
    passes as :func:`in_passes` makes them; after one pass to warm up."""
    if rows.shape[0] == 0:
        return float("nan")
    block = np.resize(rows, (max(SPEED_ROWS, rows.shape[0]), rows.shape[1]))
    in_passes(fn, block[: pass_rows(device.type)], device)
    tick = time.perf_counter()
    in_passes(fn, block, device)
    return block.shape[0] / max(time.perf_counter() - tick, 1e-9)

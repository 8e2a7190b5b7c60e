"""Applying a density's function to many rows in passes sized for the device."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..config import pass_rows

__all__ = ["in_passes"]


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

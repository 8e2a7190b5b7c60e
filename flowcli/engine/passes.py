"""Applying a density's function to many rows in passes sized for the device."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..config import CPU_SPLINE_SAMPLE_ROWS, pass_rows
from .spline import ElementwiseSpline, MaskedSplineAutoregressive

__all__ = ["in_passes", "rows_per_pass", "rows_per_second", "sample_rows_per_pass",
           "spline_width"]

SPEED_ROWS = 8192  # rows timed for a scoring speed: enough passes to average out their cost


def spline_width(module: nn.Module) -> int:
    """Features of ``module``'s widest spline layer; 0 without one."""
    return max((m.features for m in module.modules()
                if isinstance(m, (ElementwiseSpline, MaskedSplineAutoregressive))), default=0)


def rows_per_pass(module: nn.Module, device: torch.device) -> int:
    """Rows per scoring pass of ``module`` on ``device``: :func:`config.pass_rows` for its
    widest spline layer and torch's thread count."""
    return pass_rows(device.type, torch.get_num_threads(), spline_width(module))


def sample_rows_per_pass(module: nn.Module, device: torch.device) -> int:
    """Rows per sampling pass of ``module`` on ``device``, whatever the thread count (see
    :data:`config.CPU_SPLINE_SAMPLE_ROWS`)."""
    if device.type == "cpu" and spline_width(module):
        return CPU_SPLINE_SAMPLE_ROWS
    return pass_rows(device.type)


@torch.inference_mode()
def in_passes(fn: Callable[[torch.Tensor], torch.Tensor], rows: np.ndarray | torch.Tensor,
              device: torch.device, dtype: torch.dtype = torch.float32,
              step: int | None = None) -> np.ndarray:
    """``fn`` applied to ``rows`` in passes of ``step`` rows (by default sized for
    ``device``: :func:`config.pass_rows`); float64 numpy out."""
    step = step or pass_rows(device.type)
    x = torch.as_tensor(rows, dtype=dtype, device=device)
    if x.shape[0] == 0:
        return fn(x).double().cpu().numpy()
    _warm_up(fn, x)
    return torch.cat([fn(x[i : i + step]) for i in range(0, x.shape[0], step)]
                     ).double().cpu().numpy()


def rows_per_second(fn: Callable[[torch.Tensor], torch.Tensor], rows: np.ndarray,
                    device: torch.device, step: int | None = None) -> float:
    """How fast ``fn`` goes through rows like ``rows`` (repeated up to ``SPEED_ROWS``), in
    passes as :func:`in_passes` makes them; after one pass to warm up."""
    if rows.shape[0] == 0:
        return float("nan")
    step = step or pass_rows(device.type)
    block = np.resize(rows, (max(SPEED_ROWS, rows.shape[0], 2 * step), rows.shape[1]))
    in_passes(fn, block[:step], device, step=step)
    tick = time.perf_counter()
    in_passes(fn, block, device, step=step)
    return block.shape[0] / max(time.perf_counter() - tick, 1e-9)


_CPU_WARM = [False]  # whether this process has run a pass on the CPU


def _warm_up(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    """Before a process's first full pass on a CPU, one of two rows: the first multi-threaded
    pass of a process sometimes rounded differently (4 runs in 40 on 2 threads, up to 1e-3
    nats), as if the threads were still setting up, and scores must not depend on the run."""
    if x.device.type != "cpu" or _CPU_WARM[0] or torch.get_num_threads() < 2:
        return
    _CPU_WARM[0] = True
    fn(x[:2])

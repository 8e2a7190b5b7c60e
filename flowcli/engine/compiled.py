"""Scoring long jobs through ``torch.compile``, for flows with spline layers on the CPU.

A spline layer's time is mostly a hundred small elementwise operations, each paying PyTorch's
dispatch; compiled, they fuse into a few loops (2.5x faster in the benchmarks), but compiling
takes ten to thirty seconds. So a :class:`Scorer` scores eagerly until it has scored
``COMPILE_AFTER`` rows (a job that long has time to win the cost back), then compiles the
density's ``log_prob`` for its full passes, whose shape is fixed; a pass of another size
stays eager, so nothing compiles twice. Compiled scores differ from eager ones in the last
float32 digits (about 4e-6 nats), as scores of different pass sizes already do.

A flow without spline layers (a MAF's products already run as fused matrix kernels) and a
GPU never compile. Where compiling fails (no C compiler, say), scoring stays eager.
``FLOWCLI_COMPILE_AFTER`` sets the row count (``never`` turns compiling off).
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import FlowcliWarning
from .spline import ElementwiseSpline, MaskedSplineAutoregressive

__all__ = ["COMPILE_AFTER", "Scorer", "scorer_for"]

COMPILE_AFTER = 1_000_000  # rows scored eagerly before a spline flow compiles


def _compile_after() -> float:
    """The row count after which to compile: the environment's, else :data:`COMPILE_AFTER`."""
    given = os.environ.get("FLOWCLI_COMPILE_AFTER", "").strip().lower()
    if given == "never":
        return float("inf")
    return float(given) if given.isdigit() else COMPILE_AFTER


class Scorer:
    """``log_prob`` of a density, compiled for its full passes once a job is long enough."""

    def __init__(self, density: nn.Module) -> None:
        self.eager: Callable[[Tensor], Tensor] = density.log_prob
        self.worth = any(isinstance(m, (ElementwiseSpline, MaskedSplineAutoregressive))
                         for m in density.modules())
        self.scored = 0
        self.compiled: Callable[[Tensor], Tensor] | None = None
        self.failed = False

    def __call__(self, x: Tensor, full: int) -> Tensor:
        """The scores of ``x``, a pass of a job whose full passes hold ``full`` rows."""
        self.scored += x.shape[0]
        if not self._compiles(x, full):
            return self.eager(x)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.eager, dynamic=False)
            return self.compiled(x)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: stay eager
            self.failed = True
            warnings.warn(f"scoring goes on uncompiled: torch.compile failed "
                          f"({exc.__class__.__name__})", FlowcliWarning, stacklevel=2)
            return self.eager(x)

    def _compiles(self, x: Tensor, full: int) -> bool:
        return (self.worth and not self.failed and x.device.type == "cpu"
                and x.dtype == torch.float32 and x.shape[0] == full
                and self.scored > _compile_after())


_SCORERS: weakref.WeakKeyDictionary[nn.Module, Scorer] = weakref.WeakKeyDictionary()


def scorer_for(density: nn.Module) -> Scorer:
    """The :class:`Scorer` of ``density``, kept while the density lives, so that its row
    count runs over every chunk of a job."""
    if density not in _SCORERS:
        _SCORERS[density] = Scorer(density)
    return _SCORERS[density]

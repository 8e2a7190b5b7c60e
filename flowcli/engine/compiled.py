"""Scoring long jobs through ``torch.compile``, for flows with spline layers on the CPU.

A spline layer's time is mostly a hundred small elementwise operations, each paying PyTorch's
dispatch; compiled, they fuse into a few loops (1.6 to 1.9 times as fast at engine level in
the benchmarks), but compiling took 8 to 26 seconds, and end to end that was not won back
on a 6M-row job (see ``benchmarks/README.md``). So compiling is asked for: with
``FLOWCLI_COMPILE_AFTER=ROWS`` in the environment a :class:`Scorer` scores eagerly until it
has scored ``ROWS`` rows, then compiles the density's ``log_prob`` for its full passes,
whose shape is fixed; a pass of another size stays eager, so nothing compiles twice.
Compiled scores differ from eager ones in the last float32 digits (about 4e-6 nats), as
scores of different pass sizes already do.

A flow without spline layers (a MAF's products already run as fused matrix kernels) and a
GPU never compile. Where compiling fails (no C compiler, say), or the compiled passes turn
out slower than eager ones, scoring stays eager.
"""

from __future__ import annotations

import os
import time
import warnings
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import FlowcliWarning
from .passes import spline_width

__all__ = ["COMPILE_AFTER", "TRIALS", "Scorer", "scorer_for"]

COMPILE_AFTER = float("inf")  # by default, never: compiling is asked for in the environment
TRIALS = 3  # passes timed both ways after compiling


def _compile_after() -> float:
    """The row count after which to compile: the environment's (``never`` or a number of
    rows), else :data:`COMPILE_AFTER`."""
    given = os.environ.get("FLOWCLI_COMPILE_AFTER", "").strip().lower()
    if given == "never":
        return float("inf")
    return float(given) if given.isdigit() else COMPILE_AFTER


class Scorer:
    """``log_prob`` of a density, compiled for its full passes once a job is long enough,
    and kept compiled only where that is faster: on some shapes the compiled loops run
    slower than eager ones (an 8-column spline flow on two threads, 3x), so the first
    ``TRIALS`` full passes after compiling are timed both ways on the same rows."""

    def __init__(self, density: nn.Module, compile_after: float | None = None) -> None:
        self.eager: Callable[[Tensor], Tensor] = density.log_prob
        # rows scored before compiling; None: the environment's, read at each pass
        self.compile_after = compile_after
        self.worth = spline_width(density) > 0
        self.scored = 0
        self.compiled: Callable[[Tensor], Tensor] | None = None
        self.uncompiled = False
        self.timings: list[tuple[float, float]] = []  # (compiled, eager) seconds per trial

    def __call__(self, x: Tensor, full: int) -> Tensor:
        """The scores of ``x``, a pass of a job whose full passes hold ``full`` rows."""
        self.scored += x.shape[0]
        if not self._compiles(x, full):
            return self.eager(x)
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.eager, dynamic=False)
                return self._compile(x)
            if len(self.timings) < TRIALS:
                return self._trial(x)
            return self.compiled(x)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: stay eager
            self.uncompiled = True
            warnings.warn(f"scoring goes on uncompiled: torch.compile failed "
                          f"({exc.__class__.__name__})", FlowcliWarning, stacklevel=2)
            return self.eager(x)

    def _compile(self, x: Tensor) -> Tensor:
        """The first compiled call, which compiles (not a fair timing). The loops are made
        single-threaded: split across threads, these small loops ran several times slower
        (8 columns, 2 threads), while one thread each still beat eager scoring."""
        assert self.compiled is not None
        import torch._inductor.config as inductor

        with inductor.patch({"cpp.threads": 1}):
            return self.compiled(x)

    def _trial(self, x: Tensor) -> Tensor:
        """One pass timed compiled and eager; after the last trial, eager for good unless
        compiled was faster."""
        assert self.compiled is not None
        tick = time.perf_counter()
        out = self.compiled(x)
        middle = time.perf_counter()
        self.eager(x)
        self.timings.append((middle - tick, time.perf_counter() - middle))
        if len(self.timings) == TRIALS and not self.faster:
            self.uncompiled = True  # eager from now on
        return out

    @property
    def faster(self) -> bool:
        """Whether the compiled passes took less time than the eager ones in the trials."""
        return sum(c for c, _ in self.timings) < sum(e for _, e in self.timings)

    def _compiles(self, x: Tensor, full: int) -> bool:
        return (self.worth and not self.uncompiled and x.device.type == "cpu"
                and x.dtype == torch.float32 and x.shape[0] == full
                and self.scored > (self.compile_after if self.compile_after is not None
                                    else _compile_after()))


_SCORERS: weakref.WeakKeyDictionary[nn.Module, Scorer] = weakref.WeakKeyDictionary()


def scorer_for(density: nn.Module) -> Scorer:
    """The :class:`Scorer` of ``density``, kept while the density lives, so that its row
    count runs over every chunk of a job."""
    if density not in _SCORERS:
        _SCORERS[density] = Scorer(density)
    return _SCORERS[density]

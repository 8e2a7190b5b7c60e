"""One-dimensional conditionals of a joint density: along a line through each row.

A :class:`Line` moves some dims of each encoded row along a unit direction (one dim: a
cell of one column). Along it the joint is an unnormalized one-dimensional density, which
this module finds, integrates, samples and maximizes:

- :func:`window`: a coarse grid finds where the mass lies (within :data:`WINDOW` nats of the
  peak), widening on a side the mass reaches;
- :func:`log_normalizer`: panels integrate it there by a 17-point Kronrod rule, and the
  8-point Gauss rule on 8 of its nodes estimates the error; in rows over :data:`TOLERANCE` the
  panels that hold the error are cut finer;
- :func:`draw`: the inverse CDF of the density interpolated log-linearly between
  :data:`FINE` points of the window, which is exact for a density whose log is linear
  between them and otherwise off by the interpolation (measured in the benchmarks);
- :func:`peak`: the grid point of highest density, refined by a parabola through it and
  its neighbours.

``explain`` (a cell given the rest of its row) and ``impute`` (gaps given the observed
cells) are built on these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .engine.mixed import MixedDensity
from .engine.passes import in_passes, rows_per_pass
from .quadrature import kronrod

__all__ = ["TOLERANCE", "Joint", "Line", "draw", "draw_label", "joint_of", "label_normalizer",
           "log_normalizer", "logsumexp", "peak", "window"]

GRID = 96  # coarse grid points per line
SPAN = 10.0  # the coarse grid covers at least [-SPAN, SPAN] encoded units, and the row
WINDOW = 30.0  # nats below the peak that still count as mass (exp(-30) ~ 1e-13)
PANELS = 12  # integration panels over the window, at first
WIDENINGS = 4  # times the coarse grid may double its width on a side the mass reaches
ROUNDS = 6  # times a row over the tolerance may cut its worst panels
SPLIT = 4  # parts a panel is cut into
TOLERANCE = 1e-4  # nats: the integration error bound a row must meet
FINE = 257  # points of the interpolated density that draw and peak use

Joint = Callable[[np.ndarray], np.ndarray]
_RULE = kronrod(8)  # 17 evaluations per panel for both rules, not 16 + 8
# the Gauss rule's distance to the Kronrod rule, times this, estimates a panel's error: the
# two share 8 nodes and so part of their error, and at kinks the plain distance falls short
# of the error about twice as often as that of separate 16- and 8-point rules did
ERROR_FACTOR = 2.0


def joint_of(density: MixedDensity) -> Joint:
    """The log-density of encoded rows, in passes sized for the device."""
    device = next(density.parameters()).device
    step = rows_per_pass(density, device)

    def joint(rows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return in_passes(density.log_prob, rows, device, step=step)

    return joint


@dataclass
class Line:
    """For each row of ``x``, the points ``origin + s * direction`` in the ``dims`` of the
    row, the other dims held; ``direction`` is ``(B, len(dims))`` of unit length and
    ``origin`` the point of the line nearest 0, so ``s`` is a position in encoded units."""

    x: np.ndarray
    dims: list[int]
    direction: np.ndarray

    @classmethod
    def coordinate(cls, x: np.ndarray, j: int) -> Line:
        """Dimension ``j`` of each row alone: ``s`` is that dimension's value."""
        return cls(x, [j], np.ones((len(x), 1)))

    @property
    def position(self) -> np.ndarray:
        """Where each row itself lies on its line."""
        return np.einsum("bm,bm->b", self.x[:, self.dims], self.direction)

    @property
    def origin(self) -> np.ndarray:
        """The point of each line at position 0, in its ``dims``, ``(B, len(dims))``."""
        return self.x[:, self.dims] - self.position[:, None] * self.direction

    def moved(self, s: np.ndarray) -> np.ndarray:
        """The ``dims`` at positions ``s`` ``(B, k)``, as ``(B, k, len(dims))``."""
        return self.origin[:, None, :] + s[:, :, None] * self.direction[:, None, :]

    def rows(self, s: np.ndarray) -> np.ndarray:
        """The rows at positions ``s`` ``(B, k)``, as ``(B * k, D)``, row by row."""
        out = np.repeat(self.x, s.shape[1], axis=0)
        out[:, self.dims] = self.moved(s).reshape(-1, len(self.dims))
        return out

    def at(self, s: np.ndarray) -> np.ndarray:
        """The rows moved to one position each, ``s`` ``(B,)``."""
        return self.rows(s[:, None])

    def subset(self, keep: np.ndarray) -> Line:
        return Line(self.x[keep], self.dims, self.direction[keep])


def along(joint: Joint, line: Line, s: np.ndarray) -> np.ndarray:
    """The joint at positions ``s`` ``(B, k)`` of each row's line, ``(B, k)``."""
    return joint(line.rows(s)).reshape(s.shape)


def logsumexp(a: np.ndarray, axis: int = 1) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return (top + np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True))).squeeze(axis)


def _cut(owner: np.ndarray, a: np.ndarray, b: np.ndarray, parts: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each interval ``[a, b]`` of the rows ``owner`` cut into ``parts`` equal panels:
    their owners, left and right ends."""
    edges = a[:, None] + (b - a)[:, None] * np.linspace(0.0, 1.0, parts + 1)[None, :]
    return np.repeat(owner, parts), edges[:, :-1].ravel(), edges[:, 1:].ravel()


@dataclass
class _Panels:
    """Integration panels ``[a, b]`` of the rows ``owner``, with the Kronrod rule's
    log-integral of each (``log_value``) and the log of its estimated error: the distance to
    the Gauss rule's, times :data:`ERROR_FACTOR` (``log_error``)."""

    owner: np.ndarray
    a: np.ndarray
    b: np.ndarray
    log_value: np.ndarray
    log_error: np.ndarray

    @classmethod
    def measured(cls, joint: Joint, line: Line, owner: np.ndarray, a: np.ndarray,
                 b: np.ndarray) -> _Panels:
        """The panels ``[a, b]`` of the rows ``owner`` of ``line``, integrated."""
        mid, half = (a + b) / 2, (b - a) / 2
        at = mid[:, None] + half[:, None] * _RULE.nodes
        log_f = along(joint, line.subset(owner), at) + np.log(half)[:, None]
        high = logsumexp(log_f + np.log(_RULE.weights))
        low = logsumexp(log_f[:, _RULE.gauss] + np.log(_RULE.gauss_weights))
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.where(np.isfinite(high), np.log(np.abs(np.expm1(low - high))) + high, low)
        error = np.where(np.isnan(gap), np.inf, gap + np.log(ERROR_FACTOR))
        return cls(owner, a, b, high, error)

    def join(self, other: _Panels, keep: np.ndarray) -> _Panels:
        """The panels ``keep`` of these and all of ``other``."""
        return _Panels(*(np.concatenate([mine[keep], theirs]) for mine, theirs in (
            (self.owner, other.owner), (self.a, other.a), (self.b, other.b),
            (self.log_value, other.log_value), (self.log_error, other.log_error))))

    def totals(self, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row, the log of its panels' sum and their summed error relative to it; and
        each panel's relative error."""
        log_z = _grouped_logsumexp(self.log_value, self.owner, rows)
        with np.errstate(invalid="ignore"):
            relative = np.exp(self.log_error - log_z[self.owner])
        relative = np.where(np.isnan(relative), np.inf, relative)
        return log_z, np.bincount(self.owner, relative, minlength=rows), relative


def _grouped_logsumexp(values: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """``logsumexp`` of ``values`` within each of ``count`` groups (empty: -inf)."""
    top = np.full(count, -np.inf)
    np.maximum.at(top, groups, values)
    top = np.where(np.isfinite(top), top, 0.0)
    sums = np.zeros(count)
    np.add.at(sums, groups, np.exp(values - top[groups]))
    with np.errstate(divide="ignore"):
        return top + np.log(sums)


def window(joint: Joint, line: Line) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the interval of its line that holds the mass: the coarse grid points within
    :data:`WINDOW` nats of the peak, and one grid step either side. The grid spans at least
    ``[-SPAN, SPAN]`` and the row; it widens on a side where the mass reaches its edge."""
    u = line.position
    a, b = np.minimum(-SPAN, u - 1.0), np.maximum(SPAN, u + 1.0)
    lo, hi = np.empty(len(u)), np.empty(len(u))
    todo = np.arange(len(u))
    for _ in range(WIDENINGS + 1):
        first, last, grid = _coarse(joint, line.subset(todo), a[todo], b[todo])
        rows = np.arange(len(todo))
        lo[todo] = grid[rows, np.maximum(first - 1, 0)]
        hi[todo] = grid[rows, np.minimum(last + 1, GRID - 1)]
        low_edge, high_edge = first == 0, last == GRID - 1
        width = b[todo] - a[todo]
        a[todo] -= np.where(low_edge, width, 0.0)
        b[todo] += np.where(high_edge, width, 0.0)
        todo = todo[low_edge | high_edge]
        if not todo.size:
            break
    return lo, hi


def _coarse(joint: Joint, line: Line, a: np.ndarray, b: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first and last points of a grid on ``[a, b]`` within :data:`WINDOW` nats of the
    peak, and the grid."""
    grid = a[:, None] + (b - a)[:, None] * np.linspace(0.0, 1.0, GRID)[None, :]
    log_p = along(joint, line, grid)
    inside = log_p > np.max(log_p, axis=1, keepdims=True) - WINDOW
    return np.argmax(inside, axis=1), GRID - 1 - np.argmax(inside[:, ::-1], axis=1), grid


def log_normalizer(joint: Joint, line: Line, tolerance: float = TOLERANCE
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``log`` of the joint integrated along each row's line, and the error bound in nats.

    Adaptive: while a row's summed panel errors exceed ``tolerance``, its panels whose
    error exceeds an equal share of the tolerance are cut in :data:`SPLIT` (the error
    of a kinked or spiky conditional sits in a few panels, so only those pay), at most
    :data:`ROUNDS` times.
    """
    lo, hi = window(joint, line)
    panels = _Panels.measured(joint, line, *_cut(np.arange(len(lo)), lo, hi, PANELS))
    for done in range(ROUNDS + 1):
        log_z, error, relative = panels.totals(len(lo))
        count = np.bincount(panels.owner, minlength=len(lo))
        cut = (error[panels.owner] > tolerance) & \
            (relative > tolerance / count[panels.owner])
        if done == ROUNDS or not cut.any():
            break
        finer = _Panels.measured(joint, line, *_cut(panels.owner[cut], panels.a[cut],
                                                    panels.b[cut], SPLIT))
        panels = panels.join(finer, ~cut)
    return log_z, _nats(error)


def _nats(relative: np.ndarray) -> np.ndarray:
    """A bound in nats on ``|log(Z + e) - log Z|`` for ``|e| <= relative * Z``."""
    with np.errstate(divide="ignore"):
        return np.where(relative < 1.0, -np.log1p(-np.minimum(relative, 1.0)), np.inf)


def label_normalizer(joint: Joint, x: np.ndarray, k: int, labels: int) -> np.ndarray:
    """``log`` of the joint summed over the ``labels`` codes of dimension ``k``."""
    return logsumexp(label_joints(joint, x, k, np.arange(labels)))


def label_joints(joint: Joint, x: np.ndarray, k: int, codes: np.ndarray) -> np.ndarray:
    """The joint of each row with dimension ``k`` set to each of ``codes``, ``(B, len)``."""
    rows = np.repeat(x, len(codes), axis=0)
    rows[:, k] = np.tile(codes.astype(np.float64), len(x))
    return joint(rows).reshape(len(x), len(codes))


def draw_label(joint: Joint, x: np.ndarray, k: int, codes: np.ndarray,
               rng: np.random.Generator | None) -> np.ndarray:
    """For each row, one of ``codes`` for dimension ``k`` drawn from the joint's
    conditional (``rng`` None: the most likely)."""
    log_p = label_joints(joint, x, k, codes)
    if rng is None:
        return codes[np.argmax(log_p, axis=1)].astype(np.float64)
    p = np.exp(log_p - logsumexp(log_p)[:, None])
    pick = (np.cumsum(p, axis=1) < rng.random(len(x))[:, None] * p.sum(axis=1)[:, None])
    return codes[np.minimum(pick.sum(axis=1), len(codes) - 1)].astype(np.float64)


def _fine(joint: Joint, line: Line, extra: Callable[[np.ndarray], np.ndarray] | None
          ) -> tuple[np.ndarray, np.ndarray]:
    """:data:`FINE` points spanning each row's window, and the joint (plus ``extra``) there."""
    lo, hi = window(joint, line)
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, FINE)[None, :]
    log_p = along(joint, line, grid)
    if extra is not None:
        log_p = log_p + extra(grid)
    return grid, np.where(np.isfinite(log_p), log_p, -np.inf)


def _log_exprel(d: np.ndarray) -> np.ndarray:
    """``log((exp(d) - 1) / d)``, 0 at ``d = 0``, without overflow."""
    with np.errstate(divide="ignore", invalid="ignore"):
        big = np.abs(d) > 1e-6
        pos = d + np.log(-np.expm1(-np.abs(d))) - np.log(np.abs(d))
        neg = np.log(-np.expm1(-np.abs(d))) - np.log(np.abs(d))
        return np.where(big, np.where(d > 0, pos, neg), d / 2)


def draw(joint: Joint, line: Line, rng: np.random.Generator) -> np.ndarray:
    """One position per row drawn from the joint along its line, by inverse CDF of the
    density interpolated log-linearly between :data:`FINE` points of its window."""
    grid, log_p = _fine(joint, line, None)
    h = np.diff(grid, axis=1)
    a, b = log_p[:, :-1], log_p[:, 1:]
    finite = np.isfinite(a) & np.isfinite(b)
    d = np.clip(np.where(finite, b - a, 0.0), -700.0, 700.0)
    log_mass = np.where(finite, a + np.log(h) + _log_exprel(d), -np.inf)
    mass = np.exp(log_mass - np.max(log_mass, axis=1, keepdims=True))
    cumulative = np.cumsum(mass, axis=1)
    target = rng.random(len(grid)) * cumulative[:, -1]
    segment = np.minimum((cumulative < target[:, None]).sum(axis=1), FINE - 2)
    rows = np.arange(len(grid))
    slope, v = d[rows, segment], rng.random(len(grid))
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(np.abs(slope) > 1e-9, np.log1p(v * np.expm1(slope)) / slope, v)
    return grid[rows, segment] + np.clip(fraction, 0.0, 1.0) * h[rows, segment]


def peak(joint: Joint, line: Line,
         extra: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The position of highest joint (plus ``extra``, a function of positions) along each
    row's line: the best of :data:`FINE` points, refined by a parabola through it and its
    neighbours."""
    grid, log_p = _fine(joint, line, extra)
    best = np.argmax(log_p, axis=1)
    inner = np.clip(best, 1, FINE - 2)
    rows = np.arange(len(grid))
    left, mid, right = (log_p[rows, inner + i] for i in (-1, 0, 1))
    curve = left - 2 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.isfinite(curve) & (curve < 0) & (best == inner),
                         0.5 * (left - right) / curve, 0.0)
    step = grid[rows, 1] - grid[rows, 0]
    return grid[rows, best] + np.clip(shift, -0.5, 0.5) * step

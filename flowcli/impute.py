"""Filling the gaps of a table from the model: draws from p(missing | observed), or its mode.

A gap is a missing cell (NaN, None) of a modelled column. The row is encoded with each gap
at a placeholder of the column's domain (a column that models gaps is marked present there:
the question is what the value would have been), and the gaps' encoded dims become the
variables:

- one gap in a row: a label is drawn from its exact conditional over the training labels; a
  number by the inverse CDF of the one-dimensional conditional that ``explain`` integrates
  (:func:`~flowcli.conditionals.draw`): no chain, no burn-in;
- several gaps: Gibbs sampling. Each chain starts near the target: of :data:`PROPOSALS`
  points drawn from a Student t shaped by the curvature at the gaps' conditional mode, one
  picked by importance weight. It then makes ``sweeps`` sweeps; a sweep draws each label
  gap from its conditional and moves the numeric gaps along each axis of that curvature.
  Every move is an exact draw from the conditional along a line, so the chain keeps
  p(missing | observed) whatever its start; along the axes of a Gaussian conditional one
  sweep already gives independent draws, and on a curved (banana) conditional the tests
  find the default sweeps enough;
- ``mode``: from the placeholders, each numeric gap to the peak along each axis of the
  curvature in turn and each label gap to its likeliest label, in the table's units (the
  encoding's Jacobian counted), until no gap moves.

Observed cells come back as they were; a filled column takes the training dtype when its
observed values keep their exact values in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .conditionals import Joint, Line, draw, draw_label, joint_of, peak
from .config import DEFAULT_SWEEPS, DEFAULT_UNSEEN, OPTIONS
from .engine.mixed import MixedDensity
from .errors import UsageError
from .tabular import Preprocessor
from .tabular.encoders import CategoricalEncoder, NumericEncoder

__all__ = ["Gaps", "Imputation", "complete", "impute_table"]

SWEEPS = DEFAULT_SWEEPS  # Gibbs sweeps after the start, for rows with several gaps
MODE_SWEEPS = 25  # at most, for the conditional mode
MODE_TOLERANCE = 1e-3  # encoded units (training sd): a gap that moves less has converged
HESSIAN_STEP = 0.05  # encoded units, for the curvature at the start
PROPOSALS = 256  # points a chain's start is picked from, by importance weight
DEGREES = 4  # of the Student t they are drawn from: heavier tails than the target's
WIDEN = 1.5  # that t's scale against the curvature's
BLOCK = 512  # row copies completed at a time, bounding memory


@dataclass
class Imputation:
    """What to fill gaps with: ``draws`` completed copies of each row drawn from
    p(missing | observed) (``method="sample"``), or its mode (``"mode"``, one copy);
    ``sweeps``: Gibbs sweeps for rows with several gaps."""

    draws: int = 1
    method: str = "sample"
    sweeps: int = SWEEPS

    def __post_init__(self) -> None:
        for name in ("draws", "method", "sweeps"):
            OPTIONS[name].check(getattr(self, name))
        if self.method == "mode" and self.draws != 1:
            raise UsageError("mode is one completion: it needs draws=1", field="method")


@dataclass
class Gaps:
    """The encoded dims to fill for one pattern of gaps: numeric dims (with the log-Jacobian
    that turns encoded densities into the table's units), and label dims with the codes a
    value may take (the gap label itself excluded)."""

    numbers: list[int] = field(default_factory=list)
    jacobians: list[Callable[[np.ndarray], np.ndarray]] = field(default_factory=list)
    labels: list[tuple[int, np.ndarray]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.numbers) + len(self.labels)

    @property
    def dims(self) -> list[int]:
        return self.numbers + [k for k, _ in self.labels]


def _gaps(pre: Preprocessor, pattern: np.ndarray) -> Gaps:
    """The :class:`Gaps` of a row whose modelled columns are missing where ``pattern``."""
    gaps = Gaps()
    for (e, j, k), missing in zip(pre.layout, pattern, strict=True):
        if not missing:
            continue
        if j is not None:
            assert isinstance(e, NumericEncoder)
            gaps.numbers.append(j)
            gaps.jacobians.append(e.log_jacobian)
        else:
            assert k is not None and isinstance(e, CategoricalEncoder)
            codes = np.array([i for i, label in enumerate(e.labels) if label is not None])
            gaps.labels.append((k, codes))
    return gaps


def _mode(joint: Joint, x: np.ndarray, gaps: Gaps, table_units: bool) -> np.ndarray:
    """The gaps' conditional mode, from ``x``: the numeric gaps to the peak along each axis
    of the curvature (:func:`_axes`), the label gaps to their most likely labels, until
    none moves (for a Gaussian, one pass)."""
    x = x.copy()
    for _ in range(MODE_SWEEPS):
        before = x[:, gaps.dims].copy()
        axes = _axes(joint, x, gaps.numbers)
        for d in range(len(gaps.numbers)):
            line = Line(x, gaps.numbers, axes[:, :, d])
            x = line.at(peak(joint, line, _jacobian_along(line, gaps) if table_units else None))
        for k, codes in gaps.labels:
            x[:, k] = draw_label(joint, x, k, codes, None)
        if gaps.count == 1 or np.abs(x[:, gaps.dims] - before).max() < MODE_TOLERANCE:
            break
    return x


def _jacobian_along(line: Line, gaps: Gaps) -> Callable[[np.ndarray], np.ndarray]:
    """The numeric gaps' log-Jacobians summed, at positions of ``line``."""
    def at(s: np.ndarray) -> np.ndarray:
        moved = line.moved(s)
        return sum((jacobian(moved[:, :, i]) for i, jacobian in enumerate(gaps.jacobians)),
                   np.zeros_like(s))
    return at


def _curvature(joint: Joint, x: np.ndarray, dims: list[int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the eigenvalues ``(B, m)`` and unit eigenvectors ``(B, m, m)`` (in columns)
    of minus the Hessian of log p in ``dims`` at ``x``, by forward differences of step
    :data:`HESSIAN_STEP`; ones and the column axes where it is not positive definite."""
    m, h = len(dims), HESSIAN_STEP
    pairs = [(i, j) for i in range(m) for j in range(i, m)]
    shifts = [np.zeros(m)] + [np.eye(m)[i] for i in range(m)]
    shifts += [np.eye(m)[i] + np.eye(m)[j] for i, j in pairs]
    points = np.repeat(x[None], len(shifts), axis=0)
    points[:, :, dims] += h * np.array(shifts)[:, None, :]
    f = joint(points.reshape(-1, x.shape[1])).reshape(len(shifts), len(x))
    curvature = np.zeros((len(x), m, m))
    for n, (i, j) in enumerate(pairs):
        second = (f[1 + m + n] - f[1 + i] - f[1 + j] + f[0]) / h**2
        curvature[:, i, j] = curvature[:, j, i] = -second
    values, vectors = np.linalg.eigh(np.where(np.isfinite(curvature), curvature, 0.0))
    concave = values.min(axis=1, initial=np.inf) > 0
    return (np.where(concave[:, None], values, 1.0),
            np.where(concave[:, None, None], vectors, np.eye(m)[None]))


def _axes(joint: Joint, x: np.ndarray, dims: list[int]) -> np.ndarray:
    """Per row, unit directions ``(B, m, m)`` (in columns) along which to move the numeric
    gaps: the axes of the curvature at ``x`` (:func:`_curvature`)."""
    if len(dims) < 2:
        return np.ones((len(x), len(dims), len(dims)))
    return _curvature(joint, x, dims)[1]


def _start(joint: Joint, mode: np.ndarray, gaps: Gaps, draws: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``draws`` starting points per row near p(missing | observed), and the axes to move
    along: of :data:`PROPOSALS` points drawn from a Student t around ``mode`` shaped by the
    curvature there (widened by :data:`WIDEN`), one picked by importance weight."""
    m, rows = len(gaps.numbers), np.repeat(mode, draws, axis=0)
    if m == 0:
        return rows, np.zeros((len(rows), 0, 0))
    values, vectors = _curvature(joint, mode, gaps.numbers)
    values, vectors = np.repeat(values, draws, axis=0), np.repeat(vectors, draws, axis=0)
    t = rng.standard_normal((len(rows), PROPOSALS, m))
    t /= np.sqrt(rng.chisquare(DEGREES, (len(rows), PROPOSALS, 1)) / DEGREES)
    scale = WIDEN / np.sqrt(values)
    steps = np.einsum("bij,bkj->bki", vectors, t * scale[:, None, :])
    points = np.repeat(rows, PROPOSALS, axis=0)
    points[:, gaps.numbers] += steps.reshape(-1, m)
    log_q = -(DEGREES + m) / 2 * np.log1p((t**2).sum(axis=2) / DEGREES)
    log_w = joint(points).reshape(len(rows), PROPOSALS) - log_q
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    pick = (np.cumsum(w, axis=1) < rng.random(len(rows))[:, None] * w.sum(axis=1)[:, None])
    chosen = np.minimum(pick.sum(axis=1), PROPOSALS - 1)
    start = points.reshape(len(rows), PROPOSALS, -1)[np.arange(len(rows)), chosen]
    return start, (vectors if m > 1 else np.ones((len(rows), 1, 1)))


def _sweep(joint: Joint, x: np.ndarray, gaps: Gaps, axes: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """One Gibbs sweep: each numeric move along ``axes``, then each label gap."""
    for d in range(len(gaps.numbers)):
        line = Line(x, gaps.numbers, axes[:, :, d])
        x = line.at(draw(joint, line, rng))
    for k, codes in gaps.labels:
        x[:, k] = draw_label(joint, x, k, codes, rng)
    return x


def complete(joint: Joint, x: np.ndarray, gaps: Gaps, plan: Imputation,
             rng: np.random.Generator) -> np.ndarray:
    """``plan.draws`` completions of each encoded row of ``x`` (copies of a row adjacent),
    the dims of ``gaps`` filled."""
    if plan.method == "mode":
        return _mode(joint, x, gaps, table_units=True)
    if gaps.count == 1:
        x = np.repeat(x, plan.draws, axis=0)
        if gaps.numbers:
            line = Line.coordinate(x, gaps.numbers[0])
            return line.at(draw(joint, line, rng))
        k, codes = gaps.labels[0]
        x[:, k] = draw_label(joint, x, k, codes, rng)
        return x
    mode = _mode(joint, x, gaps, table_units=False)
    x, axes = _start(joint, mode, gaps, plan.draws, rng)
    for _ in range(plan.sweeps):
        x = _sweep(joint, x, gaps, axes, rng)
    return x


def _placeholders(pre: Preprocessor, df: pd.DataFrame, missing: np.ndarray) -> pd.DataFrame:
    """``df`` with each gap of a modelled column at a value of the column's domain: a number
    that encodes to 0, or the most frequent training label."""
    filled = df.copy()
    for c, (e, j, _) in enumerate(pre.layout):
        if not missing[:, c].any():
            continue
        if j is not None:
            value = e.decode(np.zeros((1, 1)), np.zeros((1, len(e.cards)))).iloc[0]
        else:
            assert isinstance(e, CategoricalEncoder)
            counts = [n if label is not None else -1
                      for n, label in zip(e.counts, e.labels, strict=True)]
            value = e.labels[int(np.argmax(counts))]
        column = df[e.spec.name].astype(object)
        column[missing[:, c]] = value
        filled[e.spec.name] = column
    return filled


def _merge(original: pd.Series, drawn: pd.Series, gap: np.ndarray) -> pd.Series:
    """``original`` with its ``gap`` cells from ``drawn``; in ``drawn``'s (the training)
    dtype where the observed values keep their exact values in it."""
    values = original.to_numpy(dtype=object).copy()
    values[gap] = drawn.to_numpy(dtype=object)[gap]
    merged = pd.Series(values, index=original.index, name=original.name)
    for dtype in (drawn.dtype, original.dtype):
        try:
            typed = merged.astype(dtype)
        except (TypeError, ValueError):
            continue
        kept = typed[~gap].to_numpy(dtype=object) == original[~gap].to_numpy(dtype=object)
        if kept.all():
            return typed
    return merged


def impute_table(pre: Preprocessor, density: MixedDensity, df: pd.DataFrame,
                 plan: Imputation, rng: np.random.Generator, source: str = "data",
                 row_offset: int = 0, unseen: str = DEFAULT_UNSEEN) -> pd.DataFrame:
    """``df`` with the gaps of its modelled columns filled: ``plan.draws`` copies of each row
    one after another (with an ``imputation`` column numbering them from 1 when more than
    one), other columns passed through."""
    pre.schema.check_columns(df, source)
    missing = np.column_stack([df[e.spec.name].isna().to_numpy() for e in pre.encoders]) \
        if pre.encoders else np.zeros((len(df), 0), dtype=bool)
    x, _ = pre.encode(_placeholders(pre, df, missing), source, row_offset, unseen=unseen)
    k = plan.draws
    x = np.repeat(x, k, axis=0)
    joint = joint_of(density)
    patterns, which = np.unique(missing, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        rows = np.flatnonzero(which.ravel() == p)
        if not pattern.any():
            continue
        gaps = _gaps(pre, pattern)
        for start in range(0, len(rows), max(BLOCK // k, 1)):
            block = rows[start : start + max(BLOCK // k, 1)]
            copies = (block[:, None] * k + np.arange(k)).ravel()
            x[copies] = complete(joint, x[copies[::k]], gaps, plan, rng)
    return _table(pre, df, x, missing, k)


def _table(pre: Preprocessor, df: pd.DataFrame, x: np.ndarray, missing: np.ndarray,
           k: int) -> pd.DataFrame:
    """The output rows: ``df``'s rows ``k`` times each, gaps from the completed ``x``."""
    copies = df.iloc[np.repeat(np.arange(len(df)), k)].reset_index(drop=True)
    drawn = pre.decode(x, given=copies if pre.conditions else None)
    gap = np.repeat(missing, k, axis=0)
    for c, e in enumerate(pre.encoders):
        if gap[:, c].any():
            name = e.spec.name
            copies[name] = _merge(copies[name], drawn[name], gap[:, c])
    if k > 1:
        copies["imputation"] = np.tile(np.arange(1, k + 1), len(df))
    copies.index = df.index.repeat(k)
    return copies

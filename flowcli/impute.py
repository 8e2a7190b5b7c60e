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
from .tabular import Preprocessor, dateparts
from .tabular.encoders import CategoricalEncoder, NumericEncoder

__all__ = ["Gaps", "Imputation", "complete", "gaps_of", "impute_table"]

SWEEPS = DEFAULT_SWEEPS  # Gibbs sweeps after the start, for rows with several gaps
MODE_SWEEPS = 25  # at most, for the conditional mode
START_SWEEPS = 3  # at most, for the mode that a chain's start is drawn around
MODE_TOLERANCE = 1e-3  # encoded units (training sd): a gap that moves less has converged
HESSIAN_STEP = 0.05  # encoded units, for the curvature at the start
PAD = 1e12  # curvature given to the padding of rows with fewer numeric gaps than others
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
            raise UsageError("must be 1 with the mode, which is one completion",
                             field="draws")


@dataclass
class Gaps:
    """Per row, the encoded dims to fill. ``numbers`` ``(B, C)`` marks the continuous dims
    (the first ``C`` of a row) and ``jacobians`` holds, per continuous dim, the log-Jacobian
    that turns encoded densities into the table's units; ``labels`` lists each label
    column's dim, the codes a value may take (the gap label excluded) and the rows
    ``(B,)`` where it is a gap."""

    numbers: np.ndarray
    jacobians: list[Callable[[np.ndarray], np.ndarray]] = field(default_factory=list)
    labels: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def count(self) -> np.ndarray:
        """Gaps per row."""
        return self.numbers.sum(axis=1) + sum((rows.astype(int) for _, _, rows in self.labels),
                                              np.zeros(len(self.numbers), dtype=int))

    def take(self, rows: np.ndarray) -> Gaps:
        """The gaps of ``rows`` (indices, repeats allowed)."""
        return Gaps(self.numbers[rows], self.jacobians,
                    [(k, codes, mask[rows]) for k, codes, mask in self.labels])

    def filled(self, x: np.ndarray) -> np.ndarray:
        """The values of every gap dim of ``x``, for convergence checks."""
        return np.concatenate([x[:, : self.numbers.shape[1]] * self.numbers]
                              + [x[:, [k]] * rows[:, None] for k, _, rows in self.labels], axis=1)


def gaps_of(pre: Preprocessor, missing: np.ndarray) -> Gaps:
    """The :class:`Gaps` of rows whose modelled columns are missing where ``missing``
    ``(B, columns)``."""
    numbers = np.zeros((len(missing), pre.continuous), dtype=bool)
    jacobians: list[Callable[[np.ndarray], np.ndarray]] = [np.zeros_like] * pre.continuous
    labels = []
    for c, (e, j, k) in enumerate(pre.layout):
        if j is not None:
            assert isinstance(e, NumericEncoder)
            numbers[:, j], jacobians[j] = missing[:, c], e.log_jacobian
        else:
            assert k is not None and isinstance(e, CategoricalEncoder)
            codes = np.array([i for i, label in enumerate(e.labels) if label is not None])
            labels.append((k, codes, missing[:, c]))
    return Gaps(numbers, jacobians, labels)


def _lines(x: np.ndarray, gaps: Gaps, axes: np.ndarray, d: int) -> tuple[np.ndarray, Line]:
    """The rows that have a ``d``-th numeric axis, and their lines along it."""
    rows = np.flatnonzero(gaps.numbers.sum(axis=1) > d)
    dims = list(range(gaps.numbers.shape[1]))
    return rows, Line(x[rows], dims, axes[rows, :, d])


def _mode(joint: Joint, x: np.ndarray, gaps: Gaps, table_units: bool,
          sweeps: int = MODE_SWEEPS) -> np.ndarray:
    """The gaps' conditional mode, from ``x``: the numeric gaps to the peak along each axis
    of the curvature (:func:`_curvature`), the label gaps to their most likely labels, until
    none moves (for a Gaussian, one pass)."""
    x = x.copy()
    for _ in range(sweeps):
        before = gaps.filled(x)
        axes = _curvature(joint, x, gaps)[1]
        for d in range(axes.shape[2]):
            rows, line = _lines(x, gaps, axes, d)
            extra = _jacobian_along(line, gaps.take(rows)) if table_units else None
            x[rows] = line.at(peak(joint, line, extra))
        for k, codes, rows in gaps.labels:
            x[rows, k] = draw_label(joint, x[rows], k, codes, None)
        if gaps.count.max() <= 1 or np.abs(gaps.filled(x) - before).max() < MODE_TOLERANCE:
            break
    return x


def _jacobian_along(line: Line, gaps: Gaps) -> Callable[[np.ndarray], np.ndarray]:
    """The numeric gaps' log-Jacobians summed, at positions of ``line``."""
    def at(s: np.ndarray) -> np.ndarray:
        moved, total = line.moved(s), np.zeros_like(s)
        for c in np.flatnonzero(gaps.numbers.any(axis=0)):
            total += np.where(gaps.numbers[:, [c]], gaps.jacobians[c](moved[:, :, c]), 0.0)
        return total
    return at


def _curvature(joint: Joint, x: np.ndarray, gaps: Gaps) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the eigenvalues ``(B, M)`` and unit eigenvectors ``(B, C, M)`` (in columns,
    in the row's continuous dims) of minus the Hessian of log p in its numeric gaps, by
    forward differences of step :data:`HESSIAN_STEP`; ones and the gaps' axes where it is
    not positive definite. ``M`` is the most numeric gaps of a row; a row with ``m`` has
    its axes first and zero columns after."""
    mask = gaps.numbers
    m = mask.sum(axis=1)
    big, h = int(m.max(initial=0)), HESSIAN_STEP
    dims = np.argsort(~mask, axis=1, kind="stable")[:, :big]  # each row's gap dims first
    real = np.arange(big)[None, :] < m[:, None]
    pairs = [(i, j) for i in range(big) for j in range(i, big)]
    shifts = [np.zeros(big)] + [np.eye(big)[i] for i in range(big)]
    shifts += [np.eye(big)[i] + np.eye(big)[j] for i, j in pairs]
    points = np.repeat(x[None], len(shifts), axis=0)
    at = np.arange(len(x))[:, None]
    for p, shift in enumerate(shifts):
        points[p, at, dims] += h * shift[None, :] * real
    f = joint(points.reshape(-1, x.shape[1])).reshape(len(shifts), len(x))
    curvature = np.zeros((len(x), big, big))
    for n, (i, j) in enumerate(pairs):
        curvature[:, i, j] = curvature[:, j, i] = -(f[1 + big + n] - f[1 + i] - f[1 + j]
                                                    + f[0]) / h**2
    both = real[:, :, None] & real[:, None, :]
    curvature = np.where(both & np.isfinite(curvature), curvature, 0.0)
    curvature += np.where(real, 0.0, PAD)[:, :, None] * np.eye(big)[None]
    values, vectors = np.linalg.eigh(curvature)  # the padding's PAD sorts last
    concave = np.where(real, values, 1.0).min(axis=1, initial=np.inf) > 0
    values = np.where(concave[:, None] & real, values, 1.0)
    vectors = np.where(concave[:, None, None], vectors, np.eye(big)[None]) * real[:, None, :]
    full = np.zeros((len(x), mask.shape[1], big))
    full[at, dims] = vectors
    return values, full


def _start(joint: Joint, mode: np.ndarray, gaps: Gaps, draws: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``draws`` starting points per row near p(missing | observed), and the axes to move
    along: of :data:`PROPOSALS` points drawn from a Student t around ``mode`` shaped by the
    curvature there (widened by :data:`WIDEN`), one picked by importance weight."""
    values, axes = _curvature(joint, mode, gaps)
    rows = np.repeat(mode, draws, axis=0)
    values, axes = np.repeat(values, draws, axis=0), np.repeat(axes, draws, axis=0)
    m = np.repeat(gaps.numbers.sum(axis=1), draws)
    real = np.arange(values.shape[1])[None, :] < m[:, None]
    t = rng.standard_normal((len(rows), PROPOSALS, values.shape[1])) * real[:, None, :]
    t /= np.sqrt(rng.chisquare(DEGREES, (len(rows), PROPOSALS, 1)) / DEGREES)
    steps = np.einsum("bcj,bkj->bkc", axes, t * (WIDEN / np.sqrt(values))[:, None, :])
    points = np.repeat(rows, PROPOSALS, axis=0)
    points[:, : steps.shape[2]] += steps.reshape(-1, steps.shape[2])
    log_q = -(DEGREES + m[:, None]) / 2 * np.log1p((t**2).sum(axis=2) / DEGREES)
    log_w = joint(points).reshape(len(rows), PROPOSALS) - log_q
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    pick = (np.cumsum(w, axis=1) < rng.random(len(rows))[:, None] * w.sum(axis=1)[:, None])
    chosen = np.minimum(pick.sum(axis=1), PROPOSALS - 1)
    return points.reshape(len(rows), PROPOSALS, -1)[np.arange(len(rows)), chosen], axes


def _sweep(joint: Joint, x: np.ndarray, gaps: Gaps, axes: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """One Gibbs sweep: each numeric move along ``axes``, then each label gap."""
    for d in range(axes.shape[2]):
        rows, line = _lines(x, gaps, axes, d)
        x[rows] = line.at(draw(joint, line, rng))
    for k, codes, rows in gaps.labels:
        x[rows, k] = draw_label(joint, x[rows], k, codes, rng)
    return x


def _one_gap(joint: Joint, x: np.ndarray, gaps: Gaps, rng: np.random.Generator
             ) -> np.ndarray:
    """Rows with one gap each, that gap drawn from its exact conditional."""
    x = x.copy()
    rows = np.flatnonzero(gaps.numbers.any(axis=1))
    if rows.size:
        dims = list(range(gaps.numbers.shape[1]))
        line = Line(x[rows], dims, gaps.numbers[rows].astype(np.float64))
        x[rows] = line.at(draw(joint, line, rng))
    for k, codes, at in gaps.labels:
        x[at, k] = draw_label(joint, x[at], k, codes, rng)
    return x


def complete(joint: Joint, x: np.ndarray, gaps: Gaps, plan: Imputation,
             rng: np.random.Generator) -> np.ndarray:
    """``plan.draws`` completions of each encoded row of ``x`` (copies of a row adjacent),
    the dims of ``gaps`` filled; rows without gaps come back as they are."""
    if plan.method == "mode":
        return _mode(joint, x, gaps, table_units=True)
    k, count = plan.draws, gaps.count
    out = np.repeat(x, k, axis=0)
    one = _copies(np.flatnonzero(count == 1), k)
    out[one] = _one_gap(joint, out[one], gaps.take(one // k), rng)
    several = np.flatnonzero(count > 1)
    if several.size:
        theirs = gaps.take(several)
        mode = _mode(joint, x[several], theirs, table_units=False, sweeps=START_SWEEPS)
        chains, axes = _start(joint, mode, theirs, k, rng)
        chained = theirs.take(np.repeat(np.arange(len(several)), k))
        for _ in range(plan.sweeps):
            chains = _sweep(joint, chains, chained, axes, rng)
        out[_copies(several, k)] = chains
    return out


def _copies(rows: np.ndarray, k: int) -> np.ndarray:
    """The positions of the ``k`` adjacent copies of each of ``rows`` once every row is
    repeated ``k`` times."""
    return (rows[:, None] * k + np.arange(k)).ravel()


def _placeholders(pre: Preprocessor, df: pd.DataFrame, missing: np.ndarray) -> pd.DataFrame:
    """``df`` with each gap of a modelled column at a value of the column's domain: a number
    that encodes to 0, or the most frequent training label."""
    filled = df.copy()
    for c, (e, j, _) in enumerate(pre.layout):
        spec = pre.column_of[e.spec.name]
        if not missing[:, c].any() or e.spec.name not in pre.first_parts:
            continue
        name = spec.name
        if spec.kind == "datetime":  # any instant will do: the first of training
            assert spec.min is not None
            first = pd.Series(pd.to_datetime([spec.min], unit="s", utc=spec.zone is not None))
            value = dateparts.as_trained(first, spec, "data").iloc[0]
        elif j is not None:
            value = e.decode(np.zeros((1, 1)), np.zeros((1, len(e.cards)))).iloc[0]
        else:
            assert isinstance(e, CategoricalEncoder)
            counts = [n if label is not None else -1
                      for n, label in zip(e.counts, e.labels, strict=True)]
            value = e.labels[int(np.argmax(counts))]
        column = df[name].astype(object)
        column[missing[:, c]] = value
        filled[name] = column
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
    missing = np.column_stack([df[pre.column_of[e.spec.name].name].isna().to_numpy()
                               for e in pre.encoders]) \
        if pre.encoders else np.zeros((len(df), 0), dtype=bool)
    x, _ = pre.encode(_placeholders(pre, df, missing), source, row_offset, unseen=unseen)
    k, gaps = plan.draws, gaps_of(pre, missing)
    joint = joint_of(density)
    rows = np.flatnonzero(missing.any(axis=1))
    out = np.repeat(x, k, axis=0)
    step = max(BLOCK // k, 1)
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        out[_copies(block, k)] = complete(joint, x[block], gaps.take(block), plan, rng)
    return _table(pre, df, out, missing, k)


def _table(pre: Preprocessor, df: pd.DataFrame, x: np.ndarray, missing: np.ndarray,
           k: int) -> pd.DataFrame:
    """The output rows: ``df``'s rows ``k`` times each, gaps from the completed ``x``."""
    copies = df.iloc[np.repeat(np.arange(len(df)), k)].reset_index(drop=True)
    drawn = pre.decode(x, given=copies if pre.conditions else None)
    gap = np.repeat(missing, k, axis=0)
    for c, e in enumerate(pre.encoders):
        name = pre.column_of[e.spec.name].name
        if gap[:, c].any() and e.spec.name in pre.first_parts:  # a datetime's parts: merged once
            copies[name] = _merge(copies[name], drawn[name], gap[:, c])
    if k > 1:
        copies["imputation"] = np.tile(np.arange(1, k + 1), len(df))
    copies.index = df.index.repeat(k)
    return copies

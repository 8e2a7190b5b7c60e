"""Which cell makes a row unusual: each cell's log-density given the rest of its row.

For a row ``x`` and a modelled column ``c``, ``log p(x_c | x_-c) = log p(x) - log Z`` with
``Z`` the joint summed or integrated over the values of ``c`` alone, the rest held fixed:

- a categorical or boolean cell: ``Z`` sums the joint over the column's labels, exactly;
- a numeric cell: ``Z`` integrates the joint along the column in its encoded (standardized)
  units, by Gauss-Kronrod panels with an error bound
  (:func:`~flowcli.conditionals.log_normalizer`).

The result is in the table's units, like a score: the column's part of the encoding's
log-determinant is added back. A cell left missing (modelled gaps) has no value to explain
and gets NaN. Each numeric cell costs about 400 evaluations of the joint, so explaining runs
on the rows asked for only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .conditionals import TOLERANCE, Joint, Line, joint_of, label_normalizer, log_normalizer
from .config import DEFAULT_UNSEEN, QUANTILES
from .engine.mixed import MixedDensity
from .errors import FlowcliWarning
from .quantiles import percentile_of, quantiles_of
from .tabular import Encoder, Preprocessor
from .tabular.encoders import NumericEncoder

__all__ = ["CellScores", "cell_log_probs", "explain_table", "held_out_quantiles",
           "with_columns"]

BLOCK = 512  # rows explained at a time, bounding memory
# Held-out rows whose cells give the percentiles of explain, and the integration tolerance
# there: a percentile does not move for 0.001 nats, and the rows are integrated at every fit.
REFERENCE_ROWS, REFERENCE_TOLERANCE = 250, 1e-3

@dataclass
class CellScores:
    """``log_probs[i, k]``: ``log p(x_c | x_-c)`` of row ``i``'s cell in ``columns[k]``, in
    the table's units; ``errors``: the integration's error bound in nats (0 for labels)."""

    columns: list[str]
    log_probs: np.ndarray
    errors: np.ndarray


def cell_log_probs(pre: Preprocessor, density: MixedDensity, df: pd.DataFrame,
                   source: str = "data", row_offset: int = 0, unseen: str = DEFAULT_UNSEEN,
                   tolerance: float = TOLERANCE) -> CellScores:
    """``log p(x_c | x_-c)`` of every modelled cell of ``df``, in the table's units, each
    numeric one integrated to within ``tolerance`` nats."""
    x, _ = pre.encode(df, source, row_offset, unseen=unseen)
    layout = pre.layout
    logdets = np.zeros((len(df), len(layout)))  # each column's log-Jacobian; labels: 0
    for k, (e, j, _) in enumerate(layout):
        if isinstance(e, NumericEncoder):
            assert j is not None
            logdets[:, k] = e.log_jacobian(x[:, j])
    joint = joint_of(density)
    out, errors = np.empty((len(df), len(layout))), np.zeros((len(df), len(layout)))
    for start in range(0, len(df), BLOCK):
        block = slice(start, start + BLOCK)
        out[block], errors[block] = _cells(joint, x[block], layout, tolerance)
    return CellScores([e.spec.name for e, _, _ in layout], out + logdets, errors)


def _cells(joint: Joint, x: np.ndarray, layout: list[tuple[Encoder, int | None, int | None]],
           tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Encoded-unit conditionals and error bounds of one block of rows."""
    whole = joint(x)
    out, errors = np.empty((len(x), len(layout))), np.zeros((len(x), len(layout)))
    for col, (e, j, k) in enumerate(layout):
        if j is None:
            assert k is not None
            out[:, col] = whole - label_normalizer(joint, x, k, e.cards[0])
            continue
        present = x[:, k] < 0.5 if k is not None else np.ones(len(x), dtype=bool)
        out[:, col] = np.nan
        if present.any():
            log_z, error = log_normalizer(joint, Line.coordinate(x[present], j),
                                        tolerance)
            out[present, col], errors[present, col] = whole[present] - log_z, error
    return out, errors


def held_out_quantiles(pre: Preprocessor, density: MixedDensity, held_out: pd.DataFrame,
                       seed: int) -> dict[str, list[float]]:
    """The quantiles of each column's cell conditionals over up to :data:`REFERENCE_ROWS`
    held-out rows, which give ``explain`` its percentiles."""
    if len(held_out) > REFERENCE_ROWS:
        pick = np.random.default_rng(seed).choice(len(held_out), REFERENCE_ROWS, replace=False)
        held_out = held_out.iloc[np.sort(pick)]
    cells = cell_log_probs(pre, density, held_out, tolerance=REFERENCE_TOLERANCE)
    return {name: quantiles_of(values, QUANTILES)
            for name, values in zip(cells.columns, cells.log_probs.T, strict=True)}


def explain_table(pre: Preprocessor, density: MixedDensity,
                  reference: dict[str, list[float]] | None, df: pd.DataFrame,
                  source: str = "data", row_offset: int = 0, unseen: str = DEFAULT_UNSEEN
                  ) -> pd.DataFrame:
    """``<column>_cond_log_prob`` and ``<column>_percentile`` for each modelled column of
    ``df``'s rows, then ``most_unusual``: the column of lowest percentile (ties: of lowest
    conditional), empty where no cell has one. Percentiles are NaN for a model file kept
    without the held-out ``reference`` (written before explain existed)."""
    if reference is None:
        warnings.warn("this model file keeps no held-out cells to rank against (it was "
                      "written before explain existed): percentiles are empty; fit the model "
                      "again to have them", FlowcliWarning, stacklevel=3)
    cells = cell_log_probs(pre, density, df, source, row_offset, unseen)
    out = pd.DataFrame(index=df.index)
    percentiles = np.empty_like(cells.log_probs)
    for k, name in enumerate(cells.columns):
        percentiles[:, k] = percentile_of(cells.log_probs[:, k], (reference or {}).get(name))
        out[f"{name}_cond_log_prob"] = cells.log_probs[:, k]
        out[f"{name}_percentile"] = percentiles[:, k]
    out["most_unusual"] = _lowest(cells.columns, percentiles, cells.log_probs)
    return out


def with_columns(table: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the columns of ``extra`` after its own (replacing any of the same
    name), aligned on the index; rows ``extra`` lacks get NaN (``most_unusual``: empty)."""
    out = table.copy()
    for name in extra.columns:
        column = extra[name].reindex(table.index)
        out[name] = column.fillna("") if name == "most_unusual" else column
    return out


def _lowest(columns: list[str], percentiles: np.ndarray, log_probs: np.ndarray) -> list[str]:
    """Per row, the column of lowest percentile, ties broken by the lowest conditional."""
    rank = np.where(np.isnan(percentiles), np.inf, percentiles)
    tie = np.where(np.isnan(log_probs), np.inf, log_probs)
    out = []
    for r, t in zip(rank, tie, strict=True):
        if not np.isfinite(t).any():
            out.append("")
            continue
        out.append(columns[min(range(len(columns)), key=lambda k: (r[k], t[k]))])
    return out

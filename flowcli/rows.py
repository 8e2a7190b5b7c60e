"""Scores, latent codes and samples that are finite, or one clear error naming the row.

Flows compute in float32; a row far outside the training range can overflow there (a value
of 1e30 squares to infinity) while float64 holds it. Rows whose float32 result is not finite
are computed again in float64; a row that float64 cannot hold either is refused, naming the
row, the column furthest outside and its value. Sampled rows that overflow when decoded are
drawn again, which leaves the sampled density as it is but for a set of negligible mass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from .engine.compiled import scorer_for
from .engine.mixed import MixedDensity
from .engine.passes import in_passes, rows_per_pass
from .errors import DataError
from .tabular import Preprocessor

__all__ = ["MAX_REDRAWS", "finite_draws", "infinite_rows", "score_rows", "too_far"]

MAX_REDRAWS = 10  # rounds of drawing again the sampled rows that overflowed


def score_rows(pre: Preprocessor, density: MixedDensity,
               double: Callable[[], MixedDensity], df: pd.DataFrame, source: str,
               row_offset: int, unseen: str) -> np.ndarray:
    """Log-likelihood of each row of ``df`` in nats (table units), finite or an error;
    ``double`` gives the density's float64 twin."""
    x, logdet = pre.encode(df, source, row_offset, unseen=unseen)
    device = next(density.parameters()).device
    step = rows_per_pass(density, device)
    scorer = scorer_for(density)  # long jobs of spline flows compile their passes
    values = in_passes(lambda rows: scorer(rows, step), x, device, step=step) + logdet
    bad = ~np.isfinite(values)
    if bad.any():
        values[bad] = in_passes(double().log_prob, x[bad], device, torch.float64,
                                step) + logdet[bad]
        bad = ~np.isfinite(values)
        if bad.any():
            raise too_far(pre, df, x, int(np.argmax(bad)), source, row_offset, "scored")
    return values


def too_far(pre: Preprocessor, df: pd.DataFrame, x: np.ndarray, i: int, source: str,
            row_offset: int, what: str) -> DataError:
    """The error for row ``i`` of ``df`` (encoded as ``x``), which cannot be ``what``."""
    names = [e.spec.name for e in pre.encoders if e.cont]
    spread = np.abs(np.nan_to_num(x[i, : len(names)], nan=0.0))
    spec = pre.column_of[names[int(np.argmax(spread))]]
    column = spec.name
    value, row = df[column].iloc[i], row_offset + i + 1
    value = value.item() if isinstance(value, np.generic) else value
    return DataError(f"row {row} cannot be {what}: column '{column}' holds {value!r}, too far "
                     f"outside what training saw ({spec.describe()}) for the model's "
                     f"arithmetic", source=source, column=column, row=row, value=value)


def finite_draws(draw: Callable[[np.ndarray], torch.Tensor],
                 decode: Callable[[np.ndarray, np.ndarray], pd.DataFrame],
                 rows: np.ndarray) -> pd.DataFrame:
    """One decoded row per entry of ``rows`` (positions in what is being drawn, which a
    conditional model needs to find each row's condition): ``draw(rows)`` gives the encoded
    rows, ``decode(encoded, rows)`` the table; each row that decodes to an infinite number
    is drawn again."""
    table = decode(draw(rows).double().cpu().numpy(), rows)
    for _ in range(MAX_REDRAWS):
        bad = infinite_rows(table)
        if not bad.any():
            return table
        again = decode(draw(rows[bad]).double().cpu().numpy(), rows[bad])
        again.index = table.index[bad]
        table.loc[bad] = again
    if infinite_rows(table).any():
        raise DataError("the model keeps drawing rows whose values overflow; it may be "
                        "damaged or badly trained")
    return table


def infinite_rows(table: pd.DataFrame) -> np.ndarray:
    """Rows with an infinite number in a numeric column."""
    numeric = table.select_dtypes("number")
    if numeric.empty:
        return np.zeros(len(table), dtype=bool)
    return np.isinf(numeric.to_numpy(dtype=np.float64, na_value=0.0)).any(axis=1)

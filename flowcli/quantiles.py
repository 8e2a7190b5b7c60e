"""Percentiles against a held-out reference kept as quantiles: the model file keeps
:data:`~flowcli.config.QUANTILES` evenly spaced quantiles of the held-out rows' scores (and of
each column's cell conditionals), and percentiles interpolate between them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["level_of", "percentile_of", "quantiles_of"]


def quantiles_of(values: np.ndarray, count: int) -> list[float]:
    """``count`` evenly spaced quantiles of the finite ``values`` (none when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return []
    return [float(q) for q in np.quantile(values, np.linspace(0.0, 1.0, count))]


def percentile_of(values: np.ndarray | Sequence[float], quantiles: Sequence[float] | None
                  ) -> np.ndarray:
    """The share (%) of the reference below each value; NaN without a reference."""
    q = np.asarray(quantiles or [], dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if q.size == 0:
        return np.full(values.shape, np.nan)
    out = 100.0 * np.interp(values, q, np.linspace(0.0, 1.0, q.size), left=0.0, right=1.0)
    return np.where(np.isnan(values), np.nan, out)


def level_of(share: float, quantiles: Sequence[float]) -> float:
    """The value below which a ``share`` of the reference falls."""
    q = np.asarray(quantiles, dtype=np.float64)
    return float(np.interp(share, np.linspace(0.0, 1.0, q.size), q))

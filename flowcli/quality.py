"""How close synthetic rows are to real ones, column by column and pair by pair.

The figures are those of SDMetrics' quality report, defined the same way so that numbers
compare across tools (1 is a perfect match, 0 the worst):

- a number column's shape: ``ks_complement``, one minus the two-sample Kolmogorov-Smirnov
  distance between the columns' non-missing values;
- a label column's shape: ``tv_complement``, one minus the total variation distance between
  the shares of each label (non-missing; a label only the synthetic rows have counts fully);
- a pair of number columns: ``correlation_similarity``, one minus half the difference of the
  two tables' correlations (Pearson by default) over rows with both values;
- any other pair: ``contingency_similarity``, one minus the total variation distance between
  the two tables' joint shares of the pair's values (a gap is a value of its own), a number
  column cut into 10 equal-width bins over the real values' range, the outer bins open.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["column_shapes", "column_pairs", "contingency_similarity",
           "correlation_similarity", "ks_complement", "tv_complement"]

BINS = 10  # equal-width bins a number column is cut into for a contingency table


def ks_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """One minus the two-sample Kolmogorov-Smirnov distance of the non-missing values; NaN
    when either side has none."""
    a = np.sort(pd.to_numeric(real.dropna()).to_numpy(dtype=np.float64))
    b = np.sort(pd.to_numeric(synthetic.dropna()).to_numpy(dtype=np.float64))
    if not len(a) or not len(b):
        return float("nan")
    points = np.concatenate([a, b])
    gap = np.abs(np.searchsorted(a, points, side="right") / len(a)
                 - np.searchsorted(b, points, side="right") / len(b))
    return float(1.0 - gap.max())


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """One minus the total variation distance between the shares of each non-missing label;
    NaN when either side has none."""
    p = real.dropna().value_counts(normalize=True)
    q = synthetic.dropna().value_counts(normalize=True)
    if p.empty or q.empty:
        return float("nan")
    return float(1.0 - 0.5 * p.sub(q, fill_value=0.0).abs().sum())


def correlation_similarity(real: pd.DataFrame, synthetic: pd.DataFrame,
                           method: str = "pearson") -> float:
    """One minus half the difference between the correlations of the two columns of
    ``real`` and of ``synthetic`` (rows with both values); NaN when one is undefined."""
    a, b = real.columns[:2]
    rho = [frame[[a, b]].dropna().astype(float).corr(method=method).iloc[0, 1]
           for frame in (real, synthetic)]
    return float(1.0 - abs(rho[0] - rho[1]) / 2.0)


def contingency_similarity(real: pd.DataFrame, synthetic: pd.DataFrame,
                           numeric: Iterable[str] = ()) -> float:
    """One minus the total variation distance between the joint shares of the two columns'
    values; the ``numeric`` ones among them cut into :data:`BINS` bins first."""
    columns = list(real.columns[:2])
    real, synthetic = real[columns].copy(), synthetic[columns].copy()
    for name in set(numeric) & set(columns):
        real[name], synthetic[name] = _binned(real[name], synthetic[name])
    p = real.groupby(columns, dropna=False).size() / len(real)
    q = synthetic.groupby(columns, dropna=False).size() / len(synthetic)
    return float(1.0 - 0.5 * p.sub(q, fill_value=0.0).abs().sum())


def _binned(real: pd.Series, synthetic: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Bin numbers of both columns on the real values' equal-width edges, outer bins open;
    a gap stays a gap."""
    values = pd.to_numeric(real.dropna()).to_numpy(dtype=np.float64)
    edges = np.histogram_bin_edges(values, bins=BINS) if len(values) else np.zeros(2)
    edges[0], edges[-1] = -np.inf, np.inf

    def cut(column: pd.Series) -> pd.Series:
        numbers = pd.to_numeric(column).to_numpy(dtype=np.float64)
        bins = np.digitize(numbers, edges).astype(float)
        bins[np.isnan(numbers)] = np.nan
        return pd.Series(bins, index=column.index)

    return cut(real), cut(synthetic)


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame,
                  numeric: Iterable[str]) -> dict[str, dict[str, float | str]]:
    """Each column's shape figure: ``{column: {"metric": name, "score": value}}``, the
    ``numeric`` columns by :func:`ks_complement`, the others by :func:`tv_complement`."""
    numeric = set(numeric)
    shapes: dict[str, dict[str, float | str]] = {}
    for name in real.columns:
        if name in numeric:
            shapes[name] = {"metric": "ks_complement",
                            "score": ks_complement(real[name], synthetic[name])}
        else:
            shapes[name] = {"metric": "tv_complement",
                            "score": tv_complement(real[name], synthetic[name])}
    return shapes


def column_pairs(real: pd.DataFrame, synthetic: pd.DataFrame,
                 numeric: Iterable[str]) -> dict[tuple[str, str], dict[str, float | str]]:
    """Each pair's figure: ``{(a, b): {"metric": name, "score": value}}``, pairs of
    ``numeric`` columns by :func:`correlation_similarity`, others by
    :func:`contingency_similarity`."""
    numeric = set(numeric)
    pairs: dict[tuple[str, str], dict[str, float | str]] = {}
    for a, b in itertools.combinations(real.columns, 2):
        both = [a, b]
        if a in numeric and b in numeric:
            score = correlation_similarity(real[both], synthetic[both])
            pairs[(a, b)] = {"metric": "correlation_similarity", "score": score}
        else:
            score = contingency_similarity(real[both], synthetic[both], numeric)
            pairs[(a, b)] = {"metric": "contingency_similarity", "score": score}
    return pairs

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

How strongly a table's columns go together (:func:`association_matrix`): Pearson's r for two
numbers (or Spearman's), Cramér's V for two label columns, and the correlation ratio (eta)
for a label column and a number, each over the rows that have both values.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["association_matrix", "column_shapes", "column_pairs", "contingency_similarity",
           "correlation_similarity", "correlations", "cramers_v", "correlation_ratio",
           "ks_complement", "tv_complement"]

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
    rho = [correlations(frame, [a, b], method).iloc[0, 1] for frame in (real, synthetic)]
    return float(1.0 - abs(rho[0] - rho[1]) / 2.0)


def correlations(table: pd.DataFrame, numeric: list[str],
                 method: str = "pearson") -> pd.DataFrame:
    """The correlation of every pair of the ``numeric`` columns, each over the rows that
    have both values, in one pass over the table (a pass per pair cost seconds on a wide
    table)."""
    return table[numeric].astype(float).corr(method=method)


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
    wanted = set(numeric)
    numeric = [c for c in real.columns if c in wanted]
    rho = [correlations(frame, numeric) for frame in (real, synthetic)]
    pairs: dict[tuple[str, str], dict[str, float | str]] = {}
    for a, b in itertools.combinations(real.columns, 2):
        both = [a, b]
        if a in numeric and b in numeric:
            score = float(1.0 - abs(rho[0].loc[a, b] - rho[1].loc[a, b]) / 2.0)
            pairs[(a, b)] = {"metric": "correlation_similarity", "score": score}
        else:
            score = contingency_similarity(real[both], synthetic[both], numeric)
            pairs[(a, b)] = {"metric": "contingency_similarity", "score": score}
    return pairs


def cramers_v(a: pd.Series, b: pd.Series) -> float:
    """Cramér's V of two label columns (rows with both): 0 independent, 1 each determines
    the other; NaN when either takes one value."""
    table = pd.crosstab(a, b).to_numpy(dtype=np.float64)
    if min(table.shape) < 2:
        return float("nan")
    n = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))


def correlation_ratio(labels: pd.Series, numbers: pd.Series) -> float:
    """The correlation ratio (eta) of a number column on a label column (rows with both): the
    share of the numbers' spread between the labels' means, as a root; NaN when constant."""
    both = pd.DataFrame({"k": labels, "x": pd.to_numeric(numbers)}).dropna()
    spread = float(((both["x"] - both["x"].mean()) ** 2).sum())
    if spread == 0.0:
        return float("nan")
    groups = both.groupby("k")["x"].agg(["mean", "size"])
    between = float((groups["size"] * (groups["mean"] - both["x"].mean()) ** 2).sum())
    return float(np.sqrt(between / spread))


def association_matrix(table: pd.DataFrame, numeric: Iterable[str],
                       method: str = "pearson") -> pd.DataFrame:
    """Every pair's association (module docstring), 1 on the diagonal."""
    names, wanted = list(table.columns), set(numeric)
    numeric = [c for c in names if c in wanted]
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    rho = correlations(table, numeric, method)
    for a, b in itertools.combinations(names, 2):
        if a in numeric and b in numeric:
            value = rho.loc[a, b]
        elif a in numeric or b in numeric:
            label, number = (b, a) if a in numeric else (a, b)
            value = correlation_ratio(table[label], table[number])
        else:
            value = cramers_v(table[a], table[b])
        out.loc[a, b] = out.loc[b, a] = value
    return out

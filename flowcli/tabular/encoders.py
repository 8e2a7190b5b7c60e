"""Column encoders: raw values to the model's space and back, with exact inverses.

A numeric column becomes one continuous dimension: a fixed map (identity, log for positive
columns, logit for bounded ones) followed by standardization, and each encoder reports the
log-derivative of that map per row, so densities stay in the table's own units. Integer
columns are dequantized: the value ``k`` covers the cell ``[k, k + 1)``, training spreads rows
uniformly over their cell, scoring evaluates the cell's centre. A categorical or boolean column
becomes one discrete dimension holding the category's index. A numeric column with missing
values also gets a discrete missing-indicator dimension, and its continuous value is NaN where
missing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..config import DEFAULT_UNSEEN
from ..errors import Advice, DataError
from .schema import ColumnSpec, first

__all__ = ["CategoricalEncoder", "Encoder", "NumericEncoder", "make_encoder"]

# bounded columns: values are squeezed into [EPS, 1 - EPS] before the logit, so that values on
# the bounds themselves stay finite
EPS = 1e-4
# scales tried for a column whose support was inferred, relative to its median (positive) or
# to its interval (bounded); None is the log or logit scale itself
SCALES: tuple[float | None, ...] = (None, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01)


def _log_expm1(y: np.ndarray) -> np.ndarray:
    """``log(exp(y) - 1)`` for ``y > 0``, without overflow."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(y > 20.0, y + np.log1p(-np.exp(-np.minimum(y, 700.0))),
                        np.log(np.expm1(np.minimum(y, 20.0))))


def soft_log(x: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """``(0, inf) -> R``: ``s * log(expm1(x / s))`` and its log-derivative.

    The identity where ``x`` is large against ``s``, the log scale where it is small: one
    scale ``s`` spans the two. Its inverse is ``s * softplus(u / s)``, positive for any ``u``.
    """
    y = x / s
    with np.errstate(divide="ignore"):
        return s * _log_expm1(y), -np.log(-np.expm1(-y))


def soft_logit(p: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """``(0, 1) -> R``: ``s * log(expm1(p / s) / -expm1((p - 1) / s))`` and its
    log-derivative; near the identity inside the interval for small ``s``, ``s * logit(p)`` for
    large ``s``. Its inverse ``s * (softplus(u / s) - softplus((u - 1) / s))`` lies in (0, 1)."""
    y1, y2 = p / s, (1.0 - p) / s
    with np.errstate(divide="ignore"):
        u = s * (_log_expm1(y1) - np.log(-np.expm1(-y2)))
        slope = 1.0 / -np.expm1(-y1) + 1.0 / np.expm1(y2)
        return u, np.log(slope)


def soft_exp(u: np.ndarray, s: float) -> np.ndarray:
    """The inverse of :func:`soft_log`."""
    return s * np.logaddexp(0.0, u / s)


def soft_sigmoid(u: np.ndarray, s: float) -> np.ndarray:
    """The inverse of :func:`soft_logit`."""
    return s * (np.logaddexp(0.0, u / s) - np.logaddexp(0.0, (u - 1.0) / s))


class Encoder:
    """Common interface. ``cont`` continuous dims, ``cards`` cardinalities of discrete dims."""

    spec: ColumnSpec
    cont: int = 0
    cards: list[int]

    def fit(self, series: pd.Series) -> Encoder:
        return self

    def encode(self, series: pd.Series, source: str, row_offset: int, position: float,
               unseen: str = DEFAULT_UNSEEN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(continuous (B, cont), discrete (B, len(cards)), logdet (B,))``.

        ``position`` places integers in their dequantization cell; ``unseen`` is what a
        categorical column does with a label never seen in training (``error`` or ``floor``).
        """
        raise NotImplementedError

    def decode(self, cont: np.ndarray, disc: np.ndarray) -> pd.Series:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {}

    @property
    def width(self) -> float:
        """Dequantization cell width in encoded units (0 when continuous)."""
        return 0.0


class NumericEncoder(Encoder):
    """continuous, integer, positive and bounded columns.

    A positive or bounded column whose support was inferred goes through :func:`soft_log` or
    :func:`soft_logit` at the ``scale`` (relative to its median, or to its interval) under
    which a Gaussian fits its training values best, counting the Jacobian; None is the log
    or logit scale itself, which declared columns always use.
    """

    cont = 1

    def __init__(self, spec: ColumnSpec, mean: float = 0.0, std: float = 1.0,
                 scale: float | None = None) -> None:
        self.spec = spec
        self.mean = float(mean)
        self.std = float(std)
        self.scale = None if scale is None else float(scale)
        self.cards = [2] if spec.missing else []

    @property
    def discrete(self) -> bool:
        return self.spec.kind == "integer"

    @property
    def width(self) -> float:
        return 1.0 / self.std if self.discrete else 0.0

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fixed map before standardization and its log-derivative."""
        kind, s = self.spec.kind, self.scale
        grid = self.spec.grid
        if grid is not None:  # the index of each value's point
            return grid.index(x), np.zeros_like(x)
        if kind == "positive":
            return (np.log(x), -np.log(x)) if s is None else soft_log(x, s)
        if kind == "bounded":
            low, high = self.spec.low, self.spec.high
            assert low is not None and high is not None
            p = EPS + (1 - 2 * EPS) * (x - low) / (high - low)
            squeeze = math.log(1 - 2 * EPS) - math.log(high - low)
            if s is not None:
                u, ld = soft_logit(p, s)
                return u, ld + squeeze
            return np.log(p) - np.log1p(-p), squeeze - np.log(p) - np.log1p(-p)
        return x, np.zeros_like(x)

    def _inverse(self, u: np.ndarray) -> np.ndarray:
        kind, s = self.spec.kind, self.scale
        grid = self.spec.grid
        if grid is not None:
            return grid.point(u)
        if kind == "positive":
            return np.exp(u) if s is None else soft_exp(u, s)
        if kind == "bounded":
            low, high = self.spec.low, self.spec.high
            assert low is not None and high is not None
            q = 0.5 * (1.0 + np.tanh(0.5 * u)) if s is None else soft_sigmoid(u, s)  # stable
            p = (q - EPS) / (1 - 2 * EPS)
            return np.clip(low + p * (high - low), low, high)
        return u

    def _choose_scale(self, values: np.ndarray) -> float | None:
        """The scale under which a Gaussian on the encoded values, Jacobian counted, gives
        the training values the highest likelihood (a Box-Cox-like choice)."""
        if self.spec.kind == "positive":
            unit = float(np.median(values))
        else:
            assert self.spec.low is not None and self.spec.high is not None
            unit = 1.0
        best, chosen = -math.inf, None
        for factor in SCALES:
            self.scale = None if factor is None else factor * unit
            u, logdet = self._forward(values)
            spread = float(u.var())
            if not (spread > 0 and np.isfinite(u).all()):
                continue
            fit = -0.5 * math.log(2 * math.pi * spread) - 0.5 + float(logdet.mean())
            if fit > best:
                best, chosen = fit, self.scale
        return chosen

    def fit(self, series: pd.Series) -> NumericEncoder:
        values = series.dropna().to_numpy(dtype=np.float64)
        if self.spec.inferred and self.spec.kind in ("positive", "bounded"):
            self.scale = self._choose_scale(values)
        u, _ = self._forward(values)
        if self.discrete:
            # moments of k + u with u ~ U(0, 1)
            self.mean = float(u.mean()) + 0.5
            self.std = math.sqrt(float(u.var()) + 1.0 / 12.0)
        else:
            self.mean = float(u.mean())
            self.std = float(u.std()) or 1.0
        return self

    def _values(self, series: pd.Series, source: str, row_offset: int
                ) -> tuple[np.ndarray, np.ndarray]:
        name = self.spec.name
        if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(
                series.dtype):
            numeric = pd.to_numeric(series, errors="coerce")
            bad = numeric.isna().to_numpy() & series.notna().to_numpy()
            if bad.any():
                i = first(bad)
                value, row = series.iloc[i], row_offset + i + 1
                raise DataError(f"column '{name}' is not numeric: {value!r} in row {row}",
                                source=source, column=name, row=row, value=value)
            series = numeric
        x = series.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(x)
        if missing.any() and not self.spec.missing:
            row = row_offset + first(missing) + 1
            raise DataError(f"column '{name}' has a missing value in row {row}", source=source,
                            column=name, row=row)
        present = ~missing
        bad = present & ~np.isfinite(x)
        if bad.any():
            i = first(bad)
            row = row_offset + i + 1
            raise DataError(f"column '{name}' holds {x[i]} in row {row}", source=source,
                            column=name, row=row, value=float(x[i]))
        kind = self.spec.kind
        grid = self.spec.grid
        if grid is not None:
            bad = present & ~grid.holds(x)
        elif kind == "integer":
            bad = present & (x != np.round(x))
        elif kind == "positive":
            bad = present & (x <= 0)
        elif kind == "bounded":
            bad = present & ((x < self.spec.low) | (x > self.spec.high))
        else:
            bad = np.zeros_like(present)
        if bad.any():
            i = first(bad)
            if kind == "bounded":
                what = f"is bounded to [{self.spec.low:g}, {self.spec.high:g}]"
            elif grid is not None:
                start = float(grid.point(np.zeros(1))[0])
                what = f"lies on a grid of step {grid.step:g} from {start:g}"
            else:
                what = {"integer": "holds whole numbers in the model",
                        "positive": "is positive in the model"}[kind]
            value, row = float(x[i]), row_offset + i + 1
            inferred = " (as every training value was)" if self.spec.inferred else ""
            advice = None
            if inferred and self.spec.step is not None:
                advice = Advice("continuous", name, verb="refit with",
                                purpose="to model it as continuous")
            elif inferred:
                advice = Advice("unbounded", name, verb="refit with",
                                purpose="to model it without that bound")
            raise DataError(f"column '{name}' {what}{inferred} but {value!r} in row {row}",
                            source=source, column=name, row=row, value=value, advice=advice)
        return x, missing

    def encode(self, series: pd.Series, source: str, row_offset: int, position: float,
               unseen: str = DEFAULT_UNSEEN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, missing = self._values(series, source, row_offset)
        # gaps get any value inside the domain (their encoding is replaced by NaN below)
        filled = np.where(missing, self._inverse(np.zeros(1))[0], x)
        u, logdet = self._forward(filled)
        if self.discrete:
            u = u + position
        encoded = (u - self.mean) / self.std
        logdet = np.where(missing, 0.0, logdet - math.log(self.std))
        encoded = np.where(missing, np.nan, encoded)
        disc = missing[:, None].astype(np.float64) if self.cards else np.zeros((len(x), 0))
        return encoded[:, None], disc, logdet

    def decode(self, cont: np.ndarray, disc: np.ndarray) -> pd.Series:
        u = cont[:, 0] * self.std + self.mean
        if self.discrete:  # the cell's integer, inside the training range
            low, high = self._forward(np.array([self.spec.min, self.spec.max]))[0]
            u = np.clip(np.floor(u), low, high)
        raw = self._inverse(u)
        if self.cards:
            raw = np.where(disc[:, 0] > 0.5, np.nan, raw)
        return pd.Series(raw, name=self.spec.name).astype(self.spec.dtype)

    def log_jacobian(self, encoded: np.ndarray) -> np.ndarray:
        """``log |d encoded / d value|`` at the values whose encodings are ``encoded``: what
        turns a density in encoded units into one in the table's units."""
        if self.discrete:
            return np.full_like(encoded, -math.log(self.std))
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            raw = self._inverse(encoded * self.std + self.mean)
            return self._forward(raw)[1] - math.log(self.std)

    def to_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"mean": self.mean, "std": self.std}
        if self.spec.inferred and self.spec.kind in ("positive", "bounded"):
            state["scale"] = self.scale
        return state


class CategoricalEncoder(Encoder):
    """categorical and boolean columns: the index of the label among the training labels.

    With ``unseen="floor"``, a label never seen in training is scored as the training label
    that was rarest; otherwise it is an error naming the column, value and row.
    """

    cont = 0

    def __init__(self, spec: ColumnSpec, counts: list[int] | None = None) -> None:
        self.spec = spec
        assert spec.categories is not None
        self.labels = list(spec.categories)
        self.cards = [len(self.labels)]
        self.counts = list(counts or [1] * len(self.labels))
        self._index = {_key(label): i for i, label in enumerate(self.labels)}
        self._label_array = np.empty(len(self.labels), dtype=object)
        self._label_array[:] = self.labels

    def fit(self, series: pd.Series) -> CategoricalEncoder:
        codes = self._codes(series)
        self.counts = np.bincount(codes[codes >= 0].astype(np.int64),
                                  minlength=len(self.labels)).tolist()
        return self

    def _codes(self, series: pd.Series) -> np.ndarray:
        """Each row's label index (NaN: unseen, or a gap the model does not hold).

        Labels are looked up once per distinct value, not once per row.
        """
        found, distinct = pd.factorize(series.astype(object), use_na_sentinel=True)
        gap = self._index.get(None, np.nan) if self.spec.missing else np.nan
        table = np.array([self._index.get(_key(v), np.nan) for v in distinct] + [gap],
                         dtype=np.float64)
        return table[found]  # the sentinel -1 picks the last entry, the gap's

    def encode(self, series: pd.Series, source: str, row_offset: int, position: float,
               unseen: str = DEFAULT_UNSEEN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes = self._codes(series)
        bad = np.isnan(codes)
        if bad.any():
            i = first(bad)
            name, value, row = self.spec.name, series.iloc[i], row_offset + i + 1
            if pd.isna(value):
                raise DataError(f"column '{name}' has a missing value in row {row}",
                                source=source, column=name, row=row)
            if unseen != "floor":
                raise DataError(
                    f"column '{name}' holds {value!r} in row {row}, a value never seen in "
                    f"training", source=source, column=name, row=row, value=value,
                    advice=Advice("unseen", "floor",
                                  purpose="to take such values as the rarest training value"))
            codes = np.where(bad, float(np.argmin(self.counts)), codes)
        return np.zeros((len(codes), 0)), codes[:, None], np.zeros(len(codes))

    def decode(self, cont: np.ndarray, disc: np.ndarray) -> pd.Series:
        index = disc[:, 0].astype(np.int64)
        series = pd.Series(self._label_array[index], name=self.spec.name)
        dtype = self.spec.dtype
        if dtype == "category":
            known = [c for c in self.labels if c is not None]
            return series.astype(pd.CategoricalDtype(known))
        if self.spec.missing and dtype == "bool":
            return series.astype("boolean")
        try:
            return series.astype(dtype)
        except (TypeError, ValueError):
            return series

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts}


def _key(label: Any) -> Any:
    """A hashable key under which equal labels from CSV and Parquet meet (1 and 1.0, numpy)."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return None
    if isinstance(label, (bool, np.bool_)):
        return bool(label)
    if isinstance(label, (int, np.integer)):
        return int(label)
    if isinstance(label, (float, np.floating)):
        return int(label) if float(label).is_integer() else float(label)
    return str(label)


def make_encoder(spec: ColumnSpec, state: dict[str, Any] | None = None) -> Encoder:
    """The encoder for a column spec, restored from ``state`` when given."""
    if spec.kind in ("categorical", "boolean"):
        return CategoricalEncoder(spec, **(state or {}))
    return NumericEncoder(spec, **(state or {}))

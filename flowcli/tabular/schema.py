"""Which columns a model uses, of what kind, and checking a table against them.

Rows are counted as data rows, from 1, the header excluded: "row 3" of a CSV file is the third
line after its header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, SchemaError

__all__ = ["KINDS", "MISSING", "ColumnSpec", "Overrides", "Schema"]

KINDS = ("continuous", "integer", "positive", "bounded", "categorical", "boolean")
MISSING = ("error", "drop", "model")
MAX_CATEGORIES = 100
LATTICE = 50  # a continuous column with at most this many distinct values gets a warning


def show(names: list[str], limit: int = 5) -> str:
    """``'a', 'b', 'c' and 2 more``."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def first(mask: np.ndarray) -> int:
    """Index of the first true entry."""
    return int(np.flatnonzero(mask)[0])


@dataclass(frozen=True)
class ColumnSpec:
    """One model column.

    Attributes:
        name, kind, dtype: the column, one of :data:`KINDS`, and its pandas dtype as a string.
        min, max: the range seen in training (numeric kinds).
        categories: the labels seen in training, in code order (categorical and boolean).
        low, high: the declared bounds of a bounded column.
        missing: the share of training rows where the column is missing (modelled).
    """

    name: str
    kind: str
    dtype: str
    min: float | None = None
    max: float | None = None
    categories: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    missing: float = 0.0
    distinct: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def warning(self, rows: int) -> str | None:
        """A note when a continuous column takes few distinct values (a lattice)."""
        if self.kind in ("continuous", "positive", "bounded") and self.distinct is not None \
                and self.distinct <= LATTICE and rows >= 20 * self.distinct:
            return (f"column '{self.name}' takes only {self.distinct} distinct values in "
                    f"{rows:,} rows: a continuous density spikes on them and its likelihood "
                    f"means little; declare it --categorical {self.name} if they are codes")
        return None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        return cls(**data)

    def describe(self) -> str:
        """A short human description of what the model knows about the column."""
        if self.categories is not None:
            labels = [str(c) for c in self.categories]
            text = f"{len(labels)} labels: " + ", ".join(labels[:6])
            text += " ..." if len(labels) > 6 else ""
        elif self.kind == "bounded":
            text = f"in [{self.low:g}, {self.high:g}]"
        else:
            text = f"{self.min:g} .. {self.max:g}"
        if self.missing:
            text += f"; {self.missing:.1%} missing"
        return text


@dataclass
class Overrides:
    """What the user says about columns, overriding inference."""

    categorical: set[str] = field(default_factory=set)
    integer: set[str] = field(default_factory=set)
    positive: set[str] = field(default_factory=set)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    missing: str = "error"

    def names(self) -> set[str]:
        return self.categorical | self.integer | self.positive | set(self.bounds)


class Schema:
    """An ordered list of :class:`ColumnSpec`, inferred from a table or read from a model."""

    def __init__(self, columns: list[ColumnSpec]) -> None:
        if not columns:
            raise SchemaError("a model needs at least one column")
        self.columns = list(columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __len__(self) -> int:
        return len(self.columns)

    def to_dict(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.columns]

    @classmethod
    def from_dict(cls, data: list[dict[str, Any]]) -> Schema:
        return cls([ColumnSpec.from_dict(d) for d in data])

    @classmethod
    def infer(
        cls,
        df: pd.DataFrame,
        columns: list[str] | None = None,
        source: str = "data",
        overrides: Overrides | None = None,
    ) -> Schema:
        """Pick and classify the model columns of ``df``; refuse what cannot be modelled.

        Arguments:
            df: the training table (after any dropping of rows with missing values).
            columns: the columns to use, in order (default: all).
            source: the file name used in error messages.
            overrides: kinds and bounds the user declared, and the missing-value policy.
        """
        overrides = overrides or Overrides()
        names = [str(c) for c in df.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"{source}: column {show(dupes)} appears more than once")
        if columns is None:
            columns = names
        if len(set(columns)) != len(columns):
            raise SchemaError(f"{source}: --columns names a column twice")
        unknown = [c for c in list(columns) + sorted(overrides.names()) if c not in df.columns]
        if unknown:
            raise SchemaError(f"{source}: no column {show(unknown)}; the columns are "
                              f"{show(names, 10)}")
        outside = sorted(overrides.names() - set(columns))
        if outside:
            raise SchemaError(f"{source}: {show(outside)} is declared but left out of the model")
        if len(df) == 0:
            raise DataError(f"{source}: no data rows (only a header)")
        return cls([_infer_column(df[name], name, source, overrides) for name in columns])

    def warnings(self, rows: int) -> list[str]:
        """Notes about columns that a continuous density fits poorly."""
        return [w for c in self.columns if (w := c.warning(rows)) is not None]

    def check_columns(self, df: pd.DataFrame, source: str = "data") -> None:
        """Raise :class:`SchemaError` naming missing (and unexpected) columns."""
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            unexpected = [str(c) for c in df.columns if c not in self.names]
            hint = f"; columns not seen in training: {show(unexpected)}" if unexpected else ""
            raise SchemaError(f"{source}: missing model column {show(missing)}{hint}")
        names = [str(c) for c in df.columns]
        dupes = sorted({n for n in self.names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"{source}: column {show(dupes)} appears more than once")


def _infer_column(series: pd.Series, name: str, source: str, overrides: Overrides) -> ColumnSpec:
    dtype = str(series.dtype)
    present = series.notna().to_numpy()
    missing = 1.0 - float(present.mean())
    if missing and overrides.missing != "model":
        row = first(~present) + 1
        raise DataError(f"{source}: column '{name}' has a missing value in row {row}; "
                        f"use --missing model (or drop) to fit on rows with gaps")
    if not present.any():
        raise DataError(f"{source}: column '{name}' has no values")
    values = series[present]
    rows = np.flatnonzero(present) + 1  # file row of each present value

    # a CSV boolean column with gaps reads as objects
    is_bool = pd.api.types.is_bool_dtype(series.dtype) or (
        series.dtype == object
        and bool(values.map(lambda v: isinstance(v, (bool, np.bool_))).all())
    )
    text = not pd.api.types.is_numeric_dtype(series.dtype)
    if name in overrides.categorical or is_bool or (
        text and _is_categorical(values, rows, name, source)
    ):
        kind = "boolean" if is_bool else "categorical"
        labels = _labels(values)  # text with too many labels was refused by _is_categorical
        if missing:
            labels.append(None)
        return ColumnSpec(name, kind, dtype, categories=labels, missing=missing)

    numeric = _numeric(values, rows, name, source)
    lo, hi = float(numeric.min()), float(numeric.max())
    integral = bool(np.all(numeric == np.round(numeric)))
    n_unique = len(np.unique(numeric))
    distinct = min(n_unique, LATTICE + 1)  # enough to tell a lattice
    if name in overrides.bounds:
        low, high = overrides.bounds[name]
        bad = (numeric < low) | (numeric > high)
        if bad.any():
            i = first(bad)
            raise DataError(f"{source}: column '{name}' is bounded to [{low:g}, {high:g}] but "
                            f"holds {numeric[i]:g} in row {rows[i]}")
        return ColumnSpec(name, "bounded", dtype, lo, hi, low=low, high=high, missing=missing,
                          distinct=distinct)
    if name in overrides.positive:
        bad = numeric <= 0
        if bad.any():
            i = first(bad)
            raise DataError(f"{source}: column '{name}' is declared positive but holds "
                            f"{numeric[i]:g} in row {rows[i]}")
        return ColumnSpec(name, "positive", dtype, lo, hi, missing=missing, distinct=distinct)
    if name in overrides.integer or pd.api.types.is_integer_dtype(series.dtype) or integral:
        if not integral:
            i = first(numeric != np.round(numeric))
            raise DataError(f"{source}: column '{name}' is declared integer but holds "
                            f"{float(numeric[i])!r} in row {rows[i]}")
        if len(numeric) >= 20 and n_unique == len(numeric) and \
                hi - lo + 1 == len(numeric):
            raise DataError(f"{source}: column '{name}' counts 1 by 1 through the rows (an id?), "
                            f"so it has no useful density; leave it out with --exclude {name}")
        return ColumnSpec(name, "integer", dtype, lo, hi, missing=missing)
    if lo == hi:
        raise DataError(f"{source}: column '{name}' is constant ({lo:g} in every row), so it "
                        f"has no density; leave it out with --exclude {name}")
    return ColumnSpec(name, "continuous", dtype, lo, hi, missing=missing, distinct=distinct)


def _labels(values: pd.Series) -> list[Any]:
    uniques = pd.unique(values)
    try:
        labels = sorted(uniques.tolist())
    except TypeError:  # mixed types: keep them in order of appearance
        labels = list(uniques.tolist())
    return labels


def _is_categorical(values: pd.Series, rows: np.ndarray, name: str, source: str) -> bool:
    """Text columns are categories, unless they are numbers with typos, dates or free text."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        raise DataError(f"{source}: column '{name}' holds dates; encode them as numbers "
                        f"(day of week, hour, ...) or leave it out with --exclude {name}")
    numeric = pd.to_numeric(values, errors="coerce")
    parsed = numeric.notna().to_numpy()
    if parsed.all():  # numbers kept as text on purpose (zip codes, codes with leading zeros)
        if values.nunique() > MAX_CATEGORIES:
            raise DataError(f"{source}: column '{name}' holds numbers stored as text (such as "
                            f"{values.iloc[0]!r}); convert it to numbers, or leave it out with "
                            f"--exclude {name}")
        return True
    if parsed.mean() >= 0.5:  # numbers with a few typos, not labels
        i = first(~parsed)
        raise DataError(f"{source}: column '{name}' is not numeric: {values.iloc[i]!r} in "
                        f"row {rows[i]}; fix the value, or declare it --categorical {name}")
    distinct = values.nunique()
    if distinct > MAX_CATEGORIES:
        sample = values.astype(str).head(200)
        if pd.to_datetime(sample, errors="coerce", format="mixed").notna().mean() > 0.9:
            raise DataError(f"{source}: column '{name}' holds dates; encode them as numbers "
                            f"(day of week, hour, ...) or leave it out with --exclude {name}")
        raise DataError(f"{source}: column '{name}' has {distinct:,} distinct text values "
                        f"(free text or an id?), too many to model as categories; leave it "
                        f"out with --exclude {name}")
    return True


def _numeric(values: pd.Series, rows: np.ndarray, name: str, source: str) -> np.ndarray:
    out = values.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        i = first(bad)
        raise DataError(f"{source}: column '{name}' holds {out[i]} in row {rows[i]}")
    return out

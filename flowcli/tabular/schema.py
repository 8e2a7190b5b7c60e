"""Which columns a model uses, of what kind, and checking a table against them.

Rows are counted as data rows, from 1, the header excluded: "row 3" of a CSV file is the third
line after its header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, SchemaError

__all__ = ["KINDS", "ColumnSpec", "Schema"]

KINDS = ("continuous", "integer", "boolean")


def _show(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass(frozen=True)
class ColumnSpec:
    """One model column: its name, kind, pandas dtype and the range seen in training."""

    name: str
    kind: str
    dtype: str
    min: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        return cls(**data)


def _kind_of(series: pd.Series) -> str | None:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "continuous"
    return None


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


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
        cls, df: pd.DataFrame, columns: list[str] | None = None, source: str = "data"
    ) -> Schema:
        """Pick and classify the model columns of ``df``; refuse what cannot be modelled.

        Arguments:
            df: the training table.
            columns: the columns to use, in order (default: all).
            source: the file name used in error messages.
        """
        if columns is None:
            columns = [str(c) for c in df.columns]
        else:
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise SchemaError(
                    f"{source}: no column {_show(missing)}; the columns are "
                    f"{_show([str(c) for c in df.columns], 10)}"
                )
            if len(set(columns)) != len(columns):
                raise SchemaError(f"{source}: --columns names a column twice")
        if len(set(map(str, df.columns))) != len(df.columns):
            names = [str(c) for c in df.columns]
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"{source}: column {_show(dupes)} appears more than once")
        if len(df) == 0:
            raise DataError(f"{source}: no data rows (only a header)")
        specs = []
        for name in columns:
            series = df[name]
            kind = _kind_of(series)
            if kind is None:
                raise DataError(_non_numeric_message(series, name, source))
            values = _checked_values(series, name, source, 0)
            if kind == "continuous" and values.min() == values.max():
                raise DataError(
                    f"{source}: column '{name}' is constant ({values[0]:g} in every row), so it "
                    f"has no density; leave it out with --columns"
                )
            specs.append(ColumnSpec(name, kind, str(series.dtype), float(values.min()),
                                    float(values.max())))
        return cls(specs)

    def validate(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0) -> np.ndarray:
        """The model columns of ``df`` as a float64 array ``(rows, columns)``, in model order.

        Extra columns are ignored; their order does not matter. Raises :class:`SchemaError` for
        missing columns and :class:`DataError` naming the column and row of the first bad value.

        Arguments:
            row_offset: data rows before this chunk in the file, for row numbers in messages.
        """
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            unexpected = [str(c) for c in df.columns if c not in self.names]
            hint = f"; columns not seen in training: {_show(unexpected)}" if unexpected else ""
            raise SchemaError(f"{source}: missing model column {_show(missing)}{hint}")
        out = np.empty((len(df), len(self.columns)), dtype=np.float64)
        for j, spec in enumerate(self.columns):
            series = df[spec.name]
            if isinstance(series, pd.DataFrame):
                raise SchemaError(f"{source}: column '{spec.name}' appears more than once")
            if _kind_of(series) is None:
                numeric = pd.to_numeric(series, errors="coerce")
                bad = numeric.isna().to_numpy() & series.notna().to_numpy()
                if bad.any():
                    raise DataError(_non_numeric_message(series, spec.name, source, row_offset))
                series = numeric
            values = _checked_values(series, spec.name, source, row_offset)
            if spec.kind != "continuous":
                fractional = values != np.round(values)
                if fractional.any():
                    i = _first(fractional)
                    raise DataError(
                        f"{source}: column '{spec.name}' holds whole numbers in the model but "
                        f"{float(values[i])!r} in row {row_offset + i + 1}"
                    )
            out[:, j] = values
        return out


def _checked_values(series: pd.Series, name: str, source: str, row_offset: int) -> np.ndarray:
    missing = series.isna().to_numpy()
    if missing.any():
        row = row_offset + _first(missing) + 1
        raise DataError(f"{source}: column '{name}' has a missing value in row {row}")
    values = series.to_numpy(dtype=np.float64)
    infinite = ~np.isfinite(values)
    if infinite.any():
        i = _first(infinite)
        raise DataError(f"{source}: column '{name}' holds {values[i]} in row {row_offset + i + 1}")
    return values


def _non_numeric_message(series: pd.Series, name: str, source: str, row_offset: int = 0) -> str:
    numeric = pd.to_numeric(series, errors="coerce")
    bad = numeric.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        i = _first(bad)
        example = f": {series.iloc[i]!r} in row {row_offset + i + 1}"
    else:
        example = f" (dtype {series.dtype})"
    return (
        f"{source}: column '{name}' is not numeric{example}; "
        f"leave it out with --columns"
    )

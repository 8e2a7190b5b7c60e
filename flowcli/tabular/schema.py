"""Which columns a model uses, of what kind, and checking a table against them.

Rows are counted as data rows, from 1, the header excluded: "row 3" of a CSV file is the third
line after its header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..config import FIT_DEFAULTS, MISSING
from ..errors import Advice, DataError, SchemaError, Spelling, python_spelling
from .grids import FLOAT32_DTYPES, Grid, Precision, find_grid

__all__ = ["KINDS", "MISSING", "ColumnSpec", "Notice", "Overrides", "Schema"]

KINDS = ("continuous", "integer", "positive", "bounded", "categorical", "boolean", "datetime")
# a datetime column's resolution as fit and info name it
UNITS = {86_400: "day", 3_600: "hour", 60: "minute", 1: "second", 0.001: "millisecond",
         0.000_001: "microsecond"}
MAX_CATEGORIES = 100
LATTICE = 50  # a continuous column with at most this many distinct values gets a warning


def show(names: list[str], limit: int = 5) -> str:
    """``'a', 'b', 'c' and 2 more``."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def first(mask: np.ndarray) -> int:
    """Index of the first true entry."""
    return int(np.flatnonzero(mask)[0])


def _exclude(name: str, verb: str = "leave it out with") -> Advice:
    """Advice to leave column ``name`` out of the model."""
    return Advice("exclude", name, verb=verb)


@dataclass(frozen=True)
class Notice:
    """A note about a column that is not an error: ``problem``, then after a semicolon
    ``advice`` naming an option, as in :class:`~flowcli.errors.FlowcliError`.

    ``str(notice)`` writes options as Python keyword arguments (``categorical=['x']``);
    :meth:`render` takes another spelling (the command line's ``--categorical x``).
    """

    problem: str
    column: str | None = None
    advice: Advice | None = None

    def render(self, spell: Spelling) -> str:
        """The note with options written by ``spell``."""
        return f"{self.problem}; {self.advice.render(spell)}" if self.advice else self.problem

    def __str__(self) -> str:
        return self.render(python_spelling)


@dataclass(frozen=True)
class ColumnSpec:
    """One model column.

    Attributes:
        name, kind, dtype: the column, one of :data:`KINDS`, and its pandas dtype as a string.
        inferred: the kind is positive or bounded to [0, 1] because every training value
            was (see :func:`_support`), or integer on a grid (see
            :func:`.grids.find_grid`), not because the user said so.
        step, offset: the grid of such an integer column: its values are offset + step * k.
        decimals, digits: the precision a grid's values were written with, when they sit
            on it only up to that rounding (see :class:`~flowcli.tabular.grids.Precision`).
        min, max: the range seen in training (numeric kinds).
        categories: the labels seen in training, in code order (categorical and boolean).
        low, high: the declared bounds of a bounded column.
        missing: the share of training rows where the column is missing (modelled).
        given: a condition: the model is of the other columns given this one.
        zone, shift, resolution, format: a datetime column's time zone (None: naive), the
            UTC offset of its local clock in seconds, the coarsest unit in seconds that
            divides every training instant, and the text format it was read with (None when
            it was not text); min and max are then seconds since 1970 UTC.
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
    inferred: bool = False  # a support or grid inferred from the training values
    step: float | None = None  # an integer column on a grid: offset + step * k
    offset: float | None = None
    decimals: int | None = None
    digits: int | None = None
    given: bool = False
    zone: str | None = None
    shift: float | None = None
    resolution: float | None = None
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("zone", "shift", "resolution", "format"):  # datetime columns only
            if data[key] is None:
                data.pop(key)
        # as files written before inferred kinds (or conditions) hold a column without one
        for key in ("inferred", "given"):
            if not data[key]:
                data.pop(key)
        for key in ("step", "offset", "decimals", "digits"):  # grid columns only
            if data[key] is None:
                data.pop(key)
        return data

    @property
    def grid(self) -> Grid | None:
        """The grid an integer column was found on, or None."""
        if self.step is None:
            return None
        assert self.offset is not None
        rounding = None if self.decimals is None else Precision(self.decimals, self.digits)
        return Grid(self.step, self.offset, rounding, float32=self.float32)

    @property
    def float32(self) -> bool:
        """Whether the column's values are stored as float32 (a grid allows their rounding)."""
        return self.dtype in FLOAT32_DTYPES

    @property
    def kind_label(self) -> str:
        """The kind as ``fit`` and ``info`` show it: ``positive (inferred)``,
        ``grid of 0.5 (inferred)``; a condition column's ends in ``, given``."""
        if self.kind == "datetime":
            label = f"datetime per {UNITS.get(self.resolution or 1, 'second')}"
            label += f", {self.zone}" if self.zone else ""
        elif self.step is not None:
            label = f"grid of {self.step:g} (inferred)"
        else:
            label = f"{self.kind} (inferred)" if self.inferred else self.kind
        return f"{label}, given" if self.given else label

    def warning(self, rows: int) -> Notice | None:
        """A note when a continuous column takes few distinct values (a lattice)."""
        if self.kind in ("continuous", "positive", "bounded") and self.distinct is not None \
                and self.distinct <= LATTICE and rows >= 20 * self.distinct:
            return Notice(f"column '{self.name}' takes only {self.distinct} distinct values in "
                          f"{rows:,} rows: a continuous density spikes on them and its "
                          f"likelihood means little", self.name,
                          Advice("categorical", self.name, verb="declare it",
                                 purpose="if they are codes"))
        return None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        return cls(**data)

    def range_ends(self) -> tuple[str, str]:
        """The training range's ends as a user reads them: numbers, or for a datetime
        column instants in its zone (dates when its resolution is a day or more)."""
        assert self.min is not None and self.max is not None
        if self.kind != "datetime":
            return f"{self.min:g}", f"{self.max:g}"
        ends = pd.to_datetime([self.min, self.max], unit="s", utc=self.zone is not None)
        if self.zone:
            ends = ends.tz_convert(self.zone)
        if (self.resolution or 0) >= 86_400:
            ends = ends.date
        return str(ends[0]), str(ends[1])

    def describe(self) -> str:
        """A short human description of what the model knows about the column."""
        if self.categories is not None:
            labels = [str(c) for c in self.categories]
            text = f"{len(labels)} labels: " + ", ".join(labels[:6])
            text += " ..." if len(labels) > 6 else ""
        elif self.kind == "bounded":
            text = f"in [{self.low:g}, {self.high:g}]"
        else:
            text = " .. ".join(self.range_ends())
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
    missing: str = FIT_DEFAULTS["missing"]
    unbounded: set[str] = field(default_factory=set)  # no support inferred for these
    continuous: set[str] = field(default_factory=set)  # neither support nor grid inferred
    given: list[str] = field(default_factory=list)  # the conditions, in the user's order
    datetime: set[str] = field(default_factory=set)
    datetime_format: dict[str, str] = field(default_factory=dict)  # strftime codes per column
    as_given: set[str] = field(default_factory=set)  # conditions: read as they come

    def names(self) -> set[str]:
        """The columns declared something (conditions apart)."""
        return (self.categorical | self.integer | self.positive | set(self.bounds)
                | self.unbounded | self.continuous | self.datetime | set(self.datetime_format))

    def numeric_kind(self, name: str) -> str | None:
        """The option that declares column ``name`` numeric, if any."""
        for option, names in (("integer", self.integer), ("positive", self.positive),
                              ("bounds", set(self.bounds)), ("continuous", self.continuous),
                              ("unbounded", self.unbounded)):
            if name in names:
                return option
        return None

    def for_conditions(self) -> Overrides:
        """These overrides with no support or grid inferred for a condition column that
        declares no kind: a condition is an input, not modelled, so any value of its type
        may be given."""
        declared = self.categorical | self.integer | self.positive | set(self.bounds)
        return replace(self, as_given=set(self.given) - declared)


class Schema:
    """An ordered list of :class:`ColumnSpec`, inferred from a table or read from a model."""

    def __init__(self, columns: list[ColumnSpec]) -> None:
        if not columns:
            raise SchemaError("a model needs at least one column")
        self.columns = list(columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def given(self) -> list[str]:
        """The condition columns, in schema order (none for a model of whole rows)."""
        return [c.name for c in self.columns if c.given]

    @property
    def modelled(self) -> list[str]:
        """The columns the model gives a density of."""
        return [c.name for c in self.columns if not c.given]

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
            raise SchemaError(f"column {show(dupes)} appears more than once", source=source,
                              column=dupes[0])
        if columns is None:
            columns = names
        if len(set(columns)) != len(columns):
            twice = next(c for i, c in enumerate(columns) if c in columns[:i])
            raise SchemaError("names a column twice", source=source, column=twice,
                              field="columns")
        unknown = [c for c in list(columns) + sorted(overrides.names()) if c not in df.columns]
        if unknown:
            raise SchemaError(f"no column {show(unknown)}; the columns are {show(names, 10)}",
                              source=source, column=unknown[0])
        outside = sorted(overrides.names() - set(columns))
        if outside:
            raise SchemaError(f"{show(outside)} is declared but left out of the model",
                              source=source, column=outside[0])
        _check_conditions(overrides.given, columns, names, source)
        if len(df) == 0:
            raise DataError("no data rows (only a header)", source=source)
        given = overrides.for_conditions()
        schema = cls([replace(_infer_column(df[name], name, source, given), given=True)
                      if name in overrides.given else
                      _infer_column(df[name], name, source, overrides) for name in columns])
        _check_part_names(schema, source)
        return schema

    def warnings(self, rows: int) -> list[Notice]:
        """Notes about columns that a continuous density fits poorly."""
        return [w for c in self.columns if (w := c.warning(rows)) is not None]

    def check_columns(self, df: pd.DataFrame, source: str = "data") -> None:
        """Raise :class:`SchemaError` naming missing (and unexpected) columns."""
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            unexpected = [str(c) for c in df.columns if c not in self.names]
            hint = f"; columns not seen in training: {show(unexpected)}" if unexpected else ""
            raise SchemaError(f"missing model column {show(missing)}{hint}", source=source,
                              column=missing[0])
        names = [str(c) for c in df.columns]
        dupes = sorted({n for n in self.names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"column {show(dupes)} appears more than once", source=source,
                              column=dupes[0])


def _check_part_names(schema: Schema, source: str) -> None:
    """Refuse a column named as a part of a datetime column (``ts.hour`` beside ``ts``):
    the model would not tell the two apart."""
    from .dateparts import part_specs

    for spec in schema.columns:
        if spec.kind != "datetime":
            continue
        clash = {p.name for p in part_specs(spec)} & set(schema.names)
        if clash:
            name = sorted(clash)[0]
            raise SchemaError(f"column '{name}' has the name of a part of datetime column "
                              f"'{spec.name}'; rename it or leave it out", source=source,
                              column=name)


def _check_conditions(given: list[str], columns: list[str], names: list[str],
                      source: str) -> None:
    """Refuse conditions that name no column, a column left out, or every column."""
    if not given:
        return
    for name in given:
        if name not in names:
            raise SchemaError(f"names no column {name!r}; the columns are {show(names, 10)}",
                              source=source, column=name, field="condition")
        if name not in columns:
            raise SchemaError(f"names {name!r}, which is left out of the model",
                              source=source, column=name, field="condition")
    if len(set(given)) != len(given):
        twice = next(c for i, c in enumerate(given) if c in given[:i])
        raise SchemaError("names a condition twice", source=source, column=twice,
                          field="condition")
    if set(columns) <= set(given):
        raise SchemaError("names every column: leave at least one to model",
                          source=source, field="condition")


def _infer_column(series: pd.Series, name: str, source: str, overrides: Overrides) -> ColumnSpec:
    dtype = str(series.dtype)
    present = series.notna().to_numpy()
    missing = 1.0 - float(present.mean())
    if missing and overrides.missing != "model":
        row = first(~present) + 1
        raise DataError(f"column '{name}' has a missing value in row {row}", source=source,
                        column=name, row=row,
                        advice=Advice("missing", "model", others=("drop",),
                                      purpose="to fit on rows with gaps"))
    if not present.any():
        raise DataError(f"column '{name}' has no values", source=source, column=name)
    values = series[present]
    rows = np.flatnonzero(present) + 1  # file row of each present value
    if name not in overrides.categorical and _is_dates(series, values, name, overrides,
                                                        source):
        from .dateparts import spec_of

        return spec_of(series, name, source, missing, overrides.datetime_format.get(name))

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
    return _numeric_spec(numeric, rows, name, dtype, missing, source, overrides,
                         pd.api.types.is_integer_dtype(series.dtype))


def _is_dates(series: pd.Series, values: pd.Series, name: str, overrides: Overrides,
              source: str) -> bool:
    """Whether column ``name`` is to be modelled as datetimes: declared so, of a datetime
    type, or text in ISO 8601; a declared numeric kind over dates is refused."""
    from .datetimes import is_datetime, looks_like_dates

    declared = name in overrides.datetime or name in overrides.datetime_format
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and not is_datetime(series)
    if declared and (numeric or pd.api.types.is_bool_dtype(series.dtype)):
        example = values.iloc[0]
        example = example.item() if isinstance(example, np.generic) else example
        raise SchemaError(f"column '{name}' is declared datetime but holds numbers, such as "
                          f"{example!r}", source=source, column=name)
    dates = declared or is_datetime(series) or (not numeric and looks_like_dates(values))
    kind = overrides.numeric_kind(name)
    if dates and kind is not None:
        said = {"bounds": "bounded"}.get(kind, kind)
        raise SchemaError(f"column '{name}' holds dates, such as {str(values.iloc[0])!r}, "
                          f"but is declared {said}", source=source, column=name,
                          advice=Advice(kind, verb="leave it out of"))
    return dates


def _numeric_spec(numeric: np.ndarray, rows: np.ndarray, name: str, dtype: str, missing: float,
                  source: str, overrides: Overrides, integer_dtype: bool) -> ColumnSpec:
    """The spec of a numeric column from its present values ``numeric`` (file rows ``rows``):
    bounded, positive, integer or continuous, after checking the values fit that kind."""
    lo, hi = float(numeric.min()), float(numeric.max())
    integral = bool(np.all(numeric == np.round(numeric)))
    points = np.unique(numeric)
    n_unique = len(points)
    distinct = min(n_unique, LATTICE + 1)  # enough to tell a lattice
    if name in overrides.bounds:
        low, high = overrides.bounds[name]
        bad = (numeric < low) | (numeric > high)
        if bad.any():
            i = first(bad)
            value, row = float(numeric[i]), int(rows[i])
            raise DataError(f"column '{name}' is bounded to [{low:g}, {high:g}] but holds "
                            f"{value:g} in row {row}", source=source, column=name, row=row,
                            value=value)
        return ColumnSpec(name, "bounded", dtype, lo, hi, low=low, high=high, missing=missing,
                          distinct=distinct)
    if name in overrides.positive:
        bad = numeric <= 0
        if bad.any():
            i = first(bad)
            value, row = float(numeric[i]), int(rows[i])
            raise DataError(f"column '{name}' is declared positive but holds {value:g} in row "
                            f"{row}", source=source, column=name, row=row, value=value)
        return ColumnSpec(name, "positive", dtype, lo, hi, missing=missing, distinct=distinct)
    if name in overrides.integer or integer_dtype or integral:
        if not integral:
            i = first(numeric != np.round(numeric))
            value, row = float(numeric[i]), int(rows[i])
            raise DataError(f"column '{name}' is declared integer but holds {value!r} in row "
                            f"{row}", source=source, column=name, row=row, value=value)
        if len(numeric) >= 20 and n_unique == len(numeric) and \
                hi - lo + 1 == len(numeric):
            raise DataError(f"column '{name}' counts 1 by 1 through the rows (an id?), so it "
                            f"has no useful density", source=source, column=name,
                            advice=_exclude(name))
        return ColumnSpec(name, "integer", dtype, lo, hi, missing=missing)
    if lo == hi:
        raise DataError(f"column '{name}' is constant ({lo:g} in every row), so it has no "
                        f"density", source=source, column=name, value=lo,
                        advice=_exclude(name))
    spec = ColumnSpec(name, "continuous", dtype, lo, hi, missing=missing, distinct=distinct)
    if name in overrides.continuous | overrides.as_given:
        return spec
    grid = find_grid(points, len(numeric), float32=spec.float32)
    if grid is not None:  # modelled as the index of its point: a score is a log-probability
        rounded = grid.precision is not None
        return replace(spec, kind="integer", distinct=None, inferred=True, step=grid.step,
                       offset=grid.offset,
                       decimals=grid.precision.decimals if rounded else None,
                       digits=grid.precision.digits if rounded else None)
    return spec if name in overrides.unbounded else _support(spec)


def _support(spec: ColumnSpec) -> ColumnSpec:
    """A continuous column whose training values all lie in [0, 1] is bounded to [0, 1], one
    whose values are all positive is positive: samples then stay inside, and a value outside
    is refused when scored. The encoder chooses how far into the log or logit scale to go
    (:class:`~flowcli.tabular.encoders.NumericEncoder`)."""
    assert spec.min is not None and spec.max is not None
    if spec.min >= 0.0 and spec.max <= 1.0:
        return replace(spec, kind="bounded", low=0.0, high=1.0, inferred=True)
    if spec.min > 0.0:
        return replace(spec, kind="positive", inferred=True)
    return spec


def _labels(values: pd.Series) -> list[Any]:
    uniques = pd.unique(values)
    try:
        labels = sorted(uniques.tolist())
    except TypeError:  # mixed types: keep them in order of appearance
        labels = list(uniques.tolist())
    return labels


def _is_categorical(values: pd.Series, rows: np.ndarray, name: str, source: str) -> bool:
    """Text columns are categories, unless they are numbers with typos, dates or free text."""
    numeric = pd.to_numeric(values, errors="coerce")
    parsed = numeric.notna().to_numpy()
    if parsed.all():  # numbers kept as text on purpose (zip codes, codes with leading zeros)
        if values.nunique() > MAX_CATEGORIES:
            example = values.iloc[0]
            raise DataError(f"column '{name}' holds numbers stored as text (such as "
                            f"{example!r})", source=source, column=name, value=example,
                            advice=_exclude(name, "convert it to numbers, or leave it out with"))
        return True
    if parsed.mean() >= 0.5:  # numbers with a few typos, not labels
        i = first(~parsed)
        value, row = values.iloc[i], int(rows[i])
        raise DataError(f"column '{name}' is not numeric: {value!r} in row {row}",
                        source=source, column=name, row=row, value=value,
                        advice=Advice("categorical", name, verb="fix the value, or declare it"))
    distinct = values.nunique()
    if distinct > MAX_CATEGORIES:
        sample = values.astype(str).head(200)
        if pd.to_datetime(sample, errors="coerce", format="mixed").notna().mean() > 0.9:
            raise _dates(name, source)
        raise DataError(f"column '{name}' has {distinct:,} distinct text values (free text or "
                        f"an id?), too many to model as categories", source=source,
                        column=name, advice=_exclude(name))
    return True


def _dates(name: str, source: str) -> DataError:
    return DataError(f"column '{name}' holds dates not in ISO 8601", source=source,
                     column=name, advice=Advice("datetime_format", f"{name}=FORMAT",
                                                verb="give their format with",
                                                purpose="(strftime codes such as %d/%m/%Y)"))


def _numeric(values: pd.Series, rows: np.ndarray, name: str, source: str) -> np.ndarray:
    out = values.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        i = first(bad)
        row = int(rows[i])
        raise DataError(f"column '{name}' holds {out[i]} in row {row}", source=source,
                        column=name, row=row, value=float(out[i]))
    return out

"""Datetime columns: reading instants from any of their forms, and the parts a model sees.

An instant is split, exactly and invertibly, into parts on the column's local clock (its
zone at one fixed UTC offset, so that the split stays a bijection through daylight-saving
changes): the **week** (an integer: weeks since Monday 1969-12-29), the **weekday** (a label,
Monday 0 to Sunday 6) and, for times, the **hour** (a label, 0 to 23), then the **minute** (a
label) at minute resolution, or the **second** into the hour (a number in [0, 3600), at the
centre of the instant's slot) at a second or finer. The model learns the parts jointly with
the other columns: a trend lives in the week, a weekly rhythm in the weekday, a daily one in
the hour, whose labels get exact probabilities, and the other columns are modelled given
them. The parts' log-probabilities add up to that of the instant: of its slot (its day,
hour or minute) at those resolutions, and its log-density per second at a second or finer.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import Advice, DataError
from .schema import ColumnSpec, first

__all__ = ["PARTS", "is_datetime", "join", "looks_like_dates", "parse", "part_specs",
           "spec_of", "split", "utc_micros"]

DAY = 86_400  # seconds
MICRO = 1_000_000
DAY_US = DAY * MICRO
# 1970-01-01 was a Thursday: (days + 3) counts days from Monday 1969-12-29
MONDAY_SHIFT = 3
# the resolutions a column can have, in seconds, coarsest first
RESOLUTIONS = (86_400, 3_600, 60, 1, 0.001, 0.000_001)
PARTS = ("week", "weekday", "hour", "minute", "second")
ISO = re.compile(r"^\s*[+-]?\d{4,}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?)?"
                 r"\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?\s*$")
ZONE = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)\s*$")
ISO_SHARE = 0.9  # text is taken for dates when this share of its first values is ISO 8601


def is_datetime(series: pd.Series) -> bool:
    """A datetime dtype, or Python dates and datetimes (Parquet's date type reads so)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    if series.dtype != object:
        return False
    values = series.dropna().head(200)
    return len(values) > 0 and bool(values.map(
        lambda v: isinstance(v, (_dt.date, pd.Timestamp))).all())


def looks_like_dates(values: pd.Series) -> bool:
    """Text whose first values are mostly ISO 8601 dates or times."""
    sample = values.dropna().head(200).astype(str)
    return len(sample) > 0 and float(sample.str.match(ISO).mean()) >= ISO_SHARE


def _is_dates_only(series: pd.Series) -> bool:
    return series.dtype == object and bool(series.dropna().head(200).map(
        lambda v: isinstance(v, _dt.date) and not isinstance(v, _dt.datetime)).all())


def parse(series: pd.Series, name: str, source: str, row_offset: int = 0,
          fmt: str | None = None) -> pd.Series:
    """The column as datetimes at microsecond precision, or one error naming the column,
    the value and the row: text that is not a date, a year out of range, mixed zones."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _in_range(series.dt.as_unit("us"), series, name, source, row_offset)
    try:
        parsed = pd.to_datetime(series, format=fmt or "ISO8601", errors="coerce")
    except (ValueError, TypeError) as error:
        if "zone" in str(error).lower() or "offset" in str(error).lower():
            raise _mixed_zones(series, name, source, row_offset) from None
        raise DataError(f"column '{name}' holds values that are not all dates or times",
                        source=source, column=name) from None
    if not pd.api.types.is_datetime64_any_dtype(parsed.dtype):
        raise _mixed_zones(series, name, source, row_offset)
    bad = (parsed.isna() & series.notna()).to_numpy()
    if bad.any():
        raise _unparsed(series, first(bad), name, source, row_offset, fmt)
    return _in_range(parsed.dt.as_unit("us"), series, name, source, row_offset)


def _in_range(parsed: pd.Series, series: pd.Series, name: str, source: str,
              row_offset: int) -> pd.Series:
    """``parsed``, refused where a year falls outside 1 to 9999 (ISO 8601's own range)."""
    years = parsed.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isnan(years) & ((years < 1) | (years > 9999))
    if bad.any():
        i = first(bad)
        value, row = series.iloc[i], row_offset + i + 1
        raise DataError(f"column '{name}' holds {str(value)!r} in row {row}, a year out of "
                        "range (1 to 9999)", source=source, column=name, row=row, value=value)
    return parsed


def _unparsed(series: pd.Series, i: int, name: str, source: str, row_offset: int,
              fmt: str | None) -> DataError:
    value, row = series.iloc[i], row_offset + i + 1
    year = re.match(r"^\s*([+-]?\d+)-", str(value))
    if year and ISO.match(str(value)) and not 1 <= int(year.group(1)) <= 9999:
        problem = "a year out of range (1 to 9999)"
    else:
        problem = f"not a date in the format {fmt}" if fmt else "not an ISO 8601 date or time"
    return DataError(f"column '{name}' holds {value!r} in row {row}, {problem}", source=source,
                     column=name, row=row, value=value,
                     advice=Advice("datetime_format", f"{name}=FORMAT",
                                   verb="fix the value, or give its format with",
                                   purpose="(strftime codes such as %d/%m/%Y)")
                     if not fmt else None)


def _mixed_zones(series: pd.Series, name: str, source: str, row_offset: int) -> DataError:
    """One line naming two rows whose time zones differ."""
    text = series.astype(str).where(series.notna())
    zones = text.map(lambda v: (m.group(0).strip() if (m := ZONE.search(v)) else "none")
                     if isinstance(v, str) else None)
    seen = zones.dropna()
    first_zone = seen.iloc[0] if len(seen) else "none"
    other = (zones.notna() & (zones != first_zone)).to_numpy()
    if not other.any():
        return DataError(f"column '{name}' mixes time zones", source=source, column=name)
    i, j = int(np.flatnonzero(zones.notna().to_numpy())[0]), first(other)
    return DataError(f"column '{name}' mixes time zones: {series.iloc[i]!r} in row "
                     f"{row_offset + i + 1} and {series.iloc[j]!r} in row {row_offset + j + 1} "
                     "(convert them to one zone, UTC say)", source=source, column=name,
                     row=row_offset + j + 1, value=series.iloc[j])


def utc_micros(parsed: pd.Series) -> np.ndarray:
    """Microseconds since 1970 in UTC (a naive column's clock is taken as UTC); NaT as the
    smallest int64."""
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None) if parsed.dt.tz else parsed
    return naive.dt.as_unit("us").to_numpy().view(np.int64)


def spec_of(series: pd.Series, name: str, source: str, missing: float,
            fmt: str | None = None) -> ColumnSpec:
    """The spec of a datetime column from its training values: zone, local clock, range
    and resolution (the coarsest unit that divides every instant on the local clock)."""
    parsed = parse(series, name, source, fmt=fmt)
    present = parsed.notna().to_numpy()
    zone = str(parsed.dt.tz) if parsed.dt.tz is not None else None
    micros = utc_micros(parsed)[present]
    shift = 0
    if zone is not None:  # the commonest offset of the zone in training, in seconds
        wall = parsed.dt.tz_localize(None).dt.as_unit("us").to_numpy().view(np.int64)
        offsets, counts = np.unique((wall[present] - micros) // MICRO, return_counts=True)
        shift = int(offsets[np.argmax(counts)])
    local = micros + shift * MICRO
    resolution = next(r for r in RESOLUTIONS if not np.any(local % round(r * MICRO)))
    low, high = float(micros.min()) / MICRO, float(micros.max()) / MICRO
    if low == high:
        raise DataError(f"column '{name}' is constant ({parsed[present].iloc[0]} in every "
                        f"row), so it has no density", source=source, column=name,
                        advice=Advice("exclude", name, verb="leave it out with"))
    dtype = "date" if _is_dates_only(series) else str(series.dtype)
    text = not (dtype == "date" or pd.api.types.is_datetime64_any_dtype(series.dtype))
    return ColumnSpec(name, "datetime", dtype, low, high, missing=missing, zone=zone,
                      resolution=resolution, shift=float(shift),
                      format=(fmt or "ISO8601") if text else None)


def part_specs(spec: ColumnSpec) -> list[ColumnSpec]:
    """The columns the model sees for datetime column ``spec``, named ``NAME.week`` and so
    on: the week and weekday; for times, the hour; at minute resolution the minute, finer
    the seconds into the hour."""
    assert spec.min is not None and spec.max is not None and spec.resolution is not None
    weeks = [_week_of(np.array([t * MICRO]), spec)[0] for t in (spec.min, spec.max)]
    base = {"missing": spec.missing, "given": spec.given}

    def labels(n: int) -> list[Any]:
        return list(range(n)) + ([None] if spec.missing else [])

    name, r = spec.name, spec.resolution
    parts = [ColumnSpec(f"{name}.week", "integer", "float64", float(weeks[0]),
                        float(weeks[1]), **base),
             ColumnSpec(f"{name}.weekday", "categorical", "int64", categories=labels(7),
                        **base)]
    if r < DAY:
        parts.append(ColumnSpec(f"{name}.hour", "categorical", "int64", categories=labels(24),
                                **base))
    if r == 60:
        parts.append(ColumnSpec(f"{name}.minute", "categorical", "int64",
                                categories=labels(60), **base))
    elif r < 60:  # seconds into the hour, at the centre of the instant's slot
        parts.append(ColumnSpec(f"{name}.second", "bounded", "float64", 0.0, 3600.0,
                                low=0.0, high=3600.0, **base))
    return parts


def _local(micros: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    return micros + int(spec.shift or 0) * MICRO


def _week_of(micros: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    days = np.floor_divide(_local(micros, spec).astype(np.int64), DAY_US)
    return np.floor_divide(days + MONDAY_SHIFT, 7)


def _values(local: np.ndarray, resolution: float) -> dict[str, np.ndarray]:
    """Every part of each local instant (microseconds on the local clock)."""
    days = np.floor_divide(local, DAY_US)
    into_day = local - days * DAY_US
    hours = np.floor_divide(into_day, 3600 * MICRO)
    into_hour = (into_day - hours * 3600 * MICRO) / MICRO
    return {"week": np.floor_divide(days + MONDAY_SHIFT, 7), "weekday": np.mod(
        days + MONDAY_SHIFT, 7), "hour": hours, "minute": np.floor_divide(into_hour, 60),
        "second": into_hour + resolution / 2}


def split(spec: ColumnSpec, series: pd.Series, source: str, row_offset: int
          ) -> dict[str, pd.Series]:
    """The parts of each value of datetime column ``spec``, NaN where the value is missing."""
    assert spec.resolution is not None
    parsed = parse(series, spec.name, source, row_offset, spec.format)
    _check_zone(parsed, spec, source, row_offset)
    present = parsed.notna().to_numpy()
    if not present.all() and not spec.missing:
        row = row_offset + first(~present) + 1
        raise DataError(f"column '{spec.name}' has a missing value in row {row}",
                        source=source, column=spec.name, row=row)
    values = _values(_local(np.where(present, utc_micros(parsed), 0), spec), spec.resolution)
    out = {}
    for part in part_specs(spec):
        value = values[part.name.rsplit(".", 1)[1]]
        if part.kind == "categorical":
            codes = pd.Series(value, index=series.index).astype(object)
            out[part.name] = codes.where(present, None)
        else:
            out[part.name] = pd.Series(np.where(present, value, np.nan), index=series.index,
                                       dtype=np.float64)
    return out


def _check_zone(parsed: pd.Series, spec: ColumnSpec, source: str, row_offset: int) -> None:
    """Refuse times with a zone for a column trained without one, and the other way round."""
    has_zone = parsed.dt.tz is not None
    if has_zone == (spec.zone is not None) or not parsed.notna().any():
        return  # (a chunk of gaps alone says nothing of zones)
    said = f"the model's are in {spec.zone}" if spec.zone else "the model's have none"
    given = "with a time zone" if has_zone else "without a time zone"
    raise DataError(f"column '{spec.name}' holds times {given}; {said}", source=source,
                    column=spec.name)


def join(spec: ColumnSpec, parts: dict[str, pd.Series]) -> pd.Series:
    """Datetime column ``spec`` from its decoded parts, in the training dtype and zone,
    inside the training range and at the training resolution."""
    assert spec.min is not None and spec.max is not None and spec.resolution is not None
    found = {p.name.rsplit(".", 1)[1]: pd.to_numeric(parts[p.name]).to_numpy(np.float64)
             for p in part_specs(spec)}
    missing = np.any([np.isnan(v) for v in found.values()], axis=0)
    value = {k: np.nan_to_num(v) for k, v in found.items()}
    days = (7 * value["week"] + value["weekday"] - MONDAY_SHIFT).astype(np.int64)
    into_hour = value.get("minute", 0.0) * 60 + value.get("second", 0.0)
    step = max(round(spec.resolution * MICRO), 1)  # the slot's start, on the resolution
    slot = np.floor(np.asarray(into_hour) * MICRO / step).astype(np.int64) * step
    hours = np.asarray(value.get("hour", 0.0)).astype(np.int64)
    micros = days * DAY_US + hours * 3600 * MICRO + slot
    micros = np.clip(micros - int(spec.shift or 0) * MICRO, round(spec.min * MICRO),
                     round(spec.max * MICRO))
    stamps = pd.Series(pd.to_datetime(micros, unit="us", utc=spec.zone is not None),
                       name=spec.name)
    return _as_trained(stamps.mask(missing), spec)


def _as_trained(stamps: pd.Series, spec: ColumnSpec) -> pd.Series:
    if spec.zone is not None:
        stamps = stamps.dt.tz_convert(spec.zone)
    if spec.dtype == "date":
        return stamps.dt.date.astype(object).where(stamps.notna(), None)
    if spec.dtype.startswith("datetime64"):
        return stamps.astype(spec.dtype)
    if spec.format not in (None, "ISO8601"):  # text in a format of its own: the same text
        return stamps.dt.strftime(spec.format)
    return stamps


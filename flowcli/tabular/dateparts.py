"""The parts a model sees of a datetime column, and the column from its parts.

An instant is split, exactly and invertibly, into parts on the column's local clock: the
**week** (an integer: weeks since Monday 1969-12-29), the **weekday** (a label, Monday 0 to
Sunday 6) and, for times, the **hour** (a label, 0 to 23), then the **minute** (a label) at
minute resolution, or the **second** into the hour (a number in [0, 3600), at the centre of
the instant's slot) at a second or finer. The model learns the parts jointly with the other
columns: a trend lives in the week, a weekly rhythm in the weekday, a daily one in the hour,
whose labels get exact probabilities, and the other columns are modelled given them. The
parts' log-probabilities add up to that of the instant: of its slot (its day, hour or
minute) at those resolutions, and its log-density per second at a second or finer.

The local clock of times is the column's zone at one fixed UTC offset (its commonest in
training), so that the split stays a bijection through daylight-saving changes; dates (every
value at local midnight) are split on the zone's own calendar, where each date is one
instant.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import Advice, DataError
from .datetimes import is_dates_only, parse, utc_micros
from .schema import ColumnSpec, first

__all__ = ["DAY", "as_trained", "join", "part_specs", "seconds", "spec_of", "split"]

DAY = 86_400  # seconds
MICRO = 1_000_000
DAY_US = DAY * MICRO
# 1970-01-01 was a Thursday: (days + 3) counts days from Monday 1969-12-29
MONDAY_SHIFT = 3
# the resolutions a column can have, in seconds, coarsest first
RESOLUTIONS = (86_400, 3_600, 60, 1, 0.001, 0.000_001)
# the instants ISO 8601 can write, years 1 to 9999, in microseconds since 1970
FIRST_US, LAST_US = -62_135_596_800 * MICRO, 253_402_300_799 * MICRO + MICRO - 1


def spec_of(series: pd.Series, name: str, source: str, missing: float,
            fmt: str | None = None) -> ColumnSpec:
    """The spec of a datetime column from its training values: zone, range and resolution
    (the coarsest unit that divides every instant on the local clock)."""
    parsed = parse(series, name, source, fmt=fmt)
    present = parsed.notna().to_numpy()
    zone = str(parsed.dt.tz) if parsed.dt.tz is not None else None
    micros = utc_micros(parsed)[present]
    low, high = float(micros.min()) / MICRO, float(micros.max()) / MICRO
    if low == high:
        raise DataError(f"column '{name}' is constant ({parsed[present].iloc[0]} in every "
                        f"row), so it has no density", source=source, column=name,
                        advice=Advice("exclude", name, verb="leave it out with"))
    shift, resolution = 0, float(DAY)
    wall = _wall(parsed)[present]
    if np.any(wall % DAY_US):  # times, not dates
        if zone is not None:  # the commonest offset of the zone in training, in seconds
            offsets, counts = np.unique((wall - micros) // MICRO, return_counts=True)
            shift = int(offsets[np.argmax(counts)])
        local = micros + shift * MICRO
        resolution = next(r for r in RESOLUTIONS if not np.any(local % round(r * MICRO)))
    dtype = "date" if is_dates_only(series) else str(series.dtype)
    text = not (dtype == "date" or pd.api.types.is_datetime64_any_dtype(series.dtype))
    return ColumnSpec(name, "datetime", dtype, low, high, missing=missing, zone=zone,
                      resolution=resolution, shift=float(shift),
                      format=(fmt or "ISO8601") if text else None)


def _wall(parsed: pd.Series) -> np.ndarray:
    """Microseconds of each value's wall clock (its zone's local time) since 1970."""
    wall = parsed.dt.tz_localize(None) if parsed.dt.tz is not None else parsed
    return wall.dt.as_unit("us").to_numpy().view(np.int64)


def part_specs(spec: ColumnSpec) -> list[ColumnSpec]:
    """The columns the model sees for datetime column ``spec``, named ``NAME.week`` and so
    on: the week and weekday; for times, the hour; at minute resolution the minute, finer
    the seconds into the hour."""
    assert spec.min is not None and spec.max is not None and spec.resolution is not None
    weeks = [_week_of(t, spec) for t in (spec.min, spec.max)]
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


def _dates(spec: ColumnSpec) -> bool:
    return (spec.resolution or 0) >= DAY


def _local_of(parsed: pd.Series, spec: ColumnSpec) -> np.ndarray:
    """The local clock in microseconds: for dates the zone's own calendar, for times the
    zone at the fixed offset ``spec.shift``."""
    if _dates(spec):
        return _wall(parsed)
    return utc_micros(parsed) + int(spec.shift or 0) * MICRO


def _week_of(seconds: float, spec: ColumnSpec) -> int:
    """The week of the instant ``seconds`` after 1970 UTC, on the local clock."""
    stamp = pd.Series(pd.to_datetime([round(seconds * MICRO)], unit="us", utc=True))
    local = _local_of(stamp.dt.tz_convert(spec.zone) if spec.zone else
                      stamp.dt.tz_localize(None), spec)
    return int(np.floor_divide(np.floor_divide(local[0], DAY_US) + MONDAY_SHIFT, 7))


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
    parsed = _read(series, spec, source, row_offset)
    present = parsed.notna().to_numpy()
    if not present.all() and not spec.missing:
        row = row_offset + first(~present) + 1
        raise DataError(f"column '{spec.name}' has a missing value in row {row}",
                        source=source, column=spec.name, row=row)
    values = _values(np.where(present, _local_of(parsed, spec), 0), spec.resolution)
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


def _read(values: pd.Series, spec: ColumnSpec, source: str, row_offset: int = 0
          ) -> pd.Series:
    """Values given to the model of datetime column ``spec``, as datetimes: read as its
    training values were, with a zone where it has one."""
    parsed = parse(values, spec.name, source, row_offset, spec.format, spec.zone,
                   advise=False)
    _check_zone(parsed, spec, source, row_offset)
    return parsed


def _check_zone(parsed: pd.Series, spec: ColumnSpec, source: str, row_offset: int) -> None:
    """Refuse times with a zone for a column trained without one, and the other way round."""
    has_zone = parsed.dt.tz is not None
    present = parsed.notna().to_numpy()
    if has_zone == (spec.zone is not None) or not present.any():
        return  # (a chunk of gaps alone says nothing of zones)
    said = f"the model's are in {spec.zone}" if spec.zone else "the model's have none"
    given = "with a time zone" if has_zone else "without a time zone"
    row = row_offset + first(present) + 1
    raise DataError(f"column '{spec.name}' holds times {given} (row {row} first); {said}",
                    source=source, column=spec.name, row=row)


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
    local = days * DAY_US + hours * 3600 * MICRO + slot
    stamps = _from_local(local, spec)
    ends = pd.Series(pd.to_datetime([math.ceil(spec.min * MICRO), math.floor(spec.max * MICRO)],
                                    unit="us", utc=spec.zone is not None))
    if spec.zone is not None:
        ends = ends.dt.tz_convert(spec.zone)
    stamps = stamps.clip(ends[0], ends[1])
    return _as_trained(stamps.mask(missing).rename(spec.name), spec)


def _from_local(local: np.ndarray, spec: ColumnSpec) -> pd.Series:
    """Instants from local-clock microseconds (the inverse of :func:`_local_of`)."""
    if _dates(spec):  # a date is its midnight on the zone's calendar
        wall = pd.Series(pd.to_datetime(np.clip(local, FIRST_US, LAST_US), unit="us"))
        if spec.zone is None:
            return wall
        return wall.dt.tz_localize(spec.zone, ambiguous=True, nonexistent="shift_forward")
    utc = np.clip(local - int(spec.shift or 0) * MICRO, FIRST_US, LAST_US)
    stamps = pd.Series(pd.to_datetime(utc, unit="us", utc=spec.zone is not None))
    return stamps.dt.tz_convert(spec.zone) if spec.zone is not None else stamps


def seconds(values: pd.Series, spec: ColumnSpec, source: str) -> np.ndarray:
    """Seconds since 1970 UTC of each value of datetime column ``spec``; NaN for gaps."""
    parsed = _read(values, spec, source)
    return np.where(parsed.isna(), np.nan, utc_micros(parsed) / MICRO)


def as_trained(values: pd.Series, spec: ColumnSpec, source: str) -> pd.Series:
    """Given datetimes (a condition, as text or datetimes) in the training dtype and zone."""
    return _as_trained(_read(values, spec, source), spec)


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


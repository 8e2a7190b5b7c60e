"""Reading datetime columns: from datetime dtypes, Python dates, and text in ISO 8601 or a
format of the user's, with one clear error for what cannot be read (the value and its row,
mixed zones, years outside 1 to 9999). :mod:`.dateparts` makes the model's parts of them."""

from __future__ import annotations

import datetime as _dt
import re

import numpy as np
import pandas as pd

from ..errors import Advice, DataError
from .schema import first

__all__ = ["is_datetime", "is_dates_only", "looks_like_dates", "parse", "utc_micros"]

ISO = re.compile(r"^\s*[+-]?\d{4,}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?)?"
                 r"\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?\s*$")
ZONE = re.compile(r"[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)\s*$")
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


def is_dates_only(series: pd.Series) -> bool:
    """Python dates without times (Parquet's date type reads so)."""
    return series.dtype == object and bool(series.dropna().head(200).map(
        lambda v: isinstance(v, _dt.date) and not isinstance(v, _dt.datetime)).all())


def looks_like_dates(values: pd.Series) -> bool:
    """Text whose first values are mostly ISO 8601 dates or times."""
    sample = values.dropna().head(200).astype(str)
    return len(sample) > 0 and float(sample.str.match(ISO).mean()) >= ISO_SHARE


def parse(series: pd.Series, name: str, source: str, row_offset: int = 0,
          fmt: str | None = None, zone: str | None = None, advise: bool = True) -> pd.Series:
    """The column as datetimes at microsecond precision, or one error naming the column,
    the value and the row: text that is not a date, a year out of range, mixed zones. Text
    read for a model in ``zone`` may carry any UTC offsets (a daylight-saving zone's two),
    each instant then taken into the zone; ``advise`` adds how to give a format."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _in_range(series.dt.as_unit("us"), series, name, source, row_offset)
    if is_datetime(series):  # Python dates and datetimes
        try:
            parsed = pd.to_datetime(series)
        except (ValueError, TypeError):  # naive beside zoned, or several zones
            raise _mixed_zones(series, name, source, row_offset) from None
    else:
        parsed = _parsed_text(series, name, source, row_offset, fmt, zone, advise)
    if zone is not None and parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(zone)
    return _in_range(parsed.dt.as_unit("us"), series, name, source, row_offset)


def _parsed_text(series: pd.Series, name: str, source: str, row_offset: int,
                 fmt: str | None, zone: str | None, advise: bool) -> pd.Series:
    """Text (or other values) read as datetimes: in UTC for a model with a zone."""
    is_text = pd.api.types.infer_dtype(series, skipna=True) == "string"
    text = series.str.strip() if is_text else series
    if zone is not None and is_text:
        _zoned(text, name, source, row_offset)
    try:
        parsed = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce",
                                utc=zone is not None)
    except (ValueError, TypeError) as error:
        if "zone" in str(error).lower() or "offset" in str(error).lower():
            raise _mixed_zones(series, name, source, row_offset) from None
        raise DataError(f"column '{name}' cannot be read with the format {fmt or 'ISO8601'!r} "
                        f"({error})", source=source, column=name) from None
    if not pd.api.types.is_datetime64_any_dtype(parsed.dtype):
        raise _mixed_zones(series, name, source, row_offset)
    bad = (parsed.isna() & series.notna()).to_numpy()
    if bad.any():
        raise _unparsed(series, first(bad), name, source, row_offset, fmt, advise)
    return parsed


def _zoned(text: pd.Series, name: str, source: str, row_offset: int) -> None:
    """Refuse text without a UTC offset where the model's times have a zone."""
    zoned = text.map(lambda v: isinstance(v, str) and ZONE.search(v) is not None)
    zoned = zoned.astype(bool)
    bare = (text.notna() & ~zoned).to_numpy()
    if bare.any():
        i = first(bare)
        row = row_offset + i + 1
        raise DataError(f"column '{name}' holds {text.iloc[i]!r} in row {row}, a time without "
                        "a time zone; the model's have one", source=source, column=name,
                        row=row, value=text.iloc[i])


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
              fmt: str | None, advise: bool) -> DataError:
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
                     if advise and not fmt else None)


def _mixed_zones(series: pd.Series, name: str, source: str, row_offset: int) -> DataError:
    """One line naming two rows whose time zones differ."""
    text = series.astype(str).where(series.notna())
    zones = text.map(lambda v: (m.group(1) if (m := ZONE.search(v)) else "none")
                     if isinstance(v, str) else None)
    seen = zones.dropna()
    first_zone = seen.iloc[0] if len(seen) else "none"
    other = (zones.notna() & (zones != first_zone)).to_numpy()
    if not other.any():
        return DataError(f"column '{name}' mixes time zones", source=source, column=name)
    i, j = int(np.flatnonzero(zones.notna().to_numpy())[0]), first(other)
    return DataError(f"column '{name}' mixes time zones: {str(series.iloc[i])!r} in row "
                     f"{row_offset + i + 1} and {str(series.iloc[j])!r} in row "
                     f"{row_offset + j + 1} "
                     "(convert them to one zone, UTC say)", source=source, column=name,
                     row=row_offset + j + 1, value=series.iloc[j])


def utc_micros(parsed: pd.Series) -> np.ndarray:
    """Microseconds since 1970 in UTC (a naive column's clock is taken as UTC); NaT as the
    smallest int64."""
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None) if parsed.dt.tz else parsed
    return naive.dt.as_unit("us").to_numpy().view(np.int64)

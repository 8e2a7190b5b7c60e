"""Read and write CSV and Parquet tables: whole or in record batches, files or ``-``.

The format comes from the extension (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``) or an explicit
``fmt``; ``-`` means stdin or stdout and defaults to CSV. Outputs to a file are written to a
temporary file in the same folder and renamed into place only when complete, so a failed run
never leaves a truncated file that looks complete.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ._files import default_file_mode
from .errors import DataError, OutputError

__all__ = ["FORMATS", "TableWriter", "detect_format", "display_name", "iter_tables",
           "read_table", "write_table"]

FORMATS = ("csv", "parquet")
_EXTENSIONS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}


def display_name(path: str | os.PathLike[str]) -> str:
    """How messages name a path: ``stdin``/``stdout`` for ``-``."""
    return "stdin" if str(path) == "-" else str(path)


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """``csv`` or ``parquet``, from ``fmt`` or the extension; ``-`` defaults to CSV."""
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    name = str(path).lower()
    if name == "-":
        return "csv"
    for ext, found in _EXTENSIONS.items():
        if name.endswith(ext):
            return found
    raise DataError(
        f"{path}: cannot tell the format from the extension; use .csv, .csv.gz, .parquet or "
        f".pq, or pass --format"
    )


def _check_input(path: str | os.PathLike[str]) -> None:
    if str(path) == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{path}: is a folder, not a table")
    if not p.exists():
        raise DataError(f"{path}: no such file")
    if not os.access(p, os.R_OK):
        raise DataError(f"{path}: permission denied")


@contextlib.contextmanager
def _reading(path: str | os.PathLike[str], fmt: str) -> Iterator[None]:
    """Turn the readers' many exceptions into one-line DataErrors naming the file."""
    name = display_name(path)
    try:
        yield
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: the file is empty") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise DataError(f"{name}: not a valid CSV file ({detail})") from None
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a text CSV file (it is not UTF-8)") from None
    except (pa.ArrowInvalid, pa.ArrowException, OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, PermissionError):
            raise DataError(f"{name}: permission denied") from None
        what = "Parquet" if fmt == "parquet" else "CSV"
        raise DataError(f"{name}: not a valid {what} file ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _stdin_bytes() -> IO[bytes]:
    return sys.stdin.buffer


def _check_delimiter(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """A one-column CSV whose header holds ';', tab or '|' was written with another delimiter."""
    if len(df.columns) != 1:
        return
    header = str(df.columns[0])
    for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        if sep in header:
            raise DataError(
                f"{display_name(path)}: the header is one column, {header[:40]!r}: the file looks "
                f"{name}-separated, and flowcli reads comma-separated CSV"
            )


def iter_tables(
    path: str | os.PathLike[str], fmt: str | None = None, batch_size: int = 65536
) -> Iterator[pd.DataFrame]:
    """Yield the table at ``path`` in chunks of at most ``batch_size`` rows.

    Parquet is read by record batches; CSV by chunks. An empty input yields one empty frame
    that still carries the header's columns, when there is a header.
    """
    _check_input(path)
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        yield from _iter_parquet(path, batch_size)
    else:
        yield from _iter_csv(path, batch_size)


def _iter_csv(path: str | os.PathLike[str], batch_size: int) -> Iterator[pd.DataFrame]:
    source: Any = _stdin_bytes() if str(path) == "-" else path
    with _reading(path, "csv"):
        reader = pd.read_csv(source, chunksize=batch_size, compression="infer"
                             if str(path) != "-" else None)
        with reader:
            for i, chunk in enumerate(reader):  # a header alone still yields one empty chunk
                if i == 0:
                    _check_delimiter(chunk, path)
                yield chunk


def _iter_parquet(path: str | os.PathLike[str], batch_size: int) -> Iterator[pd.DataFrame]:
    with _reading(path, "parquet"):
        source: Any = io.BytesIO(_stdin_bytes().read()) if str(path) == "-" else path
        pf = pq.ParquetFile(source)
        empty = True
        for batch in pf.iter_batches(batch_size=batch_size):
            empty = False
            yield batch.to_pandas()
        if empty:
            yield pf.schema_arrow.empty_table().to_pandas()


def read_table(path: str | os.PathLike[str], fmt: str | None = None) -> pd.DataFrame:
    """Read a whole table into memory."""
    _check_input(path)
    fmt = detect_format(path, fmt)
    with _reading(path, fmt):
        if fmt == "parquet":
            source: Any = io.BytesIO(_stdin_bytes().read()) if str(path) == "-" else path
            return pq.read_table(source).to_pandas()
        df = pd.read_csv(_stdin_bytes() if str(path) == "-" else path)
        _check_delimiter(df, path)
        return df


class TableWriter:
    """Write a table chunk by chunk; a file appears only when :meth:`close` succeeds.

    Use as a context manager: on an exception the temporary file is removed and nothing is left.
    To stdout (``-``), CSV chunks are flushed as they are written.
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None) -> None:
        self.path = str(path)
        if self.path != "-" and Path(self.path).is_dir():
            raise OutputError(f"{self.path}: is a folder; give a file name")
        self.fmt = detect_format(path, fmt)
        self.rows = 0
        self._tmp: str | None = None
        self._handle: IO[Any] | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._header = True
        if self.path == "-":
            self._handle = sys.stdout.buffer if self.fmt == "parquet" else sys.stdout
            return
        target = Path(self.path)
        folder = target.parent
        try:
            fd, self._tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
        except FileNotFoundError:
            raise OutputError(f"{self.path}: cannot write: no folder {str(folder)!r}") from None
        except PermissionError:
            raise OutputError(f"{self.path}: cannot write: permission denied") from None
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        default_file_mode(self._tmp)
        raw = os.fdopen(fd, "wb")
        if self.fmt == "csv" and self.path.lower().endswith(".gz"):
            self._handle = io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="wb"), newline="")
            self._raw = raw
        elif self.fmt == "csv":
            self._handle = io.TextIOWrapper(raw, newline="")
            self._raw = raw
        else:
            self._handle = raw
            self._raw = raw

    def write(self, df: pd.DataFrame) -> None:
        """Append ``df``; every chunk must have the same columns.

        Writing an empty frame still records the columns (a CSV header, a Parquet schema).
        """
        try:
            if self.fmt == "csv":
                assert self._handle is not None
                df.to_csv(self._handle, index=False, header=self._header)
                self._header = False
                self._handle.flush()
            else:
                table = pa.Table.from_pandas(df, preserve_index=False)
                if self._parquet is None:
                    self._parquet = pq.ParquetWriter(self._handle, table.schema)
                self._parquet.write_table(table)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            raise OutputError(f"{display_name(self.path)}: cannot write: "
                              f"{exc.strerror or exc}") from None
        self.rows += len(df)

    def close(self) -> None:
        """Finish the file and move it into place."""
        try:
            if self._parquet is not None:
                self._parquet.close()
            if self._tmp is None:
                if self._handle is not None:
                    self._handle.flush()
                return
            assert self._handle is not None
            self._handle.flush()
            if self._handle is not self._raw:
                self._handle.close()  # closes the gzip stream and the file below it
            else:
                self._raw.flush()
                os.fsync(self._raw.fileno())
                self._raw.close()
            os.replace(self._tmp, self.path)
            self._tmp = None
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            self.abort()
            raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}") from None

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._raw.close()
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write a whole table, atomically when ``path`` is a file."""
    with TableWriter(path, fmt) as writer:
        writer.write(df)

"""Read and write CSV and Parquet tables: whole or in record batches, files or ``-``, and
(reading) datasets of Parquet files (:mod:`flowcli.partitions`).

The format comes from the extension (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``) or an explicit
``fmt``; ``-`` means stdin or stdout and defaults to CSV. Outputs to a file go through
:class:`~flowcli.files.AtomicFile`: they appear only when complete, so a failed run never leaves
a truncated file that looks complete.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .config import CHUNK_ROWS, FORMATS
from .errors import Advice, DataError, OutputError
from .files import AtomicFile, Committed, check_target
from .partitions import (
    dataset_column_types,
    dataset_parts,
    is_dataset,
    iter_part,
    read_dataset,
)

__all__ = ["FORMATS", "TableWriter", "detect_format", "display_name", "is_parquet",
           "iter_tables", "parquet_columns", "read_table", "write_table"]

_EXTENSIONS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}


def display_name(path: str | os.PathLike[str]) -> str:
    """How messages name a path: ``stdin``/``stdout`` for ``-``."""
    return "stdin" if str(path) == "-" else str(path)


def detect_format(path: str | os.PathLike[str], fmt: str | None = None,
                  option: str = "format") -> str:
    """``csv`` or ``parquet``, from ``fmt`` or the extension; ``-`` defaults to CSV.
    ``option`` is the field that sets ``fmt`` (messages name it)."""
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}",
                            value=fmt)
        return fmt
    name = str(path).lower()
    if name == "-":
        return "csv"
    for ext, found in _EXTENSIONS.items():
        if name.endswith(ext):
            return found
    raise DataError("cannot tell the format from the extension", source=str(path),
                    advice=Advice(option, verb="use .csv, .csv.gz, .parquet or .pq, or pass"))


def _check_input(path: str | os.PathLike[str]) -> None:
    if str(path) == "-":
        return
    p, name = Path(path), str(path)
    if not p.exists():
        raise DataError("no such file", source=name)
    if not os.access(p, os.R_OK):
        raise DataError("permission denied", source=name)


@contextlib.contextmanager
def _reading(path: str | os.PathLike[str], fmt: str) -> Iterator[None]:
    """Turn the readers' many exceptions into one-line DataErrors naming the file."""
    name = display_name(path)
    try:
        yield
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty", source=name) from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise DataError(f"not a valid CSV file ({detail})", source=name) from None
    except UnicodeDecodeError:
        raise DataError("not a text CSV file (it is not UTF-8)", source=name) from None
    except (pa.ArrowInvalid, pa.ArrowException, OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, PermissionError):
            raise DataError("permission denied", source=name) from None
        what = "Parquet" if fmt == "parquet" else "CSV"
        raise DataError(f"not a valid {what} file ({_one_line(exc)})", source=name) from None


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
                f"the header is one column, {header[:40]!r}: the file looks {name}-separated, "
                f"and flowcli reads comma-separated CSV", source=display_name(path)
            )


def iter_tables(
    path: str | os.PathLike[str], fmt: str | None = None, batch_size: int = CHUNK_ROWS,
    columns: list[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the table at ``path`` in chunks of at most ``batch_size`` rows; with
    ``columns``, only those of them it has (Parquet reads no other; CSV parses them all).

    Parquet is read by record batches; CSV by chunks. An empty input yields one empty frame
    that still carries the header's columns, when there is a header. A dataset (a folder or
    glob of Parquet files) yields its parts' chunks one part after another.
    """
    if is_dataset(path):
        _dataset_format(path, fmt)
        for part in dataset_parts(path):
            yield from iter_part(part, batch_size, columns)
        return
    _check_input(path)
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        yield from _iter_parquet(path, batch_size, columns)
    else:
        yield from _iter_csv(path, batch_size, columns)


def _dataset_format(path: str | os.PathLike[str], fmt: str | None) -> None:
    if fmt is not None and detect_format(path, fmt) != "parquet":
        raise DataError("a folder or pattern is read as a dataset of Parquet files, not "
                        f"{fmt}", source=str(path))


def _iter_csv(path: str | os.PathLike[str], batch_size: int,
              columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    source: Any = _stdin_bytes() if str(path) == "-" else path
    with _reading(path, "csv"):
        reader = pd.read_csv(source, chunksize=batch_size, compression="infer"
                             if str(path) != "-" else None)
        with reader:
            for i, chunk in enumerate(reader):  # a header alone still yields one empty chunk
                if i == 0:
                    _check_delimiter(chunk, path)
                # CSV is parsed whole; only the columns asked for come back
                yield chunk if columns is None else chunk[[c for c in chunk if c in columns]]


def _iter_parquet(path: str | os.PathLike[str], batch_size: int,
                  columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    with _reading(path, "parquet"):
        source: Any = io.BytesIO(_stdin_bytes().read()) if str(path) == "-" else path
        pf = pq.ParquetFile(source)
        names = pf.schema_arrow.names
        read = None if columns is None else [c for c in columns if c in names]
        empty = True
        for batch in pf.iter_batches(batch_size=batch_size, columns=read):
            empty = False
            yield batch.to_pandas()
        if empty:
            table = pf.schema_arrow.empty_table()
            yield (table if read is None else table.select(read)).to_pandas()


def read_table(path: str | os.PathLike[str], fmt: str | None = None,
               columns: list[str] | None = None) -> pd.DataFrame:
    """Read a whole table (or dataset) into memory; with ``columns``, only those of a
    Parquet table (all of a CSV one)."""
    if is_dataset(path):
        _dataset_format(path, fmt)
        return read_dataset(path, columns)
    _check_input(path)
    fmt = detect_format(path, fmt)
    with _reading(path, fmt):
        if fmt == "parquet":
            source: Any = io.BytesIO(_stdin_bytes().read()) if str(path) == "-" else path
            return pq.read_table(source, columns=columns).to_pandas()
        df = pd.read_csv(_stdin_bytes() if str(path) == "-" else path)
        _check_delimiter(df, path)
        return df


def is_parquet(path: str | os.PathLike[str], fmt: str | None = None) -> bool:
    """Whether ``path`` is a Parquet file or dataset that can be read by row groups (not
    stdin), from its name alone."""
    if str(path) == "-":
        return False
    return is_dataset(path) or detect_format(path, fmt) == "parquet"


def parquet_columns(path: str | os.PathLike[str], fmt: str | None = None) -> list[str] | None:
    """The columns of the Parquet table or dataset at ``path`` (hive keys included), read
    from its metadata alone; None for CSV, stdin or a path that cannot be read (reading it
    will say why)."""
    try:
        if is_dataset(path):
            return list(dataset_column_types(dataset_parts(path)[0]))
        if str(path) == "-" or detect_format(path, fmt) != "parquet":
            return None
        return pq.read_schema(path).names
    except (DataError, pa.ArrowException, OSError):
        return None


class TableWriter(Committed):
    """Write a table chunk by chunk; a file appears only when :meth:`close` succeeds.

    Use as a context manager: on an exception the temporary file is removed and nothing is left.
    To stdout (``-``), CSV chunks are flushed as they are written.
    """

    def __init__(self, path: str | os.PathLike[str], fmt: str | None = None) -> None:
        self.path = str(path)
        if self.path != "-":
            check_target(self.path)
        self.fmt = detect_format(path, fmt, "output_format")
        self.rows = 0
        self._file: AtomicFile | None = None
        self._gzip: gzip.GzipFile | None = None  # between the CSV text and the file
        self._text: io.TextIOWrapper | None = None  # CSV text on the file (or its gzip)
        self._parquet: pq.ParquetWriter | None = None
        self._header = True
        if self.path == "-":
            self._handle: IO[Any] = sys.stdout.buffer if self.fmt == "parquet" else sys.stdout
            return
        self._file = AtomicFile(self.path)
        if self.fmt == "parquet":
            self._handle = self._file.handle
            return
        if self.path.lower().endswith(".gz"):
            self._gzip = gzip.GzipFile(fileobj=self._file.handle, mode="wb")
        self._text = io.TextIOWrapper(self._gzip or self._file.handle, newline="")
        self._handle = self._text

    def write(self, df: pd.DataFrame) -> None:
        """Append ``df``; every chunk must have the same columns.

        Writing an empty frame still records the columns (a CSV header, a Parquet schema).
        """
        try:
            if self.fmt == "csv":
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
            raise OutputError(f"cannot write: {exc.strerror or exc}",
                              source=display_name(self.path)) from None
        self.rows += len(df)

    def close(self) -> None:
        """Finish the file and move it into place."""
        try:
            if self._parquet is not None:
                self._parquet.close()
            if self._file is None:
                self._handle.flush()
                return
            if self._text is not None:  # the text and gzip layers end; the file stays open
                self._text.flush()
                self._text.detach()
                self._text = None
            if self._gzip is not None:
                self._gzip.close()  # writes the gzip trailer
                self._gzip = None
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            self.abort()
            raise OutputError(f"cannot write: {exc.strerror or exc}", source=self.path) from None
        file, self._file = self._file, None
        file.commit()  # an OutputError naming the path if it fails, the target left as it was

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        if self._file is None:
            return
        # the layers on the file are closed first, so that none writes to it when collected
        if self._parquet is not None:
            with contextlib.suppress(OSError, ValueError, pa.ArrowException):
                self._parquet.close()
        for layer in (self._text, self._gzip):
            if layer is not None:
                with contextlib.suppress(OSError, ValueError):
                    layer.close()
        self._parquet = self._text = self._gzip = None
        self._file.abort()
        self._file = None

    def commit(self) -> None:
        self.close()


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write a whole table, atomically when ``path`` is a file."""
    with TableWriter(path, fmt) as writer:
        writer.write(df)

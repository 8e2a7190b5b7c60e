"""Run a job (:mod:`flowcli.jobs`) over the files of a dataset on a Dask cluster.

Each input file (each partition, for ``sample``) is one task. Into an output folder, every
worker writes its own part file, in the folder's temporary place, and the folder is renamed
into place only when every task is done and the rows written add up: as many as the inputs
hold (their Parquet metadata says so before any task runs), or as asked for ``sample``.
Into one file (or stdout), the parts come back to this process and are written in input
order, with a bounded number in flight. A task that fails on bad input stops the run with
that input's own message; a task whose worker dies is run again by Dask on another worker
(up to ``distributed.scheduler.allowed-failures`` times, 3 by default).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .dask import worker_model
from .errors import FlowcliError, OutputError, UsageError
from .io import TableWriter, detect_format, iter_tables
from .jobs import SampleJob, Totals, flagged_rows
from .partitions import (
    FolderWriter,
    Part,
    dataset_parts,
    is_dataset,
    is_folder_output,
    iter_part,
    not_parquet,
)

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["Piece", "Totals", "run", "sample_pieces", "table_pieces"]


@dataclass(frozen=True)
class Piece:
    """One task's input: a dataset part, a table file, or (``sample``) a partition number;
    ``relative`` is where its part goes in an output folder."""

    source: str
    relative: Path
    part: Part | None = None
    fmt: str | None = None
    index: int = 0

    def chunks(self, batch_size: int, columns: list[str] | None) -> Iterator[pd.DataFrame]:
        if self.part is not None:
            return iter_part(self.part, batch_size, columns)
        return iter_tables(self.source, self.fmt, batch_size, columns)

    def rows(self) -> int | None:
        """The rows it holds, from Parquet metadata; None for CSV."""
        if self.part is None and self.fmt != "parquet":
            return None
        path = self.part.path if self.part else self.source
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise not_parquet(path, exc) from None


def table_pieces(data: str, fmt: str | None) -> list[Piece]:
    """The tasks for the table or dataset ``data``: one per file."""
    if data == "-":
        raise UsageError("cannot be read on a Dask cluster: the workers read the input "
                         "files themselves", source="stdin")
    if is_dataset(data):  # absolute paths: a remote worker's folder is not ours
        return [Piece(str(part.path), part.relative,
                      part=replace(part, path=part.path.resolve()))
                for part in dataset_parts(data)]
    if not Path(data).is_file():
        raise FlowcliError("no such file", source=data)
    return [Piece(str(Path(data).resolve()), Path(Path(data).name),
                  fmt=detect_format(data, fmt))]


def sample_pieces(job: SampleJob) -> list[Piece]:
    """The tasks for a partitioned sample: one per partition."""
    return [Piece(f"partition {i}", Path(f"part-{i:05d}"), index=i)
            for i in range(job.partitions)]


def run(client: Client, job: Any, content: bytes, name: str, pieces: list[Piece], output: str,
        output_format: str | None, batch_size: int, device: str = "cpu") -> Totals:
    """Run ``job`` with the model file ``content`` (named ``name``) over ``pieces`` and write
    the result to ``output``; what was written."""
    shared = client.scatter(content, broadcast=True)
    expected = _expected_rows(job, pieces)

    def submit(piece: Piece, target: str | None, fmt: str | None) -> Future:
        return client.submit(_run_piece, shared, name, job, piece, batch_size, target, fmt,
                             device, pure=False)

    if is_folder_output(output):
        return _into_folder(client, pieces, submit, output, output_format, expected)
    window = 2 * max(1, len(client.scheduler_info().get("workers", {}))) + 1
    with TableWriter(output, output_format) as writer:
        totals = Totals()
        for outcome in _in_order(client, (submit(p, None, None) for p in pieces), window):
            if outcome.table is not None:
                writer.write(outcome.table)
            totals += outcome
        _check_rows(totals, expected, output)
    return totals


def _into_folder(client: Client, pieces: list[Piece], submit: Callable[..., Future],
                 output: str, output_format: str | None, expected: int | None) -> Totals:
    fmt = output_format or "parquet"
    with FolderWriter(output) as folder:
        targets = [folder.part_path(piece.relative, f".{fmt}").resolve() for piece in pieces]
        if len(set(targets)) < len(targets):
            raise OutputError(f"{output}: two inputs would write the same part; rename one")
        futures = [submit(piece, str(target), fmt) for piece, target in zip(pieces, targets,
                                                                             strict=True)]
        totals = sum(_in_order(client, iter(futures), len(futures)), Totals())
        _check_rows(totals, expected, output)
        for stray in set(folder.temporary.resolve().rglob("*")) - set(targets):
            if stray.is_file():  # a temporary file of a task whose worker died
                stray.unlink()
    return totals


def _in_order(client: Client, futures: Iterator[Future], window: int) -> Iterator[Totals]:
    """The tasks' outcomes in order, with at most ``window`` submitted ahead; the first
    failure cancels the rest and is raised."""
    from distributed import KilledWorker

    pending: deque[Future] = deque(itertools.islice(futures, window))
    try:
        while pending:
            try:
                outcome = pending.popleft().result()
            except KilledWorker as exc:
                raise FlowcliError(f"Dask workers died running one task again and again "
                                   f"({exc}); nothing was written") from None
            if outcome.error is not None:
                raise outcome.error
            pending.extend(itertools.islice(futures, 1))
            yield outcome
    finally:
        client.cancel(list(pending))


def _expected_rows(job: Any, pieces: list[Piece]) -> int | None:
    if isinstance(job, SampleJob):
        return job.rows
    counts = [piece.rows() for piece in pieces]
    return None if None in counts else sum(counts)


def _check_rows(totals: Totals, expected: int | None, output: str) -> None:
    """Every input row must come out (or every row asked for): else nothing is written.
    ``expected``: the rows known beforehand (Parquet metadata, rows asked), if any."""
    want = totals.read if expected is None else expected
    if totals.read != want or totals.written != want:
        raise OutputError(f"{output}: the workers wrote {totals.written:,} rows for "
                          f"{want:,}; nothing was written")


def _run_piece(content: bytes, name: str, job: Any, piece: Piece, batch_size: int,
               target: str | None, fmt: str | None, device: str) -> Totals:
    """One task, on a worker: the piece's output written to ``target``, or returned."""
    try:
        model = worker_model(content, name, device)
        if isinstance(job, SampleJob):  # the rows "read" are the rows drawn
            tables = counted = _Counted([job.table(model, piece.index)])
        else:
            counted = _Counted(piece.chunks(batch_size, job.columns(model)))
            tables = job.tables(model, counted, piece.source)
        return _written(tables, target, fmt, counted)
    except FlowcliError as exc:  # bad input fails the same way on any worker: no retry
        return Totals(error=exc)


def _written(tables: Iterable[pd.DataFrame], target: str | None, fmt: str | None,
             counted: _Counted) -> Totals:
    if target is None:
        table = pd.concat(list(tables))
        return Totals(counted.rows, len(table), flagged_rows(table), table)
    written = flagged = 0
    with TableWriter(target, fmt) as writer:
        for table in tables:
            writer.write(table)
            written, flagged = written + len(table), flagged + flagged_rows(table)
    return Totals(counted.rows, written, flagged)


class _Counted:
    """Chunks passed through, their rows counted."""

    def __init__(self, chunks: Iterable[pd.DataFrame]) -> None:
        self.chunks = chunks
        self.rows = 0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for chunk in self.chunks:
            self.rows += len(chunk)
            yield chunk

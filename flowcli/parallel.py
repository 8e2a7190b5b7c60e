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
import secrets
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .config import DEFAULT_UNSEEN
from .dask import worker_model
from .errors import FlowcliError, FlowcliWarning, OutputError, UsageError
from .io import TableWriter, detect_format, iter_tables
from .jobs import GivenJob, Job, SampleJob, Totals, flagged_rows
from .partitions import (
    FolderWriter,
    Part,
    dataset_parts,
    is_dataset,
    is_folder_output,
    iter_part,
    not_parquet,
)
from .sampling import require_conditions

if TYPE_CHECKING:
    from distributed import Client, Future

    from .model import FlowModel

__all__ = ["Piece", "Totals", "run", "sample_pieces", "sample_plan", "table_pieces"]


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
                      part=replace(part, path=part.path.resolve()), index=i)
                for i, part in enumerate(dataset_parts(data))]
    if not Path(data).is_file():
        raise FlowcliError("no such file", source=data)
    return [Piece(str(Path(data).resolve()), Path(Path(data).name),
                  fmt=detect_format(data, fmt))]


def sample_pieces(job: SampleJob) -> list[Piece]:
    """The tasks for a partitioned sample: one per partition."""
    return [Piece(f"partition {i}", Path(f"part-{i:05d}"), index=i)
            for i in range(job.partitions)]


def sample_plan(model: FlowModel, rows: int | None, seed: int | None, partition_rows: int, *,
                given: dict[str, Any] | str | None = None, fmt: str | None = None,
                unseen: str = DEFAULT_UNSEEN) -> tuple[SampleJob | GivenJob, list[Piece]]:
    """The job and tasks of a sample on a cluster: ``rows`` rows in partitions of
    ``partition_rows``, each row given the condition ``given`` (column -> value) for a
    conditional model; or with ``given`` the path of a table or dataset of conditions,
    ``rows`` for each of its rows, a task per file. ``rows`` defaults to 1 with a condition.
    A seed is drawn when none is given. ``model`` checks the condition here, before any
    task runs."""
    seed = secrets.randbelow(2**63) if seed is None else seed
    if isinstance(given, str):
        require_conditions(model.preprocessor)
        return (GivenJob(1 if rows is None else rows, seed, unseen),
                table_pieces(given, fmt))
    count = rows if rows is not None else (1 if given else 0)
    job = SampleJob(count, seed, partition_rows, tuple((given or {}).items()), unseen)
    replace(job, rows=0).table(model, 0)
    return job, sample_pieces(job)


def run(client: Client, job: Job, content: bytes, name: str, pieces: list[Piece], output: str,
        output_format: str | None, batch_size: int, device: str = "cpu") -> Totals:
    """Run ``job`` with the model file ``content`` (named ``name``) over ``pieces`` and write
    the result to ``output``; what was written."""
    # a key of this run's own: a key named by the content's hash, freed by an earlier run on
    # the same cluster, can be dropped from a worker after this run has replicated it there
    shared = client.scatter(content, broadcast=True, hash=False)
    expected = _expected_rows(job, pieces)
    per_row = job.per_row if isinstance(job, GivenJob) else 1  # rows out per row in

    def submit(piece: Piece, target: str | None, fmt: str | None) -> Future:
        return client.submit(_run_piece, shared, name, job, piece, batch_size, target, fmt,
                             device, pure=False)

    if is_folder_output(output):
        return _into_folder(client, pieces, submit, output, output_format, expected,
                            per_row)
    window = 2 * max(1, len(client.scheduler_info().get("workers", {}))) + 1
    with TableWriter(output, output_format) as writer:
        totals = Totals()
        for outcome in _in_order(client, (submit(p, None, None) for p in pieces), window):
            if outcome.table is not None:
                writer.write(outcome.table)
            totals += outcome
        _check_rows(totals, expected, output, per_row)
    return totals


def _into_folder(client: Client, pieces: list[Piece], submit: Callable[..., Future],
                 output: str, output_format: str | None, expected: int | None,
                 per_row: int) -> Totals:
    fmt = output_format or "parquet"
    with FolderWriter(output) as folder:
        targets = [folder.part_path(piece.relative, f".{fmt}").resolve() for piece in pieces]
        if len(set(targets)) < len(targets):
            raise OutputError(f"{output}: two inputs would write the same part; rename one")
        futures = [submit(piece, str(target), fmt) for piece, target in zip(pieces, targets,
                                                                             strict=True)]
        totals = sum(_in_order(client, iter(futures), len(futures)), Totals())
        _check_rows(totals, expected, output, per_row)
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
            for category, message in outcome.notes:
                warnings.warn(message, category, stacklevel=2)
            pending.extend(itertools.islice(futures, 1))
            yield outcome
    finally:
        client.cancel(list(pending))


def _expected_rows(job: Job, pieces: list[Piece]) -> int | None:
    if isinstance(job, SampleJob):
        return job.rows
    counts = [piece.rows() for piece in pieces]
    return None if None in counts else sum(counts)


def _check_rows(totals: Totals, expected: int | None, output: str, per_row: int = 1) -> None:
    """Every input row must come out (``per_row`` rows each), or every row asked for: else
    nothing is written. ``expected``: the rows known beforehand (Parquet metadata, rows
    asked), if any."""
    want = totals.read if expected is None else expected
    if totals.read != want or totals.written != want * per_row:
        raise OutputError(f"{output}: the workers wrote {totals.written:,} rows for "
                          f"{want * per_row:,}; nothing was written")


def _run_piece(content: bytes, name: str, job: Job, piece: Piece, batch_size: int,
               target: str | None, fmt: str | None, device: str) -> Totals:
    """One task, on a worker: the piece's output written to ``target``, or returned, with
    the library's warnings, which the user sees only if they travel back (Python records
    warnings process-wide: a worker running several tasks at once may mix or lose some)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FlowcliWarning)
        try:
            totals = _written(*_piece_tables(content, name, job, piece, batch_size, device),
                              target, fmt)
        except FlowcliError as exc:  # bad input fails the same way on any worker: no retry
            totals = Totals(error=exc)
    notes = tuple(dict.fromkeys((w.category, str(w.message)) for w in caught
                                if issubclass(w.category, FlowcliWarning)))
    return replace(totals, notes=notes)


def _piece_tables(content: bytes, name: str, job: Job, piece: Piece, batch_size: int,
                  device: str) -> tuple[Iterable[pd.DataFrame], _Counted]:
    """The output tables of ``piece`` (lazily) and the counter of the rows it reads."""
    model = worker_model(content, name, device)
    if isinstance(job, SampleJob):  # the rows "read" are the rows drawn
        counted = _Counted([job.table(model, piece.index)])
        return counted, counted
    if isinstance(job, GivenJob):
        job = job.for_piece(piece.index)
    counted = _Counted(piece.chunks(batch_size, job.columns(model)))
    return job.tables(model, counted, piece.source), counted


def _written(tables: Iterable[pd.DataFrame], counted: _Counted, target: str | None,
             fmt: str | None) -> Totals:
    if target is None:
        parts = list(tables)
        if not parts:  # nothing drawn (no rows in, or none asked per row)
            return Totals(counted.rows)
        table = pd.concat(parts)
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

"""The commands that stream tables through a model: ``sample``, ``score``, ``explain``,
``impute`` and ``invert``.

Each reads its input in chunks and writes its output chunk by chunk to a file that appears
only when complete (or to stdout as it goes). An input folder or glob of Parquet files is read
part by part; an output path ending in ``/`` is a folder of parts, one per input file (per
chunk for ``sample``), that appears only when complete.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import CHUNK_ROWS, DEFAULT_DEVICE, DEFAULT_SWEEPS, DEFAULT_UNSEEN
from .guard import guard
from .options import (
    ChunkOpt,
    DataPath,
    DeviceOpt,
    ImputeMethod,
    InputFormatOpt,
    ModelPath,
    OutputFormatOpt,
    OutputOpt,
    QuietOpt,
    SchedulerOpt,
    SeedOpt,
    Unseen,
    WorkersOpt,
    option,
)

if TYPE_CHECKING:
    from ..jobs import Job, ScoreJob

__all__ = ["explain", "impute", "invert", "sample", "score"]


def _say(message: str) -> None:
    from .render import say  # rich loads only when there is something to say

    say(message)


def _load(path: str, device: Any) -> Any:
    from ..model import FlowModel

    return FlowModel.load(path, device)


def _write(tables: Iterable[Any], output: str, output_format: str | None) -> int:
    """Write ``tables`` one after another to ``output``; the rows written."""
    from ..io import TableWriter

    with TableWriter(output, output_format) as writer:
        for table in tables:
            writer.write(table)
    return writer.rows


# an input: the name messages give it, its place in a dataset, and its chunks when asked
Input = tuple[str, Path, Callable[[], Iterator[Any]]]


def _inputs(data: str, fmt: Any, batch_size: int,
            columns: list[str] | None = None) -> list[Input]:
    """The table ``data`` as one input, or each part of a dataset; only ``columns`` of it
    when given."""
    from ..io import display_name, iter_tables
    from ..partitions import dataset_parts, is_dataset, iter_part

    if is_dataset(data):
        return [(str(part.path), part.relative,
                 lambda part=part: iter_part(part, batch_size, columns))
                for part in dataset_parts(data)]
    name = display_name(data)
    return [(name, Path(Path(data).name if data != "-" else "stdin"),
             lambda: iter_tables(data, fmt, batch_size, columns))]


def _write_inputs(inputs: list[Input], outputs: Callable[[Iterator[Any], str], Iterable[Any]],
                  output: str, output_format: str | None) -> int:
    """Write ``outputs(chunks, source)`` of every input to ``output``: one file, or with a
    path ending in ``/`` a folder with a part per input; the rows written."""
    from ..partitions import FolderWriter, is_folder_output

    if not is_folder_output(output):
        return _write(itertools.chain.from_iterable(
            outputs(chunks(), source) for source, _, chunks in inputs), output, output_format)
    fmt = output_format or "parquet"
    _check_distinct(inputs, f".{fmt}")
    rows = 0
    with FolderWriter(output) as folder:
        for source, relative, chunks in inputs:
            rows += _write(outputs(chunks(), source), str(folder.part_path(relative, f".{fmt}")),
                           fmt)
    return rows


def _check_distinct(inputs: list[Input], extension: str) -> None:
    """Two inputs must not write the same part (``a.parquet`` and ``a.pq``)."""
    from ..errors import DataError

    seen: dict[Path, str] = {}
    for source, relative, _ in inputs:
        target = relative.with_suffix(extension)
        if target in seen:
            raise DataError(f"would write the same part, {target}, as {seen[target]}: rename "
                            "one of them", source=source)
        seen[target] = source


def _write_each(tables: Iterable[Any], output: str, output_format: str | None) -> int:
    """Write ``tables`` to ``output``, one file, or with a path ending in ``/`` a folder with
    a part per table; the rows written."""
    from ..partitions import FolderWriter, is_folder_output

    if not is_folder_output(output):
        return _write(tables, output, output_format)
    fmt = output_format or "parquet"
    rows = 0
    with FolderWriter(output) as folder:
        for i, table in enumerate(tables):
            rows += _write([table], str(folder.part_path(Path(f"part-{i:05d}"), f".{fmt}")),
                           fmt)
    return rows


def _map_table(model: str, device: Any, data: str, fmt: Any, batch_size: int, output: str,
               output_format: Any, quiet: bool,
               batches: Callable[[Any, Iterator[Any], str], Iterable[Any]], done: str) -> None:
    """Stream the table ``data`` through the model read from ``model``: ``batches(fitted,
    chunks, source)`` gives the output tables, written to ``output``; then ``done`` (with
    ``{rows}`` and ``{output}``) on stderr unless quiet or on stdout."""
    with guard(quiet):
        fitted = _load(model, device)
        inputs = _inputs(data, fmt, batch_size)
        rows = _write_inputs(inputs, lambda chunks, source: batches(fitted, chunks, source),
                             output, output_format)
        if not quiet and output != "-":
            _say(done.format(rows=rows, output=output))


def sample(
    model: ModelPath,
    n: Annotated[int | None, option("rows", "-n", "--rows")] = None,
    given: Annotated[list[str] | None, option("given", metavar="FILE|COL=VALUE")] = None,
    output: OutputOpt = "-",
    unseen: Annotated[Unseen, option("unseen")] = DEFAULT_UNSEEN,  # type: ignore[valid-type]
    fmt: InputFormatOpt = None,
    output_format: OutputFormatOpt = None,
    seed: SeedOpt = None,
    batch_size: ChunkOpt = CHUNK_ROWS,
    device: DeviceOpt = DEFAULT_DEVICE,  # type: ignore[valid-type]
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Draw new rows with the training table's columns and dtypes.

    For a conditional model, --given says what to draw for: -n rows for each row of a given
    table (default 1), or -n rows for the COLUMN=VALUE condition; the condition columns come
    back in the output. On Dask (--workers, --scheduler), partition i of --batch-size rows (or
    file i of a --given dataset) is drawn from --seed and i alone: the rows do not depend on
    the number of workers.
    """
    if n is None and not given:
        raise typer.BadParameter("give the number of rows to draw (and, for a conditional "
                                 "model, --given)", param_hint="-n")
    _check_cluster(workers, scheduler)
    with guard(quiet):
        if workers or scheduler:
            _sample_on_cluster(model, n, given or [], unseen, fmt, seed, batch_size, output,
                               output_format, device, workers, scheduler, quiet)
            return
        fitted = _load(model, device)
        if given:
            tables = _given_draws(fitted, given, n, fmt, seed, unseen, batch_size)
        else:
            tables = fitted.sample_batches(n or 0, seed, batch_size)
        rows = _write_each(tables, output, output_format)
        if not quiet and output != "-":
            _say(f"wrote {rows:,} rows to {output}")


def _check_cluster(workers: int | None, scheduler: str | None) -> None:
    """--workers and --scheduler exclude each other."""
    if workers and scheduler:
        raise typer.BadParameter("give --workers N or --scheduler ADDRESS, not both",
                                 param_hint="--workers")


def _on_cluster(content: tuple[bytes, str], job: Job, pieces: list[Any], output: str,
                output_format: str | None, batch_size: int, device: str,
                workers: int | None, scheduler: str | None) -> Any:
    """Run ``job`` with the model file ``content`` (bytes and name) over ``pieces`` on a
    Dask cluster; what was written."""
    from ..dask import connect
    from ..parallel import run

    with connect(workers, scheduler) as client:
        return run(client, job, *content, pieces, output, output_format, batch_size, device)


def _model_file(model: str) -> tuple[tuple[bytes, str], Any]:
    """The model file's bytes and name, for the workers, and the model, loaded once here."""
    from ..dask import model_content

    content, name, loaded = model_content(model)
    return (content, name), loaded


def _sample_on_cluster(model: str, n: int | None, given: list[str], unseen: str,
                       fmt: str | None, seed: int | None, batch_size: int, output: str,
                       output_format: str | None, device: str, workers: int | None,
                       scheduler: str | None, quiet: bool) -> None:
    from ..parallel import sample_plan

    content, loaded = _model_file(model)
    condition = given_pairs(given) if given else None  # None: no condition, or a table
    job, pieces = sample_plan(loaded, n, seed, batch_size,
                              given=given[0] if given and condition is None else condition,
                              fmt=fmt, unseen=unseen)
    totals = _on_cluster(content, job, pieces, output, output_format, batch_size, device,
                         workers, scheduler)
    if not quiet and output != "-":
        _say(f"wrote {totals.written:,} rows to {output}")


def _given_draws(fitted: Any, given: list[str], n: int | None, fmt: Any, seed: int | None,
                 unseen: str, batch_size: int) -> Iterator[Any]:
    """The rows drawn for ``--given``: a table (a path or ``-``), or ``COLUMN=VALUE`` pairs."""
    from ..io import display_name, iter_tables

    pairs = given_pairs(given)
    if pairs is None:
        chunks, source = iter_tables(given[0], fmt, batch_size), display_name(given[0])
    else:
        chunks, source = [fitted.condition_table(pairs, "--given")], "--given"
    return fitted.sample_given_batches(chunks, 1 if n is None else n, seed, source, unseen,
                                       batch_size)


def given_pairs(values: list[str]) -> dict[str, str] | None:
    """``--given`` values as ``{COLUMN: VALUE}``, or None when they name one table: ``-``, an
    existing path, or a path-like value without ``=``."""
    import os

    if len(values) == 1 and (values[0] == "-" or os.path.exists(values[0])
                             or "=" not in values[0]):
        return None
    pairs: dict[str, str] = {}
    for value in values:
        name, eq, text = value.partition("=")
        if not eq or not name.strip():
            raise typer.BadParameter(f"expected one table or COLUMN=VALUE pairs, got {value!r}",
                                     param_hint="--given")
        if name.strip() in pairs:
            raise typer.BadParameter(f"gives {name.strip()!r} twice", param_hint="--given")
        pairs[name.strip()] = text
    return pairs


def score(
    model: ModelPath,
    data: DataPath,
    output: OutputOpt = "-",
    percentile: Annotated[bool, typer.Option(
        "--percentile", help="Add 'percentile': the share (%) of held-out training rows that "
                             "scored lower.")] = False,
    threshold: Annotated[float | None, option("threshold", metavar="Q")] = None,
    only_score: Annotated[bool, typer.Option(
        "--only-score", help="Write only the score columns, not the input rows.")] = False,
    unseen: Annotated[Unseen, option("unseen")] = DEFAULT_UNSEEN,  # type: ignore[valid-type]
    fail_on_anomaly: Annotated[bool, typer.Option(
        "--fail-on-anomaly", help="Exit with code 3 when any row is flagged (needs --threshold).")
    ] = False,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Add the columns of 'flowcli explain' for the rows flagged (needs "
                          "--threshold): which cell makes each one unusual.")] = False,
    fmt: InputFormatOpt = None,
    output_format: OutputFormatOpt = None,
    batch_size: ChunkOpt = CHUNK_ROWS,
    device: DeviceOpt = DEFAULT_DEVICE,  # type: ignore[valid-type]
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Append each row's log-likelihood (nats, in the table's own units) as 'log_prob'.

    Extra input columns pass through untouched; the model's columns must all be present.
    """
    if fail_on_anomaly and threshold is None:
        raise typer.BadParameter("needs --threshold Q", param_hint="--fail-on-anomaly")
    if explain and threshold is None:
        raise typer.BadParameter("needs --threshold Q", param_hint="--explain")
    _check_cluster(workers, scheduler)
    with guard(quiet):
        from ..errors import AnomalyError
        from ..io import display_name
        from ..jobs import ScoreJob

        job = ScoreJob(percentile, threshold, only_score, explain, unseen)
        if workers or scheduler:
            content, fitted = _model_file(model)
        else:
            fitted = _load(model, device)
        cutoff = fitted.threshold(threshold) if threshold is not None else None
        if workers or scheduler:
            totals = _on_cluster(content, job, _pieces(data, fmt), output, output_format,
                                 batch_size, device, workers, scheduler)
        else:
            totals = _score_here(fitted, job, _inputs(data, fmt, batch_size,
                                                      job.columns(fitted)),
                                 output, output_format)
        rows, flagged = totals.written, totals.flagged
        if not quiet and output != "-":
            _say(f"scored {rows:,} rows into {output}")
        if cutoff is not None and (not quiet or fail_on_anomaly):
            _say(
                f"{flagged:,} of {rows:,} rows flagged as anomalies "
                f"(log_prob below {cutoff:.4g}, the {threshold:g} quantile of held-out rows)")
        if fail_on_anomaly and flagged:
            raise AnomalyError(f"{flagged:,} anomalous rows in {display_name(data)}")


def _pieces(data: str, fmt: str | None) -> list[Any]:
    from ..parallel import table_pieces

    return table_pieces(data, fmt)


def _score_here(fitted: Any, job: ScoreJob, inputs: list[Input], output: str,
                output_format: str | None) -> Any:
    """Score ``inputs`` in this process; what was written."""
    from ..jobs import Totals, flagged_rows

    flagged = 0

    def scored(chunks: Iterator[Any], source: str) -> Iterator[Any]:
        nonlocal flagged
        for out in job.tables(fitted, chunks, source):
            flagged += flagged_rows(out)
            yield out

    rows = _write_inputs(inputs, scored, output, output_format)
    return Totals(rows, rows, flagged)


def explain(
    model: ModelPath,
    data: DataPath,
    output: OutputOpt = "-",
    unseen: Annotated[Unseen, option("unseen")] = DEFAULT_UNSEEN,  # type: ignore[valid-type]
    fmt: InputFormatOpt = None,
    output_format: OutputFormatOpt = None,
    batch_size: ChunkOpt = CHUNK_ROWS,
    device: DeviceOpt = DEFAULT_DEVICE,  # type: ignore[valid-type]
    quiet: QuietOpt = False,
) -> None:
    """Which cell makes each row unusual: per modelled column, the cell's log-density given
    the rest of its row ('<column>_cond_log_prob', nats, in the table's units) and its
    percentile among held-out rows' cells ('<column>_percentile'); then 'most_unusual', the
    column of lowest percentile.

    The input columns pass through, as with score. Each numeric cell costs a few hundred
    evaluations of the model: explain the rows that need it (score --threshold Q --explain
    explains the flagged ones).
    """
    _map_table(model, device, data, fmt, batch_size, output, output_format, quiet,
               lambda fitted, chunks, source: fitted.explain_batches(chunks, source, unseen),
               "explained {rows:,} rows into {output}")


def impute(
    model: ModelPath,
    data: DataPath,
    output: OutputOpt = "-",
    draws: Annotated[int, option("draws")] = 1,
    method: Annotated[ImputeMethod, option("method")] = "sample",  # type: ignore[valid-type]
    sweeps: Annotated[int, option("sweeps")] = DEFAULT_SWEEPS,
    seed: SeedOpt = None,
    unseen: Annotated[Unseen, option("unseen")] = DEFAULT_UNSEEN,  # type: ignore[valid-type]
    fmt: InputFormatOpt = None,
    output_format: OutputFormatOpt = None,
    batch_size: ChunkOpt = CHUNK_ROWS,
    device: DeviceOpt = DEFAULT_DEVICE,  # type: ignore[valid-type]
    quiet: QuietOpt = False,
) -> None:
    """Fill the gaps (empty cells) of the model's columns from the model.

    --method sample draws each row's gaps from p(missing | observed): one gap exactly, by
    the inverse CDF of its conditional; several by Gibbs sweeps over their conditionals.
    --draws K writes K completed copies of each row, numbered in 'imputation'. Observed
    cells and other columns come back as they were.
    """
    with guard(quiet):
        from ..impute import Imputation

        plan = Imputation(draws, method, sweeps)  # refused before the model is read
    _map_table(model, device, data, fmt, batch_size, output, output_format, quiet,
               lambda fitted, chunks, source: fitted.impute_batches(chunks, plan, seed, source,
                                                                    unseen),
               "wrote {rows:,} rows to {output}")


def invert(
    model: ModelPath,
    data: DataPath,
    output: OutputOpt = "-",
    to_data: Annotated[bool, typer.Option(
        "--to-data", help="Map latent rows (columns z_0, z_1, ...) back to table rows.")] = False,
    fmt: InputFormatOpt = None,
    output_format: OutputFormatOpt = None,
    batch_size: ChunkOpt = CHUNK_ROWS,
    device: DeviceOpt = DEFAULT_DEVICE,  # type: ignore[valid-type]
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Map table rows to latent coordinates z_0, z_1, ... (or back, with --to-data).

    Columns that are not the model's pass through untouched, after the mapped ones.
    """
    _check_cluster(workers, scheduler)
    if workers or scheduler:
        from ..jobs import InvertJob

        with guard(quiet):
            content, _ = _model_file(model)
            totals = _on_cluster(content, InvertJob(to_data), _pieces(data, fmt), output,
                                 output_format, batch_size, device, workers, scheduler)
            if not quiet and output != "-":
                _say(f"wrote {totals.written:,} rows to {output}")
        return
    _map_table(model, device, data, fmt, batch_size, output, output_format, quiet,
               lambda fitted, chunks, source: fitted.invert_batches(chunks, to_data, source),
               "wrote {rows:,} rows to {output}")

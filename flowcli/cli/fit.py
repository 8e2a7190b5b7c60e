"""``flowcli fit``: learn the density of a table and write a model file."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from ..config import DEFAULT_DEVICE
from .guard import guard, reraise_interrupt, signalled, signals_noted, sigterm_waits
from .options import DataPath, Device, InputFormatOpt, Missing, ModelKind, QuietOpt, SeedOpt, spell
from .options import option as opt

__all__ = ["fit"]


def split_names(value: str | None, flag: str) -> list[str] | None:
    """A comma-separated list of column names; None when the option was not given."""
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise typer.BadParameter("give at least one column name", param_hint=flag)
    return names


def parse_bounds(value: str | None) -> dict[str, tuple[float, float]] | None:
    """``COL=LO:HI,...`` as ``{COL: (LO, HI)}``."""
    out = {}
    for item in split_names(value, "--bounds") or []:
        name, _, rng = item.rpartition("=")
        low, _, high = rng.partition(":")
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            lo = hi = float("nan")
        if not name or not lo < hi:
            raise typer.BadParameter(f"expected COLUMN=LOW:HIGH with LOW < HIGH, got {item!r}",
                                     param_hint="--bounds")
        out[name] = (lo, hi)
    return out or None


def parse_formats(value: str | None) -> dict[str, str] | None:
    """``COL=FORMAT,...`` as ``{COL: FORMAT}``."""
    out = {}
    # a comma starts a new column only where a name and '=' follow (formats may hold commas)
    for item in re.split(r",(?=[^,%=]+=)", value) if value else []:
        name, _, fmt = item.strip().partition("=")
        if not name or "%" not in fmt:
            raise typer.BadParameter(f"expected COLUMN=FORMAT with strftime codes such as "
                                     f"%d/%m/%Y, got {item!r}", param_hint="--datetime-format")
        out[name] = fmt
    return out or None


def fit(
    data: DataPath,
    output: Annotated[str, typer.Option("--output", "-o", metavar="MODEL",
                                        help="Where to write the model file.")],
    model: Annotated[ModelKind | None, opt("model")] = None,  # type: ignore[valid-type]
    whiten: Annotated[bool | None, opt("whiten", "--whiten/--no-whiten")] = None,
    mixture: Annotated[bool | None, opt("mixture", "--mixture/--no-mixture")] = None,
    tails: Annotated[bool | None, opt("tails", "--tails/--no-tails")] = None,
    layers: Annotated[int | None, opt("layers")] = None,
    hidden: Annotated[int | None, opt("hidden")] = None,
    epochs: Annotated[int | None, opt("epochs")] = None,
    batch_size: Annotated[int | None, opt("batch_size")] = None,
    lr: Annotated[float | None, opt("lr")] = None,
    val_fraction: Annotated[float | None, opt("val_fraction")] = None,
    patience: Annotated[int | None, opt("patience")] = None,
    min_gain: Annotated[float | None, opt("min_gain")] = None,
    max_time: Annotated[float | None, opt("max_seconds")] = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", metavar="MODEL",
        help="Carry on training this model file on the same DATA (epochs, early stopping and "
             "optimizer state continue). Only the stopping rules and the learning rate may "
             "change; other options, if given, must be as the model has them.")] = None,
    columns: Annotated[str | None, opt("columns")] = None,
    exclude: Annotated[str | None, opt("exclude")] = None,
    categorical: Annotated[str | None, opt("categorical")] = None,
    integer: Annotated[str | None, opt("integer")] = None,
    positive: Annotated[str | None, opt("positive")] = None,
    bounds: Annotated[str | None, opt("bounds", metavar="COL=LO:HI,...")] = None,
    unbounded: Annotated[str | None, opt("unbounded")] = None,
    continuous: Annotated[str | None, opt("continuous")] = None,
    datetime: Annotated[str | None, opt("datetime")] = None,
    datetime_format: Annotated[str | None, opt("datetime_format",
                                               metavar="COL=FORMAT,...")] = None,
    condition: Annotated[str | None, opt("condition")] = None,
    missing: Annotated[Missing | None, opt("missing")] = None,  # type: ignore[valid-type]
    fmt: InputFormatOpt = None,
    device: Annotated[Device, opt("device")] = DEFAULT_DEVICE,  # type: ignore[valid-type]
    seed: SeedOpt = None,
    max_rows: Annotated[int | None, opt("max_rows", metavar="N")] = None,
    shared_rows: Annotated[int | None, opt("shared_rows", metavar="N")] = None,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Learn the density of a table and write a model file."""
    settings = {k: v for k, v in (
        ("model", model), ("whiten", whiten), ("mixture", mixture), ("tails", tails),
        ("layers", layers), ("hidden", hidden), ("epochs", epochs),
        ("batch_size", batch_size), ("lr", lr), ("val_fraction", val_fraction),
        ("patience", patience), ("min_gain", min_gain), ("max_seconds", max_time),
        ("missing", missing))
        if v is not None}
    declared = {"columns": split_names(columns, "--columns"),
                "exclude": split_names(exclude, "--exclude"),
                "categorical": split_names(categorical, "--categorical"),
                "integer": split_names(integer, "--integer"),
                "positive": split_names(positive, "--positive"),
                "bounds": parse_bounds(bounds),
                "unbounded": split_names(unbounded, "--unbounded"),
                "continuous": split_names(continuous, "--continuous"),
                "datetime": split_names(datetime, "--datetime"),
                "datetime_format": parse_formats(datetime_format),
                "condition": split_names(condition, "--condition")}
    from .render import console

    with guard(quiet), _ranks(device) as (ranked, leader):
        quiet = quiet or not leader  # under torchrun, rank 0 alone prints and writes
        out = console(quiet)
        with _noted_by_ranks() if ranked else contextlib.nullcontext():
            fitted = _train(data, output, resume, settings, declared, fmt, device, seed,
                            (max_rows, shared_rows), out, quiet)
        if leader:
            with sigterm_waits():  # the save is atomic; a signal must not cut it short
                fitted.save(output)
            _report(fitted, output, out, quiet, as_json)
        if fitted.interrupted or signalled():
            reraise_interrupt()


@contextlib.contextmanager
def _ranks(device: str) -> Iterator[tuple[bool, bool]]:
    """Under torchrun, the other ranks joined for the block: whether there are several,
    and whether this one leads (prints and writes)."""
    from ..model import resolve_device
    from ..training import ranks

    if not ranks.join(resolve_device(device)):
        yield False, True
        return
    try:
        yield True, ranks.is_leader()
    finally:
        ranks.leave()


def _noted_by_ranks() -> contextlib.AbstractContextManager[None]:
    """Signals noted for the ranks to stop together at their next step."""
    from ..training import ranks

    return signals_noted(ranks.request_stop)


def _train(data: str, output: str, resume: str | None, settings: dict[str, Any],
           declared: dict[str, Any], fmt: Any, device: str, seed: int | None,
           limits: tuple[int | None, int | None], out: Any, quiet: bool) -> Any:
    """The fitted (or further trained) model; nothing written yet. ``limits``: the
    --max-rows and --shared-rows given."""
    import secrets

    from ..config import default
    from ..files import check_target
    from ..fitting.shares import SAMPLE_ROWS
    from ..io import display_name
    from ..model import FlowModel
    from ..training import ranks
    from .render import Progress

    max_rows, shared_rows = limits
    check_target(output, "the model")
    previous = FlowModel.load(resume, device) if resume is not None else None
    if previous is not None:  # before reading the table: a refusal should come first
        previous.check_resume(**settings, **declared, seed=seed)
        seed = previous.training["seed"]
        max_rows = _resumed_max_rows(previous.training, max_rows)
        shared_rows = shared_rows or previous.training.get("shared_rows")
    if max_rows is not None and seed is None:  # the sample's seed is the fit's, recorded
        seed = ranks.agree(secrets.randbelow(2**31))  # under torchrun, rank 0's
    columns = _columns_to_read(data, fmt, declared)
    if columns is not None and declared["exclude"]:
        declared = {**declared, "exclude": None}  # those columns were never read
    table, seen = _read(data, fmt, max_rows, seed, columns, shared_rows)
    source = display_name(data)
    if max_rows is not None:  # rows in messages count within the sample
        source = f"{source} (its sample of {len(table):,} rows)"
    epochs = settings.get("epochs") or (previous.fit_config.epochs if previous is not None
                                        else default("epochs"))
    progress = Progress(out, epochs, enabled=not quiet)
    try:
        if previous is not None:
            return previous.resume_fit(table, callback=progress, source=source, **settings,
                                       **declared, seed=seed)
        fitted = FlowModel.fit(table, seed=seed, device=device, callback=progress,
                               source=source, **declared, **settings)
    finally:
        progress.stop()
    if max_rows is not None:
        fitted.training.update(max_rows=max_rows, sampled_from=seen)
    elif ranks.size() > 1:  # what decided between shares and the whole table, for --resume
        fitted.training["shared_rows"] = shared_rows or SAMPLE_ROWS
    return fitted


def _resumed_max_rows(training: dict[str, Any], given: int | None) -> int | None:
    """A resumed fit trains on the same rows: the sample it was fitted on, or all."""
    had = training.get("max_rows")
    if given is not None and given != had:
        was = f"{had:,}" if had is not None else "all rows"
        raise typer.BadParameter(f"cannot be changed when resuming (the model was fitted on "
                                 f"{was})", param_hint="--max-rows")
    return had


def _columns_to_read(data: str, fmt: Any, declared: dict[str, Any]) -> list[str] | None:
    """Of a Parquet table, only the columns that --columns names (and the condition), or
    all but those --exclude names: the others are never read. None: read them all (CSV,
    or names the table lacks, which fitting then reports)."""
    from ..io import parquet_columns

    chosen, excluded = declared["columns"], declared["exclude"]
    names = parquet_columns(data, fmt) if chosen or excluded else None
    if names is None:
        return None
    wanted = (chosen or names) + (declared["condition"] or [])
    if not set(wanted) <= set(names) or not set(excluded or ()) <= set(wanted):
        return None
    return [n for n in names if n in wanted and n not in (excluded or ())]


def _read(data: str, fmt: Any, max_rows: int | None, seed: int | None,
          columns: list[str] | None, shared_rows: int | None) -> tuple[Any, int]:
    """The table at ``data`` (only ``columns`` of it, when given), a uniform sample of
    ``max_rows`` of its rows, or under torchrun this rank's share of a large Parquet table;
    the rows the table holds."""
    from ..fitting.shares import SAMPLE_ROWS, read_share
    from ..io import is_parquet, iter_tables, read_table
    from ..reservoir import uniform_sample
    from ..training import ranks

    if max_rows is None and ranks.size() > 1 and is_parquet(data, fmt):
        share = read_share(data, columns, shared_rows or SAMPLE_ROWS)
        if share is not None:
            return share, share.total
    if max_rows is None:
        table = read_table(data, fmt, columns)
        return table, len(table)
    return uniform_sample(iter_tables(data, fmt, columns=columns), max_rows, seed or 0)


def _report(fitted: Any, output: str, out: Any, quiet: bool, as_json: bool) -> None:
    from ..fitting import fit_notes
    from .render import columns_table, model_summary

    if as_json:
        sys.stdout.write(json.dumps({"model_file": output, **fitted.info()}, indent=2) + "\n")
    if not quiet:
        out.print(columns_table(fitted, "columns", box=None, pad_edge=False))
        for note in fit_notes(fitted.schema, fitted.training, fitted.fit_config.min_gain):
            out.print(f"warning: {note.render(spell)}")
        out.print(model_summary(fitted, output, detailed=False))

"""The command line's options, built from :mod:`flowcli.config`: flags, help, ranges, choices
and shown defaults all come from there, and so do the flags that error messages name."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from ..config import (
    COMMAND_DEFAULTS,
    DEVICES,
    FIT_DEFAULTS,
    FORMATS,
    IMPUTE_METHODS,
    MISSING,
    MODELS,
    OPTIONS,
    UNSEEN,
)

__all__ = ["Device", "Format", "ImputeMethod", "Missing", "ModelKind", "Unseen", "option", "spell"]


# the choice lists as types: Typer checks the values and lists them in help
ModelKind = Literal[MODELS]  # type: ignore[valid-type]
Missing = Literal[MISSING]  # type: ignore[valid-type]
Unseen = Literal[UNSEEN]  # type: ignore[valid-type]
Device = Literal[DEVICES]  # type: ignore[valid-type]
Format = Literal[FORMATS]  # type: ignore[valid-type]
ImputeMethod = Literal[IMPUTE_METHODS]  # type: ignore[valid-type]


def option(field: str, *decls: str, **extra: Any) -> Any:
    """A ``typer.Option`` for the config option ``field``: its flag (or ``decls``), help with
    the default (the config's, or what the config says to show), and range."""
    spec = OPTIONS[field]
    shown = spec.shown if spec.shown is not None else _default(field)
    text = spec.help + (f"  [default: {shown}]" if shown is not None else "")
    settings: dict[str, Any] = {"help": text, "show_default": False}
    if spec.low is not None and spec.low_open:  # Typer has no open bound: the library checks
        settings["help"] = f"{text}  [x>{spec.low:g}]"
    elif spec.low is not None:
        settings["min"] = spec.low
    if spec.high is not None:
        settings["max"] = spec.high
    return typer.Option(*(decls or (spec.flag,)), **{**settings, **extra})


def _default(field: str) -> str | None:
    value = FIT_DEFAULTS.get(field, COMMAND_DEFAULTS.get(field))
    return None if value is None else str(value)


def spell(field: str, value: str | None) -> str:
    """How an error message names an option on the command line: ``--missing model``."""
    flag = OPTIONS[field].flag if field in OPTIONS else f"--{field.replace('_', '-')}"
    return flag if value is None else f"{flag} {value}"


ModelPath = Annotated[str, typer.Argument(metavar="MODEL", help="A model file written by 'fit'.")]
DataPath = Annotated[str, typer.Argument(
    metavar="DATA", help="A CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) table; '-' for stdin.")]
OutputOpt = Annotated[str, typer.Option(
    "--output", "-o", metavar="OUT",
    help="Output table; the format follows the extension. Default '-': CSV on stdout.")]
InputFormatOpt = Annotated[Format | None, option("format")]  # type: ignore[valid-type]
OutputFormatOpt = Annotated[Format | None, option("output_format")]  # type: ignore[valid-type]
DeviceOpt = Annotated[Device, option("device")]  # type: ignore[valid-type]
SeedOpt = Annotated[int | None, option("seed")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print nothing on stderr but errors.")]
ChunkOpt = Annotated[int, option("chunk_rows")]
WorkersOpt = Annotated[int | None, option("workers", metavar="N")]
SchedulerOpt = Annotated[str | None, option("scheduler", metavar="ADDRESS")]

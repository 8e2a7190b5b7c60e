"""The command line's options, built from :mod:`flowcli.config`: flags, help, ranges, choices
and shown defaults all come from there, and so do the flags that error messages name."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from ..config import DEVICES, FIT_DEFAULTS, FORMATS, MISSING, MODELS, OPTIONS, UNSEEN

__all__ = ["Device", "Format", "Missing", "ModelKind", "Unseen", "option", "spell"]


# the choice lists as types: Typer checks the values and lists them in help
ModelKind = Literal[MODELS]  # type: ignore[valid-type]
Missing = Literal[MISSING]  # type: ignore[valid-type]
Unseen = Literal[UNSEEN]  # type: ignore[valid-type]
Device = Literal[DEVICES]  # type: ignore[valid-type]
Format = Literal[FORMATS]  # type: ignore[valid-type]


def option(field: str, *decls: str, **extra: Any) -> Any:
    """A ``typer.Option`` for the config option ``field``: its flag (or ``decls``), help,
    range and shown default (the config's default unless it says otherwise)."""
    spec = OPTIONS[field]
    settings: dict[str, Any] = {"help": spec.help}
    if spec.low is not None:
        settings["min"] = spec.low
    if spec.high is not None:
        settings["max"] = spec.high
    if spec.shown is not None:
        settings["show_default"] = spec.shown
    elif FIT_DEFAULTS.get(field) is not None:
        settings["show_default"] = str(FIT_DEFAULTS[field])
    return typer.Option(*(decls or (spec.flag,)), **{**settings, **extra})


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
OutputFormatOpt = Annotated[Format | None, typer.Option(  # type: ignore[valid-type]
    "--output-format", help="Format of the output, overriding the extension of -o.")]
DeviceOpt = Annotated[Device, option("device")]  # type: ignore[valid-type]
SeedOpt = Annotated[int | None, option("seed")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print nothing on stderr but errors.")]
ChunkOpt = Annotated[int, option("chunk_rows")]

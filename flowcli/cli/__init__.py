"""The ``flowcli`` command line: parses options, calls :class:`flowcli.model.FlowModel`, prints.

Data goes to stdout, messages to stderr; :mod:`.guard` lists the exit codes. Heavy modules
(torch, pandas) load inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from .fit import fit
from .info import info
from .report import report
from .stream import explain, impute, invert, sample, score

__all__ = ["app", "main"]

app = typer.Typer(
    name="flowcli",
    help="Density estimation on tables with normalizing flows: fit, sample, score, explain, "
         "impute, invert, report.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for command in (fit, sample, score, explain, impute, invert, report, info):
    app.command()(command)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"flowcli {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Density estimation on tables with normalizing flows: fit, sample, score, invert."""


def main() -> None:
    """Entry point: run the app, printing usage errors as one line."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="flowcli", standalone_mode=False)
    except typer.TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        sys.stderr.write(f"error: {exc.format_message()}{hint}\n")
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)

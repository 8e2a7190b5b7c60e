"""``flowcli info``: describe a model file: columns, architecture, training and versions."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .guard import guard
from .options import ModelPath

__all__ = ["info"]


def info(
    model: ModelPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Describe a model file: columns, architecture, training and versions."""
    with guard():
        from ..model import FlowModel
        from .render import columns_table, console, model_summary

        fitted = FlowModel.load(model, "cpu")
        if as_json:
            sys.stdout.write(json.dumps(fitted.info(), indent=2) + "\n")
            return
        out = console(stderr=False)
        out.print(columns_table(fitted, f"{model}: {len(fitted.columns)} columns"))
        out.print(model_summary(fitted, model, detailed=True))

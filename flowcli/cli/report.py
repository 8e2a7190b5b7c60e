"""``flowcli report``: one HTML page (and optionally JSON) on a model and its synthetic rows."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from ..config import DEFAULT_DEVICE, REPORT_ROWS
from .guard import guard
from .options import DeviceOpt, InputFormatOpt, ModelPath, QuietOpt, SeedOpt

__all__ = ["report"]

def parse_gates(value: str | None) -> dict[str, float]:
    """``shapes=0.9,pairs=0.85,detection=0.6`` as ``{name: limit}``."""
    from ..report.figures import GATES

    gates: dict[str, float] = {}
    for item in filter(str.strip, (value or "").split(",")):
        name, _, limit = (part.strip() for part in item.partition("="))
        try:
            gates[name] = float(limit)
        except ValueError:
            name = ""
        if name in gates and math.isnan(gates[name]):
            name = ""
        if name not in GATES:
            raise typer.BadParameter(f"expected NAME=VALUE with NAME one of "
                                     f"{', '.join(GATES)}, got {item!r}",
                                     param_hint="--fail-under")
    return gates


def report(
    model: ModelPath,
    data: Annotated[str, typer.Option(
        "--data", metavar="REAL", help="The real rows: the table the model was fitted on.")],
    output: Annotated[str, typer.Option(
        "--output", "-o", metavar="PAGE", help="Where to write the HTML page.")],
    holdout: Annotated[str | None, typer.Option(
        "--holdout", metavar="HOLDOUT", help="Real rows the model never saw: enables the "
        "distance-to-closest-record and membership figures.")] = None,
    synthetic: Annotated[str | None, typer.Option(
        "--synthetic", metavar="SYN", help="Synthetic rows to judge (default: draw -n rows "
        "from the model).")] = None,
    n: Annotated[int, typer.Option(
        "-n", "--rows", help=f"Rows to draw without --synthetic.  [default: {REPORT_ROWS:,}]",
        show_default=False)] = REPORT_ROWS,
    json_path: Annotated[str | None, typer.Option(
        "--json", metavar="FILE", help="Also write the figures as JSON.")] = None,
    fail_under: Annotated[str | None, typer.Option(
        "--fail-under", metavar="NAME=VALUE,...", help="Exit 3 after writing everything when "
        "shapes or pairs fall under VALUE or detection (an AUC) rises over it.")] = None,
    fmt: InputFormatOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = DEFAULT_DEVICE,  # type: ignore[valid-type]
    quiet: QuietOpt = False,
) -> None:
    """Write one self-contained HTML page on how good the model and its synthetic rows are:
    model card and training curves, column shapes, column pairs, detection, privacy and
    scores."""
    gates = parse_gates(fail_under)
    with guard(quiet):
        from ..errors import AnomalyError
        from ..report.build import write_report

        missed = write_report(model, data, output, holdout=holdout, synthetic=synthetic,
                              rows=n, json_path=json_path, fmt=fmt, seed=seed, device=device,
                              gates=gates)
        if not quiet:
            from .render import say

            say(f"wrote the report to {output}")
        if missed:
            raise AnomalyError("the report misses its gates: " + "; ".join(missed))


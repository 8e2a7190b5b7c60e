"""Read the tables, draw the synthetic rows if asked, compute the figures and write the page
(and the JSON) whole: a failure leaves no partial file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import REPORT_ROWS
from ..detection import require as require_classifiers
from ..errors import FlowcliError
from ..files import AtomicFile, check_target
from ..io import display_name, read_table
from ..model import FlowModel
from . import plots
from .figures import as_numbers, figures, missed_gates, sample_rows
from .page import render

__all__ = ["build_report", "write_report"]


def write_report(model_path: str, data: str, output: str, *, holdout: str | None = None,
                 synthetic: str | None = None, rows: int = REPORT_ROWS,
                 json_path: str | None = None, fmt: str | None = None,
                 seed: int | None = None, device: str = "cpu",
                 gates: dict[str, float] | None = None) -> list[str]:
    """Write the report on the model at ``model_path`` to ``output`` (and its figures to
    ``json_path``); the gates its figures miss."""
    _can_report(synthetic is None, rows)
    check_target(output, "the report")
    if json_path is not None:
        check_target(json_path, "the figures")
    model = FlowModel.load(model_path, device)
    real = _table(model, data, fmt)
    held = _table(model, holdout, fmt) if holdout is not None else None
    drawn = _table(model, synthetic, None) if synthetic is not None else None
    found, page = build_report(model, real, synthetic=drawn, holdout=held, rows=rows,
                               seed=seed, title=f"flowcli report: {Path(model_path).name}")
    with AtomicFile(output, "the report") as file:
        file.handle.write(page.encode())
    if json_path is not None:
        with AtomicFile(json_path, "the figures") as file:
            file.handle.write(json.dumps(_plain(found), indent=2).encode())
    return missed_gates(found, gates or {})


def build_report(model: FlowModel, real: pd.DataFrame, *, synthetic: pd.DataFrame | None = None,
                 holdout: pd.DataFrame | None = None, rows: int = REPORT_ROWS,
                 seed: int | None = None, title: str = "flowcli report"
                 ) -> tuple[dict[str, Any], str]:
    """The figures and the HTML page on ``model``, judged against the ``real`` rows it was
    fitted on; ``rows`` synthetic rows are drawn (with ``seed``, 0 when None, so a report is
    reproducible) unless ``synthetic`` is given; ``holdout`` rows add the privacy figures."""
    _can_report(synthetic is None, rows)
    seed = 0 if seed is None else seed
    if synthetic is None:
        synthetic = _draw(model, real, rows, seed)
    real = real.reset_index(drop=True)  # scores are matched to sampled rows by index
    holdout = holdout.reset_index(drop=True) if holdout is not None else None
    # the real rows' scores make the page's histogram; the holdout's only the membership
    # test, which sees a sample
    scores = (model.score(real, unseen="floor"),
              model.score(sample_rows(holdout, seed), unseen="floor")
              if holdout is not None else None)
    numbers = as_numbers(model, real), as_numbers(model, synthetic)
    found = figures(model, *numbers, as_numbers(model, holdout) if holdout is not None
                    else None, scores, seed)
    return found, render(model, found, *numbers, title, real, scores[0])


def _can_report(drawing: bool, rows: int) -> None:
    """Refuse before any work when a library is missing or there is nothing to draw."""
    plots.require()
    require_classifiers()
    if drawing and rows < 1:
        raise FlowcliError(f"needs at least 1 row to draw, not {rows}", field="rows")


def _table(model: FlowModel, path: str, fmt: str | None) -> pd.DataFrame:
    """The table at ``path``, checked to hold the model's columns with values it can score."""
    table = read_table(path, fmt)
    # refuses missing model columns (naming them) and values the model cannot score
    model.score(table.head(1000), display_name(path), unseen="floor")
    return table


def _draw(model: FlowModel, real: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` synthetic rows; for a conditional model, given conditions drawn from the
    real rows."""
    given = model.schema.given
    if not given:
        return model.sample(rows, seed)
    conditions = real[given].sample(rows, replace=True, random_state=seed)
    return model.sample(1, seed, given=conditions.reset_index(drop=True))


def _plain(value: Any) -> Any:
    """JSON's view of the figures: NaN as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value

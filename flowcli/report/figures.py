"""The report's numbers, under names scripts can rely on.

Top level: ``shapes`` and ``pairs`` (means of the column and pair figures of
:mod:`flowcli.quality`) and ``detection`` (the highest detection AUC), the figures the
gates of ``--fail-under`` read. Then ``columns`` (``ks_complement`` or ``tv_complement``
under each column's name, with its missing shares), ``column_pairs``, ``detection_auc`` per
classifier, ``privacy`` (``exact_copies``, ``dcr_closer_to_training_share``,
``membership_auc``) and ``rows``. Distances and classifiers see at most :data:`MOST_ROWS`
rows of each table, drawn with the seed; ``rows`` says when fewer were used.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..detection import detection_auc
from ..privacy import RowSpace, closer_to_training_share, exact_copies, membership_auc
from ..quality import column_pairs, column_shapes
from ..tabular.datetimes import parse, utc_micros

if TYPE_CHECKING:
    from ..model import FlowModel

__all__ = ["GATES", "MOST_ROWS", "figures", "missed_gates", "numeric_columns"]

MOST_ROWS = 20_000  # rows of each table the distances and classifiers see at most
GATES = {"shapes": "at least", "pairs": "at least", "detection": "at most"}


def numeric_columns(model: FlowModel) -> list[str]:
    """The model's columns compared as numbers (all but labels)."""
    return [c.name for c in model.schema.columns if c.kind not in ("categorical", "boolean")]


def as_numbers(model: FlowModel, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its datetime columns as days since 1970 (UTC): the figures and plots
    treat them as numbers."""
    dated = [c for c in model.schema.columns if c.kind == "datetime"]
    if not dated:
        return table
    out = table.copy()
    for spec in dated:
        micros = utc_micros(parse(table[spec.name], spec.name, "data", fmt=spec.format,
                                  zone=spec.zone))
        out[spec.name] = np.where(table[spec.name].isna(), np.nan, micros / 86_400e6)
    return out


def _sample(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    return table if len(table) <= MOST_ROWS else table.sample(MOST_ROWS, random_state=seed)


def figures(model: FlowModel, real: pd.DataFrame, synthetic: pd.DataFrame,
            holdout: pd.DataFrame | None, seed: int = 0) -> dict[str, Any]:
    """Every figure of the report on the model's columns of the three tables."""
    names, numeric = model.columns, numeric_columns(model)
    scored = (real[names], holdout[names] if holdout is not None else None)
    real, synthetic = as_numbers(model, real[names]), as_numbers(model, synthetic[names])
    holdout = as_numbers(model, holdout[names]) if holdout is not None else None
    shapes = column_shapes(real, synthetic, numeric)
    pairs = column_pairs(real, synthetic, numeric)
    aucs = detection_auc(_sample(real, seed), _sample(synthetic, seed), numeric, seed)
    out: dict[str, Any] = {
        "shapes": _mean(s["score"] for s in shapes.values()),
        "pairs": _mean(p["score"] for p in pairs.values()) if pairs else math.nan,
        "detection": max(aucs.values()),
        "columns": {name: {s["metric"]: s["score"],
                           "missing_real": float(real[name].isna().mean()),
                           "missing_synthetic": float(synthetic[name].isna().mean())}
                    for name, s in shapes.items()},
        "column_pairs": {f"{a}|{b}": {p["metric"]: p["score"]} for (a, b), p in pairs.items()},
        "detection_auc": aucs,
        "privacy": _privacy(model, (real, synthetic, holdout), scored, numeric, seed),
        "rows": {"real": len(real), "synthetic": len(synthetic),
                 "holdout": len(holdout) if holdout is not None else 0,
                 "most_compared": MOST_ROWS},
    }
    return out


def _privacy(model: FlowModel, tables: tuple[pd.DataFrame, pd.DataFrame, Any],
             scored: tuple[pd.DataFrame, Any], numeric: list[str], seed: int
             ) -> dict[str, Any]:
    """Copies and distances on ``tables`` (real, synthetic, holdout: as numbers), the
    membership test on ``scored`` (real and holdout as the model reads them)."""
    real, synthetic, holdout = tables
    out: dict[str, Any] = {"exact_copies": exact_copies(synthetic, real),
                           "dcr_closer_to_training_share": None, "membership_auc": None}
    if holdout is None or not len(holdout):
        return out
    space = RowSpace(real, numeric)
    out["dcr_closer_to_training_share"] = closer_to_training_share(
        space, _sample(synthetic, seed), _sample(real, seed), _sample(holdout, seed))
    out["membership_auc"] = membership_auc(
        *(model.score(_sample(t, seed), unseen="floor").to_numpy() for t in scored))
    return out


def _mean(values: Any) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def missed_gates(found: dict[str, Any], gates: dict[str, float]) -> list[str]:
    """The gates a figure misses, as lines: ``shapes`` and ``pairs`` must reach their limit,
    ``detection`` (an AUC) must not pass it."""
    missed = []
    for name, limit in gates.items():
        value = found[name]
        bad = value > limit if GATES[name] == "at most" else value < limit
        if bad or math.isnan(value):
            missed.append(f"{name} {value:.3f}, {GATES[name]} {limit:g} wanted")
    return missed

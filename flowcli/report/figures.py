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
from ..tabular.dateparts import DAY, seconds

if TYPE_CHECKING:
    from ..model import FlowModel

__all__ = ["GATES", "MOST_ROWS", "figures", "missed_gates", "numeric_columns", "sample_rows"]

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
        out[spec.name] = seconds(table[spec.name], spec, "data") / DAY
    return out


def sample_rows(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The rows of ``table`` that distances, classifiers and the membership test see: all,
    or :data:`MOST_ROWS` drawn with ``seed`` (the same rows for a table of the same
    length)."""
    return table if len(table) <= MOST_ROWS else table.sample(MOST_ROWS, random_state=seed)


def figures(model: FlowModel, real: pd.DataFrame, synthetic: pd.DataFrame,
            holdout: pd.DataFrame | None, scores: tuple[pd.Series, pd.Series | None],
            seed: int = 0) -> dict[str, Any]:
    """Every figure of the report on the model's columns of the three tables, given with
    datetimes as numbers (:func:`as_numbers`), and the model's ``scores`` of the real rows
    and of the holdout's :func:`sample_rows` (or more), aligned to them."""
    names, numeric = model.columns, numeric_columns(model)
    real, synthetic = real[names], synthetic[names]
    holdout = holdout[names] if holdout is not None else None
    few = (sample_rows(real, seed), sample_rows(synthetic, seed),
           sample_rows(holdout, seed) if holdout is not None else None)
    shapes = column_shapes(real, synthetic, numeric)
    pairs = column_pairs(real, synthetic, numeric)
    aucs = detection_auc(few[0], few[1], numeric, seed)
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
        "privacy": _privacy((real, synthetic), few, scores, numeric),
        "rows": {"real": len(real), "synthetic": len(synthetic),
                 "holdout": len(holdout) if holdout is not None else 0,
                 "most_compared": MOST_ROWS},
    }
    return out


def _privacy(tables: tuple[pd.DataFrame, pd.DataFrame],
             few: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None],
             scores: tuple[pd.Series, Any], numeric: list[str]) -> dict[str, Any]:
    """Copies on the real and synthetic ``tables``; distances on the ``few`` rows sampled
    from them and the holdout, and the membership test on the model's ``scores`` of the
    same real and holdout rows."""
    real, synthetic = tables
    out: dict[str, Any] = {"exact_copies": exact_copies(synthetic, real),
                           "dcr_closer_to_training_share": None, "membership_auc": None}
    few_real, few_synthetic, few_holdout = few
    if few_holdout is None or not len(few_holdout):
        return out
    space = RowSpace(real, numeric)
    out["dcr_closer_to_training_share"] = closer_to_training_share(
        space, few_synthetic, few_real, few_holdout)
    out["membership_auc"] = membership_auc(
        *(s.loc[t.index].to_numpy() for t, s in zip((few_real, few_holdout), scores,
                                                    strict=True)))
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

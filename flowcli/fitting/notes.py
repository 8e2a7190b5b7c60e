"""Notes on a finished fit that are not errors: the columns a continuous density fits poorly,
and a kept run that reached its epoch limit while still gaining, whose scores then depend on
that limit rather than on the data alone."""

from __future__ import annotations

import math
from typing import Any

from ..tabular import Schema
from ..tabular.schema import Notice
from ..training import StopReason

__all__ = ["fit_notes"]


def fit_notes(schema: Schema, training: dict[str, Any], min_gain: float) -> list[Notice]:
    """What ``fit`` should tell a user about the model it kept: the schema's column notes,
    then a note when the kept run stopped at its epoch limit having gained more than
    ``min_gain`` nats per row on the validation rows over the last half of its epochs
    (the gain that ends a run early, ``--min-gain``)."""
    cut_off = _cut_off(training, min_gain)
    return schema.warnings(training["rows"]) + ([cut_off] if cut_off else [])


def _cut_off(training: dict[str, Any], min_gain: float) -> Notice | None:
    """The note on a kept run that the epoch limit ended while it still gained."""
    if training.get("stopped") != StopReason.EPOCHS.value:
        return None
    scores = [e["val_ll"] for e in training.get("history", []) if math.isfinite(e["val_ll"])]
    half = len(scores) // 2
    if half == 0:
        return None
    gain = max(scores) - max(scores[:half])
    if gain <= min_gain:
        return None
    epochs = int(training.get("epochs") or len(scores))
    return Notice(f"the kept flow reached its limit of {epochs:,} epochs still gaining "
                  f"{gain:.3g} nats per row on the validation rows over its last "
                  f"{len(scores) - half:,}, so its scores depend on that limit (values that "
                  f"repeat across rows can keep a density sharpening on them for as long as "
                  f"it trains)")

"""Notes on a finished fit that are not errors: the columns a continuous density fits poorly,
and a kept run that reached its epoch limit while still gaining, whose scores then depend on
that limit rather than on the data alone."""

from __future__ import annotations

import math
from itertools import accumulate
from typing import Any

from ..errors import Advice
from ..tabular import Schema
from ..tabular.schema import Notice
from ..training import StopReason, TrainConfig

__all__ = ["fit_notes"]


def fit_notes(schema: Schema, training: dict[str, Any], min_gain: float) -> list[Notice]:
    """What ``fit`` tells a user about the model it kept: the schema's column notes, then
    a note when the kept run stopped at its epoch limit while the diminishing-gains rule
    (``min_gain``, from ``TrainConfig.min_epochs`` epochs on) would have let it go on."""
    cut_off = _cut_off(training, min_gain)
    return schema.warnings(training["rows"]) + ([cut_off] if cut_off else [])


def _cut_off(training: dict[str, Any], min_gain: float) -> Notice | None:
    """The note on a kept run that the epoch limit ended while it still gained. Rows held
    out for validation are needed: without them every run ends at its limit."""
    if training.get("stopped") != StopReason.EPOCHS.value or min_gain <= 0 \
            or training.get("held_out") == "training":
        return None
    gain, half = _last_half_gain(training.get("history", []))
    if half is None or not math.isfinite(gain) or gain < min_gain:
        return None
    return Notice(f"the kept flow stopped at its limit of {training['epochs']:,} epochs while "
                  f"still gaining {gain:,.3f} nats per row on the validation rows over its "
                  f"last {half:,} epochs: its scores depend on that limit", None,
                  Advice("epochs", verb="set", also=("max_time",),
                         purpose="to choose how long it trains"))


def _last_half_gain(history: list[dict[str, Any]]) -> tuple[float, int | None]:
    """How much the best validation score rose over the last half of the epochs, as the
    diminishing-gains rule measures it (a non-finite epoch counts as no score), and how
    many epochs that half is; no half under ``TrainConfig.min_epochs`` epochs."""
    scores = [e["val_ll"] if math.isfinite(e["val_ll"]) else -math.inf for e in history]
    if len(scores) < TrainConfig.min_epochs:
        return 0.0, None
    best = list(accumulate(scores, max))
    half = len(best) // 2
    return best[-1] - best[len(best) - half - 1], half

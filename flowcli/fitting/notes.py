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
    (``min_gain``, :meth:`~flowcli.training.TrainConfig.last_half_gain`) would have let it
    go on."""
    cut_off = _cut_off(training, min_gain)
    return schema.warnings(training["rows"]) + ([cut_off] if cut_off else [])


def _cut_off(training: dict[str, Any], min_gain: float) -> Notice | None:
    """The note on a kept run that the epoch limit ended while it still gained. Rows held
    out for validation are needed: without them every run ends at its limit."""
    if training.get("stopped") != StopReason.EPOCHS.value \
            or training.get("held_out") == "training":
        return None
    # the best after each epoch, as the training loop tracks it (a non-finite one: no score)
    scores = [e["val_ll"] if math.isfinite(e["val_ll"]) else -math.inf
              for e in training.get("history", [])]
    bests = list(accumulate(scores, max))
    gain = TrainConfig(min_gain=min_gain).last_half_gain(bests)
    if gain is None or not math.isfinite(gain) or gain < min_gain:
        return None
    return Notice(f"the kept flow stopped at its limit of {training['epochs']:,} epochs while "
                  f"still gaining {gain:,.3f} nats per row on the validation rows over its "
                  f"last {len(bests) // 2:,} epochs: its scores depend on that limit", None,
                  Advice("epochs", verb="set", also=("max_time",),
                         purpose="to choose how long it trains"))

"""Turning a table into a fitted density, and carrying on the training of one: the columns
and their kinds, the split, the encoding, then the search over candidate flows."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from ..errors import DataError, UsageError
from ..explain import held_out_quantiles
from ..tabular import Overrides, Preprocessor, Schema
from ..training import EpochReport, StopReason, ranks
from .candidate import Candidate
from .data import Encoded, choose_columns, drop_gaps, split
from .fitconfig import FitConfig
from .search import search

__all__ = ["fit_table", "resume_training"]


def fit_table(data: pd.DataFrame, config: FitConfig, *, columns: list[str] | None,
              exclude: list[str] | None, overrides: Overrides, seed: int | None,
              device: torch.device, callback: Callable[[EpochReport], None] | None,
              source: str) -> Candidate:
    """Learn the density of ``data``: the candidate kept, with its preprocessing, density,
    training record (seed, rows, what was tried) and resume state."""
    # under torchrun every rank must split, shuffle and start alike: rank 0's seed
    seed = ranks.agree(secrets.randbelow(2**31) if seed is None else int(seed))
    columns = choose_columns(data, columns, exclude, source)
    table, dropped = drop_gaps(data, columns) if config.missing == "drop" else (data, 0)
    schema = Schema.infer(table, columns, source, overrides)
    train_df, val_df = split(table, config.val_fraction, seed, source)
    if len(train_df) < ranks.size():
        raise DataError(f"has {len(train_df)} training rows for {ranks.size()} training "
                        "processes (ranks): give more rows or fewer processes", source=source)
    config = config.sized(len(train_df))
    pre = Preprocessor.fit(schema, train_df, source)
    if ranks.size() > 1:  # one encoding for all ranks, to the last bit: rank 0's
        pre = Preprocessor.from_dict(ranks.agree(pre.to_dict()))
    training = {"seed": seed, "rows": len(table), "train_rows": len(train_df),
                "val_rows": len(val_df), "dropped_rows": dropped, "device": str(device),
                "epochs": 0, "seconds": 0.0,
                **({"ranks": ranks.size()} if ranks.size() > 1 else {})}
    encoded = Encoded.of(pre, train_df, val_df, source)
    kept = search(pre, encoded, config, training, device, callback)
    keep_cell_reference(kept, val_df, train_df)
    return kept


def resume_training(candidate: Candidate, data: pd.DataFrame, changes: dict[str, Any],
                    callback: Callable[[EpochReport], None] | None, source: str) -> None:
    """Carry on training ``candidate`` on ``data`` (the table it was fitted on: its seed
    gives the same split) where its last run stopped; ``changes`` set the fields of
    :data:`RESUMABLE` (None: unchanged)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    config = candidate.config.updated(**changes)
    resume = candidate.resume
    if resume is None or not resume.optimizer:
        raise UsageError("this model file holds no training state to resume from")
    schema = candidate.pre.schema
    schema.check_columns(data, source)
    table = data[schema.names]
    if config.missing == "drop":
        table, _ = drop_gaps(table, None)
    train_df, val_df = split(table, config.val_fraction, candidate.training["seed"], source)
    candidate.training.update(rows=len(table), train_rows=len(train_df),
                              val_rows=len(val_df), device=str(candidate.device))
    candidate.config = config
    candidate.resume = resume.with_lr(changes["lr"]) if "lr" in changes else resume
    candidate.run(Encoded.of(candidate.pre, train_df, val_df, source), callback,
                  config.max_seconds)
    keep_cell_reference(candidate, val_df, train_df)


def keep_cell_reference(kept: Candidate, held_out: pd.DataFrame, train: pd.DataFrame
                        ) -> None:
    """Keep the quantiles of held-out cells' conditionals (training cells when no row was
    held out), which give ``explain`` its percentiles. A model stopped by Ctrl-C goes
    without (it is saved as soon as it can be), and so does one interrupted here, which
    then says it was interrupted."""
    if kept.training.get("stopped") == StopReason.INTERRUPTED.value:
        return
    kept.density.eval()
    try:
        kept.training["cell_quantiles"] = held_out_quantiles(
            kept.pre, kept.density, held_out if len(held_out) else train,
            kept.training["seed"])
    except KeyboardInterrupt:
        kept.training["stopped"] = StopReason.INTERRUPTED.value


"""Turning a table into a fitted density, and carrying on the training of one: the columns
and their kinds, the split, the encoding, then the search over candidate flows."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

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
from .shares import RankShare, SharedRows, covering_schema, encode_own, shared_rows

__all__ = ["fit_table", "resume_training"]


class FitRows(NamedTuple):
    """The rows a new fit learns from: the schema, the training and validation rows that
    fit the encoding and give the model file's figures, how many rows there are in all
    (after ``dropped`` rows with gaps), and with the table in shares, the shares."""

    schema: Schema
    train: pd.DataFrame
    val: pd.DataFrame
    total: int
    dropped: int
    shared: SharedRows | None

    @property
    def counts(self) -> dict[str, int]:
        if self.shared is None:
            return {"rows": self.total, "train_rows": len(self.train),
                    "val_rows": len(self.val)}
        return {"rows": self.total, "train_rows": self.shared.train_rows,
                "val_rows": self.shared.val_rows,
                "sample_rows": len(self.train) + len(self.val)}


def fit_table(data: pd.DataFrame | RankShare, config: FitConfig, *,
              columns: list[str] | None, exclude: list[str] | None, overrides: Overrides,
              seed: int | None, device: torch.device,
              callback: Callable[[EpochReport], None] | None, source: str) -> Candidate:
    """Learn the density of ``data`` (a table, or under torchrun this rank's share of one):
    the candidate kept, with its preprocessing, density, training record (seed, rows, what
    was tried) and resume state."""
    # under torchrun every rank must split, shuffle and start alike: rank 0's seed
    seed = ranks.agree(secrets.randbelow(2**31) if seed is None else int(seed))
    columns = choose_columns(data.rows if isinstance(data, RankShare) else data, columns,
                             exclude, source)
    rows = _rows_to_fit(data, columns, config, overrides, seed, source)
    if rows.counts["train_rows"] < ranks.size():
        raise DataError(f"has {rows.counts['train_rows']} training rows for {ranks.size()} "
                        "training processes (ranks): give more rows or fewer processes",
                        source=source)
    config = config.sized(rows.counts["train_rows"])
    pre = Preprocessor.fit(rows.schema, rows.train, source)
    if ranks.size() > 1:  # one encoding for all ranks, to the last bit: rank 0's
        pre = Preprocessor.from_dict(ranks.agree(pre.to_dict()))
    training = {"seed": seed, **rows.counts, "dropped_rows": rows.dropped,
                "device": str(device), "epochs": 0, "seconds": 0.0,
                **({"ranks": ranks.size()} if ranks.size() > 1 else {})}
    encoded = _encoded(pre, rows.train, rows.val, rows.shared, source)
    kept = search(pre, encoded, config, training, device, callback)
    keep_cell_reference(kept, rows.val, rows.train)
    return kept


def _rows_to_fit(data: pd.DataFrame | RankShare, columns: list[str] | None,
                 config: FitConfig, overrides: Overrides, seed: int, source: str) -> FitRows:
    if isinstance(data, RankShare):
        shared, total, dropped = _split_share(data, columns, config, seed, source)
        schema, shared = covering_schema(shared, columns, source, overrides)
        return FitRows(schema, shared.train, shared.val, total, dropped, shared)
    table, dropped = drop_gaps(data, columns) if config.missing == "drop" else (data, 0)
    schema = Schema.infer(table, columns, source, overrides)
    return FitRows(schema, *split(table, config.val_fraction, seed, source), len(table),
                   dropped, None)


def _split_share(share: RankShare, columns: list[str] | None, config: FitConfig, seed: int,
                 source: str) -> tuple[SharedRows, int, int]:
    """A share split as :func:`shared_rows` splits it, after its gaps went when they go:
    the shared rows, the rows of all shares, and those that went."""
    if config.missing == "drop":
        share, dropped = share.without_gaps(columns)
    else:
        dropped = 0
    return shared_rows(share, config.val_fraction, seed, source), share.total, dropped


def _encoded(pre: Preprocessor, train: pd.DataFrame, val: pd.DataFrame,
             shared: SharedRows | None, source: str) -> Encoded:
    encoded = Encoded.of(pre, train, val, source)
    if shared is not None:
        encoded.own = encode_own(pre, shared, source)
    return encoded


def resume_training(candidate: Candidate, data: pd.DataFrame | RankShare,
                    changes: dict[str, Any], callback: Callable[[EpochReport], None] | None,
                    source: str) -> None:
    """Carry on training ``candidate`` on ``data`` (the table it was fitted on, or under
    torchrun this rank's share of it: its seed gives the same split) where its last run
    stopped; ``changes`` set the fields of :data:`RESUMABLE` (None: unchanged)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    config = candidate.config.updated(**changes)
    resume = candidate.resume
    if resume is None or not resume.optimizer:
        raise UsageError("this model file holds no training state to resume from")
    rows = _rows_to_resume(candidate, data, config, source)
    candidate.training.update(**rows.counts, device=str(candidate.device))
    candidate.config = config
    candidate.resume = resume.with_lr(changes["lr"]) if "lr" in changes else resume
    candidate.run(_encoded(candidate.pre, rows.train, rows.val, rows.shared, source),
                  callback, config.max_seconds)
    keep_cell_reference(candidate, rows.val, rows.train)


def _rows_to_resume(candidate: Candidate, data: pd.DataFrame | RankShare, config: FitConfig,
                    source: str) -> FitRows:
    schema, seed = candidate.pre.schema, candidate.training["seed"]
    frame = data.rows if isinstance(data, RankShare) else data
    _check_same_shares(candidate.training, isinstance(data, RankShare))
    schema.check_columns(frame, source)
    if isinstance(data, RankShare):
        shared, total, dropped = _split_share(replace(data, rows=frame[schema.names]), None,
                                              config, seed, source)
        return FitRows(schema, shared.train, shared.val, total, dropped, shared)
    table, dropped = (drop_gaps(frame[schema.names], None) if config.missing == "drop"
                      else (frame[schema.names], 0))
    return FitRows(schema, *split(table, config.val_fraction, seed, source), len(table),
                   dropped, None)


def _check_same_shares(training: dict[str, Any], in_shares: bool) -> None:
    """A resumed run must split the rows as the first did: a fit in shares splits each
    rank's own rows, so it resumes only in shares of as many ranks, and a fit of the whole
    table only on the whole table (its validation rows would otherwise be trained on)."""
    was = "sample_rows" in training
    ranks_then = training.get("ranks", 1)
    if was != in_shares or (in_shares and ranks_then != ranks.size()):
        how = (f"in shares by {ranks_then} training processes" if was
               else "on the whole table")
        now = f"in shares by {ranks.size()} processes" if in_shares else "on the whole table"
        raise UsageError(f"this model was fitted {how} and cannot carry on {now}: resume it "
                         "as it was fitted (the same number of processes and --shared-rows)")


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


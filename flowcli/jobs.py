"""What ``score``, ``invert`` and ``sample`` make of a model, as small frozen records that any
process can run: the command line in its own process, or Dask workers partition by partition.

A job holds only plain fields (no model, no open file), so it pickles to a worker unchanged;
:meth:`tables` takes the model and a stream of chunks and yields the output tables, exactly
as a run in one process would. A partitioned ``sample`` draws partition ``i`` with a seed
derived from the run's seed and ``i`` alone, so its rows do not depend on how many workers
share the partitions. :class:`Totals` says what a run (or one task) read and wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .config import DEFAULT_UNSEEN
from .errors import FlowcliError

if TYPE_CHECKING:
    from .model import FlowModel

__all__ = ["GivenJob", "InvertJob", "Job", "SampleJob", "ScoreJob", "Totals", "flagged_rows",
           "partition_seed"]


@dataclass(frozen=True)
class ScoreJob:
    """Score rows: ``log_prob``, then ``percentile``, ``anomaly`` (below the held-out
    ``threshold`` quantile) and the ``explain`` columns of anomalies, as asked."""

    percentile: bool = False
    threshold: float | None = None
    only_score: bool = False
    explain: bool = False
    unseen: str = DEFAULT_UNSEEN

    def columns(self, model: FlowModel) -> list[str] | None:
        """The input columns the job reads: only the model's when no input passes through."""
        return model.columns if self.only_score else None

    def tables(self, model: FlowModel, chunks: Iterable[pd.DataFrame],
               source: str = "data") -> Iterator[pd.DataFrame]:
        cutoff = model.threshold(self.threshold) if self.threshold is not None else None
        for chunk, scores in model.score_batches(chunks, source, self.unseen):
            yield model.scored_table(chunk, scores, percentile=self.percentile, cutoff=cutoff,
                                     only_score=self.only_score, explain=self.explain,
                                     unseen=self.unseen)


def flagged_rows(table: pd.DataFrame) -> int:
    """How many rows of a score job's output table are flagged as anomalies."""
    return int(table["anomaly"].sum()) if "anomaly" in table.columns else 0


@dataclass(frozen=True)
class InvertJob:
    """Map rows to latent coordinates (or latent rows back to table rows, ``to_data``)."""

    to_data: bool = False

    def columns(self, model: FlowModel) -> list[str] | None:
        return None

    def tables(self, model: FlowModel, chunks: Iterable[pd.DataFrame],
               source: str = "data") -> Iterator[pd.DataFrame]:
        return model.invert_batches(chunks, self.to_data, source)


@dataclass(frozen=True)
class SampleJob:
    """Draw ``rows`` rows in partitions of ``partition_rows``, partition ``i`` from the seed
    :func:`partition_seed` ``(seed, i)``; for a conditional model, every row given the
    ``given`` condition (``(column, value)`` pairs; a value may be text, read as the
    column's type)."""

    rows: int
    seed: int
    partition_rows: int
    given: tuple[tuple[str, Any], ...] = ()
    unseen: str = DEFAULT_UNSEEN

    @property
    def partitions(self) -> int:
        return max(1, -(-self.rows // self.partition_rows))

    def partition_size(self, index: int) -> int:
        return min(self.partition_rows, self.rows - index * self.partition_rows)

    def table(self, model: FlowModel, index: int) -> pd.DataFrame:
        """Partition ``index``'s rows."""
        size, seed = max(0, self.partition_size(index)), partition_seed(self.seed, index)
        if not self.given:
            return next(model.sample_batches(size, seed, max(size, 1)))
        condition = model.condition_table(dict(self.given), "--given")
        drawn = model.sample_given_batches([condition], max(size, 1), seed, "--given",
                                           self.unseen, max(size, 1))
        return next(drawn) if size else next(drawn).iloc[:0]  # no rows: still the columns


@dataclass(frozen=True)
class GivenJob:
    """For a conditional model: ``per_row`` rows drawn for each input row (its condition
    columns), the rows of input piece ``piece`` from the seed :func:`partition_seed`
    ``(seed, piece)``, so they do not depend on which worker draws them."""

    per_row: int
    seed: int
    unseen: str = DEFAULT_UNSEEN
    piece: int = 0

    def for_piece(self, index: int) -> GivenJob:
        return replace(self, piece=index)

    def columns(self, model: FlowModel) -> list[str] | None:
        """Only the condition columns: nothing else of the input is used."""
        return list(model.schema.given)

    def tables(self, model: FlowModel, chunks: Iterable[pd.DataFrame],
               source: str = "data") -> Iterator[pd.DataFrame]:
        return model.sample_given_batches(chunks, self.per_row,
                                          partition_seed(self.seed, self.piece), source,
                                          self.unseen)


def partition_seed(seed: int, index: int) -> int:
    """The seed of partition ``index`` of a run seeded with ``seed``: independent streams
    for different partitions, the same stream for the same pair."""
    state = np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0]
    return int(state) & (2**63 - 1)


Job = ScoreJob | InvertJob | SampleJob | GivenJob  # what a run does with each piece


@dataclass(frozen=True)
class Totals:
    """What a task (or a run) wrote: rows read, rows written, rows flagged as anomalies;
    for one task also its table (when it comes back), its error and its warnings."""

    read: int = 0
    written: int = 0
    flagged: int = 0
    table: pd.DataFrame | None = None
    error: FlowcliError | None = None
    notes: tuple[tuple[type[Warning], str], ...] = ()  # warnings, as (category, message)

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.read + other.read, self.written + other.written,
                      self.flagged + other.flagged)

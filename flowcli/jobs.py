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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .config import DEFAULT_UNSEEN
from .errors import FlowcliError

if TYPE_CHECKING:
    from .model import FlowModel

__all__ = ["InvertJob", "SampleJob", "ScoreJob", "Totals", "flagged_rows",
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
    :func:`partition_seed` ``(seed, i)``."""

    rows: int
    seed: int
    partition_rows: int

    @property
    def partitions(self) -> int:
        return max(1, -(-self.rows // self.partition_rows))

    def partition_size(self, index: int) -> int:
        return min(self.partition_rows, self.rows - index * self.partition_rows)

    def table(self, model: FlowModel, index: int) -> pd.DataFrame:
        """Partition ``index``'s rows."""
        size = max(0, self.partition_size(index))
        return next(model.sample_batches(size, partition_seed(self.seed, index), max(size, 1)))


def partition_seed(seed: int, index: int) -> int:
    """The seed of partition ``index`` of a run seeded with ``seed``: independent streams
    for different partitions, the same stream for the same pair."""
    state = np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0]
    return int(state) & (2**63 - 1)


@dataclass(frozen=True)
class Totals:
    """What a task (or a run) wrote: rows read, rows written, rows flagged as anomalies."""

    read: int = 0
    written: int = 0
    flagged: int = 0
    table: pd.DataFrame | None = None
    error: FlowcliError | None = None

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.read + other.read, self.written + other.written,
                      self.flagged + other.flagged)

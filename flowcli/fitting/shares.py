"""Under torchrun, a table too large to copy to every rank: each rank reads its own range of
the rows and trains on it, and every rank holds the same uniform sample of all the ranks'
rows, from which the columns' kinds, the encoding and the figures a model file keeps (the
encoding's shift, held-out score quantiles, the mixture base's start) are worked out.

A sample can miss what only a few rows hold: a rare label, a gap, a value below an inferred
bound or off an inferred grid. So after the schema is inferred from the sample, every rank
encodes its own rows, the rows that do not encode are added to the sample, and the schema is
inferred again, until every row of every rank encodes: the schema is then the one the whole
table gives wherever a single row can change it.

One process, or a table of no more rows than the sample, never comes here: every rank then
holds the whole table, and training is that of one process (:mod:`flowcli.training.ranks`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..config import CHUNK_ROWS
from ..errors import DataError
from ..rowgroups import RowGroups
from ..tabular import Overrides, Preprocessor, Schema
from ..training import ranks
from .data import OwnRows, drop_gaps, split

__all__ = ["SAMPLE_ROWS", "RankShare", "SharedRows", "covering_schema", "encode_own",
           "read_share", "shared_rows"]

SAMPLE_ROWS = 100_000  # rows every rank holds, by default, of a table read in shares
MISFITS = 64  # rows that do not encode a rank adds to the sample in one round
ROUNDS = 8  # rounds of adding them before giving up


@dataclass(frozen=True)
class RankShare:
    """This rank's rows of a table read in shares, indexed by their places in the table, of
    ``total`` in all; ``sample_rows``: how many rows of all the shares every rank holds."""

    rows: pd.DataFrame
    total: int
    sample_rows: int = SAMPLE_ROWS

    def without_gaps(self, columns: list[str] | None) -> tuple[RankShare, int]:
        """The share without rows that have a gap in a modelled column, and how many rows
        went from all the shares."""
        rows, dropped = drop_gaps(self.rows, columns, keep_index=True)
        went = int(ranks.sum_over_ranks(dropped)[0])
        return replace(self, rows=rows, total=self.total - went), went


def read_share(path: str, columns: list[str] | None, sample_rows: int = SAMPLE_ROWS
               ) -> RankShare | None:
    """This rank's even share of the rows of the Parquet table or dataset at ``path``,
    reading only the row groups that hold them; None when the table has no more than
    ``sample_rows`` rows, which every rank then reads whole."""
    groups = RowGroups(path)
    total = groups.rows
    if total <= sample_rows:
        return None
    lo, hi = total * ranks.rank() // ranks.size(), total * (ranks.rank() + 1) // ranks.size()
    rows = groups.read(lo, hi, columns)
    rows.index = pd.RangeIndex(lo, hi)  # each row's place in the table, for messages
    return RankShare(rows, total, sample_rows)


@dataclass(frozen=True)
class SharedRows:
    """A share split into training and validation rows, and the same uniform sample of all
    ranks' training and validation rows on every rank (``train``, ``val``).

    ``own`` is this rank's rows in table order, ``own_train_at`` and
    ``own_val_at`` the places of its training and validation rows there; ``train_rows`` and
    ``val_rows`` count all ranks' rows."""

    train: pd.DataFrame
    val: pd.DataFrame
    own: pd.DataFrame
    own_train_at: np.ndarray
    own_val_at: np.ndarray
    train_rows: int
    val_rows: int


def shared_rows(share: RankShare, val_fraction: float, seed: int, source: str) -> SharedRows:
    """Each rank holds out ``val_fraction`` of its own rows (its split seeded by ``seed``
    and its rank); the sample takes from every rank in proportion to its rows."""
    places = pd.DataFrame(index=pd.RangeIndex(len(share.rows)))  # split places, not rows
    train_at, val_at = (part.index.to_numpy() for part in
                        split(places, val_fraction, seed + ranks.rank(), source))
    train_rows, val_rows = (int(c) for c in ranks.sum_over_ranks(len(train_at), len(val_at)))
    keep = share.sample_rows / max(train_rows + val_rows, 1)
    rng = np.random.default_rng([seed, ranks.rank()])
    picked = [share.rows.iloc[np.sort(rng.choice(at, min(round(keep * len(at)), len(at)),
                                                 replace=False))]
              for at in (train_at, val_at)]
    train, val = (pd.concat(frames) for frames in zip(*ranks.gather(picked), strict=True))
    return SharedRows(train, val, share.rows, train_at, val_at, train_rows, val_rows)


def covering_schema(rows: SharedRows, columns: list[str] | None, source: str,
                    overrides: Overrides) -> tuple[Schema, SharedRows]:
    """The schema of the sample once every rank's rows encode under it, and the sample with
    the rows it took to get there (see the module's docstring). The rows holding each
    column's least and greatest value join the sample first, so the ranges the schema keeps
    (what samples are clipped to, what a condition is checked against) are the table's."""
    rows = _joined(rows, pd.concat(ranks.gather(_extremes(rows.own))))
    for _ in range(ROUNDS):
        table = pd.concat([rows.train, rows.val])
        with _in_table_rows(table):
            schema = Schema.infer(table, columns, source, overrides)
        with _in_table_rows(rows.train):
            pre = Preprocessor.fit(schema, rows.train, source)
        misfits = pd.concat(ranks.gather(_misfits(pre, rows.own, source)))
        if not len(misfits):
            return schema, rows
        rows = _joined(rows, misfits)
    raise DataError(f"the sample of {len(rows.train) + len(rows.val):,} rows that every "
                    f"training process holds still misses values that some rows hold after "
                    f"{ROUNDS} rounds; give a larger --shared-rows", source=source)


def _joined(rows: SharedRows, more: pd.DataFrame) -> SharedRows:
    """``rows`` with ``more`` rows in its training sample, those it does not hold already.
    The sample's index is each row's place in the table."""
    held = rows.train.index.union(rows.val.index)
    more = more[~more.index.isin(held) & ~more.index.duplicated()]
    return replace(rows, train=pd.concat([rows.train, more]))


@contextlib.contextmanager
def _in_table_rows(sample: pd.DataFrame) -> Iterator[None]:
    """Around work on ``sample``, whose errors name a row by its place in the sample: they
    name it by its place in the table instead."""
    try:
        yield
    except DataError as exc:
        if exc.row is None or not 0 < exc.row <= len(sample):
            raise
        raise exc.at_row(int(sample.index[exc.row - 1]) + 1) from None


def _extremes(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` that hold a least or greatest value of a column of numbers or
    instants."""
    places: set[int] = set()
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind in "iufmM" and column.notna().any():  # gaps are skipped
            places.update((int(column.argmin()), int(column.argmax())))
    return frame.iloc[sorted(places)]


def _misfits(pre: Preprocessor, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Up to :data:`MISFITS` rows of ``frame`` that ``pre`` cannot encode."""
    found: list[int] = []
    start = 0
    while start < len(frame) and len(found) < MISFITS:
        chunk = frame.iloc[start:start + CHUNK_ROWS]
        try:
            pre.encode(chunk, source, row_offset=start)
        except DataError as exc:
            if exc.row is None:  # not a row's value: the table itself is wrong
                raise
            found.append(exc.row - 1)
            start = exc.row
            continue
        start += len(chunk)
    return frame.iloc[found]


def encode_own(pre: Preprocessor, rows: SharedRows, source: str) -> OwnRows:
    """This rank's own training rows (at their integer cells' lower corners, as training
    takes them) and validation rows, encoded, with the shifts of all ranks' rows. All rows
    are encoded in table order first, so a value that does not encode is named by its row in
    the table."""
    with _in_table_rows(rows.own):
        corners, log_dets = pre.encode(rows.own, source, position=0.0)
    x_val, val_log_dets = pre.encode(rows.own.iloc[rows.own_val_at], source)
    train_log_dets = log_dets[rows.own_train_at]
    train_sum, trains, val_sum, vals = ranks.sum_over_ranks(
        train_log_dets.sum(), len(train_log_dets), val_log_dets.sum(), len(val_log_dets))
    shift_train = train_sum / max(trains, 1)
    return OwnRows(corners[rows.own_train_at], x_val, shift_train,
                   val_sum / vals if vals else shift_train)

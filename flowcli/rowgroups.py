"""A range of the rows of a Parquet table or dataset, read by its row groups alone.

Parquet metadata says how many rows each row group of each file holds, so the rows ``lo ..
hi - 1`` of a table (in the order reading it whole gives: files in name order, row groups in
file order) can be read without touching the others. Under torchrun each rank reads its own
range of a table too large to copy to every rank this way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DataError
from .partitions import dataset_parts, is_dataset, not_parquet, with_keys

__all__ = ["RowGroups"]


@dataclass(frozen=True)
class _Group:
    """One row group: its file, its number there, its rows, and the file's hive keys."""

    path: Path
    index: int
    rows: int
    keys: dict[str, object] = field(default_factory=dict)


def _groups(path: str | os.PathLike[str]) -> list[_Group]:
    files = ([(p.path, p.keys) for p in dataset_parts(path)] if is_dataset(path)
             else [(Path(path), {})])
    groups = []
    for file, keys in files:
        try:
            meta = pq.ParquetFile(file).metadata
        except (pa.ArrowException, OSError) as exc:
            raise not_parquet(file, exc) from None
        groups += [_Group(file, i, meta.row_group(i).num_rows, keys)
                   for i in range(meta.num_row_groups)]
    return groups


class RowGroups:
    """The row groups of the Parquet table or dataset at ``path``, from its metadata (each
    file's footer read once)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.groups = _groups(path)

    @property
    def rows(self) -> int:
        return sum(group.rows for group in self.groups)

    def read(self, lo: int, hi: int, columns: list[str] | None = None) -> pd.DataFrame:
        """Rows ``lo`` to ``hi - 1`` (only ``columns``, when given), reading only the row
        groups that hold them."""
        frames, start = [], 0
        for group in self.groups:
            end = start + group.rows
            if group.rows and end > lo and start < hi:
                frames.append(_read_group(group, columns).iloc[max(lo - start, 0):hi - start])
            start = end
        if not frames:
            raise DataError(f"holds no rows {lo + 1:,} to {hi:,}", source=str(self.path))
        return pd.concat(frames, ignore_index=True)


def _read_group(group: _Group, columns: list[str] | None) -> pd.DataFrame:
    try:
        pf = pq.ParquetFile(group.path)
        names = pf.schema_arrow.names
        in_file = None if columns is None else [c for c in columns if c in names]
        frame = pf.read_row_group(group.index, columns=in_file).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise not_parquet(group.path, exc) from None
    return with_keys(frame, group.keys, columns)

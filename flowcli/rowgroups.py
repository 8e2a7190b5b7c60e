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


def _groups(path: str | os.PathLike[str]) -> tuple[list[_Group], dict[Path, pq.FileMetaData]]:
    files = ([(p.path, p.keys) for p in dataset_parts(path)] if is_dataset(path)
             else [(Path(path), {})])
    groups, footers = [], {}
    for file, keys in files:
        try:
            footers[file] = meta = pq.ParquetFile(file).metadata
        except (pa.ArrowException, OSError) as exc:
            raise not_parquet(file, exc) from None
        groups += [_Group(file, i, meta.row_group(i).num_rows, keys)
                   for i in range(meta.num_row_groups)]
    return groups, footers


class RowGroups:
    """The row groups of the Parquet table or dataset at ``path``, from its metadata (each
    file's footer read once, and kept: a footer lists every row group, so parsing it again
    for each group read made reading a range of many groups take time in their square)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.groups, self._footers = _groups(path)

    @property
    def rows(self) -> int:
        return sum(group.rows for group in self.groups)

    def read(self, lo: int, hi: int, columns: list[str] | None = None) -> pd.DataFrame:
        """Rows ``lo`` to ``hi - 1`` (only ``columns``, when given), reading only the row
        groups that hold them, a file's in one read."""
        frames = [_read_groups(self._open(path), picked, columns).iloc[
                      max(lo - start, 0):hi - start]
                  for path, start, picked in self._picked(lo, hi)]
        if not frames:
            raise DataError(f"holds no rows {lo + 1:,} to {hi:,}", source=str(self.path))
        return pd.concat(frames, ignore_index=True)

    def _picked(self, lo: int, hi: int) -> list[tuple[Path, int, list[_Group]]]:
        """For each file with rows ``lo`` to ``hi - 1``: its groups that hold them (one run
        of groups, the range being one run of rows) and the row the first one starts at."""
        picked: list[tuple[Path, int, list[_Group]]] = []
        start = 0
        for group in self.groups:
            end = start + group.rows
            if group.rows and end > lo and start < hi:
                if picked and picked[-1][0] == group.path:
                    picked[-1][2].append(group)
                else:
                    picked.append((group.path, start, [group]))
            start = end
        return picked

    def _open(self, path: Path) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(path, metadata=self._footers[path])
        except (pa.ArrowException, OSError) as exc:
            raise not_parquet(path, exc) from None


def _read_groups(pf: pq.ParquetFile, groups: list[_Group], columns: list[str] | None
                 ) -> pd.DataFrame:
    """The rows of ``groups``, all of the file ``pf``, as one frame."""
    try:
        names = pf.schema_arrow.names
        in_file = None if columns is None else [c for c in columns if c in names]
        frame = pf.read_row_groups([g.index for g in groups], columns=in_file).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise not_parquet(groups[0].path, exc) from None
    return with_keys(frame, groups[0].keys, columns)

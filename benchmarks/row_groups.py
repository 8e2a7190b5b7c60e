"""Reading a range of a Parquet file's rows by its row groups, as each rank does under torchrun.

Usage (from the repository root)::

    python benchmarks/row_groups.py [--rows 2000000] [--group-rows 1000] [--columns 20]

Writes a file of ``--rows`` rows of ``--columns`` float columns in row groups of
``--group-rows`` rows, then times reading its first half three ways, taking turns, medians of
``--rounds``: ``flowcli.rowgroups.RowGroups(path).read(0, rows // 2)`` (the footer read once
when listing the groups, included), pyarrow reading the same row groups from one open file
(``ParquetFile.read_row_groups``, then ``to_pandas``), and pyarrow reading the whole file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _timed(read: Callable[[], Any]) -> float:
    start = time.perf_counter()
    read()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--group-rows", type=int, default=1000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from flowcli.rowgroups import RowGroups

    values = np.random.default_rng(0).normal(size=(args.rows, args.columns))
    table = pa.Table.from_pandas(pd.DataFrame(values).rename(columns=str), preserve_index=False)
    half = args.rows // 2
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.parquet"
        pq.write_table(table, path, row_group_size=args.group_rows)
        footer = pq.ParquetFile(path).metadata
        groups, footer_mb = footer.num_row_groups, footer.serialized_size / 1e6
        wanted = list(range(-(-half // args.group_rows)))
        reads = {
            "flowcli RowGroups.read": lambda: RowGroups(path).read(0, half),
            "pyarrow read_row_groups": lambda: pq.ParquetFile(path).read_row_groups(
                wanted).to_pandas().iloc[:half],
            "pyarrow whole file": lambda: pq.read_table(path).to_pandas(),
        }
        seconds: dict[str, list[float]] = {name: [] for name in reads}
        for _ in range(args.rounds):
            for name, read in reads.items():
                seconds[name].append(_timed(read))
    print(f"{args.rows:,} rows x {args.columns} in {groups:,} row groups (a {footer_mb:.1f} MB "
          f"footer); reading the first {half:,} rows (medians of {args.rounds}):")
    base = statistics.median(seconds["pyarrow read_row_groups"])
    for name, times in seconds.items():
        median = statistics.median(times)
        print(f"  {name:26s} {median:7.2f} s  {median / base:5.2f}x read_row_groups")


if __name__ == "__main__":
    main()

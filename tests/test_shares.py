"""A table read in shares (under torchrun, one per rank): row ranges read by row groups, and a
schema from a sample that every row of every share still encodes under. In one process the
collectives are the identity, so the rules are tested here; tests/test_ddp.py runs them on
two ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowcli import rowgroups
from flowcli.errors import DataError
from flowcli.fitting import shares
from flowcli.io import read_table
from flowcli.tabular import Overrides


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Three files under hive folders, of 700, 0 and 1,100 rows, in row groups of 250."""
    rng = np.random.default_rng(0)
    for i, n in enumerate((700, 0, 1100)):
        part = tmp_path / "data" / f"day={i}" / "p.parquet"
        part.parent.mkdir(parents=True)
        pd.DataFrame({"a": rng.normal(size=n), "k": rng.choice(["x", "y"], n)}).to_parquet(
            part, index=False, row_group_size=250)
    return tmp_path / "data"


@pytest.mark.parametrize(("lo", "hi"), [(0, 1800), (0, 1), (249, 251), (650, 760), (1799, 1800)])
def test_a_row_range_is_the_rows_of_the_whole_table(dataset, lo, hi, monkeypatch) -> None:
    read = []
    real = rowgroups._read_groups

    def counted(pf, picked, columns):
        read.extend(picked)
        return real(pf, picked, columns)

    monkeypatch.setattr(rowgroups, "_read_groups", counted)
    groups = rowgroups.RowGroups(dataset)
    opened, open_file = [], rowgroups.pq.ParquetFile
    monkeypatch.setattr(rowgroups.pq, "ParquetFile", lambda path, **kw: opened.append(
        (path, kw.get("metadata") is not None)) or open_file(path, **kw))
    got = groups.read(lo, hi, ["a", "k", "day"])
    # each file opened once, on the footer read when the groups were listed: a footer lists
    # every row group, and parsing it again per group made a range's read quadratic
    assert sorted(opened) == sorted({(g.path, True) for g in read})
    monkeypatch.undo()
    want = read_table(dataset, columns=["a", "k", "day"]).iloc[lo:hi].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert groups.rows == 1800
    # only the row groups holding the rows: 250 rows each, 3 in the first file
    starts = [0, 250, 500, 700, 950, 1200, 1450, 1700]
    ends = [*starts[1:], 1800]
    wanted = sum(1 for s, e in zip(starts, ends, strict=True) if e > lo and s < hi)
    assert len(read) == wanted


def _share(df: pd.DataFrame, sample_rows: int) -> shares.SharedRows:
    share = shares.RankShare(df, len(df), sample_rows)
    return shares.shared_rows(share, 0.1, seed=3, source="t")


def _rare_table(n: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": np.exp(rng.normal(size=n)), "k": rng.choice(["x", "y"], n)})
    df.loc[[10, 20, 30], "k"] = ["p", "q", "r"]  # labels of one row each
    df.loc[40, "a"] = -1.0  # the one value that is not positive
    return df


def test_the_schema_covers_rows_the_sample_missed() -> None:
    rows = _share(_rare_table(), sample_rows=200)
    assert len(rows.train) + len(rows.val) == 200
    assert rows.train_rows + rows.val_rows == 5000
    schema, covered = shares.covering_schema(rows, None, "t", Overrides())
    specs = {spec.name: spec for spec in schema.columns}
    assert {"p", "q", "r"} <= set(specs["k"].categories)
    assert specs["a"].kind == "continuous" and specs["a"].min == -1.0
    assert len(covered.train) > len(rows.train)


def test_a_sample_that_cannot_catch_up_is_one_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(shares, "MISFITS", 1)
    monkeypatch.setattr(shares, "ROUNDS", 2)  # three rare labels need three rounds
    with pytest.raises(DataError, match="give a larger --shared-rows"):
        shares.covering_schema(_share(_rare_table(), 200), ["k"], "t", Overrides())


def test_shares_split_and_sample_alike_for_a_seed() -> None:
    df = _rare_table()
    one, two = _share(df, 300), _share(df, 300)
    pd.testing.assert_frame_equal(one.train, two.train)
    assert np.array_equal(one.own_val_at, two.own_val_at)
    assert not set(one.own_val_at) & set(one.own_train_at)
    assert len(one.own_val_at) == 500


def test_an_error_in_the_sample_names_the_row_of_the_table() -> None:
    df = _rare_table()
    df.index = pd.RangeIndex(1000, 6000)  # a share starting at the table's row 1,001
    rows = _share(df, sample_rows=200)  # row 40 of the share (table row 1,041) holds -1
    with pytest.raises(DataError, match=r"declared positive but holds -1 in row 1041$"):
        shares.covering_schema(rows, None, "t", Overrides(positive={"a"}))

"""Partitioned datasets: folders and globs of Parquet files in, folders of parts out."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flowcli import FlowModel
from flowcli.cli import app
from flowcli.errors import DataError
from flowcli.partitions import dataset_parts


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _table(n: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(10.0, 2.0, n)
    return pd.DataFrame({"a": a, "b": 0.5 * a + rng.normal(0.0, 1.0, n),
                         "n": rng.poisson(4.0, n).astype("int64")})


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """Three parts under hive-style ``shop=`` folders, a ``_SUCCESS`` marker beside them, and
    the whole table (the shop as a number column) in the parts' name order."""
    df = _table()
    root = tmp_path / "data"
    pieces = {"shop=1/p0.parquet": df.iloc[:300], "shop=1/p1.parquet": df.iloc[300:500],
              "shop=2/p0.parquet": df.iloc[500:]}
    for name, piece in pieces.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        piece.to_parquet(root / name, index=False)
    (root / "_SUCCESS").write_text("")
    whole = df.assign(shop=[1] * 500 + [2] * 400)
    return root, whole


def test_a_folder_reads_as_its_parts_in_order_with_hive_keys(dataset) -> None:
    root, whole = dataset
    parts = dataset_parts(root)
    assert [str(p.relative) for p in parts] == ["shop=1/p0.parquet", "shop=1/p1.parquet",
                                                "shop=2/p0.parquet"]
    assert [p.keys for p in parts] == [{"shop": 1}, {"shop": 1}, {"shop": 2}]
    from flowcli.io import read_table

    pd.testing.assert_frame_equal(read_table(root), whole)


def test_fit_on_a_folder_is_fit_on_the_whole_table(dataset, tmp_path: Path) -> None:
    root, whole = dataset
    fast = ["--model", "maf", "--layers", "2", "--hidden", "8", "--epochs", "3", "--seed", "0",
            "-q"]
    whole.to_parquet(tmp_path / "whole.parquet", index=False)
    assert run("fit", root, "-o", tmp_path / "a.flow", *fast).exit_code == 0
    assert run("fit", tmp_path / "whole.parquet", "-o", tmp_path / "b.flow", *fast
               ).exit_code == 0
    a, b = (FlowModel.load(str(tmp_path / f"{k}.flow")) for k in "ab")
    assert a.schema.names == ["a", "b", "n", "shop"]
    np.testing.assert_array_equal(a.score(whole), b.score(whole))


@pytest.mark.parametrize("pattern", [False, True])
def test_score_writes_a_part_per_input_file(dataset, fitted_model, tmp_path: Path,
                                            pattern: bool) -> None:
    root, whole = dataset
    model, path, _ = fitted_model
    source = f"{root}/shop=*/*.parquet" if pattern else root
    result = run("score", path, source, "-o", f"{tmp_path / 'out'}/", "-q")
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path / "out").as_posix()
                     for p in (tmp_path / "out").rglob("*.parquet"))
    assert written == ["shop=1/p0.parquet", "shop=1/p1.parquet", "shop=2/p0.parquet"]
    scored = pd.concat([pd.read_parquet(tmp_path / "out" / w) for w in written],
                       ignore_index=True)
    np.testing.assert_array_equal(scored["log_prob"], model.score(whole))
    assert scored["shop"].tolist() == whole["shop"].tolist()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_dataset_can_be_written_to_one_file_and_inverted_to_a_folder(
        dataset, fitted_model, tmp_path: Path) -> None:
    root, whole = dataset
    _, path, _ = fitted_model
    assert run("score", path, root, "-o", tmp_path / "all.csv", "-q").exit_code == 0
    assert len(pd.read_csv(tmp_path / "all.csv")) == len(whole)
    assert run("invert", path, root, "-o", f"{tmp_path / 'z'}/", "-q").exit_code == 0
    assert len(list((tmp_path / "z").rglob("*.parquet"))) == 3


def test_sample_writes_a_part_per_chunk(fitted_model, tmp_path: Path) -> None:
    _, path, _ = fitted_model
    result = run("sample", path, "-n", "2500", "--seed", "4", "--batch-size", "1000", "-o",
                 f"{tmp_path / 's'}/", "-q")
    assert result.exit_code == 0, result.output
    parts = sorted((tmp_path / "s").iterdir())
    assert [p.name for p in parts] == [f"part-0000{i}.parquet" for i in range(3)]
    drawn = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    run("sample", path, "-n", "2500", "--seed", "4", "--batch-size", "1000", "-o",
        tmp_path / "one.parquet", "-q")
    pd.testing.assert_frame_equal(drawn, pd.read_parquet(tmp_path / "one.parquet"))


def _bad_dataset(root: Path, kind: str) -> None:
    if kind == "empty":
        root.mkdir()
        return
    root.mkdir()
    _table(10).to_parquet(root / "p0.parquet", index=False)
    if kind == "not parquet":
        (root / "p1.parquet").write_text("a,b\n1,2\n")
    elif kind == "other columns":
        _table(10).drop(columns="b").to_parquet(root / "p1.parquet", index=False)
    elif kind == "other types":
        _table(10).astype({"n": "float64"}).to_parquet(root / "p1.parquet", index=False)


@pytest.mark.parametrize(("kind", "message"), [
    ("empty", r"data: no files in the folder"),
    ("not parquet", r"p1.parquet: not a Parquet file"),
    ("other columns", r"p1.parquet: lacks column 'b', unlike .*p0.parquet"),
    ("other types", r"p1.parquet: column 'n' is double here and int64 in .*p0.parquet"),
])
def test_a_bad_dataset_gets_one_line_and_no_output(fitted_model, tmp_path: Path, kind: str,
                                                   message: str) -> None:
    _, path, _ = fitted_model
    _bad_dataset(tmp_path / "data", kind)
    result = run("score", path, tmp_path / "data", "-o", f"{tmp_path / 'out'}/")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert re.search(message, result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_an_existing_output_folder_is_refused(dataset, fitted_model, tmp_path: Path) -> None:
    root, _ = dataset
    _, path, _ = fitted_model
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run("score", path, root, "-o", f"{tmp_path / 'out'}/")
    assert result.exit_code == 1 and "out: already exists" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_a_part_that_fails_midway_leaves_no_folder(dataset, fitted_model, tmp_path: Path
                                                   ) -> None:
    root, _ = dataset
    _, path, _ = fitted_model
    bad = pd.read_parquet(root / "shop=2/p0.parquet")
    bad.loc[bad.index[7], "a"] = np.nan
    bad.to_parquet(root / "shop=2/p0.parquet", index=False)
    result = run("score", path, root, "-o", f"{tmp_path / 'out'}/")
    assert result.exit_code == 1
    assert "shop=2/p0.parquet: column 'a' has a missing value in row 8" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_dataset_is_read_as_parquet_only(dataset) -> None:
    root, _ = dataset
    from flowcli.io import read_table

    with pytest.raises(DataError, match="read as a dataset of Parquet files, not csv"):
        read_table(root, "csv")


@pytest.mark.parametrize("source", ["dataset", "file.parquet", "file.csv"])
def test_only_the_columns_asked_for_are_read(dataset, tmp_path: Path, source: str) -> None:
    from flowcli.io import iter_tables

    root, whole = dataset
    if source != "dataset":
        root = tmp_path / source
        (whole.to_parquet if source.endswith("parquet") else whole.to_csv)(root, index=False)
    chunks = list(iter_tables(root, batch_size=400, columns=["shop", "b", "absent"]))
    assert all(list(c.columns) == ["b", "shop"] or list(c.columns) == ["shop", "b"]
               for c in chunks)
    pd.testing.assert_series_equal(pd.concat(chunks, ignore_index=True)["b"], whole["b"])


def test_hive_keys_are_typed_once_for_all_parts(tmp_path: Path) -> None:
    for folder in ("rate=1/zip=007", "rate=1.5/zip=12"):
        (tmp_path / "d" / folder).mkdir(parents=True)
        _table(5).to_parquet(tmp_path / "d" / folder / "p.parquet", index=False)
    assert [p.keys for p in dataset_parts(tmp_path / "d")] == [
        {"rate": 1.0, "zip": "007"}, {"rate": 1.5, "zip": "12"}]


def test_a_folder_key_that_is_also_a_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d" / "a=9").mkdir(parents=True)
    _table(5).to_parquet(tmp_path / "d" / "a=9" / "p.parquet", index=False)
    with pytest.raises(DataError, match=r"p.parquet: its folder a=\.\.\. names a column"):
        dataset_parts(tmp_path / "d")


def test_a_file_named_like_a_pattern_is_one_table(tmp_path: Path) -> None:
    from flowcli.io import read_table

    _table(5).to_parquet(tmp_path / "run[1].parquet", index=False)
    assert len(read_table(tmp_path / "run[1].parquet")) == 5


def test_two_inputs_that_would_write_one_part_are_refused(fitted_model, tmp_path: Path
                                                          ) -> None:
    _, path, _ = fitted_model
    (tmp_path / "d").mkdir()
    for name in ("a.parquet", "a.pq"):
        _table(5).to_parquet(tmp_path / "d" / name, index=False)
    result = run("score", path, tmp_path / "d", "-o", f"{tmp_path / 'out'}/")
    assert result.exit_code == 1 and "would write the same part, a.parquet" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_an_output_folder_gets_the_mode_of_a_new_folder(fitted_model, tmp_path: Path) -> None:
    import os

    _, path, _ = fitted_model
    assert run("sample", path, "-n", "10", "-o", f"{tmp_path / 's'}/", "-q").exit_code == 0
    (tmp_path / "plain").mkdir()
    assert os.stat(tmp_path / "s").st_mode == os.stat(tmp_path / "plain").st_mode


def test_fit_reads_only_the_columns_it_models(tmp_path: Path, monkeypatch) -> None:
    import pyarrow.parquet as pq

    data = _table(300).assign(note=["x" * 50] * 300, id=range(300))
    data.to_parquet(tmp_path / "t.parquet", index=False)
    (tmp_path / "lake").mkdir()
    data.to_parquet(tmp_path / "lake" / "p0.parquet", index=False)
    asked: list[object] = []
    read_table, iter_batches = pq.read_table, pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq, "read_table",
                        lambda source, columns=None, **kw: asked.append(columns)
                        or read_table(source, columns=columns, **kw))
    monkeypatch.setattr(pq.ParquetFile, "iter_batches",
                        lambda self, *a, columns=None, **kw: asked.append(columns)
                        or iter_batches(self, *a, columns=columns, **kw))
    fast = ["--model", "maf", "--layers", "1", "--hidden", "8", "--epochs", "1", "-q"]
    for source, options in ((tmp_path / "t.parquet", ["--exclude", "note,id"]),
                            (tmp_path / "t.parquet", ["--columns", "a,b"]),
                            (tmp_path / "lake", ["--exclude", "note,id"]),
                            (tmp_path / "t.parquet", ["--exclude", "note,id",
                                                      "--max-rows", "100"])):
        asked.clear()
        done = run("fit", source, "-o", tmp_path / "m.flow", *options, *fast)
        assert done.exit_code == 0, done.output
        assert asked and all(c is not None and "note" not in c for c in asked), asked
        assert FlowModel.load(str(tmp_path / "m.flow")).columns == \
            (["a", "b"] if "--columns" in options else ["a", "b", "n"])
        (tmp_path / "m.flow").unlink()
    done = run("fit", tmp_path / "t.parquet", "-o", tmp_path / "m.flow", "--exclude", "nope",
               *fast)
    assert done.exit_code == 1 and "--exclude names no column 'nope'" in done.output

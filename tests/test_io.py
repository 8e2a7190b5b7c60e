from __future__ import annotations

import gzip
import os
from pathlib import Path

import pandas as pd
import pytest

from flowcli.errors import DataError, OutputError
from flowcli.io import TableWriter, detect_format, iter_tables, read_table, write_table


def cli_spelling(field: str, value: str | None) -> str:
    """Options as the command line writes them (``--format``)."""
    return f"--{field.replace('_', '-')}" + (f" {value}" if value is not None else "")


DF = pd.DataFrame({"a": [1.5, 2.5, 3.5], "n": [1, 2, 3]})


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet", "t.pq"])
def test_round_trip_by_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_table(DF, path)
    pd.testing.assert_frame_equal(read_table(path), DF)
    chunks = list(iter_tables(path, batch_size=2))
    assert [len(c) for c in chunks] == [2, 1]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), DF)


def test_gzip_output_is_really_gzip(tmp_path: Path) -> None:
    write_table(DF, tmp_path / "t.csv.gz")
    with gzip.open(tmp_path / "t.csv.gz", "rt") as handle:
        assert handle.readline().strip() == "a,n"


def test_an_output_names_the_option_that_sets_its_format() -> None:
    with pytest.raises(DataError) as info:
        detect_format("out.txt", option="output_format")
    assert info.value.render(cli_spelling).endswith("or pass --output-format")


def test_format_detection() -> None:
    assert detect_format("-") == "csv"
    assert detect_format("x.PARQUET") == "parquet"
    assert detect_format("x.txt", "csv") == "csv"
    with pytest.raises(DataError, match=r"^x.txt: cannot tell the format from the extension; "
                                        r"use .csv, .csv.gz, .parquet or .pq, or pass fmt$"
                       ) as info:
        detect_format("x.txt")
    err = info.value
    assert (err.source, err.advice.field, err.advice.value) == ("x.txt", "format", None)
    assert err.render(cli_spelling) == ("x.txt: cannot tell the format from the extension; use "
                                        ".csv, .csv.gz, .parquet or .pq, or pass --format")
    with pytest.raises(DataError, match=r"^unknown format 'xml'; use one of csv, parquet$"
                       ) as info:
        detect_format("x.csv", "xml")
    assert info.value.value == "xml"


def test_read_errors_are_one_line_and_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.parquet").write_text("not parquet at all")
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01" * 100)
    cases = {
        "empty.csv": "the file is empty",
        "bad.parquet": "not a valid Parquet file",
        "folder.csv": "no files in the folder",
        "missing.csv": "no such file",
        "binary.csv": "not a text CSV file",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=message) as info:
            list(iter_tables(tmp_path / name))
        assert str(info.value).startswith(str(tmp_path / name))
        assert info.value.source == str(tmp_path / name)
        assert "\n" not in str(info.value)


def test_header_only_yields_one_empty_frame_with_columns(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,n\n")
    chunks = list(iter_tables(tmp_path / "h.csv"))
    assert len(chunks) == 1 and len(chunks[0]) == 0 and list(chunks[0].columns) == ["a", "n"]


def test_writer_leaves_nothing_when_the_run_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old contents\n")
    with pytest.raises(RuntimeError):
        with TableWriter(target) as writer:
            writer.write(DF)
            raise RuntimeError("boom")
    assert target.read_text() == "old contents\n"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_writer_refuses_unwritable_targets(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"^.*: is a folder; give a file name$"):
        TableWriter(tmp_path)
    with pytest.raises(OutputError, match="no folder"):
        TableWriter(tmp_path / "nope" / "out.csv")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        TableWriter(tmp_path / "file" / "out.csv")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(OutputError, match="permission denied"):
            TableWriter(locked / "out.csv")
    finally:
        locked.chmod(0o700)


def test_empty_output_still_has_the_columns(tmp_path: Path) -> None:
    for name in ("e.csv", "e.parquet"):
        write_table(DF.iloc[:0], tmp_path / name)
        assert list(read_table(tmp_path / name).columns) == ["a", "n"]


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_writer_output_is_complete_when_close_returns(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    writer = TableWriter(target)
    writer.write(DF.iloc[:2])
    writer.write(DF.iloc[2:])
    assert not target.exists()
    writer.close()
    pd.testing.assert_frame_equal(read_table(target), DF)  # while ``writer`` is still alive
    assert os.listdir(tmp_path) == [name]
    assert writer.rows == len(DF)


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_writer_abort_leaves_the_old_file(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    target.write_bytes(b"old")
    writer = TableWriter(target)
    writer.write(DF)
    writer.abort()
    writer.abort()  # repeating it does no harm
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == [name]


def test_writer_to_stdout_streams_csv(capsys: pytest.CaptureFixture[str]) -> None:
    with TableWriter("-") as writer:
        writer.write(DF.iloc[:1])
        assert capsys.readouterr().out == "a,n\n1.5,1\n"
        writer.write(DF.iloc[1:])
    assert capsys.readouterr().out == "2.5,2\n3.5,3\n"

"""Hostile input: one line on stderr, a non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from flowcli.cli import app
from flowcli.modelfile import FORMAT, FORMAT_VERSION, plain


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def workdir(fitted_model, tmp_path: Path) -> Path:
    _, model, df = fitted_model
    (tmp_path / "m.flow").write_bytes(model.read_bytes())
    df.head(50).to_csv(tmp_path / "good.csv", index=False)
    files = {
        "empty.csv": "",
        "header.csv": "a,b,n\n",
        "semicolon.csv": "a;b;n\n1.0;2.0;3\n4.0;5.0;6\n",
        "text.csv": "a,b,n\n1.0,2.0,3\n1.5,hello,4\n",
        "nan.csv": "a,b,n\n1.0,2.0,3\n1.0,nan,4\n",
        "inf.csv": "a,b,n\n1.0,2.0,3\n1.0,inf,4\n",
        "constant.csv": "a,b,n\n1.5,2.0,3\n1.5,3.0,4\n1.5,4.0,5\n",
        "renamed.csv": "A,b,n\n1.0,2.0,3\n",
        "ragged.csv": "a,b,n\n1.0,2.0,3\n1.0,2.0,3,4,5\n",
        "fraction.csv": "a,b,n\n1.0,2.0,3.5\n",
        "huge.csv": "a,b,n\n1.0,2.0,3\n1.0,-1e300,4\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    big = pd.concat([df] * 3, ignore_index=True)
    big.loc[len(big) - 1, "a"] = np.nan  # a bad value far down the file
    big.to_csv(tmp_path / "late.csv", index=False)
    raw = model.read_bytes()
    (tmp_path / "truncated.flow").write_bytes(raw[: len(raw) // 2])
    damaged = bytearray(raw)
    damaged[200:400] = bytes(200)
    (tmp_path / "corrupted.flow").write_bytes(bytes(damaged))
    torch.save(plain({"format": FORMAT, "format_version": FORMAT_VERSION + 1,
                      "preprocessor": {}, "flow": {}, "training": {}}), tmp_path / "future.flow")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    return tmp_path


CASES = [
    (["score", "m.flow", "empty.csv"], 1, "error: empty.csv: the file is empty"),
    (["fit", "header.csv", "-o", "new.flow"], 1, "error: header.csv: no data rows (only a "
                                                "header)"),
    (["fit", "semicolon.csv", "-o", "new.flow"], 1,
     "error: semicolon.csv: the header is one column, 'a;b;n': the file looks "
     "semicolon-separated, and flowcli reads comma-separated CSV"),
    (["score", "m.flow", "semicolon.csv"], 1, "semicolon-separated"),
    (["score", "m.flow", "text.csv"], 1,
     "error: text.csv: column 'b' is not numeric: 'hello' in row 2"),
    (["fit", "text.csv", "-o", "new.flow"], 1, "column 'b' is not numeric: 'hello' in row 2"),
    (["score", "m.flow", "nan.csv"], 1, "error: nan.csv: column 'b' has a missing value in "
                                        "row 2"),
    (["score", "m.flow", "inf.csv"], 1, "error: inf.csv: column 'b' holds inf in row 2"),
    (["fit", "constant.csv", "-o", "new.flow"], 1,
     "error: constant.csv: column 'a' is constant (1.5 in every row), so it has no density; "
     "leave it out with --exclude a"),
    (["score", "m.flow", "renamed.csv"], 1,
     "error: renamed.csv: missing model column 'a'; columns not seen in training: 'A'"),
    (["score", "m.flow", "ragged.csv"], 1, "error: ragged.csv: not a valid CSV file"),
    (["score", "m.flow", "fraction.csv"], 1,
     "error: fraction.csv: column 'n' holds whole numbers in the model but 3.5 in row 1"),
    (["score", "m.flow", "late.csv", "-o", "out.csv", "--batch-size", "100"], 1,
     "error: late.csv: column 'a' has a missing value in row 4500"),
    (["score", "truncated.flow", "good.csv"], 1, "error: truncated.flow: damaged or truncated "
                                                 "model file"),
    (["score", "corrupted.flow", "good.csv"], 1, "error: corrupted.flow: damaged"),
    (["info", "future.flow"], 1,
     f"error: future.flow: written by a newer flowcli (model format {FORMAT_VERSION + 1}; "
     f"this version reads up to {FORMAT_VERSION}); upgrade flowcli to use it"),
    (["info", "folder"], 1, "error: folder: is a folder, not a model file"),
    (["score", "m.flow", "folder"], 1, "error: folder: no files in the folder"),
    (["fit", "good.csv", "-o", "folder"], 1, "error: folder: is a folder; give a file name for "
                                             "the model"),
    (["score", "m.flow", "good.csv", "-o", "file/out.csv"], 1, "error: file/out.csv: cannot "
                                                               "write"),
    (["sample", "m.flow", "-n", "5", "-o", "out.txt"], 1, "error: out.txt: cannot tell the "
     "format from the extension; use .csv, .csv.gz, .parquet or .pq, or pass --output-format"),
    (["sample", "m.flow", "-n", "-3"], 2, "error"),
    (["score", "m.flow", "missing.csv"], 1, "error: missing.csv: no such file"),
    (["score", "m.flow", "huge.csv", "-o", "out.csv"], 1, "error: huge.csv: row 2 cannot be "
     "scored: column 'b' holds -1e+300, too far outside what training saw"),
]


@pytest.mark.parametrize(("args", "code", "message"), CASES,
                         ids=[" ".join(c[0][:3]) for c in CASES])
def test_hostile_input(workdir: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                       code: int, message: str) -> None:
    monkeypatch.chdir(workdir)
    before = digest(workdir)
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr
    if code == 1:
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert result.stdout == ""
    assert digest(workdir) == before  # inputs untouched, no output, no temporary files left


def test_zero_rows_gives_a_header_only_table(workdir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(app, ["sample", "m.flow", "-n", "0"])
    assert result.exit_code == 0 and result.stdout == "a,b,n\n"
    scored = CliRunner().invoke(app, ["score", "m.flow", "header.csv"])
    assert scored.exit_code == 0 and scored.stdout == "a,b,n,log_prob\n"


@pytest.mark.parametrize("kind", ["nsf", "unmix"])
def test_zero_rows_score_with_spline_flows(kind: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The spline's scoring form looks at its exp sums, which a pass of no rows lacks."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)}).to_csv(
        "train.csv", index=False)
    fitted = CliRunner().invoke(app, ["fit", "train.csv", "-o", "m.flow", "--model", kind,
                                      "--epochs", "1", "-q"])
    assert fitted.exit_code == 0, fitted.stderr
    Path("header.csv").write_text("a,b\n")
    for command in (["score", "m.flow", "header.csv"], ["invert", "m.flow", "header.csv"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0 and "Traceback" not in result.stderr, result.stderr
        assert result.stdout.startswith("a,b,") or result.stdout.startswith("z_0"), \
            result.stdout


def test_awkward_but_valid_tables_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Booleans with gaps in CSV, numbers kept as text, pandas categories with gaps."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    n = 200
    flags = pd.Series(rng.random(n) < 0.5, dtype=object)
    flags[::9] = None
    pd.DataFrame({"x": rng.normal(size=n), "b": flags}).to_csv("boolgap.csv", index=False)
    zips = pd.Series(rng.choice(["02139", "10001", "94105"], n), dtype="str")
    pd.DataFrame({"x": rng.normal(size=n), "zip": zips}).to_parquet("zip.parquet")
    cats = pd.Categorical(rng.choice(["a", "b"], n).astype(object))
    cats[::4] = np.nan
    pd.DataFrame({"x": rng.normal(size=n), "c": cats}).to_parquet("catgap.parquet")
    for name, label in (("boolgap.csv", "b"), ("zip.parquet", "zip"), ("catgap.parquet", "c")):
        fit = CliRunner().invoke(app, ["fit", name, "-o", "m.flow", "--epochs", "2", "-q",
                                       "--missing", "model"], catch_exceptions=False)
        assert fit.exit_code == 0, (name, fit.stderr)
        out = CliRunner().invoke(app, ["sample", "m.flow", "-n", "300", "--seed", "0",
                                       "-o", "s.parquet"], catch_exceptions=False)
        assert out.exit_code == 0, (name, out.stderr)
        synth = pd.read_parquet("s.parquet")
        real = pd.read_parquet(name) if name.endswith("parquet") else pd.read_csv(name)
        assert set(synth[label].dropna().astype(str)) <= set(real[label].dropna().astype(str))
    assert pd.read_parquet("s.parquet")["c"].dtype == "category"


def test_outputs_get_the_usual_file_mode(fitted_model, tmp_path: Path) -> None:
    _, path, _ = fitted_model
    result = CliRunner().invoke(app, ["sample", str(path), "-n", "3", "-o",
                                      str(tmp_path / "s.csv")])
    assert result.exit_code == 0
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "s.csv").stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("place", range(10))
def test_a_model_file_damaged_anywhere_is_refused(workdir: Path, place: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """32 bytes changed at one of ten places spread over the file, the seal included: one
    line, exit 1, and no output written."""
    raw = bytearray((workdir / "m.flow").read_bytes())
    at = min(place * len(raw) // 9, len(raw) - 32)
    raw[at : at + 32] = bytes(b ^ 0x5A for b in raw[at : at + 32])
    (workdir / "hit.flow").write_bytes(bytes(raw))
    for args in (["score", "hit.flow", "good.csv", "-o", "out.csv"],
                 ["sample", "hit.flow", "-n", "5", "-o", "out.csv"],
                 ["info", "hit.flow"]):
        monkeypatch.chdir(workdir)
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 1, (at, args, result.stdout[:200])
        assert result.stderr.startswith("error: hit.flow: damaged"), result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""
        assert not (workdir / "out.csv").exists()

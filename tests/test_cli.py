"""Every command through Typer's CliRunner: data on stdout, messages on stderr, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flowcli.cli import app

FAST = ["--layers", "2", "--hidden", "16", "--epochs", "10", "--patience", "5"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str, input: str | bytes | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def test_fit_writes_a_model_and_a_summary(runner: CliRunner, fitted_model, tmp_path: Path) -> None:
    _, _, df = fitted_model
    df.to_parquet(tmp_path / "t.parquet")
    out = tmp_path / "m.flow"
    result = run(runner, "fit", tmp_path / "t.parquet", "-o", out, "--seed", "1", *FAST)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "validation log-likelihood" in result.stderr and "nats/row" in result.stderr
    assert out.exists()
    quiet = run(runner, "fit", tmp_path / "t.parquet", "-o", out, "-q", *FAST)
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_fit_json_summary_on_stdout(runner: CliRunner, fitted_model, tmp_path: Path) -> None:
    _, path, _ = fitted_model
    result = run(runner, "fit", path.parent / "train.csv", "-o", tmp_path / "m.flow", "--json",
                 "-q", "--model", "realnvp", "--columns", "a,b", *FAST)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["model"]["kind"] == "realnvp"
    assert [c["name"] for c in summary["columns"]] == ["a", "b"]


def test_sample_to_stdout_is_pure_csv(runner: CliRunner, fitted_model) -> None:
    _, path, df = fitted_model
    result = run(runner, "sample", path, "-n", "25", "--seed", "2")
    assert result.exit_code == 0
    assert result.stderr == ""
    synth = pd.read_csv(io.StringIO(result.stdout))
    assert list(synth.columns) == list(df.columns) and len(synth) == 25
    again = run(runner, "sample", path, "-n", "25", "--seed", "2")
    assert again.stdout == result.stdout


def test_sample_to_parquet_file(runner: CliRunner, fitted_model, tmp_path: Path) -> None:
    _, path, df = fitted_model
    result = run(runner, "sample", path, "-n", "30", "-o", tmp_path / "s.parquet")
    assert result.exit_code == 0 and result.stdout == ""
    assert "wrote 30 rows" in result.stderr
    synth = pd.read_parquet(tmp_path / "s.parquet")
    assert list(synth.dtypes) == list(df.dtypes)


def test_score_appends_log_prob_and_keeps_extra_columns(runner: CliRunner, fitted_model) -> None:
    model, path, df = fitted_model
    rows = df.head(5).assign(id=range(5))[["id", "b", "a", "n"]]
    result = run(runner, "score", path, "-", input=rows.to_csv(index=False))
    assert result.exit_code == 0, result.stderr
    scored = pd.read_csv(io.StringIO(result.stdout))
    assert list(scored.columns) == ["id", "b", "a", "n", "log_prob"]
    pd.testing.assert_series_equal(scored["id"], rows["id"].reset_index(drop=True))
    expected = model.score(rows).to_numpy()
    assert (abs(scored["log_prob"].to_numpy() - expected) < 1e-9).all()


def test_invert_round_trip(runner: CliRunner, fitted_model, tmp_path: Path) -> None:
    _, path, df = fitted_model
    data = tmp_path / "d.csv"
    df.head(50).assign(id=range(50)).to_csv(data, index=False)
    result = run(runner, "invert", path, data, "-o", tmp_path / "z.parquet")
    assert result.exit_code == 0, result.stderr
    latent = pd.read_parquet(tmp_path / "z.parquet")
    assert list(latent.columns) == ["z_0", "z_1", "z_2", "id"]
    back = run(runner, "invert", path, tmp_path / "z.parquet", "--to-data")
    assert back.exit_code == 0, back.stderr
    restored = pd.read_csv(io.StringIO(back.stdout))
    assert list(restored.columns) == ["a", "b", "n", "id"]
    original = df.head(50)
    pd.testing.assert_frame_equal(restored[["a", "b"]], original[["a", "b"]], rtol=1e-4)
    assert restored["n"].tolist() == original["n"].tolist()
    assert restored["id"].tolist() == list(range(50))


def test_info_tables_and_json(runner: CliRunner, fitted_model) -> None:
    _, path, _ = fitted_model
    result = run(runner, "info", path)
    assert result.exit_code == 0
    for text in ("a", "integer", "maf", "parameters", "seed 0", "torch"):
        assert text in result.stdout
    data = json.loads(run(runner, "info", path, "--json").stdout)
    assert data["training"]["rows"] == 1500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "{model}", "{missing}"], "error: {missing}: no such file\n"),
        (["score", "{dir}", "{data}"], "error: {dir}: is a folder, not a model file\n"),
        (["sample", "{data}", "-n", "3"], "error: {data}: damaged or truncated model file\n"),
        (["fit", "{text}", "-o", "{out}"],
         "error: {text}: column 'city' is not numeric: 'x' in row 1; leave it out with "
         "--columns\n"),
        (["fit", "{gappy}", "-o", "{out}"],
         "error: {gappy}: column 'a' has a missing value in row 2\n"),
        (["score", "{model}", "{renamed}"],
         "error: {renamed}: missing model column 'a'; columns not seen in training: 'A'\n"),
        (["sample", "{model}", "-n", "5", "-o", "{dir}"], "error: {dir}: is a folder; give a "
                                                          "file name\n"),
    ],
)
def test_bad_input_gives_one_line_and_exit_1(runner: CliRunner, fitted_model, tmp_path: Path,
                                             args: list[str], message: str) -> None:
    _, model, df = fitted_model
    paths = {
        "model": model, "missing": tmp_path / "nope.csv", "dir": tmp_path,
        "data": model.parent / "train.csv", "out": tmp_path / "o.flow",
        "text": tmp_path / "text.csv", "gappy": tmp_path / "gappy.csv",
        "renamed": tmp_path / "renamed.csv",
    }
    pd.DataFrame({"a": [1.0, 2.0], "city": ["x", "y"]}).to_csv(paths["text"], index=False)
    pd.DataFrame({"a": [1.0, None, 3.0]}).to_csv(paths["gappy"], index=False)
    df.head(3).rename(columns={"a": "A"}).to_csv(paths["renamed"], index=False)
    result = run(runner, *[a.format(**paths) for a in args])
    assert result.exit_code == 1
    assert result.stderr == message.format(**paths)
    assert result.stdout == ""
    assert not paths["out"].exists()


@pytest.mark.parametrize("args", [["fit"], ["sample", "m.flow"], ["sample", "m.flow", "-n", "-1"],
                                  ["fit", "d.csv", "-o", "m.flow", "--model", "glow"],
                                  ["fit", "d.csv", "-o", "m.flow", "--layers", "0"]])
def test_usage_errors_exit_2(runner: CliRunner, args: list[str]) -> None:
    assert run(runner, *args).exit_code == 2


@pytest.mark.parametrize("command", ["fit", "sample", "score", "invert", "info"])
def test_every_command_has_help(runner: CliRunner, command: str) -> None:
    result = run(runner, command, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.stdout and len(result.stdout) > 200

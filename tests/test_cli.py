"""Every command through Typer's CliRunner: data on stdout, messages on stderr, exit codes."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flowcli import FlowModel
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


def test_fit_says_when_the_kept_run_ends_at_its_epoch_limit_still_gaining(
        runner: CliRunner, fitted_model, tmp_path: Path) -> None:
    _, path, _ = fitted_model
    args = ["fit", path.parent / "train.csv", "-o", tmp_path / "m.flow", "--model", "maf",
            "--layers", "2", "--hidden", "16", "--seed", "1"]
    cut = run(runner, *args, "--epochs", "24")
    assert cut.exit_code == 0, cut.stderr
    assert re.search(r"warning: the kept flow stopped at its limit of 24 epochs while still "
                     r"gaining \d+\.\d{3} nats per row on the validation rows over its last 12 "
                     r"epochs: its scores depend on that limit; set --epochs or --max-time to "
                     r"choose how long it trains\n", cut.stderr)
    assert run(runner, *args, "--epochs", "24", "-q").stderr == ""
    done = run(runner, *args, "--epochs", "400", "--patience", "3")
    assert done.exit_code == 0 and "still gaining" not in done.stderr


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


def test_fit_with_a_mixture_base_says_so(runner: CliRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 2)) * 5
    df = pd.DataFrame(centres[rng.integers(0, 4, 1200)] + 0.3 * rng.normal(size=(1200, 2)),
                      columns=["x", "y"])
    df.to_csv(tmp_path / "c.csv", index=False)
    out = tmp_path / "m.flow"
    result = run(runner, "fit", tmp_path / "c.csv", "-o", out, "--model", "maf", "--mixture",
                 "--seed", "0", *FAST)
    assert result.exit_code == 0, result.stderr
    k = FlowModel.load(str(out)).info()["model"]["mixture"]
    assert k > 1 and f"on a mixture of {k} Gaussians" in " ".join(result.stderr.split())
    shown = " ".join(run(runner, "info", out).stdout.split())
    assert f"on a mixture of {k} Gaussians" in shown and "model format 3" in shown
    ruled_out = run(runner, "fit", tmp_path / "c.csv", "-o", out, "--no-mixture", "--json",
                    "-q", "--seed", "0", *FAST)
    summary = json.loads(ruled_out.stdout)
    assert [c["mixture"] for c in summary["training"]["candidates"]] == [0, 0, 0]


def test_fit_says_when_it_pulls_heavy_tails_in(runner: CliRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": np.sinh(2 * rng.normal(size=800)), "y": rng.normal(size=800)}).to_csv(
        tmp_path / "t.csv", index=False)
    out = tmp_path / "m.flow"
    result = run(runner, "fit", tmp_path / "t.csv", "-o", out, "--model", "nsf", "--seed", "0",
                 *FAST)
    assert result.exit_code == 0, result.stderr
    assert "parameters, heavy tails pulled in on 1 column " in " ".join(result.stderr.split())
    shown = " ".join(run(runner, "info", out).stdout.split())
    assert "heavy tails pulled in on 1 column" in shown and "model format 4" in shown
    assert FlowModel.load(str(out)).info()["model"]["tails_columns"] == ["x"]
    plain = run(runner, "fit", tmp_path / "t.csv", "-o", out, "--model", "nsf", "--no-tails",
                "--seed", "0", *FAST)
    assert "heavy tails" not in plain.stderr
    assert "model format 2" in " ".join(run(runner, "info", out).stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "{model}", "{missing}"], "error: {missing}: no such file\n"),
        (["score", "{dir}", "{data}"], "error: {dir}: is a folder, not a model file\n"),
        (["sample", "{data}", "-n", "3"], "error: {data}: damaged or truncated model file\n"),
        (["fit", "{text}", "-o", "{out}"],
         "error: {text}: column 'b' is not numeric: 'oops' in row 3; fix the value, or "
         "declare it --categorical b\n"),
        (["fit", "{gappy}", "-o", "{out}"],
         "error: {gappy}: column 'a' has a missing value in row 2; use --missing model (or "
         "drop) to fit on rows with gaps\n"),
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
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["1.5", "2.5", "oops"]}).to_csv(paths["text"],
                                                                           index=False)
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


def test_score_percentile_threshold_and_only_score(runner: CliRunner, fitted_model) -> None:
    model, path, df = fitted_model
    rows = df.head(20).copy()
    rows.loc[0, "a"] = 1000.0  # far outside the training data
    result = run(runner, "score", path, "-", "--percentile", "--threshold", "0.05",
                 "--only-score", input=rows.to_csv(index=False))
    assert result.exit_code == 0, result.stderr
    scored = pd.read_csv(io.StringIO(result.stdout))
    assert list(scored.columns) == ["log_prob", "percentile", "anomaly"]
    assert scored["percentile"].between(0, 100).all()
    assert scored.loc[0, "anomaly"] and scored.loc[0, "percentile"] == 0.0
    # percentiles order like scores
    assert (scored["percentile"].rank() - scored["log_prob"].rank()).abs().max() <= 1.0
    cutoff = model.threshold(0.05)
    assert (scored["anomaly"] == (scored["log_prob"] < cutoff)).all()
    assert "rows flagged as anomalies" in result.stderr


def test_fail_on_anomaly_exits_3_after_writing(runner: CliRunner, fitted_model,
                                               tmp_path: Path) -> None:
    _, path, df = fitted_model
    rows = df.head(10).copy()
    clean = run(runner, "score", path, "-", "--threshold", "0.0", "--fail-on-anomaly",
                input=rows.to_csv(index=False))
    assert clean.exit_code == 0, clean.stderr
    rows.loc[3, "b"] = -500.0
    out = tmp_path / "s.csv"
    result = run(runner, "score", path, "-", "--threshold", "0.01", "--fail-on-anomaly", "-q",
                 "-o", out, input=rows.to_csv(index=False))
    assert result.exit_code == 3
    assert result.stderr.splitlines()[-1] == "error: 1 anomalous rows in stdin"
    assert pd.read_csv(out)["anomaly"].sum() == 1
    assert run(runner, "score", path, "-", "--fail-on-anomaly", input="").exit_code == 2


def test_held_out_percentiles_are_calibrated() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(10.0, 2.0, 3000)
    df = pd.DataFrame({"a": a, "b": 0.5 * a + rng.normal(0.0, 1.0, 3000)})
    # 900 held-out rows: their 10 % quantile covers 10 % +- 1 % (one standard error)
    model = FlowModel.fit(df, seed=0, device="cpu", val_fraction=0.3, layers=2, hidden=16,
                          epochs=30)
    pct = model.percentile(model.score(model.sample(20000, seed=11)))
    # fresh draws from the model fall below the q-quantile about a share q of the time
    assert abs((pct < 10).mean() - 0.10) < 0.035
    assert abs((pct < 50).mean() - 0.50) < 0.06


def test_resume_continues_epochs(runner: CliRunner, fitted_model, tmp_path: Path) -> None:
    _, path, _ = fitted_model
    data = path.parent / "train.csv"
    first = tmp_path / "a.flow"
    args = ["--layers", "2", "--hidden", "16", "--patience", "1000", "--seed", "3", "-q"]
    assert run(runner, "fit", data, "-o", first, "--epochs", "3", *args).exit_code == 0
    second = tmp_path / "b.flow"
    result = run(runner, "fit", data, "-o", second, "--resume", first, "--epochs", "5", "-q")
    assert result.exit_code == 0, result.stderr
    info = json.loads(run(runner, "info", second, "--json").stdout)
    assert info["training"]["epochs"] == 5
    missing = run(runner, "fit", data, "-o", second, "--resume", tmp_path / "none.flow")
    assert missing.exit_code == 1 and "no such model file" in missing.stderr


def test_resume_honours_the_learning_rate(runner: CliRunner, fitted_model,
                                          tmp_path: Path) -> None:
    """``--lr`` on a resumed fit sets Adam's learning rate for the run; other fit options
    are refused, naming the flag."""
    _, path, _ = fitted_model
    data = path.parent / "train.csv"
    first = tmp_path / "a.flow"
    args = ["--layers", "2", "--hidden", "16", "--patience", "1000", "--seed", "3", "-q"]
    assert run(runner, "fit", data, "-o", first, "--epochs", "2", *args).exit_code == 0
    before = FlowModel.load(str(first)).resume.optimizer["param_groups"][0]["lr"]
    assert before == pytest.approx(1e-3)
    second = tmp_path / "b.flow"
    result = run(runner, "fit", data, "-o", second, "--resume", first, "--epochs", "3",
                 "--lr", "0.05", "-q")
    assert result.exit_code == 0, result.stderr
    resumed = FlowModel.load(str(second))
    # one epoch, far from a plateau (patience 1000): the rate is the one given
    assert resumed.training["epochs"] == 3
    assert resumed.resume.optimizer["param_groups"][0]["lr"] == pytest.approx(0.05)
    allowed = ("a resumed run may change only --epochs, --patience, --min-gain, --max-time "
               "or --lr")
    for flag, value, has in (("--batch-size", "64", " (the model has 512)"),
                             ("--exclude", "a", ""), ("--seed", "1", " (the model has 3)")):
        refused = run(runner, "fit", data, "-o", second, "--resume", first, flag, value)
        assert refused.exit_code == 2
        assert refused.stderr == (f"error: {flag} cannot be changed when resuming{has}; "
                                  f"{allowed}\n")
    # the first command again, with --resume added: its settings are the model's
    again = run(runner, "fit", data, "-o", second, "--resume", first, "--epochs", "4", *args)
    assert again.exit_code == 0, again.stderr
    assert FlowModel.load(str(second)).training["epochs"] == 4


def test_library_errors_are_spelled_as_flags(runner: CliRunner, fitted_model,
                                             tmp_path: Path) -> None:
    _, path, df = fitted_model
    data = path.parent / "train.csv"
    unknown = run(runner, "fit", data, "-o", tmp_path / "m.flow", "--exclude", "a,zz")
    assert unknown.exit_code == 1
    assert unknown.stderr == f"error: {data}: --exclude names no column 'zz'\n"
    low = run(runner, "fit", data, "-o", tmp_path / "m.flow", "--lr", "0")
    assert low.exit_code == 2 and low.stderr == "error: --lr must be positive\n"


def test_fit_prints_inferred_supports_and_takes_unbounded(runner: CliRunner,
                                                         tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "claims.csv"
    pd.DataFrame({"premium": np.exp(rng.normal(6, 0.5, 400)),
                  "share": rng.beta(2, 3, 400)}).to_csv(data, index=False)
    args = ["--model", "maf", "--layers", "1", "--hidden", "8", "--epochs", "2"]
    result = run(runner, "fit", data, "-o", tmp_path / "a.flow", *args)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.split()[:3] == ["premium", "positive", "(inferred)"] for line in lines)
    assert any(line.split()[:3] == ["share", "bounded", "(inferred)"] for line in lines)
    info = json.loads(run(runner, "info", tmp_path / "a.flow", "--json").stdout)
    assert info["versions"]["format"] == 5
    assert [c["inferred"] for c in info["columns"]] == [True, True]
    result = run(runner, "fit", data, "-o", tmp_path / "b.flow", "--unbounded", "premium,share",
                 *args)
    assert result.exit_code == 0, result.stderr
    info = json.loads(run(runner, "info", tmp_path / "b.flow", "--json").stdout)
    assert [c["kind"] for c in info["columns"]] == ["continuous", "continuous"]
    assert info["versions"]["format"] == 2


def test_an_unmix_flow_is_described_without_networks(runner: CliRunner, fitted_model,
                                                     tmp_path: Path) -> None:
    """Without a context an unmix flow has no network: no hidden size is shown for it."""
    _, path, _ = fitted_model
    out = tmp_path / "u.flow"
    fitted = run(runner, "fit", path.parent / "train.csv", "-o", out, "--model", "unmix",
                 "--seed", "0", *FAST)
    assert fitted.exit_code == 0, fitted.stderr
    assert re.search(r"flow +unmix, 2 layers, [\d,]+ parameters", fitted.stderr)
    shown = run(runner, "info", out).stdout
    assert "unmix: 2 layers, 8 spline bins on [-5, 5]" in shown
    assert "hidden" not in " ".join(line for line in shown.splitlines() if "unmix" in line)


def test_fit_and_info_show_each_candidates_scoring_speed(runner: CliRunner, fitted_model,
                                                         tmp_path: Path) -> None:
    _, path, _ = fitted_model
    data = path.parent / "train.csv"
    args = ["--layers", "1", "--hidden", "8", "--epochs", "2", "--seed", "0"]
    fitted = run(runner, "fit", data, "-o", tmp_path / "m.flow", *args)
    assert fitted.exit_code == 0, fitted.stderr
    tried = [line for line in fitted.stderr.splitlines() if line.startswith("tried ")]
    assert len(tried) == 4 and all(" rows/s" in line for line in tried)
    info = json.loads(run(runner, "info", tmp_path / "m.flow", "--json").stdout)
    assert all(c["score_rows_per_second"] > 0 for c in info["training"]["candidates"])

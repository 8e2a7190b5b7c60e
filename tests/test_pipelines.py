"""Real processes: the installed command in shell pipelines."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

FLOWCLI = [sys.executable, "-m", "flowcli"]


def interruptible() -> None:
    """In a child process: take Ctrl-C as Python does by default. A test run started in the
    background inherits SIGINT ignored, and Python keeps it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
FAST = ["--layers", "2", "--hidden", "16", "--patience", "5"]


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWCLI": " ".join(FLOWCLI)}
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_command_as_a_process(fitted_model, tmp_path: Path) -> None:
    _, _, df = fitted_model
    df.to_csv(tmp_path / "d.csv", index=False)
    r = sh("$FLOWCLI fit d.csv -o m.flow --epochs 5 --seed 0 -q " + " ".join(FAST), tmp_path)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    r = sh("$FLOWCLI sample m.flow -n 200 --seed 1 | $FLOWCLI score m.flow - > scored.csv",
           tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert len(scored) == 200 and list(scored.columns) == ["a", "b", "n", "log_prob"]
    r = sh("$FLOWCLI invert m.flow d.csv | $FLOWCLI invert m.flow - --to-data -o back.csv",
           tmp_path)
    assert r.returncode == 0, r.stderr
    back = pd.read_csv(tmp_path / "back.csv")
    pd.testing.assert_frame_equal(back[["a", "b"]], df[["a", "b"]], rtol=1e-4)
    assert back["n"].tolist() == df["n"].tolist()
    r = sh("$FLOWCLI info m.flow --json", tmp_path)
    assert r.returncode == 0
    info = json.loads(r.stdout)
    assert info["fit_config"]["model"] == "auto"
    assert info["model"]["kind"] in ("maf", "nsf", "unmix")
    assert [c["model"] for c in info["training"]["candidates"]] == ["maf", "nsf", "unmix",
                                                                     "maf"]
    assert [c["mixture"] > 0 for c in info["training"]["candidates"]] == [False, False, False,
                                                                          True]


def test_parquet_through_stdin_and_stdout(fitted_model, tmp_path: Path) -> None:
    _, path, _ = fitted_model
    r = sh(f"$FLOWCLI sample {path} -n 50 --output-format parquet | "
           f"$FLOWCLI score {path} - --format parquet --output-format parquet > s.parquet",
           tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == 50


def test_head_closing_the_pipe_is_quiet(fitted_model, tmp_path: Path) -> None:
    _, path, _ = fitted_model
    start = time.monotonic()
    r = sh(f"$FLOWCLI sample {path} -n 100000000 --batch-size 1000 | head -n 3; "
           f"echo \"status ${{PIPESTATUS[0]}}\" >&2", tmp_path)
    assert time.monotonic() - start < 30
    assert len(r.stdout.splitlines()) == 3
    assert r.stderr == "status 141\n"


def test_usage_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    r = sh("$FLOWCLI sample", tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert "MODEL" in r.stderr
    r = sh("$FLOWCLI fit x.csv -o m.flow --model glow", tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "glow" in r.stderr


def test_broken_model_file_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "m.flow").write_bytes(b"\x80\x04garbage")
    (tmp_path / "d.csv").write_text("a\n1\n")
    r = sh("$FLOWCLI score m.flow d.csv", tmp_path)
    assert r.returncode == 1
    assert r.stderr == "error: m.flow: damaged or truncated model file\n"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_fit_saves_the_best_model(fitted_model, tmp_path: Path, sig: int,
                                                code: int) -> None:
    _, _, df = fitted_model
    pd.concat([df] * 4).to_csv(tmp_path / "d.csv", index=False)
    proc = subprocess.Popen(
        [*FLOWCLI, "fit", "d.csv", "-o", "m.flow", "--epochs", "100000", "--patience", "100000",
         "--min-gain", "0", "--seed", "0", "--layers", "2", "--hidden", "16"],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 60
    # wait until training runs (the first progress line comes after 10 s; poll the clock)
    time.sleep(6)
    assert proc.poll() is None
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 5))
    assert proc.returncode == code, err
    assert "Traceback" not in err
    r = sh("$FLOWCLI info m.flow --json", tmp_path)
    assert r.returncode == 0 and '"stopped": "interrupted"' in r.stdout
    r = sh("$FLOWCLI score m.flow d.csv | head -n 2", tmp_path)
    assert r.returncode in (0, 141)
    assert pd.read_csv(io.StringIO(r.stdout)).shape == (1, 4)


def test_sigkill_never_corrupts_and_resume_carries_on(fitted_model, tmp_path: Path) -> None:
    _, _, df = fitted_model
    pd.concat([df] * 4).to_csv(tmp_path / "d.csv", index=False)
    r = sh("$FLOWCLI fit d.csv -o m.flow --epochs 2 --seed 0 -q --layers 2 --hidden 16", tmp_path)
    assert r.returncode == 0, r.stderr
    before = (tmp_path / "m.flow").read_bytes()
    proc = subprocess.Popen(
        [*FLOWCLI, "fit", "d.csv", "-o", "m.flow", "--resume", "m.flow", "--epochs", "100000",
         "--patience", "100000", "--min-gain", "0", "-q"],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    time.sleep(5)
    proc.kill()
    proc.wait(timeout=30)
    assert (tmp_path / "m.flow").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "m.flow"]
    r = sh("$FLOWCLI fit d.csv -o m.flow --resume m.flow --epochs 4 -q && "
           "$FLOWCLI info m.flow --json", tmp_path)
    assert r.returncode == 0, r.stderr
    assert '"epochs": 4' in r.stdout


def test_ctrl_c_while_reading_stdin_is_an_interrupt_not_bad_input(fitted_model,
                                                                     tmp_path: Path) -> None:
    """pandas turns an interrupt inside its read of the input into a parser error."""
    _, path, df = fitted_model
    proc = subprocess.Popen([*FLOWCLI, "score", str(path), "-", "-o", "out.csv"],
                            cwd=tmp_path, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=interruptible)
    assert proc.stdin is not None
    proc.stdin.write(df.head(3).to_csv(index=False))  # part of the input, then it stalls
    proc.stdin.flush()
    time.sleep(4)  # torch imported, the reader waiting for more
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (130, "interrupted\n")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_score_leaves_no_output(fitted_model, tmp_path: Path) -> None:
    _, path, df = fitted_model
    proc = subprocess.Popen([*FLOWCLI, "score", str(path), "-", "-o", "out.csv",
                             "--batch-size", "10"], cwd=tmp_path, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(df.head(100).to_csv(index=False))  # rows arrive, then the input stalls
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not any(p.name.startswith(".out.csv.") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, "score never started writing"
        time.sleep(0.1)
    time.sleep(1)
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err == "terminated\n"
    assert list(tmp_path.iterdir()) == []

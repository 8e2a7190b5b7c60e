"""fit under torchrun: two ranks (gloo) train the model one process trains, and only a whole
job writes a model file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pytest
import torch

from flowcli import FlowModel, modelfile

# 255 rows a step: shares of 128 and 127, and a last batch of 9 (2,304 training rows)
FAST = ["--model", "maf", "--layers", "2", "--hidden", "16", "--batch-size", "255",
        "--seed", "0", "-q"]


def _torchrun(*args: object) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", "-m", "flowcli", *map(str, args)]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,560 rows: 2,304 training rows and 256 validation rows."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=2560)
    df = pd.DataFrame({"a": a, "b": a + 0.5 * rng.normal(size=2560),
                       "c": np.abs(a) + rng.normal(size=2560)})
    path = tmp_path_factory.mktemp("ddp") / "t.parquet"
    df.to_parquet(path, index=False)
    return path


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return modelfile.read(str(path)).state_dict


def test_two_ranks_train_the_weights_one_process_trains(table, tmp_path) -> None:
    one, two = tmp_path / "one.flow", tmp_path / "two.flow"
    done = subprocess.run([sys.executable, "-m", "flowcli", "fit", table, "-o", one,
                           "--epochs", "3", *FAST], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(_torchrun("fit", table, "-o", two, "--epochs", "3", *FAST),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    alone, ranked = _weights(one), _weights(two)
    assert alone.keys() == ranked.keys()
    for name, value in alone.items():
        torch.testing.assert_close(ranked[name], value, atol=1e-5, rtol=0)
    a, b = FlowModel.load(str(one)), FlowModel.load(str(two))
    assert a.training["epochs"] == b.training["epochs"] == 3
    assert b.training["ranks"] == 2 and "ranks" not in a.training
    assert abs(a.training["val_log_likelihood"] - b.training["val_log_likelihood"]) < 1e-4


def test_resume_under_torchrun_carries_on_as_one_process_does(table, tmp_path) -> None:
    first, ranked, alone = (tmp_path / f"{n}.flow" for n in ("first", "ranked", "alone"))
    done = subprocess.run(_torchrun("fit", table, "-o", first, "--epochs", "2", *FAST),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    resume = ["--resume", first, "--epochs", "4", "-q"]
    done = subprocess.run(_torchrun("fit", table, "-o", ranked, *resume), capture_output=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    done = subprocess.run([sys.executable, "-m", "flowcli", "fit", table, "-o", alone, *resume],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert FlowModel.load(str(ranked)).training["epochs"] == 4
    for name, value in _weights(alone).items():
        torch.testing.assert_close(_weights(ranked)[name], value, atol=1e-5, rtol=0)


def _rank_pids(launcher: int) -> dict[int, int]:
    """The ranks torchrun started: {rank: pid}."""
    found: dict[int, int] = {}
    children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
    for pid in map(int, children):
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        rank = next((e.split(b"=")[1] for e in env if e.startswith(b"RANK=")), None)
        if rank is not None:
            found[int(rank)] = pid
    return found


def _training(table: Path, output: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """A long fit under torchrun, returned once rank 0 reports an epoch, so that a signal
    finds both ranks training (a fixed wait let a loaded machine signal them while still
    starting); and the file its stderr goes to (outside the test's folder)."""
    log = tempfile.TemporaryFile()
    loud = [a for a in FAST if a != "-q"]  # the epoch reports tell that training runs
    job = subprocess.Popen(_torchrun("fit", table, "-o", output, "--epochs", "100000",
                                     "--patience", "100000", "--min-gain", "0", *loud),
                           stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while b"epoch " not in _text(log) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return job, log


def _text(log: IO[bytes]) -> bytes:
    log.seek(0)
    return log.read()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_a_rank_that_dies_leaves_the_old_model_file_untouched(table, tmp_path) -> None:
    output = tmp_path / "m.flow"
    output.write_bytes(b"the previous model")
    job, log = _training(table, output)
    pids = _rank_pids(job.pid)
    # rank 0 held still while rank 1 dies, then given the SIGTERM that torchrun's agent
    # sends once it sees a rank gone: rank 0 meets the signal before it finds the rank gone
    # (the order a busy machine can give), and still reports the lost rank
    os.kill(pids[0], signal.SIGSTOP)
    os.kill(pids[1], signal.SIGKILL)
    status = Path(f"/proc/{pids[1]}/status")
    while status.exists() and b"zombie" not in status.read_bytes():  # until it has died
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pids[0], signal.SIGTERM)
        os.kill(pids[0], signal.SIGCONT)
    job.wait(timeout=120)
    assert job.returncode != 0
    assert b"error: another training process (rank) stopped" in _text(log)
    assert b"\nterminated\n" not in _text(log)  # the signal is not the cause
    assert output.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.flow"]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_sigterm_to_the_job_saves_the_best_weights(table, tmp_path) -> None:
    output = tmp_path / "m.flow"
    job, _ = _training(table, output)
    job.send_signal(signal.SIGTERM)
    job.wait(timeout=120)
    assert job.returncode != 0
    fitted = FlowModel.load(str(output))
    assert fitted.interrupted and fitted.training["epochs"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.flow"]


def test_a_table_with_fewer_validation_rows_than_ranks_still_fits(tmp_path) -> None:
    rng = np.random.default_rng(1)
    pd.DataFrame({"a": rng.normal(size=14), "b": rng.normal(size=14)}).to_csv(
        tmp_path / "tiny.csv", index=False)
    done = subprocess.run(_torchrun("fit", tmp_path / "tiny.csv", "-o", tmp_path / "m.flow",
                                    "--epochs", "2", *FAST), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert FlowModel.load(str(tmp_path / "m.flow")).training["val_rows"] == 1


# ------------------------------------------------------ a table read in shares, one per rank
@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """20,000 rows in row groups of 3,000: a label held by two rows, one in each rank's
    half, and a single zero in a column that is otherwise positive, in the second half."""
    rng = np.random.default_rng(0)
    n = 20_000
    a = rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": a + 0.5 * rng.normal(size=n),
                       "amount": np.exp(rng.normal(size=n)),
                       "kind": rng.choice(["x", "y", "z"], n, p=[0.6, 0.3, 0.1])})
    df.loc[[17, 15_003], "kind"] = "rare"
    df.loc[19_990, "amount"] = 0.0
    path = tmp_path_factory.mktemp("large") / "t.parquet"
    df.to_parquet(path, index=False, row_group_size=3000)
    return path, df


SHARED = ["--model", "maf", "--layers", "2", "--hidden", "16", "--seed", "0", "-q",
          "--shared-rows", "2000"]


def test_ranks_read_shares_and_the_schema_covers_every_row(large, tmp_path) -> None:
    path, df = large
    output = tmp_path / "m.flow"
    done = subprocess.run(_torchrun("fit", path, "-o", output, "--epochs", "30", *SHARED),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    fitted = FlowModel.load(str(output))
    record = fitted.training
    assert (record["rows"], record["train_rows"], record["val_rows"]) == (20_000, 18_000, 2_000)
    assert 2000 <= record["sample_rows"] < 2100  # the sample, the extremes, the misfits
    specs = {spec.name: spec for spec in fitted.schema.columns}
    assert "rare" in specs["kind"].categories  # a label the sample alone would miss
    assert specs["amount"].kind == "continuous"  # one zero: not positive
    assert np.isfinite(fitted.score(df)).all()  # every row of the table encodes
    info = fitted.info()["columns"]
    seen = {c["name"]: (c["min"], c["max"]) for c in info if "min" in c}
    assert seen["a"] == (df["a"].min(), df["a"].max())  # the table's range, not the sample's
    alone = tmp_path / "alone.flow"
    done = subprocess.run([sys.executable, "-m", "flowcli", "fit", path, "-o", alone,
                           "--epochs", "30", *SHARED], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    one = FlowModel.load(str(alone))
    assert "sample_rows" not in one.training  # one process holds the whole table
    assert abs(fitted.score(df).mean() - one.score(df).mean()) < 0.1
    shown = subprocess.run([sys.executable, "-m", "flowcli", "info", output],
                           capture_output=True, text=True).stdout
    assert "read in shares" in shown and "a sample of 2,0" in shown


def test_a_resumed_fit_in_shares_carries_on(large, tmp_path) -> None:
    path, _ = large
    first, second = tmp_path / "first.flow", tmp_path / "second.flow"
    done = subprocess.run(_torchrun("fit", path, "-o", first, "--epochs", "2", *SHARED),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    done = subprocess.run(_torchrun("fit", path, "-o", second, "--resume", first,
                                    "--epochs", "4", "-q"),  # --shared-rows from the file
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    resumed = FlowModel.load(str(second))
    assert resumed.training["epochs"] == 4 and resumed.training["rows"] == 20_000
    assert resumed.training["shared_rows"] == 2000
    # the split of a fit in shares is each rank's own: no other way of running may carry on
    done = subprocess.run([sys.executable, "-m", "flowcli", "fit", path, "-o", tmp_path / "x",
                           "--resume", first, "--epochs", "4"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "fitted in shares by 2 training processes and cannot carry on on the whole" \
        in done.stderr
    alone = tmp_path / "alone.flow"
    done = subprocess.run([sys.executable, "-m", "flowcli", "fit", path, "-o", alone,
                           "--epochs", "1", *SHARED], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(_torchrun("fit", path, "-o", tmp_path / "y", "--resume", alone,
                                    "--epochs", "2", "--shared-rows", "2000"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "fitted on the whole table and cannot carry on in shares" \
        in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_batch_no_share_can_fill_is_one_clear_error(large, tmp_path) -> None:
    path, _ = large
    done = subprocess.run(_torchrun("fit", path, "-o", tmp_path / "m.flow", "--epochs", "2",
                                    "--batch-size", "20000", *SHARED),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stderr[-2000:]  # torchrun's own code, not the rank's
    assert "error: --batch-size of 20,000 rows asks each training process for its share" \
        in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "m.flow").exists()

"""Where a GPU pays: fit, score and sample timed on the CPU and on CUDA in one run, and every
command run once on CUDA against its CPU result.

Usage (from the repository root, on a machine with a GPU)::

    python benchmarks/gpu.py [--out gpu.json] [--seconds 0.5] [--columns 8,16,64]

1. **Engine.** MAF and NSF flows of 5 layers x 128 hidden units at 8, 16 and 64 columns, on
   random standard normal rows (speed does not depend on the weights or the data), at batch
   sizes 512, 4,096 and 65,536 rows on the GPU and 4,096 on the CPU (near its best pass size;
   larger passes fall out of cache):
   - ``fit``: seconds per epoch of 1M rows through ``flowcli.training.train``, the loop behind
     ``flowcli fit`` (fused Adam, clipping, the per-step non-finite check included), from the
     second of two short epochs;
   - ``score``: rows per second of ``log_prob`` in passes of that many rows;
   - ``sample``: rows per second of ``sample`` in calls of that many rows;
   each repeated for about ``--seconds`` after a warm-up. Speed-ups are the GPU at each batch
   size over the CPU at its one.
2. **Commands.** ``fit`` (3 epochs of MAF on 100,000 rows), ``score`` and ``sample`` of 1M
   rows x 16 columns end to end through the command line (Parquet in and out), on each
   device, timed as a user would time them; the CUDA scores against the CPU scores of the
   same model file.
3. **Every command on CUDA.** The sample table (mixed kinds, missing values) through ``fit``
   (each model kind, and conditional models, one on a mixture base), ``sample``, ``sample
   --given``, ``score --explain``, ``explain``, ``impute``, ``invert`` both ways: exit code
   and the last message line of each, so a tensor made on the wrong device shows up here.
4. **DDP.** ``fit`` of a MAF (3 epochs of the 100,000-row table of part 2, batch 4,096)
   under ``torchrun --nproc-per-node G`` for G = 1 and every G up to the GPUs found (gloo on
   the CPU with ``--ddp-device cpu``): seconds of the command and of training, and the
   validation log-likelihood, so the speed-up of G GPUs shows beside what it costs the fit.
   One GPU found: nothing to compare, and that is said.

Numbers are printed as tables and written to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from flowcli.engine import maf, nsf
from flowcli.training import TrainConfig, train

KINDS = {"maf": maf, "nsf": nsf}
BATCHES = (512, 4096, 65536)
CPU_BATCH = 4096  # the CPU is timed at its best pass size only (benchmarks/README.md)
TIMED_ROWS = {"cpu": 65536, "cuda": 262144}  # rows of a timed training epoch, at most
EPOCH_ROWS = 1_000_000  # the table size a "seconds per epoch" figure is given for
COMMAND_ROWS = 1_000_000
ROOT = Path(__file__).resolve().parent.parent
SAMPLE_TABLE = ROOT / "sample_data" / "transactions.csv"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(call: Callable[[], Any], rows: int, device: torch.device, seconds: float) -> float:
    """Rows per second of ``call`` (``rows`` rows each), repeated for about ``seconds``."""
    call()
    _sync(device)
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        call()
        _sync(device)
        calls += 1
    return calls * rows / (time.perf_counter() - start)


def _epoch_seconds(flow: torch.nn.Module, features: int, batch: int,
                   device: torch.device) -> float:
    """Seconds per epoch of :data:`EPOCH_ROWS` rows at ``batch`` rows per step, from the
    second of two short epochs (up to 32 steps, up to :data:`TIMED_ROWS` rows)."""
    steps = max(1, min(32, TIMED_ROWS[device.type] // batch))
    x = torch.randn(steps * batch, features, device=device)
    config = TrainConfig(epochs=2, batch_size=batch, patience=10, min_gain=0.0,
                         plateau_decay=False, average=False)
    result = train(flow, x, x[:1024], config=config,
                   generator=torch.Generator().manual_seed(0))
    return result.history[-1]["seconds"] * EPOCH_ROWS / x.shape[0]


def engine_row(kind: str, features: int, batch: int, device: torch.device,
               seconds: float) -> dict[str, Any]:
    """One (kind, columns, batch, device) measurement of fit, score and sample."""
    torch.manual_seed(0)
    flow = KINDS[kind](features, layers=5, hidden=128, depth=2).to(device)
    row: dict[str, Any] = {"kind": kind, "columns": features, "batch": batch,
                           "device": device.type}
    row["fit_s_per_epoch"] = _epoch_seconds(flow, features, batch, device)
    flow.eval()
    x = torch.randn(batch, features, device=device)
    with torch.inference_mode():
        row["score_rows_s"] = _rate(lambda: flow.log_prob(x), batch, device, seconds)
        row["sample_rows_s"] = _rate(lambda: flow.sample(batch), batch, device, seconds)
    return row


def engine_table(devices: list[torch.device], columns: list[int],
                 seconds: float) -> list[dict[str, Any]]:
    rows = []
    for kind in KINDS:
        for features in columns:
            for device in devices:
                for batch in BATCHES if device.type != "cpu" else (CPU_BATCH,):
                    rows.append(engine_row(kind, features, batch, device, seconds))
                    print(_engine_line(rows[-1]), flush=True)
    return rows


def _engine_line(row: dict[str, Any]) -> str:
    return (f"{row['kind']:>4} {row['columns']:>3} cols  batch {row['batch']:>6}  "
            f"{row['device']:>4}  fit {row['fit_s_per_epoch']:8.2f} s/epoch(1M)  "
            f"score {row['score_rows_s']:>12,.0f} rows/s  "
            f"sample {row['sample_rows_s']:>12,.0f} rows/s")


def speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CUDA at each batch size over the CPU at :data:`CPU_BATCH`, per (kind, columns): fit time
    ratio, score and sample rate ratios."""
    cpus = {(r["kind"], r["columns"]): r for r in rows if r["device"] == "cpu"}
    out = []
    for gpu in rows:
        kind, columns, batch = gpu["kind"], gpu["columns"], gpu["batch"]
        cpu = cpus.get((kind, columns))
        if gpu["device"] != "cuda" or cpu is None:
            continue
        ratio = {"kind": kind, "columns": columns, "batch": batch,
                 "fit": cpu["fit_s_per_epoch"] / gpu["fit_s_per_epoch"],
                 "score": gpu["score_rows_s"] / cpu["score_rows_s"],
                 "sample": gpu["sample_rows_s"] / cpu["sample_rows_s"]}
        out.append(ratio)
    return out


def _flowcli(*args: str, timeout: float = 600) -> tuple[int, float, str]:
    """Run ``python -m flowcli ARGS``: exit code, seconds, and the last line of stderr."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flowcli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done.returncode, time.perf_counter() - start, lines[-1] if lines else ""


def _command_tables(folder: Path) -> tuple[Path, Path]:
    """A 100,000-row training table and a 1M-row scoring table, 16 correlated columns."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(16, 16)) / 4
    paths = []
    for name, n in (("train", 100_000), ("score", COMMAND_ROWS)):
        x = np.tanh(rng.normal(size=(n, 16))) @ mixing + rng.normal(size=(n, 16)) * 0.1
        path = folder / f"{name}.parquet"
        pd.DataFrame(x, columns=[f"c{i}" for i in range(16)]).to_parquet(path)
        paths.append(path)
    return paths[0], paths[1]


def commands_table(devices: list[torch.device], folder: Path) -> list[dict[str, Any]]:
    """``fit``, ``score`` and ``sample`` end to end on each device, and CUDA's scores
    against the CPU's for the same model file."""
    train_path, score_path = _command_tables(folder)
    model = folder / "cpu.flow"
    rows = []
    for device in devices:
        name = device.type
        steps = {
            "fit": ("fit", str(train_path), "-o", str(folder / f"{name}.flow"), "--model",
                    "maf", "--epochs", "3", "--seed", "0", "--quiet"),
            "score": ("score", str(model), str(score_path), "-o",
                      str(folder / f"scored-{name}.parquet"), "--quiet"),
            "sample": ("sample", str(model), "-n", str(COMMAND_ROWS), "--seed", "0", "-o",
                       str(folder / f"sample-{name}.parquet"), "--quiet"),
        }
        for step, args in steps.items():
            code, seconds, last = _flowcli(*args, "--device", name)
            rows.append({"command": step, "device": name, "rc": code, "seconds": seconds,
                         "message": last})
            print(f"{step:>6} {name:>4}: rc {code}, {seconds:6.1f} s  {last}", flush=True)
    return rows


def score_agreement(folder: Path) -> float | None:
    """The largest difference between the CPU's and CUDA's log-likelihoods of the same rows."""
    paths = [folder / f"scored-{d}.parquet" for d in ("cpu", "cuda")]
    if not all(p.exists() for p in paths):
        return None
    cpu, gpu = (pd.read_parquet(p)["log_prob"].to_numpy() for p in paths)
    return float(np.max(np.abs(cpu - gpu)))


def ddp_table(folder: Path, device: str, processes: int) -> list[dict[str, Any]]:
    """``fit`` under torchrun with 1 .. ``processes`` processes on ``device``."""
    train_path, _ = _command_tables(folder)
    rows = []
    for count in range(1, processes + 1):
        model = folder / f"ddp-{count}.flow"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             "--nproc-per-node", str(count), "-m", "flowcli", "fit", str(train_path), "-o",
             str(model), "--model", "maf", "--epochs", "3", "--batch-size", "4096",
             "--seed", "0", "-q", "--device", device],
            capture_output=True, text=True, timeout=1200, cwd=ROOT)
        seconds = time.perf_counter() - start
        row: dict[str, Any] = {"processes": count, "device": device, "rc": done.returncode,
                               "seconds": seconds}
        if done.returncode == 0:
            from flowcli import FlowModel

            training = FlowModel.load(str(model)).training
            row.update(training_seconds=training["seconds"],
                       val_log_likelihood=training["val_log_likelihood"])
        else:
            row["message"] = done.stderr.strip().splitlines()[-1:]
        rows.append(row)
        print(f"torchrun x {count} on {device}: rc {done.returncode}, {seconds:6.1f} s, "
              f"training {row.get('training_seconds', float('nan')):6.1f} s", flush=True)
    return rows


def _smoke_steps(folder: Path) -> dict[str, tuple[str, ...]]:
    """Every command, on the sample table, as a user would run it on a GPU."""
    data, flow = str(SAMPLE_TABLE), str(folder / "smoke.flow")
    given, few = folder / "given.csv", folder / "few.csv"
    pd.read_csv(SAMPLE_TABLE).head(20)[["merchant"]].to_csv(given, index=False)
    pd.read_csv(SAMPLE_TABLE).head(500).to_csv(few, index=False)
    fit = ("fit", data, "--exclude", "id", "--positive", "amount", "--missing", "model",
           "--seed", "0")
    steps: dict[str, tuple[str, ...]] = {
        f"fit --model {kind}": (*fit, "-o", str(folder / f"{kind}.flow"), "--model", kind,
                                "--epochs", "5")
        for kind in ("maf", "realnvp", "nsf", "unmix")}
    steps["fit (auto)"] = (*fit, "-o", flow, "--epochs", "5")
    steps["fit --condition"] = (*fit, "-o", str(folder / "cond.flow"), "--condition",
                                "merchant", "--epochs", "5")
    steps["fit --condition --mixture"] = (*fit, "-o", str(folder / "cmix.flow"), "--condition",
                                          "merchant", "--model", "maf", "--mixture",
                                          "--epochs", "5")
    steps.update({
        "sample": ("sample", flow, "-n", "5000", "-o", str(folder / "s.csv")),
        "sample --given": ("sample", str(folder / "cond.flow"), "--given", str(given), "-n",
                           "3", "-o", str(folder / "given-s.csv")),
        "score --explain": ("score", flow, data, "--threshold", "0.01", "--explain", "-o",
                            str(folder / "scored.csv")),
        "score (conditional)": ("score", str(folder / "cond.flow"), data, "-o",
                                str(folder / "cscored.csv")),
        "sample --given (mixture)": ("sample", str(folder / "cmix.flow"), "--given", str(given),
                                     "-n", "3", "-o", str(folder / "given-m.csv")),
        "explain (mixture)": ("explain", str(folder / "cmix.flow"), str(few), "-o",
                              str(folder / "explained-m.csv")),
        "explain": ("explain", flow, str(few), "-o", str(folder / "explained.csv")),
        "impute": ("impute", flow, data, "--draws", "2", "-o", str(folder / "imputed.csv")),
        "invert": ("invert", flow, data, "-o", str(folder / "latent.parquet")),
        "invert back": ("invert", flow, str(folder / "latent.parquet"), "--to-data", "-o",
                        str(folder / "back.csv")),
    })
    return steps


def smoke_table(folder: Path, device: str) -> list[dict[str, Any]]:
    rows = []
    for name, args in _smoke_steps(folder).items():
        code, seconds, last = _flowcli(*args, "--device", device)
        rows.append({"step": name, "rc": code, "seconds": seconds, "message": last})
        print(f"{name:>26}: rc {code}, {seconds:5.1f} s  {last}", flush=True)
    return rows


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
                            "gpus": torch.cuda.device_count()}
    if info["gpus"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu.json"))
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--columns", default="8,16,64")
    parser.add_argument("--parts", default="engine,commands,smoke,ddp",
                        help="which parts to run (engine, commands, smoke, ddp)")
    parser.add_argument("--ddp-device", default="cuda",
                        help="where the DDP part trains: cuda (every GPU found), or cpu "
                             "(two processes, gloo)")
    parser.add_argument("--smoke-device", default="cuda",
                        help="the device every command runs on in the smoke part")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                       else [])
    result: dict[str, Any] = {"machine": machine()}
    print(json.dumps(result["machine"]), flush=True)
    if "engine" in parts:
        columns = [int(c) for c in args.columns.split(",")]
        result["engine"] = engine_table(devices, columns, args.seconds)
        result["speedups"] = speedups(result["engine"])
        for ratio in result["speedups"]:
            print("GPU/CPU {kind:>4} {columns:>3} cols batch {batch:>6}: fit {fit:6.1f}x  "
                  "score {score:6.1f}x  sample {sample:6.1f}x".format(**ratio))
        args.out.write_text(json.dumps(result, indent=1))
    with tempfile.TemporaryDirectory() as tmp:
        if "commands" in parts:
            result["commands"] = commands_table(devices, Path(tmp))
            result["score_max_difference"] = score_agreement(Path(tmp))
            print(f"CPU and CUDA scores differ by at most {result['score_max_difference']}")
            args.out.write_text(json.dumps(result, indent=1))
        if "smoke" in parts and (args.smoke_device == "cpu" or torch.cuda.is_available()):
            result["smoke"] = smoke_table(Path(tmp), args.smoke_device)
        if "ddp" in parts:
            result["ddp"] = _ddp(Path(tmp), args.ddp_device)
    args.out.write_text(json.dumps(result, indent=1))


def _ddp(folder: Path, device: str) -> list[dict[str, Any]] | str:
    if device == "cpu":
        return ddp_table(folder, "cpu", 2)
    gpus = torch.cuda.device_count()
    if gpus < 2:
        return f"{gpus} GPU(s) found: DDP needs at least 2"
    return ddp_table(folder, "cuda", gpus)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

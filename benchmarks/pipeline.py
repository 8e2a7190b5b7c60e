"""End-to-end command-line throughput: `flowcli score` and `flowcli sample` on big files.

Generates an 8-column table, fits a model on 30,000 of its rows, writes ROWS rows to Parquet
(row groups of 100,000), then times real `flowcli` processes: scoring Parquet to Parquet,
scoring with --only-score, and sampling to Parquet. Reports wall seconds, rows per second,
peak resident memory of the process, and the latency until the first data row of
`flowcli score` reaches its stdout pipe.

With ``--spline``, times instead `flowcli score` Parquet to Parquet with a spline model
(`--model nsf`) against a MAF of the same size, both fitted for 3 epochs (speed does not depend
on training), taking turns for ``--rounds`` rounds, and reports the ratio of median times.

Usage: python benchmarks/pipeline.py [--rows 10000000] [--workdir DIR] [--spline [--rounds 3]]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FLOWCLI = [sys.executable, "-m", "flowcli"]


def make_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 8)) @ rng.normal(size=(8, 8))
    z[:, 0] = np.exp(z[:, 0] / 3)
    z[:, 1] = np.sin(z[:, 1]) + 0.1 * z[:, 2]
    df = pd.DataFrame(z, columns=[f"c{i}" for i in range(8)])
    df["c7"] = np.abs(df["c7"]).round().astype("int64")
    return df


def write_big(path: Path, rows: int) -> None:
    block = pa.Table.from_pandas(make_table(1_000_000, seed=1), preserve_index=False)
    with pq.ParquetWriter(path, block.schema) as writer:
        done = 0
        while done < rows:
            part = block.slice(0, min(len(block), rows - done))
            writer.write_table(part, row_group_size=100_000)
            done += len(part)


# a fresh parent per run, so that the children's peak RSS is this run's alone
_WRAP = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
         "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
         "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and the process's peak RSS in MB."""
    out = subprocess.run([sys.executable, "-c", _WRAP, *cmd], cwd=cwd, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]) / 1024


def first_row_latency(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.readline()  # the header, then the first data row
    latency = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return latency


def spline_against_maf(work: Path, rows: int, rounds: int) -> None:
    """Median seconds of `flowcli score` with a spline model and with a MAF, and their ratio."""
    for kind in ("maf", "nsf"):
        subprocess.run([*FLOWCLI, "fit", "train.parquet", "-o", f"{kind}.flow", "--model", kind,
                        "--epochs", "3", "--seed", "0", "-q"], cwd=work, check=True)
    seconds: dict[str, list[float]] = {"maf": [], "nsf": []}
    for _ in range(rounds):
        for kind, times in seconds.items():
            cmd = ["score", f"{kind}.flow", "big.parquet", "-o", "s.parquet", "-q"]
            times.append(timed([*FLOWCLI, *cmd], work)[0])
    median = {kind: sorted(t)[len(t) // 2] for kind, t in seconds.items()}
    threads = os.environ.get("OMP_NUM_THREADS", f"{os.cpu_count()} (one per core)")
    print(f"{rows:,} rows x 8 columns, score parquet -> parquet, torch threads {threads}, "
          f"medians of {rounds} rounds")
    for kind, times in seconds.items():
        print(f"{kind:<4} {median[kind]:6.1f} s  {rows / median[kind]:>10,.0f} rows/s  "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})")
    print(f"spline / MAF time: {median['nsf'] / median['maf']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--spline", action="store_true",
                        help="time scoring with a spline model against a MAF instead")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="flowcli-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    make_table(30_000).to_parquet(work / "train.parquet")
    if args.spline:
        big = work / "big.parquet"
        if not big.exists() or pq.ParquetFile(big).metadata.num_rows != args.rows:
            write_big(big, args.rows)
        spline_against_maf(work, args.rows, args.rounds)
        return
    # the figure is for an 8-column MAF; `auto` may pick a spline flow, slower to score
    subprocess.run([*FLOWCLI, "fit", "train.parquet", "-o", "m.flow", "--model", "maf",
                    "--seed", "0", "-q"], cwd=work, check=True)
    big = work / "big.parquet"
    if not big.exists() or pq.ParquetFile(big).metadata.num_rows != args.rows:
        write_big(big, args.rows)
    print(f"{args.rows:,} rows x 8 columns, MAF (--model maf), {os.cpu_count()} CPUs "
          f"{os.cpu_count()} cores")
    print(f"{'run':<34} {'seconds':>8} {'rows/s':>12} {'peak RSS MB':>12}")
    runs = {
        "score parquet -> parquet": ["score", "m.flow", "big.parquet", "-o", "s.parquet", "-q"],
        "score --only-score -> parquet": ["score", "m.flow", "big.parquet", "--only-score",
                                          "-o", "s.parquet", "-q"],
        "sample -> parquet (1/10 of rows)": ["sample", "m.flow", "-n", str(args.rows // 10),
                                             "-o", "synth.parquet", "-q"],
    }
    for name, cmd in runs.items():
        seconds, peak = timed([*FLOWCLI, *cmd], work)
        rows = args.rows // 10 if name.startswith("sample") else args.rows
        print(f"{name:<34} {seconds:>8.1f} {rows / seconds:>12,.0f} {peak:>12,.0f}")
    latency = first_row_latency([*FLOWCLI, "score", "m.flow", "big.parquet"], work)
    print(f"first scored row on stdout after {latency:.2f} s")
    start = time.perf_counter()
    subprocess.run(["bash", "-c", f"{' '.join(FLOWCLI)} sample m.flow -n 1000000000 | head -n 5"],
                   cwd=work, check=False, stdout=subprocess.DEVNULL)
    print(f"sample -n 1e9 | head -n 5: {time.perf_counter() - start:.2f} s")
    for cmd in (["--help"], ["score", "--help"]):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([*FLOWCLI, *cmd], check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        print(f"flowcli {' '.join(cmd)}: median {sorted(times)[2]:.3f} s over 5 runs")


if __name__ == "__main__":
    main()

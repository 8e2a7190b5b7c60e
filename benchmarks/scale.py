"""Past one machine, measured on this one: score and sample on Dask against one process.

Usage (from the repository root; needs ``flowcli[dask]``)::

    python benchmarks/scale.py [--rows 20000000] [--files 40] [--columns 8] [--out scale.json]

1. A MAF is fitted (a few epochs: speed does not depend on how well it fits) on a correlated
   Gaussian table of ``--columns`` columns, and a dataset of ``--files`` Parquet files holding
   ``--rows`` rows is written beside it.
2. ``flowcli score MODEL DATA -o OUT/`` runs end to end as a user runs it: in one process,
   in one process on one thread (``OMP_NUM_THREADS=1``: what a worker of ``--workers 2``
   gets), then with ``--workers 1`` and ``--workers 2`` (each a fresh local cluster, its start
   included). Each run's output is compared with the one-process output, part by part.
3. ``flowcli sample -n ROWS/4 -o OUT/`` runs with 1, 2 and 3 workers; the rows must be
   identical.
4. ``flowcli fit`` of a MAF for ``--fit-epochs`` epochs on ``--fit-rows`` rows, in one
   process and under ``torchrun --nproc-per-node 2`` (gloo): seconds of training (from the
   model file) and of the whole command, and the largest weight difference between the two.
5. With ``--sample-from N`` (say 50,000,000): ``fit --max-rows 2000000 --epochs 1`` on a
   dataset of N rows, its peak resident memory (the child's ``ru_maxrss``) against the
   table's size in memory.
6. With ``--shares-from N`` (say 4,000,000): ``fit --epochs 1`` of a MAF under ``torchrun
   --nproc-per-node 2`` on a dataset of N rows, read whole by each rank (``--shared-rows N``)
   and read in shares (the default ``--shared-rows``): the largest rank's peak resident
   memory, seconds, and the held-out log-likelihood of each model on the same 100,000 rows.

Times are wall seconds of the whole command; ratios are against ``--workers 1`` and against
one process, from the same run. Run it alone: two torch jobs on two cores starve each other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FLOWCLI = [sys.executable, "-m", "flowcli"]


def _table(rows: int, columns: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(0).normal(size=(columns, columns)) / np.sqrt(columns)
    data = rng.standard_normal((rows, columns)) @ mixing
    return pd.DataFrame(data, columns=[f"x{i}" for i in range(columns)])


def _dataset(root: Path, rows: int, files: int, columns: int) -> Path:
    data = root / "data"
    data.mkdir()
    per_file = rows // files
    for i in range(files):
        _table(per_file, columns, seed=i + 1).to_parquet(data / f"part-{i:03d}.parquet",
                                                         index=False)
    return data


def _timed(args: list[str], threads: int | None = None) -> float:
    """Seconds of ``flowcli ARGS``; ``threads``: torch's threads in that process."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    start = time.perf_counter()
    done = subprocess.run([*FLOWCLI, *args, "-q"], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"flowcli {' '.join(args)} failed: {done.stderr.strip()}")
    return time.perf_counter() - start


def _same_parts(a: Path, b: Path) -> bool:
    parts = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    if parts != sorted(p.relative_to(b) for p in b.rglob("*.parquet")):
        return False
    return all(pd.read_parquet(a / p).equals(pd.read_parquet(b / p)) for p in parts)


def score_runs(model: Path, data: Path, root: Path, rows: int) -> list[dict[str, Any]]:
    runs = []
    plain = root / "score-plain"
    for label, extra, threads in (("one process", [], None),
                                  ("1 thread", [], 1),
                                  ("--workers 1", ["--workers", "1"], None),
                                  ("--workers 2", ["--workers", "2"], None)):
        out = plain if label == "one process" else root / f"score-{len(runs)}"
        seconds = _timed(["score", str(model), str(data), "-o", f"{out}/", *extra], threads)
        runs.append({"run": label, "seconds": seconds, "rows_per_second": rows / seconds,
                     "same_as_one_process": _same_parts(plain, out)})
    return runs


def sample_runs(model: Path, root: Path, rows: int) -> list[dict[str, Any]]:
    runs, first = [], None
    for workers in (1, 2, 3):
        out = root / f"sample-{workers}"
        seconds = _timed(["sample", str(model), "-n", str(rows), "--seed", "1", "-o", f"{out}/",
                          "--workers", str(workers)])
        table = pd.read_parquet(out)
        first = table if first is None else first
        runs.append({"run": f"--workers {workers}", "seconds": seconds,
                     "rows_per_second": rows / seconds, "same_rows": table.equals(first)})
    return runs


def fit_runs(root: Path, rows: int, columns: int, epochs: int) -> list[dict[str, Any]]:
    import torch

    from flowcli import FlowModel, modelfile

    table = root / "fit.parquet"
    _table(rows, columns, seed=99).to_parquet(table, index=False)
    options = ["--model", "maf", "--epochs", str(epochs), "--seed", "0", "-q"]
    runs = []
    for label, launcher in (("one process", FLOWCLI),
                            ("torchrun x 2", [sys.executable, "-m", "torch.distributed.run",
                                              "--standalone", "--nproc-per-node", "2", "-m",
                                              "flowcli"])):
        model = root / f"fit-{len(runs)}.flow"
        start = time.perf_counter()
        done = subprocess.run([*launcher, "fit", str(table), "-o", str(model), *options],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{label} fit failed: {done.stderr.strip()[-500:]}")
        seconds = time.perf_counter() - start
        runs.append({"run": label, "seconds": seconds,
                     "training_seconds": FlowModel.load(str(model)).training["seconds"],
                     "rows_per_second": rows * epochs / seconds})
    first, second = (modelfile.read(str(root / f"fit-{i}.flow")).state_dict for i in (0, 1))
    runs[1]["largest_weight_difference"] = max(
        float((first[k] - second[k]).abs().max()) for k in first if torch.is_tensor(first[k]))
    return runs


def max_rows_run(root: Path, rows: int, files: int, columns: int,
                 keep: int) -> dict[str, Any]:
    import resource

    data = root / "big"
    data.mkdir()
    for i in range(files):
        _table(rows // files, columns, seed=1000 + i).to_parquet(data / f"p{i:03d}.parquet",
                                                                 index=False)
    start = time.perf_counter()
    _timed(["fit", str(data), "-o", str(root / "sampled.flow"), "--max-rows", str(keep),
            "--model", "maf", "--epochs", "1", "--seed", "0"])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"rows": rows, "max_rows": keep, "seconds": time.perf_counter() - start,
            "peak_rss_mb": peak / 1024,  # the only child so far: the fit
            "table_mb": rows * columns * 8 / 2**20}


def shares_runs(root: Path, rows: int, columns: int) -> list[dict[str, Any]]:
    from flowcli import FlowModel

    data = root / "shares"
    data.mkdir()
    for i in range(8):
        _table(rows // 8, columns, seed=2000 + i).to_parquet(data / f"p{i}.parquet",
                                                             index=False)
    held = _table(100_000, columns, seed=3000)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "flowcli"]
    runs = []
    for label, extra in (("whole on each rank", ["--shared-rows", str(rows)]),
                         ("in shares", [])):
        model = root / f"shares-{len(runs)}.flow"
        start = time.perf_counter()
        peak = _peak_rss_mb([*torchrun, "fit", str(data), "-o", str(model), "--model", "maf",
                             "--epochs", "1", "--seed", "0", "-q", *extra])
        fitted = FlowModel.load(str(model))
        runs.append({"run": label, "seconds": time.perf_counter() - start,
                     "peak_rss_mb": peak, "held_out_ll": float(fitted.score(held).mean()),
                     "sample_rows": fitted.training.get("sample_rows")})
    return runs


def _peak_rss_mb(command: list[str]) -> float:
    """The largest resident memory of ``command``'s processes, run in a fresh process so
    that no earlier child counts."""
    probe = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) "
             "if done.returncode == 0 else sys.exit(done.returncode)")
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command[-12:])}: {done.stderr.strip()[-500:]}")
    return int(done.stdout.split()[-1]) / 1024


def _print(title: str, runs: list[dict[str, Any]], base: str) -> None:
    reference = next(r["seconds"] for r in runs if r["run"] == base)
    print(f"\n{title}")
    print(f"{'run':<14}{'seconds':>9}{'rows/s':>12}{'vs ' + base:>18}  same rows")
    for r in runs:
        same = r.get("same_as_one_process", r.get("same_rows"))
        print(f"{r['run']:<14}{r['seconds']:>9.1f}{r['rows_per_second']:>12,.0f}"
              f"{reference / r['seconds']:>17.2f}x  {same}")


def _print_rest(args: argparse.Namespace, result: dict[str, Any]) -> None:
    _print(f"sample: {args.rows // 4:,} rows", result["sample"], "--workers 1")
    print(f"\nfit: MAF, {args.fit_epochs} epochs of {args.fit_rows:,} rows")
    print(f"{'run':<14}{'seconds':>9}{'training s':>12}{'vs one process':>16}")
    for r in result["fit"]:
        print(f"{r['run']:<14}{r['seconds']:>9.1f}{r['training_seconds']:>12.1f}"
              f"{result['fit'][0]['seconds'] / r['seconds']:>15.2f}x")
    print(f"largest weight difference: {result['fit'][1]['largest_weight_difference']:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--fit-rows", type=int, default=200_000)
    parser.add_argument("--fit-epochs", type=int, default=5)
    parser.add_argument("--sample-from", type=int, default=0,
                        help="rows of the dataset for the fit --max-rows memory check")
    parser.add_argument("--only-sample-from", action="store_true",
                        help="run only the fit --max-rows memory check")
    parser.add_argument("--shares-from", type=int, default=0,
                        help="rows of the dataset for the fit-in-shares memory check alone")
    parser.add_argument("--only-score", action="store_true",
                        help="run only the score part")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.shares_from:
        with tempfile.TemporaryDirectory() as tmp:
            found = shares_runs(Path(tmp), args.shares_from, args.columns)
        print(json.dumps(found, indent=2))
        if args.out:
            args.out.write_text(json.dumps(found, indent=2))
        return
    if args.only_sample_from:
        with tempfile.TemporaryDirectory() as tmp:
            found = max_rows_run(Path(tmp), args.sample_from, 50, args.columns, 2_000_000)
        print(json.dumps(found, indent=2))
        if args.out:
            args.out.write_text(json.dumps(found, indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _table(20_000, args.columns, seed=0).to_parquet(root / "train.parquet", index=False)
        model = root / "model.flow"
        _timed(["fit", str(root / "train.parquet"), "-o", str(model), "--model", "maf",
                "--epochs", "3", "--seed", "0"])
        data = _dataset(root, args.rows, args.files, args.columns)
        result = {"rows": args.rows, "files": args.files, "columns": args.columns,
                  "cpus": os.cpu_count(), "score": score_runs(model, data, root, args.rows)}
        if not args.only_score:
            result.update(sample=sample_runs(model, root, args.rows // 4),
                          fit=fit_runs(root, args.fit_rows, args.columns, args.fit_epochs))
    _print(f"score: {args.rows:,} rows x {args.columns} columns in {args.files} files",
           result["score"], "--workers 1")
    if not args.only_score:
        _print_rest(args, result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark flowcli against zuko, nflows and scikit-learn in one run, printing ratios.

Usage (from the repository root, in an environment with ``pip install -e '.[bench]'``)::

    python benchmarks/run.py                        # the full run (about 40 minutes, 2 cores)
    python benchmarks/run.py --quick                # a smoke test (under 2 minutes)
    python benchmarks/run.py --sets wine,digits --systems flowcli-api,zuko-maf,gmm
    python benchmarks/run.py --out results.json --markdown results.md

Every (data set, system) pair runs in its own forked process, one after another, so memory is
measured per pair, a crash or hang is recorded instead of ending the run, and no two jobs share
the CPU. See ``benchmarks/README.md`` for the protocol and the latest results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from datasets import ALL_SETS
    from systems import SYSTEMS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", default=",".join(ALL_SETS), help="comma-separated data sets")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 3 small sets, 3 epochs, tiny micro-benchmark")
    p.add_argument("--max-epochs", type=int, default=200, help="epoch cap per fit")
    p.add_argument("--max-seconds", type=float, default=25.0,
                   help="training wall-time cap per fit, checked after each epoch")
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--seeds", type=int, default=1,
                   help="fits per (set, system), with seeds 0, 1, ...: means are reported")
    p.add_argument("--small-seeds", type=int, default=None,
                   help="fits per (set, system) on sets under --small-rows training rows "
                        "(default 5; 1 with --quick)")
    p.add_argument("--small-rows", type=int, default=1000,
                   help="training rows under which a set counts as small")
    p.add_argument("--rows", type=int, default=30_000, help="rows of each synthetic set")
    p.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per job")
    p.add_argument("--throughput-seconds", type=float, default=2.0,
                   help="time spent measuring scoring and sampling speed per job")
    p.add_argument("--uci-dir", default=None,
                   help="UCI tables folder (default $FLOWCLI_UCI_DIR or ../shared/data/uci)")
    p.add_argument("--no-micro", action="store_true", help="skip the speed micro-benchmark")
    p.add_argument("--out", default=None, help="write all records as JSON here")
    p.add_argument("--markdown", default=None, help="write the printed tables here")
    args = p.parse_args(argv)
    if args.small_seeds is None:
        args.small_seeds = 1 if args.quick else 5
    if min(args.seeds, args.small_seeds) < 1:
        p.error("--seeds and --small-seeds must be at least 1")
    if args.quick:
        if args.sets == ",".join(ALL_SETS):
            args.sets = "mixture8,wine,digits"
        args.rows, args.max_epochs, args.max_seconds = 3000, 3, 3.0
        args.throughput_seconds = 0.3
    return args


def in_child(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` in a forked process; return its result or ``{"error": ...}``."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            send.send(fn())
        except Exception as exc:  # noqa: BLE001
            send.send({"error": f"{type(exc).__name__}: {exc}"})

    proc = ctx.Process(target=target, daemon=True)
    proc.start()
    send.close()
    try:
        if recv.poll(timeout):
            result = recv.recv()
        else:
            result = {"error": f"timeout after {timeout:.0f} s"}
    except EOFError:
        proc.join(5)
        result = {"error": f"worker died (exit code {proc.exitcode})"}
    if proc.is_alive():
        proc.kill()
    proc.join()
    return result


def pin_flowcli() -> str:
    """Import flowcli once in the parent so that every forked job runs the same code.

    Returns a short hash of the flowcli sources as imported (or the import error), so a result
    can be tied to the code that produced it even in a working tree that is being edited.
    """
    import hashlib

    try:
        import flowcli
        import flowcli.engine  # noqa: F401
        import flowcli.model  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - the jobs will then fail and say why
        return f"import failed: {type(exc).__name__}: {exc}"
    root = Path(flowcli.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def environment(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for pkg in ("flowcli", "torch", "zuko", "nflows", "scikit-learn", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE,
                                capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "threads": args.threads, "versions": versions,
            "commit": commit, "load_average_start": os.getloadavg()}


class Printer:
    """Prints text and keeps it for the markdown file."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.parts.append(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import report
    import torch  # noqa: F401 - imported once here so that forked jobs start fast

    snapshot = pin_flowcli()
    from datasets import load
    from measure import merge_seeds, run_job
    from micro import run_micro
    from training import Recipe

    sets = [s for s in args.sets.split(",") if s]
    systems = [s for s in args.systems.split(",") if s]
    recipe = Recipe(max_epochs=args.max_epochs, max_seconds=args.max_seconds,
                    patience=args.patience)
    env = {**environment(args), "flowcli_sources": snapshot}
    out = Printer()
    out(f"# flowcli benchmark, {env['date']}")
    out()
    out(f"{env['cpus']} CPUs, {args.threads} thread(s) per job, Python {env['python']}, "
        f"versions {env['versions']}, commit {env['commit']}, flowcli sources "
        f"{env['flowcli_sources']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in env['load_average_start'])}")
    out(f"recipe: 5 layers, 2x128 hidden, Adam lr {recipe.lr}, batch {recipe.batch_size}, "
        f"patience {recipe.patience}, at most {recipe.max_epochs} epochs and "
        f"{recipe.max_seconds:g} s of training per fit")
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    set_infos: list[dict[str, Any]] = []
    timeout = 4 * args.max_seconds + 20 * args.throughput_seconds + 300
    uci = Path(args.uci_dir) if args.uci_dir else None
    for name in sets:
        ds = load(name, rows=args.rows, uci=uci)
        small = ds.train.shape[0] < args.small_rows
        seeds = list(range(max(args.seeds, args.small_seeds) if small else args.seeds))
        info = {"name": ds.name, "dim": ds.dim, "train_rows": ds.train.shape[0],
                "val_rows": ds.val.shape[0], "test_rows": ds.test.shape[0],
                "true_test_ll": ds.true_test_ll, "lattice_columns": ds.lattice_columns(),
                "notes": ds.notes, "seeds": seeds}
        set_infos.append(info)
        rows = []
        for system in systems:
            tick = time.perf_counter()
            runs = []
            for seed in seeds:
                job = functools.partial(run_job, ds, system, replace(recipe, seed=seed),
                                        args.threads, args.throughput_seconds)
                runs.append({"set": ds.name, "system": system, "seed": seed,
                             **in_child(job, timeout)})
            result = merge_seeds(runs)
            rows.append(result)
            print(f"  [{time.perf_counter() - started:6.0f} s] {name} / {system}: "
                  f"{result.get('test_ll', result.get('error'))} "
                  f"({time.perf_counter() - tick:.0f} s)", file=sys.stderr, flush=True)
        records += rows
        out()
        out(report.dataset_header(info))
        out()
        out(report.set_table(rows))
    micro: dict[str, Any] = {}
    kw: dict[str, int] = {}
    if args.quick:
        kw = dict(rows=3000, epochs=1, repeats=1, sample_rows=1000)
    if not args.no_micro:
        micro = in_child(lambda: run_micro(threads=args.threads, **kw), 1200)
    out()
    out("## Summary: mean test log-likelihood (nats per row, data units; higher is better)")
    out()
    out(report.ll_table(records, set_infos, systems))
    peers = [s for s in systems if not s.startswith("flowcli")]
    for ref in ("flowcli-api", "flowcli-maf"):
        if ref in systems and peers:
            out()
            out(f"## {ref} against each peer: dLL (flowcli minus peer) / time ratio "
                f"(flowcli / peer; s/epoch for flows, whole fit for gmm)")
            out()
            out(report.ratio_table(records, set_infos, ref, peers))
    if micro:
        out()
        out("## Speed micro-benchmark at equal architecture (5 MADE layers, 2x128)")
        out()
        if "error" in micro:
            out(f"ERROR: {micro['error']}")
        else:
            out(report.micro_table(micro, kw.get("rows", 30_000)))
    total = time.perf_counter() - started
    load_end = os.getloadavg()
    out()
    out(f"total {total / 60:.1f} min; load average at end "
        f"{', '.join(f'{x:.2f}' for x in load_end)}")
    if args.out:
        Path(args.out).write_text(json.dumps(
            {"environment": {**env, "load_average_end": load_end, "total_seconds": total},
             "args": vars(args), "sets": set_infos, "records": records, "micro": micro},
            indent=1, default=str))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(out.parts) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pure speed at equal architecture: flowcli MAF vs zuko MAF vs nflows MAF.

Every flow has 5 MADE layers with 2 hidden layers of 128 units. Measured on random standard
normal rows: seconds per training epoch (30,000 x 8, batch 512, Adam, no validation; the median
over epochs after one warm-up epoch), ``log_prob`` rows per second (30,000 x 8 in one batch, no
gradients, best of several), and sampling rows per second in 16 dimensions (10,000 rows per
call, best of several). Models are untrained: speed does not depend on the weights.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from systems import build_flow

__all__ = ["MICRO_SYSTEMS", "micro_table", "run_micro"]

MICRO_SYSTEMS = ("flowcli-maf", "zuko-maf", "nflows-maf")


def _epoch_seconds(kind: str, x: Any, epochs: int) -> float:
    import torch

    torch.manual_seed(0)
    module, log_prob, _ = build_flow(kind, x.shape[1])
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs + 1):  # the first epoch is a warm-up
        tick = time.perf_counter()
        order = torch.randperm(x.shape[0], generator=generator)
        for i in range(0, x.shape[0], 512):
            loss = -log_prob(x[order[i:i + 512]]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - tick)
    return statistics.median(times[1:])


def _best_rate(fn: Any, rows: int, repeats: int) -> float:
    fn()  # warm-up
    best = min(_timed(fn) for _ in range(repeats))
    return rows / best


def _timed(fn: Any) -> float:
    tick = time.perf_counter()
    fn()
    return time.perf_counter() - tick


def run_micro(rows: int = 30_000, epochs: int = 3, repeats: int = 3,
              sample_rows: int = 10_000, threads: int = 1) -> dict[str, dict[str, float]]:
    """``{system: {"sec_per_epoch", "log_prob_rows_per_s", "sample16_rows_per_s"}}``."""
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x8 = torch.randn(rows, 8, generator=gen)
    results: dict[str, dict[str, float]] = {}
    for kind in MICRO_SYSTEMS:
        out: dict[str, float] = {"sec_per_epoch": _epoch_seconds(kind, x8, epochs)}
        torch.manual_seed(0)
        module, log_prob, _ = build_flow(kind, 8)
        module.eval()
        with torch.no_grad():
            out["log_prob_rows_per_s"] = _best_rate(lambda: log_prob(x8), rows, repeats)
        torch.manual_seed(0)
        module16, _, sample16 = build_flow(kind, 16)
        module16.eval()
        with torch.no_grad():
            out["sample16_rows_per_s"] = _best_rate(lambda: sample16(sample_rows), sample_rows,
                                                    repeats)
        results[kind] = {k: float(v) for k, v in out.items()}
    return results


def micro_table(results: dict[str, dict[str, float]]) -> str:
    """Markdown table with flowcli's ratio to each peer (>1 means flowcli is faster)."""
    ref = results.get("flowcli-maf")
    lines = ["| system | s/epoch (30k x 8) | log_prob rows/s (8-D) | sample rows/s (16-D) "
             "| flowcli speed-up: train | log_prob | sample |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, r in results.items():
        if ref is None:
            ratios = ["-"] * 3
        else:
            ratios = [f"{r['sec_per_epoch'] / ref['sec_per_epoch']:.2f}x",
                      f"{ref['log_prob_rows_per_s'] / r['log_prob_rows_per_s']:.2f}x",
                      f"{ref['sample16_rows_per_s'] / r['sample16_rows_per_s']:.2f}x"]
        lines.append(f"| {kind} | {r['sec_per_epoch']:.3f} | {r['log_prob_rows_per_s']:,.0f} "
                     f"| {r['sample16_rows_per_s']:,.0f} | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(micro_table(run_micro()))

"""Pure speed at equal architecture: flowcli MAF vs zuko MAF vs nflows MAF.

Every flow has 5 MADE layers with 2 hidden layers of 128 units. Measured on random standard
normal rows: seconds per training epoch (30,000 x 8, batch 512, Adam, no validation; the median
over epochs after one warm-up epoch), ``log_prob`` rows per second (30,000 x 8 in 4,096-row
batches, no gradients, best of several), and sampling rows per second in 16 dimensions (10,000
rows per call, best of several). Models are untrained: speed does not depend on the weights.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from systems import build_flow
from training import batched_log_prob

__all__ = ["MICRO_SYSTEMS", "run_micro"]

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


def _measure(kind: str, x8: Any, epochs: int, repeats: int, sample_rows: int
             ) -> dict[str, float]:
    import torch

    out = {"sec_per_epoch": _epoch_seconds(kind, x8, epochs)}
    torch.manual_seed(0)
    module, log_prob, _ = build_flow(kind, 8)
    module.eval()
    with torch.no_grad():
        out["log_prob_rows_per_s"] = _best_rate(lambda: batched_log_prob(log_prob, x8),
                                                x8.shape[0], repeats)
    torch.manual_seed(0)
    module16, _, sample16 = build_flow(kind, 16)
    module16.eval()
    with torch.no_grad():
        out["sample16_rows_per_s"] = _best_rate(lambda: sample16(sample_rows), sample_rows,
                                                repeats)
    return {k: float(v) for k, v in out.items()}


def run_micro(rows: int = 30_000, epochs: int = 3, repeats: int = 5,
              sample_rows: int = 10_000, threads: int = 1) -> dict[str, dict[str, Any]]:
    """``{system: {"sec_per_epoch", "log_prob_rows_per_s", "sample16_rows_per_s"}}``."""
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x8 = torch.randn(rows, 8, generator=gen)
    results: dict[str, dict[str, Any]] = {}
    for kind in MICRO_SYSTEMS:
        try:
            results[kind] = _measure(kind, x8, epochs, repeats, sample_rows)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other systems
            results[kind] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


if __name__ == "__main__":
    from report import micro_table

    print(micro_table(run_micro()))

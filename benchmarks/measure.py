"""Measuring one (data set, system) pair: fit, test log-likelihood, throughput and memory.

:func:`run_job` is what each worker process executes. Throughput numbers are bounded in time:
scoring repeats the test rows and sampling grows its batch until about ``seconds`` have passed,
so slow samplers (autoregressive splines in 64 dimensions) cannot stall the run.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from datasets import Dataset
from systems import make
from training import Recipe

__all__ = ["PeakRss", "merge_seeds", "run_job", "score_rate", "sample_rate"]


class PeakRss:
    """Polls the process RSS in a thread; ``growth_mb`` is the peak above the starting RSS."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def score_rate(system: Any, x: np.ndarray, seconds: float, max_rows: int = 200_000) -> float:
    """Rows per second of ``system.log_prob`` on the test rows, repeated to fill ``seconds``."""
    system.log_prob(x[:256])  # warm-up
    big = np.tile(x, (-(-max_rows // x.shape[0]), 1))
    tick = time.perf_counter()
    system.log_prob(big[:2048])
    probe = 2048 / (time.perf_counter() - tick)
    rows = int(np.clip(probe * seconds, 2048, max_rows))
    tick = time.perf_counter()
    system.log_prob(big[:rows])
    return rows / (time.perf_counter() - tick)


def sample_rate(system: Any, seconds: float, max_rows: int = 20_000) -> tuple[float, int, int]:
    """``(rows per second, rows drawn, non-finite rows)`` of ``system.sample``."""
    n, total_rows, total_time, bad = 128, 0, 0.0, 0
    while True:
        tick = time.perf_counter()
        x = system.sample(n)
        dt = time.perf_counter() - tick
        total_rows += n
        total_time += dt
        bad += int((~np.isfinite(x).all(axis=1)).sum())
        if total_time >= seconds or n >= max_rows:
            break
        # next batch sized to fill the rest of the time budget
        n = int(min(max_rows, max(n * 2, n / max(dt, 1e-6) * (seconds - total_time))))
    return total_rows / total_time, total_rows, bad


def run_job(ds: Dataset, system_name: str, recipe: Recipe, threads: int,
            throughput_seconds: float) -> dict[str, Any]:
    """Fit ``system_name`` on ``ds`` and measure it; errors are reported, not raised."""
    import torch

    torch.set_num_threads(threads)
    out: dict[str, Any] = {"set": ds.name, "system": system_name, "dim": ds.dim,
                           "train_rows": ds.train.shape[0], "test_rows": ds.test.shape[0],
                           "seed": recipe.seed}
    system = make(system_name)
    try:
        with PeakRss() as rss:
            tick = time.perf_counter()
            system.fit(ds.train, ds.val, recipe)
            out["fit_wall_seconds"] = time.perf_counter() - tick
            lp = system.log_prob(ds.test)
        out.update(system.info)
        out["peak_rss_growth_mb"] = rss.growth_mb
        finite = np.isfinite(lp)
        out["test_nonfinite"] = int((~finite).sum())
        out["test_ll"] = float(lp.mean()) if finite.all() else float("nan")
        out["test_ll_finite_mean"] = float(lp[finite].mean()) if finite.any() else None
        out["test_ll_median"] = float(np.median(lp))
        out["test_ll_sem"] = float(lp[finite].std() / np.sqrt(max(finite.sum(), 1)))
        if ds.true_test_ll is not None:
            out["gap"] = ds.true_test_ll - out["test_ll"]
        epochs = out.get("epochs")
        out["seconds_per_epoch"] = out["train_seconds"] / epochs if epochs else None
        out["score_rows_per_s"] = score_rate(system, ds.test, throughput_seconds)
        rate, rows, bad = sample_rate(system, throughput_seconds)
        out.update(sample_rows_per_s=rate, sample_rows=rows, sample_nonfinite=bad)
    except Exception as exc:  # noqa: BLE001 - a failing system is a result, not a crash
        out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return out


MEANS = ("test_ll", "test_ll_finite_mean", "test_ll_sem", "gap", "test_ll_median",
         "fit_wall_seconds", "train_seconds", "seconds_per_epoch", "score_rows_per_s",
         "sample_rows_per_s")


def merge_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for fits of the same pair with different seeds.

    The first successful seed's record is kept whole (epochs, candidates, ...; its ``seed``
    says which); ``test_ll`` and the other fields of :data:`MEANS` become means over the
    seeds that ran (``test_ll`` is NaN if any seed scored a test row non-finite, as one fit's
    is), ``test_ll_by_seed`` lists each seed's value (``seeds`` which seeds),
    ``test_ll_seed_sd`` their standard deviation, peak memory is the largest and non-finite
    counts are summed over the fits (``fits``). Each failed seed is listed in
    ``seed_errors``; the record is an error only when every seed failed.
    """
    if len(runs) == 1:
        return runs[0]
    ok = [r for r in runs if "error" not in r]
    errors = [f"seed {r['seed']}: {r['error']}" for r in runs if "error" in r]
    if not ok:
        return {**runs[0], "seed_errors": errors}
    out = dict(ok[0])
    for key in MEANS:
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            out[key] = float(np.mean(values))
    lls = [r["test_ll"] for r in ok]
    out["fits"] = len(ok)
    out["seeds"] = [r["seed"] for r in ok]
    out["test_ll_by_seed"] = lls
    out["test_ll_seed_sd"] = float(np.std(lls, ddof=1)) if len(lls) > 1 else None
    out["peak_rss_growth_mb"] = max(r["peak_rss_growth_mb"] for r in ok)
    for key in ("test_nonfinite", "sample_nonfinite", "sample_rows"):
        out[key] = sum(r.get(key, 0) for r in ok)
    if errors:
        out["seed_errors"] = errors
    return out

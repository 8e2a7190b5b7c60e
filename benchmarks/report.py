"""Markdown tables from the benchmark's result records.

Conventions: log-likelihoods are mean nats per test row in the data's own units (higher is
better); ``dLL`` is flowcli minus the peer (positive: flowcli better); time ratios are flowcli's
time divided by the peer's (below 1: flowcli faster). For flow peers the time compared is seconds
per epoch (runs are capped in wall time, so totals say little); for ``gmm`` it is the whole fit.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["dataset_header", "ll_table", "micro_table", "ratio_table", "sampling_table",
           "set_table", "spline_table"]

Record = dict[str, Any]


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _ll(r: Record, spread: bool = False) -> str:
    if "error" in r:
        return "ERROR"
    if r.get("test_nonfinite"):
        fits = f" in {r['fits']} fits" if r.get("fits", 1) > 1 else ""
        return f"nan ({r['test_nonfinite']} non-finite{fits})"
    if spread and r.get("test_ll_seed_sd") is not None:
        return f"{_num(r.get('test_ll'))} ± {_num(r['test_ll_seed_sd'])}"
    return _num(r.get("test_ll"))


def dataset_header(info: dict[str, Any]) -> str:
    truth = info.get("true_test_ll")
    lattice = info.get("lattice_columns") or []
    parts = [f"### {info['name']}: {info['dim']}-D, {info['train_rows']} train / "
             f"{info['val_rows']} val / {info['test_rows']} test rows"]
    if truth is not None:
        parts.append(f"true mean test log-likelihood (the limit): **{truth:.3f}**")
    if lattice:
        parts.append(f"columns with <= 50 distinct training values: {len(lattice)} "
                     f"(indices {', '.join(map(str, lattice))})")
    parts += info.get("notes", [])
    seeds = info.get("seeds") or [0]
    if len(seeds) > 1:
        parts.append(f"{len(seeds)} fits per system, seeds {seeds[0]}-{seeds[-1]}: test LL is "
                     f"their mean ± standard deviation; gap, median, times and rates are "
                     f"means, peak RSS the largest; epochs are seed {seeds[0]}'s")
    return "\n\n".join(parts)


def set_table(records: list[Record]) -> str:
    """One data set: every system's likelihood, timings, throughput and memory."""
    lines = ["| system | test LL | gap to truth | median LL | epochs (stop, best) | train s "
             "| s/epoch | score rows/s | sample rows/s | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['system']} | ERROR: {r['error']} |" + " |" * 8)
            continue
        stop = r.get("stopped") or ""
        epochs = r.get("epochs")
        best = f", best {r['best_epoch']}" if r.get("best_epoch") is not None else ""
        ep = f"{epochs} ({stop}{best})" if epochs else stop
        sample = _num(r.get("sample_rows_per_s"), "{:,.0f}")
        if r.get("sample_nonfinite"):
            sample += f" ({r['sample_nonfinite']}/{r['sample_rows']} non-finite)"
        lines.append(
            f"| {r['system']} | {_ll(r, spread=True)} | {_num(r.get('gap'))} "
            f"| {_num(r.get('test_ll_median'))} "
            f"| {ep} | {_num(r.get('fit_wall_seconds'), '{:.1f}')} "
            f"| {_num(r.get('seconds_per_epoch'), '{:.3f}')} "
            f"| {_num(r.get('score_rows_per_s'), '{:,.0f}')} | {sample} "
            f"| {_num(r.get('peak_rss_growth_mb'), '{:.0f}')} |")
    for r in records:
        values = r.get("test_ll_by_seed")
        if values and r.get("seed_errors"):  # some seeds missing: say which value is whose
            lines.append(f"\n{r['system']} test LL by seed: " + ", ".join(
                f"{v:.2f} (seed {s})" for s, v in zip(r["seeds"], values, strict=True))
                + f"; epochs are seed {r['seeds'][0]}'s")
        elif values:
            lines.append(f"\n{r['system']} test LL by seed: "
                         + ", ".join(f"{v:.2f}" for v in values))
        for error in r.get("seed_errors", []):
            lines.append(f"\n{r['system']} failed on {error}")
    for r in records:
        kinds = r.get("column_kinds") or {}
        if set(kinds) - {"continuous"}:
            lines.append(f"\n{r['system']} modelled the columns as {kinds}: its score uses "
                         f"log-probabilities for the non-continuous ones")
    return "\n".join(lines)


def ll_table(records: list[Record], sets: list[dict[str, Any]], systems: list[str]) -> str:
    """Sets by systems: mean test log-likelihood (and the truth for synthetic sets)."""
    lines = ["| set | truth | " + " | ".join(systems) + " |",
             "|---|---:|" + "---:|" * len(systems)]
    for info in sets:
        by = {r["system"]: r for r in records if r["set"] == info["name"]}
        cells = [_ll(by[s]) if s in by else "" for s in systems]
        lines.append(f"| {info['name']} | {_num(info.get('true_test_ll'))} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _time_ratio(ref: Record, peer: Record) -> float | None:
    key = "fit_wall_seconds" if peer["system"] == "gmm" else "seconds_per_epoch"
    a, b = ref.get(key), peer.get(key)
    return a / b if a and b else None


def _dll(ref: Record, peer: Record) -> float | None:
    a, b = ref.get("test_ll"), peer.get("test_ll")
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return a - b


def ratio_table(records: list[Record], sets: list[dict[str, Any]], ref: str,
                peers: list[str]) -> str:
    """``dLL / time ratio`` of ``ref`` against each peer, one row per set."""
    lines = [f"| set ({ref} vs) | " + " | ".join(peers) + " |",
             "|---|" + "---:|" * len(peers)]
    for info in sets:
        by = {r["system"]: r for r in records if r["set"] == info["name"]}
        if ref not in by or "error" in by[ref]:
            continue
        cells = []
        for p in peers:
            if p not in by or "error" in by[p]:
                cells.append("-")
                continue
            dll, tr = _dll(by[ref], by[p]), _time_ratio(by[ref], by[p])
            cells.append(f"{_num(dll, '{:+.2f}')} / {_num(tr, '{:.2f}x')}")
        lines.append(f"| {info['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spline_table(results: dict[str, dict[str, float]]) -> str:
    """Scoring rows/s per dimension, and each system's time over flowcli's MAF's."""
    systems = list(next(iter(results.values()), {}))
    lines = ["| columns | " + " | ".join(f"{s} rows/s" for s in systems)
             + " | " + " | ".join(f"{s} / flowcli-maf time" for s in systems[1:]) + " |",
             "|---|" + "---:|" * (2 * len(systems) - 1)]
    for dims, r in results.items():
        ref = r["flowcli-maf"]
        lines.append(f"| {dims} | " + " | ".join(f"{r[s]:,.0f}" for s in systems) + " | "
                     + " | ".join(f"{ref / r[s]:.2f}x" for s in systems[1:]) + " |")
    return "\n".join(lines)


def spline_training_table(results: dict[str, dict[str, float]]) -> str:
    """Seconds per training epoch per dimension, each system's over flowcli's MAF's, and
    flowcli's spline flow's over zuko's NSF."""
    systems = list(next(iter(results.values()), {}))
    lines = ["| columns | " + " | ".join(f"{s} s/epoch" for s in systems)
             + " | " + " | ".join(f"{s} / flowcli-maf" for s in systems[1:])
             + " | flowcli-spline / zuko-nsf |",
             "|---|" + "---:|" * (2 * len(systems))]
    for dims, r in results.items():
        ref = r["flowcli-maf"]
        lines.append(f"| {dims} | " + " | ".join(f"{r[s]:.2f}" for s in systems) + " | "
                     + " | ".join(f"{r[s] / ref:.2f}x" for s in systems[1:])
                     + f" | {r['flowcli-spline'] / r['zuko-nsf']:.2f}x |")
    return "\n".join(lines)


def sampling_table(results: dict[str, dict[str, float]]) -> str:
    """Sampling rows/s per dimension, and flowcli's rate over zuko's for each kind of flow."""
    systems = list(next(iter(results.values()), {}))
    lines = ["| columns | " + " | ".join(f"{s} rows/s" for s in systems)
             + " | flowcli-maf / zuko-maf | flowcli-spline / zuko-nsf |",
             "|---|" + "---:|" * (len(systems) + 2)]
    for dims, r in results.items():
        lines.append(f"| {dims} | " + " | ".join(f"{r[s]:,.0f}" for s in systems)
                     + f" | {r['flowcli-maf'] / r['zuko-maf']:.1f}x"
                     + f" | {r['flowcli-spline'] / r['zuko-nsf']:.1f}x |")
    return "\n".join(lines)


def micro_table(results: dict[str, dict[str, float]], rows: int = 30_000) -> str:
    """Micro-benchmark medians; ratios are flowcli time / peer time (below 1: flowcli faster).

    The training ratio of ``flowcli-train`` (flowcli's own loop) is against each row's epoch;
    the other ratios use ``flowcli-maf`` (the engine in the peers' loop).
    """
    ref = results.get("flowcli-maf", {})
    own = results.get("flowcli-train", {})
    lines = [f"| system | s/epoch ({rows:,} x 8) | log_prob rows/s (8-D) | sample rows/s (16-D) "
             "| flowcli/peer time: train (engine) | train (flowcli loop) | log_prob | sample |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def ratio(num: dict[str, float], den: dict[str, float], key: str, rate: bool) -> str:
        if key not in num or key not in den:
            return "-"
        return f"{(den[key] / num[key]) if rate else (num[key] / den[key]):.2f}x"

    def cell(r: dict[str, float], key: str, fmt: str) -> str:
        return fmt.format(r[key]) if key in r else "-"

    for kind, r in results.items():
        if "error" in r:
            lines.append(f"| {kind} | ERROR: {r['error']} |" + " |" * 6)
            continue
        lines.append(
            f"| {kind} | {cell(r, 'sec_per_epoch', '{:.3f}')} "
            f"| {cell(r, 'log_prob_rows_per_s', '{:,.0f}')} "
            f"| {cell(r, 'sample16_rows_per_s', '{:,.0f}')} "
            f"| {ratio(ref, r, 'sec_per_epoch', False)} | {ratio(own, r, 'sec_per_epoch', False)} "
            f"| {ratio(ref, r, 'log_prob_rows_per_s', True)} "
            f"| {ratio(ref, r, 'sample16_rows_per_s', True)} |")
    return "\n".join(lines)

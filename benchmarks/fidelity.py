"""Synthetic-data fidelity on a mixed table: flowcli (and CTGAN, when installed) side by side.

For each system: fit on the table, sample as many rows, and compare with the real rows:
Kolmogorov-Smirnov distance per numeric column (on the rows present), total-variation distance
per categorical column, the largest difference between the numeric correlation matrices, between
correlation ratios (category vs number) and between per-category means (in standard
deviations), and fit seconds. Rows with gaps are dropped first, since CTGAN refuses them.

Usage: python benchmarks/fidelity.py [--table sample_data/transactions.csv] [--exclude id]
           [--positive amount] [--bounds refunded=0:1] [--ctgan-epochs 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from flowcli import FlowModel
from flowcli.tabular import Overrides


def ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def eta(df: pd.DataFrame, label: str, value: str) -> float:
    """Correlation ratio: how much of a numeric column's variance the categories explain."""
    d = df[[label, value]].dropna()
    groups = d.groupby(d[label].astype(str))[value]
    between = (groups.count() * (groups.mean() - d[value].mean()) ** 2).sum()
    total = ((d[value] - d[value].mean()) ** 2).sum()
    return float(np.sqrt(between / total)) if total > 0 else 0.0


def metrics(real: pd.DataFrame, synth: pd.DataFrame) -> dict[str, float]:
    numeric = [c for c in real.columns if pd.api.types.is_numeric_dtype(real[c])
               and not pd.api.types.is_bool_dtype(real[c])]
    labels = [c for c in real.columns if c not in numeric]
    out = {f"KS {c}": ks(real[c].dropna().to_numpy(float), synth[c].dropna().to_numpy(float))
           for c in numeric}
    for c in labels:
        p = real[c].astype(str).value_counts(normalize=True)
        q = synth[c].astype(str).value_counts(normalize=True)
        out[f"TV {c}"] = 0.5 * float(p.subtract(q, fill_value=0).abs().sum())
    corr = (real[numeric].corr() - synth[numeric].corr()).abs().to_numpy()
    out["max |corr diff|"] = float(np.nanmax(corr))
    worst = 0.0
    for c in labels:
        for x in numeric:
            sd = real[x].std()
            diff = (real.groupby(real[c].astype(str))[x].mean()
                    - synth.groupby(synth[c].astype(str))[x].mean()).abs() / sd
            worst = max(worst, float(diff.max()))
    out["max category-mean diff (sd)"] = worst
    out["max |eta diff|"] = max(
        (abs(eta(real, c, x) - eta(synth, c, x)) for c in labels for x in numeric), default=0.0)
    return out


def run_flowcli(df: pd.DataFrame, overrides: Overrides) -> tuple[pd.DataFrame, float]:
    start = time.perf_counter()
    model = FlowModel.fit(df, seed=0, device="cpu", overrides=overrides)
    seconds = time.perf_counter() - start
    return model.sample(len(df), seed=1), seconds


def run_ctgan(df: pd.DataFrame, epochs: int) -> tuple[pd.DataFrame, float] | None:
    try:
        from ctgan import CTGAN
    except ImportError:
        return None
    labels = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])
              or pd.api.types.is_bool_dtype(df[c])]
    start = time.perf_counter()
    gan = CTGAN(epochs=epochs)
    gan.fit(df, labels)
    return gan.sample(len(df)), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="sample_data/transactions.csv")
    parser.add_argument("--exclude", default="id")
    parser.add_argument("--positive", default="amount")
    parser.add_argument("--bounds", default="refunded=0:1")
    parser.add_argument("--ctgan-epochs", type=int, default=300)
    args = parser.parse_args()
    df = pd.read_csv(args.table).drop(columns=[c for c in args.exclude.split(",") if c])
    # CTGAN refuses gaps in numeric columns: every system gets the complete rows
    df = df.dropna().reset_index(drop=True)
    bounds = {}
    for item in filter(None, args.bounds.split(",")):
        name, rng = item.split("=")
        lo, hi = rng.split(":")
        bounds[name] = (float(lo), float(hi))
    overrides = Overrides(positive=set(filter(None, args.positive.split(","))), bounds=bounds)
    results = {"flowcli": run_flowcli(df, overrides)}
    ctgan = run_ctgan(df, args.ctgan_epochs)
    if ctgan is not None:
        results["ctgan"] = ctgan
    table = pd.DataFrame({name: {**metrics(df, synth), "fit seconds": seconds}
                          for name, (synth, seconds) in results.items()})
    print(f"{args.table}: {len(df):,} rows; synthetic rows: as many")
    print(table.round(4).to_string())
    if "ctgan" in table:
        print(f"\nflowcli fit time / CTGAN fit time: "
              f"{table.loc['fit seconds', 'flowcli'] / table.loc['fit seconds', 'ctgan']:.3f}")
    else:
        print("\nCTGAN is not installed (pip install ctgan) - flowcli alone")


if __name__ == "__main__":
    main()

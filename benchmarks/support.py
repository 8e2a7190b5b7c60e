"""Inferred supports on a table the defaults were not tuned on: do samples keep to them?

A synthetic insurance table (skewed positive premiums with gaps, a satisfaction share in (0, 1)
that falls with the premium, ages, claim counts, regions, an income that crosses zero) is fitted
twice with ``fit``'s defaults and ``--missing model``: as is, and with ``unbounded`` on the
three columns whose support is inferred. Printed: the kinds, the validation log-likelihood,
sampled values outside each support, KS distances, the largest correlation difference and the
missing rates.

Usage: ``python benchmarks/support.py [--rows 8000] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from flowcli import FlowModel

BOUNDED = ("premium", "satisfaction", "age")
NUMERIC = ["age", "premium", "satisfaction", "income"]


def claims(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(45, 12, n).clip(18, 90)
    premium = np.exp(rng.normal(6.5, 0.6, n) + 0.01 * (age - 45))
    satisfaction = 1 / (1 + np.exp(-(rng.normal(0.8, 1.0, n) - 0.002 * (premium - 700))))
    df = pd.DataFrame({"age": age, "premium": premium, "satisfaction": satisfaction,
                       "claims": rng.poisson(0.5 + 0.01 * age),
                       "region": rng.choice(["n", "s", "e", "w"], n),
                       "income": rng.normal(0, 1, n) * 1000 + 20 * age})
    df.loc[rng.random(n) < 0.05, "premium"] = np.nan
    return df


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov distance."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.abs(fa - fb).max())


def report(df: pd.DataFrame, unbounded: list[str], seconds: float) -> None:
    tick = time.perf_counter()
    model = FlowModel.fit(df, seed=0, device="cpu", missing="model", max_seconds=seconds,
                          unbounded=unbounded)
    took = time.perf_counter() - tick
    synth = model.sample(len(df) * 2, seed=1)
    kinds = ", ".join(f"{c.name} {c.kind_label}" for c in model.schema.columns)
    print(f"unbounded={unbounded or 'none'}: {kinds}")
    print(f"  fit {took:.1f} s, validation log-likelihood "
          f"{model.training['val_log_likelihood']:.4f}")
    premium, share = synth["premium"].dropna(), synth["satisfaction"]
    print(f"  sampled premium <= 0: {int((premium <= 0).sum())}, satisfaction outside [0, 1]: "
          f"{int((~share.between(0, 1)).sum())} of {len(synth):,}")
    distances = [ks(df[c].dropna().to_numpy(), synth[c].dropna().to_numpy()) for c in NUMERIC]
    print("  KS " + ", ".join(f"{c} {d:.4f}" for c, d in zip(NUMERIC, distances, strict=True)))
    corr = np.abs(df[NUMERIC].corr().to_numpy() - synth[NUMERIC].corr().to_numpy()).max()
    print(f"  max |corr diff| {corr:.3f}; premium missing {df['premium'].isna().mean():.4f} "
          f"real, {synth['premium'].isna().mean():.4f} synthetic")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=8000)
    p.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    df = claims(args.rows)
    report(df, [], args.seconds)
    report(df, list(BOUNDED), args.seconds)


if __name__ == "__main__":
    main()

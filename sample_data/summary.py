"""Print what `make demo` produced: real vs synthetic columns, and the flagged rows.

Usage: python sample_data/summary.py TRAIN SYNTHETIC SCORED
"""

from __future__ import annotations

import sys

import pandas as pd


def read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path) if path.endswith((".parquet", ".pq")) else pd.read_csv(path)


def main(train_path: str, synthetic_path: str, scored_path: str) -> None:
    train, synth, scored = read(train_path), read(synthetic_path), read(scored_path)
    print(f"{'column':<10} {'dtype':>8}  {'real':>22}  {'synthetic':>22}")
    for c in synth.columns:
        real, fake = train[c], synth[c]
        if pd.api.types.is_numeric_dtype(real) and not pd.api.types.is_bool_dtype(real):
            show = lambda s: f"median {s.median():8.2f}, {s.isna().mean():4.1%} gaps"  # noqa: E731
        else:
            show = lambda s: f"{s.mode()[0]!s:>10} {s.eq(s.mode()[0]).mean():5.1%} of rows"  # noqa: E731
        print(f"{c:<10} {str(fake.dtype):>8}  {show(real):>22}  {show(fake):>22}")
    by = lambda d: d.groupby("merchant")["amount"].median()  # noqa: E731
    gap = (by(train) - by(synth)).abs() / by(train)
    print(f"\nmedian amount per merchant, real vs synthetic: largest gap {gap.max():.1%} "
          f"({gap.idxmax()})")
    flagged = scored[scored["anomaly"]].sort_values("log_prob")
    planted = scored["id"] >= 900001
    print(f"\n{len(flagged)} rows flagged as anomalies; planted anomalies caught: "
          f"{int((planted & scored['anomaly']).sum())} of {int(planted.sum())}")
    print(flagged.head(8).to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:4])

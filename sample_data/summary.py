"""Print what `make demo` produced: real vs synthetic columns, and the least likely new rows.

Usage: python sample_data/summary.py TRAIN SYNTHETIC SCORED
"""

from __future__ import annotations

import sys

import pandas as pd


def read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path) if path.endswith((".parquet", ".pq")) else pd.read_csv(path)


def main(train_path: str, synthetic_path: str, scored_path: str) -> None:
    train, synth, scored = read(train_path), read(synthetic_path), read(scored_path)
    print(f"{'column':<12} {'dtype':>8} {'real mean':>10} {'synth mean':>10} "
          f"{'real std':>9} {'synth std':>9}")
    for c in train.columns:
        print(f"{c:<12} {str(synth[c].dtype):>8} {train[c].mean():>10.3f} "
              f"{synth[c].mean():>10.3f} {train[c].std():>9.3f} {synth[c].std():>9.3f}")
    corr_real = train.corr().loc["load", "temperature"]
    corr_synth = synth.corr().loc["load", "temperature"]
    print(f"\ncorrelation load~temperature: real {corr_real:.3f}, synthetic {corr_synth:.3f}")
    print("\nleast likely new readings (log_prob in nats per row):")
    print(scored.sort_values("log_prob").head(5).to_string(index=False))


if __name__ == "__main__":
    main(*sys.argv[1:4])

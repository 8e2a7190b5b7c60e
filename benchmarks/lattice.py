"""A table with float-coded lattice columns, fitted with the defaults: does training stop by
patience, does the schema name the lattice columns, and do samples keep to their grids?

Usage (from the repository root)::

    python benchmarks/lattice.py [--rows 15000] [--seed 0]

The table has three continuous columns (a log-normal income, a score, a share in (0, 1)),
three codes standardized as a feature pipeline leaves them (10, 2 and 7 levels), a code of 120
levels standardized and written to 5 significant digits (so off any exact grid, as in a CSV
file written with ``%.5g``) and a price in cents (over 1,000 distinct values, so not a grid).
The defaults were not tuned on it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

CODES = ("band", "flag", "grade", "tier")


def lattice_table(rows: int, seed: int = 7) -> pd.DataFrame:
    """The table described in the module docstring."""
    rng = np.random.default_rng(seed)
    cov = [[1, .6, .3, 0], [.6, 1, .2, .1], [.3, .2, 1, .5], [0, .1, .5, 1]]
    z = rng.multivariate_normal(np.zeros(4), cov, size=rows)
    df = pd.DataFrame({"income": np.exp(10 + 0.5 * z[:, 0]), "score": z[:, 1] * 3 + 50,
                       "ratio": 1 / (1 + np.exp(-z[:, 2]))})
    codes = {"band": np.clip(np.round(2 * z[:, 0] + 5), 0, 9),
             "flag": (z[:, 1] > 0.3).astype(float),
             "grade": np.clip(np.round(z[:, 3] * 1.5 + 3), 0, 6)}
    for name, values in codes.items():
        df[name] = (values - values.mean()) / values.std()
    tier = np.clip(np.round(25 * z[:, 2] + 60), 0, 119)
    df["tier"] = [float(f"{v:.5g}") for v in (tier - tier.mean()) / tier.std()]
    df["price"] = np.round(np.exp(2 + 0.3 * z[:, 3]), 2)
    return df


def main() -> None:
    from flowcli import FlowModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=15_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    df = lattice_table(args.rows)
    tick = time.perf_counter()
    model = FlowModel.fit(df, seed=args.seed)
    seconds = time.perf_counter() - tick
    training = model.training
    print(f"fit {seconds:.1f} s, kept {model.info()['model']['kind']}, "
          f"{training['epochs']} epochs, stopped: {training['stopped']}")
    for column in model.schema.columns:
        print(f"  {column.name:8s} {column.kind_label}")
    synth = model.sample(20_000, seed=1)
    for name in CODES:
        grid = np.unique(df[name].to_numpy())
        on_grid = np.isclose(synth[name].to_numpy()[:, None], grid[None, :], rtol=0,
                             atol=1e-9).any(axis=1)
        print(f"  {name}: {synth[name].nunique()} distinct sampled values, "
              f"all on the training grid: {bool(on_grid.all())}, all training values: "
              f"{bool(synth[name].isin(grid).all())}")


if __name__ == "__main__":
    main()

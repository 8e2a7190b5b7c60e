"""What a default fit costs: ``FlowModel.fit`` with no cap on epochs or time, on benchmark sets.

Usage (from the repository root)::

    python benchmarks/default_fit.py [--sets wine,parkinsons,elevators,mixed12] [--seed 0]
    python benchmarks/default_fit.py --grids --sets path/to/table.csv

For each set: the wall time of the whole fit (every candidate ``auto`` tries), the epochs and
stop of each candidate, and the test log-likelihood. Float columns on a grid are kept
continuous, as in ``run.py``, so the test scores compare with the peers' there; with
``--grids`` they are modelled on their grids, as ``fit`` does by default. A set named by a
CSV file's path is its numeric columns, rows with a missing value dropped. One thread.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def fit_once(name: str, seed: int, grids: bool = False) -> dict:
    """The default fit of one set: seconds, test log-likelihood, the candidates and the
    validation curve of each (``curves``: ``[stage, epoch, val_ll, seconds]`` per epoch)."""
    import pandas as pd
    from datasets import load
    from systems import grid_columns

    from flowcli import FlowModel

    ds = load(name)
    columns = [f"c{j}" for j in range(ds.dim)]
    df = pd.DataFrame(np.concatenate([ds.train, ds.val]), columns=columns)
    tick = time.perf_counter()
    curves: list[list] = []
    # sources from before grids were inferred (run through PYTHONPATH) keep every column
    # continuous and have no such option
    grids_known = "continuous" in inspect.signature(FlowModel.fit).parameters
    options = {"continuous": [] if grids else grid_columns(df)} if grids_known else {}
    model = FlowModel.fit(df, seed=seed, device="cpu", **options,
                          callback=lambda r: curves.append([r.stage, r.epoch, r.val_ll,
                                                            time.perf_counter() - tick]))
    seconds = time.perf_counter() - tick
    test = float(model.score(pd.DataFrame(ds.test, columns=columns)).mean())
    tried = [f"{_name(c)} {c['epochs']} ({c['stopped']}, {c['seconds']:.0f} s)"
             for c in model.training["candidates"]]
    return {"set": ds.name, "rows": ds.train.shape[0] + ds.val.shape[0], "columns": ds.dim,
            "seconds": seconds, "test_ll": test, "tried": tried, "curves": curves}


def _name(candidate: dict) -> str:
    """A candidate's flow, in bold when it is the one kept."""
    name = candidate["model"] + ("+mixture" if candidate.get("mixture") else "")
    return f"**{name}**" if candidate["kept"] else name


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="wine,parkinsons,elevators,mixed12")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grids", action="store_true",
                        help="model float columns on a grid as discrete, as fit does")
    parser.add_argument("--out", help="write every fit, validation curves included, as JSON")
    args = parser.parse_args()
    results = []
    torch.set_num_threads(1)
    print("| set | rows x columns | fit seconds | test LL "
          "| candidates: epochs (stop, s); kept in bold |")
    print("|---|---|---:|---:|---|")
    for name in args.sets.split(","):
        r = fit_once(name, args.seed, args.grids)
        results.append(r)
        if args.out:
            Path(args.out).write_text(json.dumps(results))
        print(f"| {r['set']} | {r['rows']:,} x {r['columns']} | {r['seconds']:.1f} "
              f"| {r['test_ll']:.3f} | {'; '.join(r['tried'])} |", flush=True)


if __name__ == "__main__":
    main()

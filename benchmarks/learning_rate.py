"""Adam's step for one flow: the time to its stop and the test log-likelihood at each rate.

Usage (from the repository root)::

    python benchmarks/learning_rate.py --model maf --lrs 0.001,0.003 \\
        --sets mixture8,funnel10,warped16,kin40k,protein,parkinsons,pol

For each set, ``FlowModel.fit(model=MODEL, lr=LR, seed=0)`` with every other setting at its
default (float columns on a grid modelled on it, as ``fit`` does), one thread, the rates
taking turns within a set. Prints one markdown row per fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def fit_once(name: str, model: str, lr: float, seed: int) -> dict:
    """One fit of ``model`` at step ``lr``: seconds, epochs, stop, validation and test."""
    import pandas as pd
    from datasets import load

    from flowcli import FlowModel

    ds = load(name)
    columns = [f"c{j}" for j in range(ds.dim)]
    df = pd.DataFrame(np.concatenate([ds.train, ds.val]), columns=columns)
    tick = time.perf_counter()
    fitted = FlowModel.fit(df, model=model, lr=lr, seed=seed, device="cpu")
    seconds = time.perf_counter() - tick
    test = float(fitted.score(pd.DataFrame(ds.test, columns=columns)).mean())
    t = fitted.training
    return {"set": name, "lr": lr, "seconds": seconds, "epochs": t["epochs"],
            "stopped": t["stopped"], "val_ll": t["val_log_likelihood"], "test_ll": test}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="maf")
    parser.add_argument("--lrs", default="0.001,0.003")
    parser.add_argument("--sets", default="mixture8,funnel10,warped16,kin40k,protein,"
                                          "parkinsons,pol")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"| set | {args.model} lr | seconds | epochs (stop) | validation LL | test LL |")
    print("|---|---:|---:|---|---:|---:|")
    for name in args.sets.split(","):
        for lr in (float(v) for v in args.lrs.split(",")):
            r = fit_once(name, args.model, lr, args.seed)
            print(f"| {name} | {lr:g} | {r['seconds']:.1f} | {r['epochs']} ({r['stopped']}) "
                  f"| {r['val_ll']:.3f} | {r['test_ll']:.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""Adam's step for one flow: the time to its stop and the test log-likelihood at each rate.

Usage (from the repository root)::

    python benchmarks/learning_rate.py --model maf --lrs 0.001,0.003 \\
        --sets mixture8,funnel10,warped16,kin40k,protein,parkinsons,pol

For each set, ``FlowModel.fit(model=MODEL, lr=LR, seed=0, device="cpu")`` with every other
setting at its default (float columns on a grid modelled on their grid, as ``fit`` does;
``--mixture`` and ``--whiten`` add those options), one thread, the rates taking turns within
a set. Prints one markdown row per fit. ``auto`` is refused: a step given to it is taken by
every candidate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def fit_once(name: str, model: str, lr: float, seed: int, **options: bool) -> dict:
    """One fit of ``model`` at step ``lr``: seconds, epochs, stop, validation and test."""
    import pandas as pd
    from datasets import load

    from flowcli import FlowModel

    ds = load(name)
    columns = [f"c{j}" for j in range(ds.dim)]
    df = pd.DataFrame(np.concatenate([ds.train, ds.val]), columns=columns)
    tick = time.perf_counter()
    fitted = FlowModel.fit(df, model=model, lr=lr, seed=seed, device="cpu", **options)
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
    parser.add_argument("--mixture", action="store_true", help="on a Gaussian-mixture base")
    parser.add_argument("--whiten", action="store_true", help="whitened")
    args = parser.parse_args()
    if args.model == "auto":
        parser.error("auto would give the step to every candidate: name one flow")
    options = {k: True for k in ("mixture", "whiten") if getattr(args, k)}
    torch.set_num_threads(1)
    print(f"| set | {args.model} lr | seconds | epochs (stop) | validation LL | test LL |")
    print("|---|---:|---:|---|---:|---:|")
    for name in args.sets.split(","):
        for lr in (float(v) for v in args.lrs.split(",")):
            r = fit_once(name, args.model, lr, args.seed, **options)
            print(f"| {name} | {lr:g} | {r['seconds']:.1f} | {r['epochs']} ({r['stopped']}) "
                  f"| {r['val_ll']:.3f} | {r['test_ll']:.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""Replay the validation curves that ``default_fit.py --out`` recorded under other patience
rules: where would each candidate have stopped, and how much validation score would it have
given up?

Usage (from the repository root)::

    python benchmarks/replay_stops.py fits.json

Rules: ``now`` is the trainer's (an epoch resets patience when it beats the best by 1e-4);
``gain D`` resets patience only when the score has risen by more than ``D`` nats per row since
the last reset. Only the stop moves: the curve after it is the one recorded, so a learning-rate
decay that a stricter rule would have brought forward is not replayed.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

PATIENCE = 20
RULES = (("now", 1e-4, False), ("gain 0.001", 1e-3, True), ("gain 0.002", 2e-3, True),
         ("gain 0.005", 5e-3, True), ("gain 0.01", 1e-2, True))


def stop(scores: list[float], delta: float, cumulative: bool) -> tuple[int, float]:
    """The epoch a rule stops at and the best score up to it."""
    best = reference = -float("inf")
    bad = 0
    for epoch, score in enumerate(scores, start=1):
        if score > (reference if cumulative else best) + delta:
            bad, reference = 0, score
        else:
            bad += 1
        best = max(best, score)
        if bad >= PATIENCE:
            return epoch, best
    return len(scores), best


def main(path: str) -> None:
    for fit in json.loads(open(path).read()):
        curves: dict[str, list[float]] = defaultdict(list)
        for stage, _, score, _ in fit["curves"]:
            curves[stage].append(score)
        print(f"{fit['set']}: {fit['seconds']:.0f} s")
        for stage, scores in curves.items():
            cells = [f"{name}: {e} epochs, best {b:.4f}"
                     for name, d, c in RULES for e, b in [stop(scores, d, c)]]
            print(f"  {stage:14s} " + " | ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1])

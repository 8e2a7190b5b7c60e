"""Replay the validation curves that ``default_fit.py --out`` recorded under other stopping
rules: where would each candidate have stopped, how long would the whole ``auto`` search
have taken, and how much validation score would the kept candidate have given up?

Usage (from the repository root)::

    python benchmarks/replay_stops.py fits.json

Rules: ``now`` is the trainer's patience alone (an epoch resets patience when it beats the
best by 1e-4; 20 epochs without one stop). ``last F: D`` adds a rule of diminishing returns:
stop once the best score has risen by less than ``D`` nats per row over the last fraction
``F`` of the epochs so far (from epoch 20 on).

The search is replayed as ``auto`` runs it: a later candidate gives up once it has trained as
long as the first candidate without beating its best. When the first stops earlier, the later
ones give up earlier too; a candidate that would train past the end of its recorded curve is
marked ``+`` (its recorded end is used). Only the stops move: the curve after a stop is the
one recorded, so a learning-rate decay that a rule would have brought forward is not replayed,
and the mixture candidate's EM time is not in the curves.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass

PATIENCE, MIN_DELTA, MIN_EPOCHS = 20, 1e-4, 20
RULES = (("now", None), *((f"last {f}: {d}", (f, d)) for f in (0.5, 0.25)
                          for d in (0.01, 0.02, 0.05)))


@dataclass
class Curve:
    """One candidate's recorded run: its best-so-far score and the seconds at each epoch."""

    stage: str
    scores: list[float]
    seconds: list[float]  # since the candidate started, at the end of each epoch


@dataclass
class Stop:
    epoch: int
    best: float
    seconds: float
    beyond: bool  # the rule would have trained past the recorded curve


def curves_of(fit: dict) -> list[Curve]:
    by_stage: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for stage, _, score, at in fit["curves"]:
        by_stage[stage].append((score, at))
    out, start = [], 0.0
    for stage, points in by_stage.items():
        out.append(Curve(stage, [s for s, _ in points], [at - start for _, at in points]))
        start = points[-1][1]
    return out


def run(curve: Curve, rule: tuple[float, float] | None,
        give_up: tuple[float, float] | None) -> Stop:
    """Where a candidate stops under the rule, given the first candidate's (seconds, best)."""
    best, best_at, bad = -float("inf"), [], 0
    for i, score in enumerate(curve.scores):
        bad = 0 if score > best + MIN_DELTA else bad + 1
        best = max(best, score)
        best_at.append(best)
        epoch = i + 1
        stop = bad >= PATIENCE
        if rule is not None and epoch >= MIN_EPOCHS:
            fraction, gain = rule
            stop = stop or best - best_at[epoch - int(epoch * fraction) - 1] < gain
        if give_up is not None:
            stop = stop or (curve.seconds[i] >= give_up[0] and best < give_up[1])
        if stop:
            return Stop(epoch, best, curve.seconds[i], False)
    return Stop(len(curve.scores), best, curve.seconds[-1] if curve.seconds else 0.0, True)


def search(curves: list[Curve], rule: tuple[float, float] | None
           ) -> tuple[float, float, list[str]]:
    """Seconds of the whole search, the best validation score kept, and each stop."""
    first = run(curves[0], rule, None)
    stops = [first] + [run(c, rule, (first.seconds, first.best)) for c in curves[1:]]
    cells = [f"{c.stage} {s.epoch}{'+' if s.beyond and s.epoch < 1000 else ''}"
             for c, s in zip(curves, stops, strict=True)]
    return sum(s.seconds for s in stops), max(s.best for s in stops), cells


def main(path: str) -> None:
    print("| set | rule | search seconds | of today's | best validation LL | change | stops |")
    print("|---|---|---:|---:|---:|---:|---|")
    for fit in json.loads(open(path).read()):
        curves = curves_of(fit)
        base_seconds, base_best, _ = search(curves, None)
        for name, rule in RULES:
            seconds, best, cells = search(curves, rule)
            print(f"| {fit['set']} | {name} | {seconds:.0f} | {seconds / base_seconds:.0%} "
                  f"| {best:.4f} | {best - base_best:+.4f} | {', '.join(cells)} |")


if __name__ == "__main__":
    main(sys.argv[1])

"""Replay the validation curves that ``default_fit.py --out`` recorded under other stopping
rules: where would each candidate have stopped, how long would the whole ``auto`` search
have taken, and how much validation score would the kept candidate have given up?

Usage (from the repository root)::

    python benchmarks/replay_stops.py fits.json

Rules: ``now`` is patience alone (an epoch resets patience when it beats the best by 1e-4;
20 epochs without one stop), with a later candidate giving up once it has trained as long as
the first without beating its best: the rules before ``--min-gain`` and the race. ``gains``
adds the rule of diminishing returns: stop once the best score has risen by less than 0.01
nats per row over the last half of the epochs so far (from epoch 20 on). ``race from G``
replaces giving up behind the first with racing the best candidate so far: give up once
below its best after the same training time, from G of its time on; ``or M behind from E``
also gives up from E of its time on when more than M below.

Seconds count from each candidate's first epoch (its start, such as fitting a heavy-tail
layer, is left out, as ``auto`` leaves it out; the first epoch is taken to last as long as
the second). A candidate that would train past the end of its recorded curve is marked
``+`` (its recorded end is used). Only the stops move: the curve after a stop is the one
recorded, so a learning-rate decay that a rule would have brought forward is not replayed,
and neither the mixture candidate's EM time nor the work after the search is in the curves.
"""

from __future__ import annotations

import bisect
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

PATIENCE, MIN_DELTA, MIN_EPOCHS = 20, 1e-4, 20
GAINS = (0.5, 0.01)  # fit's rule: the last half of the epochs gained under 0.01
RULES = (
    ("now", None, None),
    ("gains", GAINS, None),
    ("gains, race from 25 %", GAINS, (0.25, 1.0, 0.0)),
    ("gains, race from 50 %", GAINS, (0.5, 1.0, 0.0)),
    ("gains, race from 50 %, or 0.05 behind from 10 %", GAINS, (0.5, 0.1, 0.05)),
    ("gains, race from 50 %, or 0.25 behind from 10 % (fit's rules)", GAINS, (0.5, 0.1, 0.25)),
)


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
    best_at: list[float]  # the best score so far at each epoch up to the stop


def curves_of(fit: dict) -> list[Curve]:
    """Each candidate's curve, its seconds counted from the start of its first epoch as
    ``auto`` counts them (its start, such as fitting a heavy-tail layer, left out: the
    first epoch is taken to last as long as the second)."""
    by_stage: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for stage, _, score, at in fit["curves"]:
        by_stage[stage].append((score, at))
    out = []
    for stage, points in by_stage.items():
        first = points[1][1] - points[0][1] if len(points) > 1 else 0.0
        out.append(Curve(stage, [s for s, _ in points],
                         [at - points[0][1] + first for _, at in points]))
    return out


def run(curve: Curve, rule: tuple[float, float] | None,
        behind: Callable[[float, float], bool] | None) -> Stop:
    """Where a candidate stops under the rule; ``behind(seconds, best)``: whether it gives
    up there, behind its rival."""
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
        if behind is not None:
            stop = stop or behind(curve.seconds[i], best)
        if stop:
            return Stop(epoch, best, curve.seconds[i], False, best_at)
    return Stop(len(curve.scores), best, curve.seconds[-1] if curve.seconds else 0.0, True,
                best_at)


def behind_first(first: Stop) -> Callable[[float, float], bool]:
    """Today's rule: trained as long as the first candidate and still below its best."""
    return lambda seconds, best: seconds >= first.seconds and best < first.best


def behind_curve(leader: Stop, curve: Curve, grace: float, early: float = 1.0,
                 margin: float = 0.0) -> Callable[[float, float], bool]:
    """Below the leader's best at the same time, once past ``grace`` of the leader's time,
    or by more than ``margin`` once past ``early`` of it."""
    times = curve.seconds[: leader.epoch]

    def at(seconds: float) -> float:
        i = bisect.bisect_right(times, seconds)
        return leader.best_at[i - 1] if i else -float("inf")

    def behind(seconds: float, best: float) -> bool:
        gap = at(seconds) - best
        return (gap > 0 and seconds >= grace * leader.seconds
                or gap > margin and seconds >= early * leader.seconds)

    return behind


def search(curves: list[Curve], rule: tuple[float, float] | None,
           race: tuple[float, float, float] | None = None) -> tuple[float, float, list[str]]:
    """Seconds of the whole search, the best validation score kept, and each stop.
    ``race`` None: today's give-up rule; else ``(grace, early, margin)`` of
    :func:`behind_curve` against the best candidate so far."""
    stops = [run(curves[0], rule, None)]
    for c in curves[1:]:
        if race is None:
            stops.append(run(c, rule, behind_first(stops[0])))
            continue
        lead = max(range(len(stops)), key=lambda i: stops[i].best)
        stops.append(run(c, rule, behind_curve(stops[lead], curves[lead], *race)))
    cells = [f"{c.stage} {s.epoch}{'+' if s.beyond and s.epoch < 1000 else ''}"
             for c, s in zip(curves, stops, strict=True)]
    return sum(s.seconds for s in stops), max(s.best for s in stops), cells


def main(path: str) -> None:
    print("| set | rule | search seconds | of today's | best validation LL | change | stops |")
    print("|---|---|---:|---:|---:|---:|---|")
    for fit in json.loads(open(path).read()):
        curves = curves_of(fit)
        base_seconds, base_best, _ = search(curves, None)
        for name, rule, race in RULES:
            seconds, best, cells = search(curves, rule, race)
            print(f"| {fit['set']} | {name} | {seconds:.0f} | {seconds / base_seconds:.0%} "
                  f"| {best:.4f} | {best - base_best:+.4f} | {', '.join(cells)} |")


if __name__ == "__main__":
    main(sys.argv[1])

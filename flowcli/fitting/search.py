"""How ``fit`` chooses a flow (``--model auto``): the candidates, their share of a time budget,
giving up behind a rival, continuing the most promising, and keeping the clearly best.

Rules (docs/auto.md explains them; benchmarks/README.md holds the evidence):

- ``auto`` tries a MAF, then a spline flow, then an unmix flow, and on tables under
  ``SMALL_TABLE`` training rows a whitened MAF after the first; last, a MAF on a
  Gaussian-mixture base, which must lead from its start (the mixture alone, or after one
  epoch) or it gives up and gets no more time. A conditional model's mixture moves with the
  condition and learns how while it trains: it races like the others.
- A later candidate gives up once it is behind where the best so far was after as long, from
  half of that one's training time on, or by more than 0.25 nats per row from a tenth on
  (``GRACE``, ``EARLY``, ``MARGIN``); past its time, behind its best. When
  the first wins, ``auto`` costs well under three times its fit.
- With a time limit, each candidate first gets an equal part of 40 % of it (a mixture base's
  EM up to another 20 %); the ones this cut short, or that gave up behind a rival the probe
  had cut short, carry on with what is left, the most promising first.
- A later candidate is kept only when it beats the one kept so far by more than the
  standard error of the per-row difference on the validation rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..config import SMALL_TABLE
from ..tabular import Preprocessor
from ..training import EpochReport, StopReason, ranks
from .candidate import Candidate, Rival, Spec, clearly_better
from .data import Encoded
from .fitconfig import FitConfig

__all__ = ["Budget", "candidates", "search"]

Callback = Callable[[EpochReport], None] | None


def candidates(model: str, whiten: bool | None, train_rows: int,
               mixture: bool | None = None) -> list[Spec]:
    """The flows that ``fit`` tries, in order (see the module's rules); it keeps the best.

    Whitening is off unless asked for, or picked that way by ``auto``; so is the mixture
    base, and ``mixture=False`` keeps ``auto`` from trying it.
    """
    if model != "auto":
        return [Spec(model, bool(whiten), bool(mixture))]
    mix = bool(mixture)
    if whiten is not None:
        specs = [Spec("maf", whiten, mix), Spec("nsf", whiten, mix), Spec("unmix", whiten, mix)]
    else:
        small = [Spec("maf", True, mix)] if train_rows < SMALL_TABLE else []
        specs = [Spec("maf", False, mix), *small, Spec("nsf", False, mix),
                 Spec("unmix", False, mix)]
    if mixture is None:
        specs.append(Spec("maf", False, True))
    return specs


@dataclass(frozen=True)
class Budget:
    """How a time limit (``total`` seconds, or None) is shared out between candidates:
    ``probe`` seconds each at first (None: no probes), then continuation."""

    total: float | None
    probe: float | None

    @classmethod
    def of(cls, total: float | None, count: int) -> Budget:
        probe = None if total is None or count == 1 else 0.4 * total / count
        return cls(total, probe)

    @property
    def first_round(self) -> float | None:
        return self.probe if self.probe is not None else self.total

    @property
    def em_seconds(self) -> float | None:
        """EM's own limit while probing; otherwise EM counts against the run's time."""
        return None if self.probe is None or self.total is None else 0.2 * self.total


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def search(pre: Preprocessor, data: Encoded, config: FitConfig, training: dict[str, Any],
           device: torch.device, callback: Callback = None) -> Candidate:
    """Fit each candidate of ``config`` and return the one kept, its training record
    telling what was tried. A Ctrl-C keeps the candidates trained so far (with none yet,
    it propagates); the record then says ``interrupted``."""
    specs = candidates(config.model, config.whiten, training["train_rows"], config.mixture)
    if not pre.continuous:  # categories alone: no flow to choose
        specs = specs[:1]
    budget = Budget.of(config.max_seconds, len(specs))
    # the mixture that auto adds last must lead from its first epoch; a conditional
    # model's mixture learns to follow the condition while it trains, so it races
    gated = len(specs) - 1 if config.mixture is None and len(specs) > 1 and \
        specs[-1].mixture and not pre.context_width else None
    fitted: list[Candidate] = []
    try:
        interrupted = _first_round(pre, data, config, training, device, callback, specs,
                                   budget, gated, fitted)
        if not interrupted:
            interrupted = _continue(data, callback, budget, gated, fitted)
        for candidate in fitted if not interrupted else ():  # once each, whatever its runs
            candidate.time_scoring(data)
    except KeyboardInterrupt:
        if not fitted:
            raise
        interrupted = True
    for candidate in fitted:
        candidate.settle()
    kept = ranks.agree(_choose(fitted))
    if len(specs) > 1:
        _record_tried(specs, fitted, kept, interrupted)
    return fitted[kept]


def _first_round(pre: Preprocessor, data: Encoded, config: FitConfig,
                 training: dict[str, Any], device: torch.device, callback: Callback,
                 specs: list[Spec], budget: Budget, gated: int | None,
                 fitted: list[Candidate]) -> bool:
    """Each candidate once, appended to ``fitted``; whether a Ctrl-C stopped the round."""
    for i, spec in enumerate(specs):
        candidate = Candidate.build(pre, spec, config, device, training,
                                    staged=len(specs) > 1)
        rival = _rival(fitted, gated_now=i == gated)
        # the categories' model does not depend on the flow: fitted once, then copied
        chain = fitted[0].density.chain if fitted else None
        candidate.run(data, callback, budget.first_round, rival,
                      categories=chain.state_dict() if chain is not None else None,
                      em_seconds=budget.em_seconds,
                      em_target=rival.val_ll if i == gated and rival else None)
        fitted.append(candidate)
        if candidate.stopped is StopReason.INTERRUPTED:
            return True
    return False


def _rival(fitted: list[Candidate], gated_now: bool) -> Rival | None:
    """Whom a new candidate must catch up with: the best so far, as far as it had come in
    the same time; the gated mixture, the best so far from the start."""
    if not fitted:
        return None
    if gated_now:
        return Rival(0.0, max(_finite(c.val_ll) for c in fitted))
    return max(fitted, key=lambda c: _finite(c.val_ll)).rival()


def _continue(data: Encoded, callback: Callback, budget: Budget, gated: int | None,
              fitted: list[Candidate]) -> bool:
    """Give the time left to the most promising candidate that the probe cut short or that
    gave up (maybe against a first candidate the probe had cut short too); if that one stops
    early, the next carries on. Whether a Ctrl-C stopped it."""
    if budget.probe is None or budget.total is None:
        return False
    pending = [i for i, c in enumerate(fitted)
               if c.stopped is StopReason.TIME or c.stopped is StopReason.GIVEN_UP and i != gated]
    while pending:
        left = ranks.agree(budget.total - sum(c.seconds for c in fitted))  # rank 0's clock
        if left < 0.02 * budget.total:
            break
        i = ranks.agree(max(pending, key=lambda i: _finite(fitted[i].val_ll)))
        pending.remove(i)
        fitted[i].run(data, callback, left)
        if fitted[i].stopped is StopReason.INTERRUPTED:
            return True
    return False


def _choose(fitted: list[Candidate]) -> int:
    """The first candidate, unless a later one clearly beats the one kept so far."""
    kept = 0
    for i in range(1, len(fitted)):
        if clearly_better(fitted[i].held_out, fitted[kept].held_out):
            kept = i
    return kept


def _record_tried(specs: list[Spec], fitted: list[Candidate], kept: int,
                  interrupted: bool) -> None:
    """The kept candidate's training record lists every candidate tried, and adds up."""
    tried = []
    for i, (spec, c) in enumerate(zip(specs[: len(fitted)], fitted, strict=True)):
        flow = c.density.flow.config if c.density.flow is not None else {}
        tried.append({"model": spec.kind, "whiten": spec.whiten,
                      "mixture": int(flow.get("mixture", 0)),
                      "tails": bool(flow.get("tails", False)),
                      **{k: c.training.get(k) for k in ("val_log_likelihood", "epochs",
                                                        "seconds", "stopped",
                                                        "score_rows_per_second")},
                      "history": c.training.get("history", []),
                      "kept": i == kept})
    best = fitted[kept]
    interrupted = interrupted or best.stopped is StopReason.INTERRUPTED
    best.training.update(candidates=tried, seconds=sum(c.seconds for c in fitted),
                         stopped=StopReason.INTERRUPTED if interrupted else best.stopped)

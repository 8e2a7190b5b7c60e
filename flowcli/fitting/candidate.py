"""One candidate flow, from its architecture to its held-out scores: built, started on the
data, trained, scored, and settled back on its start unless training clearly beat it."""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch

from ..config import QUANTILES, learning_rate
from ..engine.mixed import MixedDensity, build_mixed
from ..engine.passes import in_passes, rows_per_pass, rows_per_second
from ..quantiles import quantiles_of
from ..tabular import Preprocessor
from ..training import (
    EpochReport,
    ResumeState,
    StopReason,
    TrainConfig,
    TrainResult,
    ranks,
    train,
)
from .data import Encoded
from .fitconfig import FitConfig
from .start import Start, fit_mixture_base, initialize, score_start

__all__ = ["Candidate", "Rival", "Spec", "clearly_better", "label", "tails_for"]

# A run behind the rival's curve gives up from GRACE of the rival's training time on, or
# from EARLY on when it is more than MARGIN nats per row behind. On the benchmark tables no
# flow these gave up would have been kept; with GRACE at a quarter, or MARGIN at 0.05, the
# unmix flow that wins parkinsons late was given up (benchmarks/README.md, "Default fits").
GRACE, EARLY, MARGIN = 0.5, 0.1, 0.25


def tails_for(kind: str, tails: bool | None) -> bool:
    """Whether a flow of ``kind`` starts with a heavy-tail layer
    (:class:`~flowcli.engine.Tails`): as asked, else for spline flows only. Splines are the
    identity outside their interval, so a heavy-tailed column is out of their reach without
    it; affine layers rescale the tails themselves (benchmarks/README.md measures both)."""
    return kind == "nsf" if tails is None else bool(tails)


def label(kind: str, whiten: bool, mixture: bool, tails: bool = False) -> str:
    """How a candidate is named in progress lines, ``fit``'s summary and ``info``."""
    return (kind + ("+tails" if tails else "") + ("+whiten" if whiten else "")
            + ("+mixture" if mixture else ""))


def flow_label(flow_config: dict[str, Any] | None) -> str:
    """:func:`label` of a built flow, from its config (``categories`` without a flow)."""
    if flow_config is None:
        return "categories"
    return label(flow_config["kind"], bool(flow_config.get("whiten")),
                 bool(flow_config.get("mixture", 0)), bool(flow_config.get("tails", False)))


def clearly_better(new: np.ndarray, old: np.ndarray) -> bool:
    """Whether held-out scores ``new`` beat ``old`` (the same rows) by more than noise.

    The mean per-row gain must exceed its standard error, so that a slower candidate is not
    kept for a gain the validation rows cannot tell from chance. Non-finite scores lose.
    """
    if not np.isfinite(new).all():
        return False
    if not np.isfinite(old).all():
        return True
    gain = new - old
    if gain.size < 2:
        return bool(gain.sum() > 0)
    return bool(gain.mean() > gain.std(ddof=1) / math.sqrt(gain.size))


class Spec(NamedTuple):
    """A candidate's architecture choices on top of the fit config."""

    kind: str
    whiten: bool
    mixture: bool

    def flow_config(self, config: FitConfig) -> dict[str, Any]:
        return {"kind": self.kind, "layers": config.layers, "hidden": config.hidden,
                "depth": config.depth, "scale_bound": config.scale_bound,
                "whiten": self.whiten, "mixture": int(self.mixture),
                "tails": tails_for(self.kind, config.tails)}


class Rival(NamedTuple):
    """The candidate to catch up with: its training ``seconds``, its best validation score
    ``val_ll`` (table units) and its curve, the best score so far (``bests``) at the end
    of each epoch (``times``), which is how far a run must have come in the same time."""

    seconds: float
    val_ll: float
    times: tuple[float, ...] = ()
    bests: tuple[float, ...] = ()

    def best_at(self, seconds: float) -> float:
        """Its best score after training ``seconds`` (its final one from its end on)."""
        if seconds >= self.seconds or not self.times:
            return self.val_ll
        i = bisect.bisect_right(self.times, seconds)
        return self.bests[i - 1] if i else -math.inf


class Candidate:
    """A density being fitted, with what its fit keeps: the training record, the state to
    resume from, the held-out scores and, until :meth:`settle`, where training started."""

    def __init__(self, pre: Preprocessor, density: MixedDensity, training: dict[str, Any],
                 config: FitConfig, staged: bool = False,
                 resume: ResumeState | None = None) -> None:
        self.pre, self.density, self.training, self.config = pre, density, training, config
        self.staged = staged  # name progress reports after the flow (auto's candidates)
        self.resume = resume
        self.held_out = np.zeros(0)
        self.start: Start | None = None
        # training seconds and best validation score so far at the end of each epoch
        self.times: list[float] = []
        self.bests: list[float] = []

    @classmethod
    def build(cls, pre: Preprocessor, spec: Spec, config: FitConfig, device: torch.device,
              training: dict[str, Any], staged: bool) -> Candidate:
        """A new, untrained candidate, its weights drawn from the fit's seed."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(training["seed"])
            density = build_mixed(pre.continuous, pre.cardinalities, spec.flow_config(config),
                                  given=pre.context_width)
        return cls(pre, density.to(device), dict(training), config, staged)

    @property
    def device(self) -> torch.device:
        return next(self.density.parameters()).device

    @property
    def stopped(self) -> StopReason:
        """Why its last run ended."""
        return StopReason(self.training["stopped"])

    @property
    def seconds(self) -> float:
        """Its time so far, all runs and EM together."""
        return float(self.training["seconds"])

    @property
    def val_ll(self) -> float:
        """Its mean held-out log-likelihood, table units."""
        return float(self.training["val_log_likelihood"])

    @property
    def label(self) -> str:
        return flow_label(self.density.flow.config if self.density.flow is not None else None)

    def run(self, data: Encoded, callback: Callable[[EpochReport], None] | None,
            seconds: float | None, rival: Rival | None = None,
            categories: dict[str, torch.Tensor] | None = None,
            em_seconds: float | None = None, em_target: float | None = None) -> TrainResult:
        """Start (unless resuming) and train for at most ``seconds``, then score.

        A new candidate first fits its data-set layers and categories (``categories``: a
        fitted chain's state to copy instead), a mixture base when it has one (within
        ``em_seconds`` and towards ``em_target``, or within ``seconds``, which it then
        counts against), and scores its start. ``rival``: give up behind it.
        """
        epoch = self.resume.epoch if self.resume is not None else 0
        seed = self.training["seed"] + epoch
        generator = torch.Generator().manual_seed(seed)
        tensor = {"dtype": torch.float32, "device": self.device}
        x_train = torch.as_tensor(data.x_train, **tensor)
        x_val = torch.as_tensor(data.x_val, **tensor)
        widths = torch.as_tensor(self.pre.widths, **tensor)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            em, ready = 0.0, True
            if self.resume is None:
                em, ready = self._prepare(data, x_train, x_val, widths, generator, categories,
                                          em_seconds if em_seconds is not None else seconds,
                                          em_target)
                if seconds is not None and em_seconds is None:
                    seconds = max(seconds - em, 0.0)
            if self.density.chain is not None:
                self.density.chain.requires_grad_(False)  # fitted: the flow trains alone
            result = self._train(data, x_train, x_val, widths, generator, callback, seconds,
                                 rival) if ready else _interrupted()
        # before scoring: a Ctrl-C there must not leave the last run's weight average behind
        self.resume = result.resume_state()
        self._record(result, data, em)
        return result

    def _prepare(self, data: Encoded, x_train: torch.Tensor, x_val: torch.Tensor,
                 widths: torch.Tensor, generator: torch.Generator,
                 categories: dict[str, torch.Tensor] | None, em_seconds: float | None,
                 em_target: float | None) -> tuple[float, bool]:
        """The data-dependent start; returns EM's seconds and whether training may follow
        (a Ctrl-C after the data-set layers keeps the untrained density)."""
        rows = initialize(self.density, x_train, x_val, widths, generator, categories)
        flow, em = self.density.flow, 0.0
        try:
            if flow is not None and flow.config.get("mixture"):
                tick = time.perf_counter()
                # under torchrun no clock decides the mixture's size: every rank must fit
                # the same one, and each rank's clock differs
                deadline = em_seconds if ranks.size() == 1 else None
                try:
                    record = fit_mixture_base(self.density, rows, x_val, generator,
                                              data.shift_val, deadline, em_target)
                finally:
                    em = time.perf_counter() - tick
                if record is not None:
                    self.training["mixture"] = record
            if flow is not None:
                self.start = score_start(self.density, data)
        except KeyboardInterrupt:
            return em, False
        return em, True

    def _train(self, data: Encoded, x_train: torch.Tensor, x_val: torch.Tensor,
               widths: torch.Tensor, generator: torch.Generator,
               callback: Callable[[EpochReport], None] | None, seconds: float | None,
               rival: Rival | None) -> TrainResult:
        if self.density.flow is None:
            epoch = self.resume.epoch if self.resume is not None else 0
            return TrainResult(epochs=epoch, best_epoch=epoch, best_val_ll=math.nan,
                               train_ll=math.nan, seconds=0.0,
                               stopped=StopReason.CATEGORIES_ONLY)
        c = self.config
        lr = c.lr if c.lr is not None else learning_rate(
            self.density.flow.config, c.model, given=bool(self.pre.context_width))
        config = TrainConfig(epochs=c.epochs, batch_size=c.batch_size, lr=lr,
                             patience=c.patience, weight_decay=c.weight_decay,
                             max_seconds=seconds, min_gain=c.min_gain)
        report = _Report(callback, data, self.label if self.staged else "")
        give_up = _GiveUp(rival, data.shift_val) if rival is not None else None
        start_val = self.start.val_ll if self.start is not None else None
        if data.own is not None:  # the rows in shares: each rank steps on its own
            x_train, x_val = (torch.as_tensor(x, dtype=x_train.dtype, device=self.device)
                              for x in (data.own.x_train, data.own.x_val))
            start_val = None  # the start's score on the sample is not the loop's
        return train(self.density, x_train, x_val, widths, config, generator, report,
                     self.resume, give_up, start_val, sharded=data.own is not None)

    def _record(self, result: TrainResult, data: Encoded, em_seconds: float) -> None:
        """The run and the held-out scores into the training record."""
        self.density.eval()
        scores = in_passes(self.density.log_prob, data.x_held, self.device,
                           step=rows_per_pass(self.density, self.device)) + data.ld_held
        self._extend_curve(result, data.shift_val)
        self._keep_history(result, data)
        self.training.update(
            epochs=result.epochs,
            best_epoch=result.best_epoch,
            stopped=result.stopped,
            seconds=self.training.get("seconds", 0.0) + result.seconds + em_seconds,
            val_log_likelihood=float(np.mean(scores)) if scores.size else math.nan,
            train_log_likelihood=result.train_ll + data.shift_train,
            score_quantiles=quantiles_of(scores, QUANTILES),
            held_out="validation" if data.has_val else "training",
        )
        self._follow_in_candidates(result.seconds + em_seconds)
        self.held_out = scores

    def _follow_in_candidates(self, seconds: float) -> None:
        """A resumed run carries on the kept flow, so its entry in ``auto``'s list of the
        candidates tried (written when the search ended) follows the record: the run's
        epochs, stop, score and curve, and its ``seconds`` added."""
        for tried in self.training.get("candidates", []):  # none while ``auto`` searches
            if tried.get("kept"):
                tried.update({k: self.training[k] for k in ("epochs", "stopped",
                                                            "val_log_likelihood")},
                             seconds=tried["seconds"] + seconds,
                             history=self.training["history"])

    def _extend_curve(self, result: TrainResult, shift: float) -> None:
        """Add the run's epochs to :attr:`times` and :attr:`bests` (table units), after
        the runs before."""
        elapsed = self.times[-1] if self.times else 0.0
        best = self.bests[-1] if self.bests else -math.inf
        for epoch in result.history:
            elapsed += epoch["seconds"]
            if math.isfinite(epoch["val_ll"]):
                best = max(best, epoch["val_ll"] + shift)
            self.times.append(elapsed)
            self.bests.append(best)

    def _keep_history(self, result: TrainResult, data: Encoded) -> None:
        """Append the run's epochs to the record's ``history`` (kept in the model file, after
        the runs before): epoch, seconds, training and validation log-likelihood in table
        units."""
        history = self.training.setdefault("history", [])
        for epoch in result.history:
            history.append({"epoch": epoch["epoch"], "seconds": epoch["seconds"],
                            "train_ll": epoch["train_ll"] + data.shift_train,
                            "val_ll": epoch["val_ll"] + data.shift_val})

    def rival(self) -> Rival:
        """This candidate as the one to catch up with."""
        return Rival(self.times[-1] if self.times else 0.0, self.val_ll, tuple(self.times),
                     tuple(self.bests))

    def time_scoring(self, data: Encoded) -> None:
        """Record how many rows like the held-out ones the density scores per second."""
        self.training["score_rows_per_second"] = rows_per_second(
            self.density.log_prob, data.x_held, self.device,
            rows_per_pass(self.density, self.device))

    def settle(self) -> None:
        """Go back to the starting weights unless training beat them by more than noise.

        Called once a candidate's training is over (after any continuation). The start can
        already be a fitted model (a Gaussian mixture, or the full-covariance Gaussian of a
        whitened flow), which a few epochs can overfit while seeming to gain. Going back
        also drops Adam's moments and the weight average, which belong to the weights given
        up.
        """
        start, self.start = self.start, None
        if start is None or clearly_better(self.held_out, start.scores):
            return
        self.density.load_state_dict(start.state)
        self.density.eval()
        self.held_out = start.scores
        self.training.update(best_epoch=0, val_log_likelihood=float(np.mean(start.scores)),
                             score_quantiles=quantiles_of(start.scores, QUANTILES))
        if self.resume is not None:
            self.resume = self.resume.restarted(start.val_ll)


def _interrupted() -> TrainResult:
    """The result of a run stopped by Ctrl-C before its first epoch."""
    return TrainResult(epochs=0, best_epoch=0, best_val_ll=math.nan, train_ll=math.nan,
                       seconds=0.0, stopped=StopReason.INTERRUPTED, interrupted=True)


class _Report:
    """Passes epoch reports on in the table's units, named after the candidate."""

    def __init__(self, callback: Callable[[EpochReport], None] | None, data: Encoded,
                 stage: str) -> None:
        self.callback, self.stage = callback, stage
        self.train_shift, self.val_shift = data.shift_train, data.shift_val

    def __call__(self, r: EpochReport) -> None:
        if self.callback is not None:
            self.callback(replace(r, train_ll=r.train_ll + self.train_shift,
                                  val_ll=r.val_ll + self.val_shift,
                                  best_val_ll=r.best_val_ll + self.val_shift,
                                  stage=self.stage))


class _GiveUp:
    """The stop rule against a :class:`Rival`: behind where the rival was after as long
    (past its time: behind its best), once past :data:`GRACE` of the rival's time, or by
    more than :data:`MARGIN` once past :data:`EARLY` of it."""

    def __init__(self, rival: Rival, val_shift: float) -> None:
        self.rival, self.val_shift, self.elapsed = rival, val_shift, 0.0

    def __call__(self, r: EpochReport) -> bool:
        self.elapsed += r.seconds
        behind = self.rival.best_at(self.elapsed) - (r.best_val_ll + self.val_shift)
        share = self.elapsed / self.rival.seconds if self.rival.seconds > 0 else math.inf
        return behind > 0 and share >= GRACE or behind > MARGIN and share >= EARLY

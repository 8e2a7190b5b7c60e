"""The training loop: mini-batch maximum likelihood with early stopping on validation rows.

The loop is a plain loop over batches of a tensor already on the device, calling ``model(x)``
for the per-row log-likelihood, so ``torch.nn.parallel.DistributedDataParallel`` can wrap the
model unchanged. It prints nothing: it reports each epoch through a callback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from enum import Enum
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..engine.passes import rows_per_pass
from ..errors import FlowcliError, UsageError
from . import ranks
from .params import ParameterBuffer, WeightAverage, adam, clip_, snapshot
from .records import EpochReport, ResumeState, StopReason, TrainConfig, TrainResult

__all__ = ["Trainer", "device_generator", "evaluate", "train"]

MAX_ROLLBACKS = 8  # non-finite steps tolerated (each halving the learning rate) in one run


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, batch_size: int | None = None) -> Tensor:
    """Per-row log-likelihood of ``x`` under ``model`` in eval mode, in passes of
    ``batch_size`` rows (by default sized for the model and device: ``rows_per_pass``)."""
    batch_size = batch_size or rows_per_pass(model, x.device)
    was_training = model.training
    model.eval()
    passes = [model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(passes) if passes else x.new_zeros(0)


def device_generator(generator: torch.Generator | None, device: torch.device
                     ) -> torch.Generator | None:
    """A generator on ``device`` seeded from ``generator``, so runs stay reproducible."""
    if generator is None:
        return None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


class _Where(Enum):
    """Where the best weights are, besides their snapshot."""

    MODEL = "the model holds them"
    AVERAGE = "the weight average, as it stands, is them"
    SNAPSHOT = "only the snapshot"


class Trainer:
    """Fits ``model`` (``model(x)`` returns per-row log-likelihoods) by maximum likelihood.

    Arguments:
        model: parameters that do not require a gradient are left alone.
        x_train, x_val: encoded rows on the model's device; ``x_val`` may have no rows, and
            then the last epoch's weights (their average, with ``config.average``) are kept
            and no early stopping happens.
        widths: ``(D,)`` dequantization cell widths; each training batch gets fresh uniform
            noise ``u * widths`` (``x_train`` holds the lower corners of the cells).
        generator: drives shuffling and dequantization noise.
        callback: called after every epoch with an :class:`EpochReport`.
        stop: asked after every epoch; the run ends (:attr:`StopReason.GIVEN_UP`) when it
            returns true.
        sharded: under torchrun, whether each rank holds its own rows (``x_train`` and
            ``x_val`` are then this rank's) rather than every rank the same ones.

    Rules: the best weights so far, the starting ones included (epoch 0), are kept; training
    stops after ``patience`` epochs without a validation gain above ``min_delta``, or once
    the last half of the run's epochs gained less than ``min_gain`` in all; the learning
    rate halves halfway through a plateau. With ``config.average`` each epoch
    also scores a running average of the weights (:class:`WeightAverage`); the better of the
    two counts as the epoch's and may become the best, while training carries on from the
    trained weights. A non-finite loss or gradient rolls back to the best weights and halves
    the learning rate. Ctrl-C (KeyboardInterrupt) ends the run on the best weights.
    """

    def __init__(self, model: nn.Module, x_train: Tensor, x_val: Tensor,
                 widths: Tensor | None = None, config: TrainConfig | None = None,
                 generator: torch.Generator | None = None,
                 callback: Callable[[EpochReport], None] | None = None,
                 stop: Callable[[EpochReport], bool] | None = None,
                 sharded: bool = False) -> None:
        self.model, self.x_train, self.x_val = model, x_train, x_val
        self.config = config or TrainConfig()
        self.generator, self.callback, self.stop = generator, callback, stop
        self.widths = widths
        self.noisy = widths is not None and bool((widths > 0).any())
        # under torchrun with each rank holding its own rows: the steps an epoch takes
        self.own = _own_rows(x_train, x_val, self.config.batch_size, generator) \
            if sharded and ranks.size() > 1 else None
        if self.own is not None:
            self.generator = self.own.generator
        self.rows = self.own.rows if self.own is not None else x_train.shape[0]
        self.has_val = self.own.has_val if self.own is not None else x_val.shape[0] > 0
        self.history: list[dict[str, float]] = []
        self.rollbacks = 0

    # ------------------------------------------------------------------ the run
    def run(self, resume: ResumeState | None = None,
            start_val: float | None = None) -> TrainResult:
        """Train until a stop rule fires; carry on from ``resume`` (the model must hold that
        run's best weights). ``start_val``: the starting weights' mean validation score,
        when the caller has it (a fresh run scores them otherwise)."""
        state = resume or ResumeState()
        self._begin(state)
        stopped, interrupted = StopReason.EPOCHS, False
        try:
            self._start_average(state)
            if resume is None and self.has_val:
                self._count_start(start_val)
            for epoch in range(state.epoch + 1, self.config.epochs + 1):
                reason = self._epoch(epoch)
                if reason is not None:
                    stopped = reason
                    break
        except KeyboardInterrupt:
            stopped, interrupted = StopReason.INTERRUPTED, True
        finally:
            average_state = self._end(interrupted)
        if interrupted or self.where is not _Where.MODEL:
            self.model.load_state_dict(self.best_state)  # whole wherever Ctrl-C came
        self.model.eval()
        return TrainResult(
            epochs=state.epoch + len(self.history), best_epoch=self.best_epoch,
            best_val_ll=self.best_val, train_ll=self.train_ll,
            seconds=time.perf_counter() - self.started, stopped=stopped, history=self.history,
            optimizer_state=self.buffer.split_state(self.optimizer.state_dict()),
            interrupted=interrupted, bad_epochs=self.bad_epochs, average_state=average_state)

    def _begin(self, state: ResumeState) -> None:
        """The buffer, the optimizer (with the saved state), the noise and the best so far."""
        self.buffer = ParameterBuffer([p for p in self.model.parameters() if p.requires_grad])
        self.optimizer = adam([self.buffer.param], self.config.lr, self.config.weight_decay)
        if state.optimizer:
            current = self.optimizer.state_dict()["param_groups"][0]
            self.optimizer.load_state_dict(self.buffer.join_state(state.optimizer, current))
        # dequantization noise is drawn where the data lives, so no batch crosses from host
        self.noise = device_generator(self.generator, self.x_train.device) if self.noisy \
            else None
        self.best_state = snapshot(self.model)
        self.where = _Where.MODEL
        self.best_val, self.best_epoch = state.best_val, state.best_epoch
        self.bad_epochs = state.bad_epochs
        self.best_by_epoch: list[float] = []  # this run's best score after each epoch
        self.started = time.perf_counter()
        self.train_ll = math.nan
        self.average: WeightAverage | None = None
        self.buffer.attach()  # from here on the parameters are views, until _end
        self.stepper = ranks.wrap(self.model)  # under torchrun: DDP, weights from rank 0

    def _start_average(self, state: ResumeState) -> None:
        if not self.config.average:
            return
        if state.average:
            self.where = _Where.SNAPSHOT  # the model is about to hold the trained weights
        self.average = WeightAverage(self.buffer, state.average)

    def _count_start(self, start_val: float | None) -> None:
        """The starting point counts: a model that starts good (on a fitted mixture base,
        say) is never replaced by worse weights."""
        if start_val is None:
            start_val = self._val_mean()
        if math.isfinite(start_val):
            self.best_val = start_val

    def _end(self, interrupted: bool) -> dict | None:
        """Trained weights back in the model (or the average, when it is the best), each
        parameter in its own memory; returns the average's state for a resumed run (none
        after Ctrl-C, which starts over from the best weights)."""
        average_state = None
        try:
            if self.average is not None:
                self.average.take_out()
                if not interrupted:
                    average_state = self.average.state()
                if self.where is _Where.AVERAGE and not interrupted:
                    self.average.put_in()  # cheaper than loading the snapshot back
                    self.where = _Where.MODEL
        finally:
            self.buffer.release()
        return average_state

    # ------------------------------------------------------------------ one epoch
    def _epoch(self, epoch: int) -> StopReason | None:
        tick = time.perf_counter()
        self.model.train()
        self.where = _Where.SNAPSHOT  # the weights are about to move
        with ranks.peers():
            self.train_ll, note = self._train_pass()
            val_ll = self._validate()
        seconds = time.perf_counter() - tick
        self._track(epoch, val_ll)
        self._decay_on_plateau()
        self.history.append({"epoch": epoch, "train_ll": self.train_ll, "val_ll": val_ll,
                             "seconds": seconds})
        report = EpochReport(epoch, self.config.epochs, self.train_ll, val_ll, self.best_val,
                             self.best_epoch, self.rows / max(seconds, 1e-9),
                             seconds, self.optimizer.param_groups[0]["lr"], note)
        if self.callback is not None:
            self.callback(report)
        return self._stop_reason(report)

    def _train_pass(self) -> tuple[float, str]:
        """One shuffled pass of steps; the mean training log-likelihood and a note."""
        x = self.x_train
        total = torch.zeros((), device=x.device)
        note, stepped = "", 0  # the rows of the batches stepped on, on all ranks
        steps = self.own.steps if self.own is not None else None
        for mine, rows in _batches(x, self.config.batch_size, self.generator, steps):
            batch = x.index_select(0, mine)
            if self.noisy:
                u = torch.rand(batch.shape, generator=self.noise, device=batch.device,
                               dtype=batch.dtype)
                batch = batch + u * self.widths
            loss = self._step(batch, rows)
            if loss is None:
                note = self._roll_back()
                continue
            total += loss * rows / ranks.size()  # this rank's part of the sum
            stepped += rows
        if ranks.size() > 1:
            total = ranks.sum_over_ranks(total)[0]
        return -float(total) / max(stepped, 1), note

    def _step(self, batch: Tensor, rows: int) -> Tensor | None:
        """One clipped Adam step on a batch of ``rows`` rows (under torchrun, ``batch`` is
        this rank's share); None (and no step) when the loss or gradient is not finite."""
        loss = -self._batch_mean(batch, rows)
        self.buffer.zero_grad()
        loss.backward()
        self.buffer.gather()
        norm = clip_(self.buffer.param.grad, self.config.clip_norm)
        check = loss.detach() + norm
        if ranks.size() > 1:  # any rank's non-finite loss rolls every rank back
            check, stops = ranks.sum_over_ranks(check, ranks.stop_requested())
            if stops:
                raise KeyboardInterrupt  # on every rank at this same step
        if not math.isfinite(float(check)):  # one host sync a step
            return None
        self.optimizer.step()
        if self.average is not None:
            self.average.update()
        return loss.detach()

    def _batch_mean(self, batch: Tensor, rows: int) -> Tensor:
        """The batch's mean log-likelihood. Under torchrun each rank's share is scaled so
        that the ranks' average, which DDP takes of the gradients, is the whole batch's
        mean even when the shares differ in size."""
        if ranks.size() == 1:
            return self.stepper(batch).mean()
        return self.stepper(batch).sum() * (ranks.size() / rows)

    def _roll_back(self) -> str:
        """Back to the best weights with half the learning rate and a fresh Adam."""
        self.rollbacks += 1
        if self.rollbacks > MAX_ROLLBACKS:
            raise FlowcliError(
                f"training diverged: the loss stayed non-finite after {MAX_ROLLBACKS} restarts "
                "with a lower learning rate; check the data for extreme values")
        self.model.load_state_dict(self.best_state)
        if self.average is not None:
            self.average.reset()
        for group in self.optimizer.param_groups:
            group["lr"] *= 0.5
        self.optimizer.state.clear()
        lr = self.optimizer.param_groups[0]["lr"]
        return f"non-finite loss or gradient: rolled back, lr {lr:.2g}"

    def _validate(self) -> float:
        """The epoch's validation score: the better of the trained weights and their average,
        which stays in the model when it wins. Without validation rows, the training score
        and the average."""
        val_ll = self._val_mean() if self.has_val else self.train_ll
        if self.average is None:
            return val_ll
        self.average.put_in()
        averaged = self._val_mean() if self.has_val else val_ll
        if averaged >= val_ll or math.isnan(val_ll):
            return averaged
        self.average.take_out()
        return val_ll

    def _val_mean(self) -> float:
        """The mean validation score; under torchrun each rank scores its share of the rows
        and the sums are added up, so every rank gets the same number."""
        if ranks.size() == 1:
            return float(evaluate(self.model, self.x_val).mean())
        # a share may be empty (fewer validation rows than ranks): it adds nothing
        own = self.x_val if self.own is not None else ranks.shard(self.x_val)
        scores = evaluate(self.model, own).double()
        total, count = ranks.sum_over_ranks(scores.sum(), scores.numel())
        return total / count

    def _track(self, epoch: int, val_ll: float) -> None:
        """Keep the best weights on any gain; reset patience only on a real one. Then put the
        trained weights back, training carries on from them."""
        if val_ll > self.best_val + self.config.min_delta or not self.has_val:
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.best_by_epoch.append(max(self.best_val, val_ll))
        if val_ll > self.best_val or not self.has_val:
            state = snapshot(self.model)  # first: a Ctrl-C here leaves the old best whole
            self.best_val, self.best_epoch, self.best_state = val_ll, epoch, state
            self.where = _Where.MODEL
        if self.average is not None and self.average.holding:
            self.where = _Where.AVERAGE if self.where is _Where.MODEL else _Where.SNAPSHOT
            self.average.take_out()

    def _decay_on_plateau(self) -> None:
        if self.config.plateau_decay and self.bad_epochs == max(self.config.patience // 2, 1):
            for group in self.optimizer.param_groups:
                group["lr"] *= 0.5

    def _stop_reason(self, report: EpochReport) -> StopReason | None:
        """Why to stop after this epoch, if at all: rank 0's reason on every rank (its
        clock decides the time limits for all)."""
        return ranks.agree(self._own_stop_reason(report))

    def _own_stop_reason(self, report: EpochReport) -> StopReason | None:
        if self.stop is not None and self.stop(report):
            return StopReason.GIVEN_UP
        if self.has_val and self.bad_epochs >= self.config.patience:
            return StopReason.PATIENCE
        if self.has_val and self._gains_run_dry():
            return StopReason.GAINS
        limit = self.config.max_seconds
        if limit is not None and time.perf_counter() - self.started > limit:
            return StopReason.TIME
        return None

    def _gains_run_dry(self) -> bool:
        """Whether the last half of this run's epochs raised the best score by less than
        ``min_gain`` (judged from ``min_epochs`` epochs on)."""
        gain = self.config.last_half_gain(self.best_by_epoch)
        return gain is not None and gain < self.config.min_gain


class _OwnRows(NamedTuple):
    """Each rank holding its own rows: the steps an epoch takes, the rows of all ranks,
    whether any rank holds validation rows, and this rank's own shuffle and noise."""

    steps: int
    rows: int
    has_val: bool
    generator: torch.Generator | None


def _own_rows(x_train: Tensor, x_val: Tensor, batch_size: int,
              generator: torch.Generator | None) -> _OwnRows:
    """Every rank gives :func:`ranks.batch_share` of each global batch, so an epoch takes as
    many steps as the rank with the fewest rows can give; none is one clear error. Each
    rank shuffles (and draws noise for) its own rows from its own stream."""
    share = ranks.batch_share(batch_size)
    # the ranks' batch shares (and rows) differ by one at most: each counts its own steps
    own_steps = x_train.shape[0] // share if share else 0
    steps, rows, val_rows = zip(*ranks.gather((own_steps, x_train.shape[0], x_val.shape[0])),
                                strict=True)
    if min(steps) == 0:  # every rank is here: the counts are the same on each
        raise UsageError(f"of {batch_size:,} rows asks each training process for its share "
                         f"of every batch, and one holds {min(rows):,} training rows; give a "
                         f"smaller one or fewer processes", field="batch_size")
    own = None
    if generator is not None:
        seed = (generator.initial_seed() * 1_000_003 + ranks.rank()) % 2**63
        own = torch.Generator(generator.device).manual_seed(seed)
    return _OwnRows(min(steps), sum(rows), sum(val_rows) > 0, own)


def _batches(x: Tensor, size: int, generator: torch.Generator | None,
             steps: int | None) -> Iterator[tuple[Tensor, int]]:
    """Each step's rows of this rank's ``x`` and the rows of the global batch of ``size``.

    Every rank holding the same rows (``steps`` None): one shuffle of them all, cut into
    global batches, of which each rank takes every ``size()``-th row (a last batch with fewer
    rows than ranks is left out); one process steps as the ranks together do. Each rank
    holding its own rows: each shuffles its own and gives :func:`ranks.batch_share` of every
    global batch, ``steps`` times (:func:`_own_rows`).
    """
    n = x.shape[0]
    order = torch.randperm(n, generator=generator, device="cpu").to(x.device)
    if steps is None:
        for i in range(0, n - ranks.size() + 1, size):
            rows = order[i : i + size]
            yield ranks.shard(rows), rows.shape[0]
        return
    share = ranks.batch_share(size)
    for step in range(steps):
        yield order[step * share : (step + 1) * share], size


def train(model: nn.Module, x_train: Tensor, x_val: Tensor, widths: Tensor | None = None,
          config: TrainConfig | None = None, generator: torch.Generator | None = None,
          callback: Callable[[EpochReport], None] | None = None,
          resume: ResumeState | None = None,
          stop: Callable[[EpochReport], bool] | None = None,
          start_val: float | None = None, sharded: bool = False) -> TrainResult:
    """One :class:`Trainer` run (see there for the arguments and rules)."""
    trainer = Trainer(model, x_train, x_val, widths, config, generator, callback, stop,
                      sharded)
    return trainer.run(resume, start_val)

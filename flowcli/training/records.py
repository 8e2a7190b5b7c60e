"""The plain records of training: its settings, each epoch's report, the result, the state a
resumed run starts from, and why a run stopped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from ..config import default, learning_rate

__all__ = ["EpochReport", "ResumeState", "StopReason", "TrainConfig", "TrainResult"]


class StopReason(str, Enum):
    """Why a run ended; the value is what model files record."""

    EPOCHS = "epochs"  # the epoch limit
    PATIENCE = "patience"  # no validation gain for ``patience`` epochs
    GAINS = "gains"  # the last half of the run gained less than ``min_gain``
    TIME = "time"  # the time limit
    GIVEN_UP = "given up"  # the caller's stop rule (``auto``: behind a rival)
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM
    CATEGORIES_ONLY = "categories only"  # nothing continuous to train

    def __str__(self) -> str:
        return self.value


@dataclass
class TrainConfig:
    """Optimization settings of one run, plain data (the fit settings they come from are
    what the model file keeps)."""

    epochs: int = default("epochs")
    batch_size: int = default("batch_size")
    lr: float = learning_rate()
    patience: int = default("patience")
    weight_decay: float = default("weight_decay")
    clip_norm: float = 5.0
    max_seconds: float | None = None
    min_delta: float = 1e-4  # nats per row: smaller validation gains do not reset patience
    # stop once the best validation score rose less than this (nats per row) over the last
    # half of the run's epochs, from epoch ``min_epochs`` on: doubling the run would buy
    # about as little, for as long again (benchmarks/README.md, "Default fits"); 0: never
    min_gain: float = default("min_gain")
    min_epochs: int = 20
    plateau_decay: bool = True  # halve the learning rate halfway through a plateau
    average: bool = True  # also validate a running average of the weights

    def last_half_gain(self, bests: Sequence[float]) -> float | None:
        """How much the best validation score rose over the last half of a run's epochs,
        given the best after each (``bests``); None where the diminishing-gains rule does
        not judge: before ``min_epochs`` epochs, or with ``min_gain`` 0."""
        done = len(bests)
        if done < self.min_epochs or self.min_gain <= 0:
            return None
        return bests[-1] - bests[done - done // 2 - 1]


@dataclass
class EpochReport:
    """What the callback sees after each epoch. Log-likelihoods are mean nats per row."""

    epoch: int
    epochs: int
    train_ll: float
    val_ll: float
    best_val_ll: float
    best_epoch: int
    rows_per_second: float
    seconds: float
    lr: float
    note: str = ""
    stage: str = ""  # which candidate is training, when fit tries several


@dataclass
class ResumeState:
    """Where a run stopped, so that the next one carries on exactly.

    ``optimizer`` is Adam's state dict with one entry per parameter; ``average`` holds the
    weight average, the trained weights and the step count (absent after a Ctrl-C, which
    leaves the model on its best weights to start over from).
    """

    epoch: int = 0
    best_val: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    optimizer: dict[str, Any] | None = None
    average: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The model file's form (no ``average`` key when there is none)."""
        state = {"epoch": self.epoch, "best_val": self.best_val, "best_epoch": self.best_epoch,
                 "bad_epochs": self.bad_epochs, "optimizer": self.optimizer}
        if self.average is not None:
            state["average"] = self.average
        return state

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ResumeState | None:
        """The state a model file holds; None when it holds none."""
        if not data:
            return None
        epoch = int(data.get("epoch", 0))
        return cls(epoch=epoch, best_val=float(data.get("best_val", -math.inf)),
                   best_epoch=int(data.get("best_epoch", epoch)),
                   bad_epochs=int(data.get("bad_epochs", 0)), optimizer=data.get("optimizer"),
                   average=data.get("average") or None)

    def restarted(self, best_val: float) -> ResumeState:
        """This state for a model put back on its starting weights (scoring ``best_val``):
        Adam's moments and the average belonged to the weights given up."""
        optimizer = {**self.optimizer, "state": {}} if self.optimizer else self.optimizer
        return replace(self, best_val=best_val, best_epoch=0, optimizer=optimizer, average=None)

    def with_lr(self, lr: float) -> ResumeState:
        """This state with the optimizer's learning rate set to ``lr``."""
        if not self.optimizer:
            return self
        groups = [{**group, "lr": lr} for group in self.optimizer.get("param_groups", [])]
        return replace(self, optimizer={**self.optimizer, "param_groups": groups})


@dataclass
class TrainResult:
    """What a run did: epochs (counted across resumes), the best validation score and its
    epoch, the last training score, seconds, why it stopped, and the state to resume from."""

    epochs: int
    best_epoch: int
    best_val_ll: float
    train_ll: float
    seconds: float
    stopped: StopReason
    history: list[dict[str, float]] = field(default_factory=list)
    optimizer_state: dict[str, Any] | None = None
    interrupted: bool = False
    bad_epochs: int = 0
    average_state: dict[str, Any] | None = None

    def resume_state(self) -> ResumeState:
        """What :class:`~flowcli.training.Trainer` needs to carry on where this run stopped."""
        return ResumeState(self.epochs, self.best_val_ll, self.best_epoch, self.bad_epochs,
                           self.optimizer_state, self.average_state)

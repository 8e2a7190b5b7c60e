"""The training loop and what it keeps: parameters, weight average, reports, resume state.

Works on tensors and ``nn.Module`` alone: nothing here knows about tables.
"""

from .categories import fit_chain
from .loop import Trainer, evaluate, train
from .params import AVERAGE_FLOOR, ParameterBuffer, WeightAverage
from .records import EpochReport, ResumeState, StopReason, TrainConfig, TrainResult

__all__ = ["AVERAGE_FLOOR", "EpochReport", "ParameterBuffer", "ResumeState", "StopReason",
           "TrainConfig", "TrainResult", "Trainer", "WeightAverage", "evaluate", "fit_chain",
           "train"]

"""Turning a table into a fitted density: the rows (data), one candidate flow (candidate,
start), the choice between candidates (search), and the whole fit or its resumption (fit)."""

from .candidate import Candidate, Spec, clearly_better, flow_label, label, tails_for
from .fit import RESUMABLE, fit_table, resume_training
from .fitconfig import FitConfig
from .search import candidates

__all__ = ["RESUMABLE", "Candidate", "FitConfig", "Spec", "candidates", "clearly_better",
           "fit_table", "flow_label", "label", "resume_training", "tails_for"]

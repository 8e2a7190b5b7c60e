"""Turning a table into a fitted density: the rows (data), one candidate flow (candidate,
start), the choice between candidates (search), the whole fit or its resumption (fit), what
a resumption may change (resumable), what to tell a user about the result (notes), and under
torchrun a table read in shares (shares)."""

from .candidate import Candidate, Spec, clearly_better, flow_label, label, tails_for
from .fit import fit_table, resume_training
from .fitconfig import FitConfig
from .notes import fit_notes
from .resumable import RESUMABLE, check_unchanged
from .search import candidates
from .shares import RankShare

__all__ = ["RESUMABLE", "Candidate", "FitConfig", "RankShare", "Spec", "candidates",
           "check_unchanged", "clearly_better", "fit_notes", "fit_table", "flow_label", "label",
           "resume_training", "tails_for"]

"""Every default, range and choice list of flowcli, once.

The library checks its arguments against :data:`OPTIONS` and the command line builds its options,
help texts and shown defaults from it, so the two cannot disagree. This module imports nothing
heavy: the command line reads it before deciding whether to load torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import UsageError

__all__ = [
    "CHUNK_ROWS", "DEVICES", "FORMATS", "IMPUTE_METHODS", "MISSING", "MODELS", "OPTIONS",
    "QUANTILES", "FIT_DEFAULTS", "SMALL_TABLE", "UNSEEN", "Option", "default", "flow_size",
    "learning_rate", "pass_rows",
]

MODELS = ("auto", "maf", "realnvp", "nsf", "unmix")
MISSING = ("error", "drop", "model")
UNSEEN = ("error", "floor")
DEVICES = ("auto", "cpu", "cuda")
FORMATS = ("csv", "parquet")
IMPUTE_METHODS = ("sample", "mode")

CHUNK_ROWS = 65536  # rows per chunk read, sampled and written
# Rows per network pass: on a CPU, small passes keep the activations in cache (2,048 rows score
# about 3 times faster than 65,536; benchmarks/README.md); a GPU wants large ones.
CPU_PASS_ROWS, GPU_PASS_ROWS = 2048, 65536
# torch splits an elementwise operation across threads only above this many numbers
ELEMENTWISE_GRAIN = 32768
CPU_MAX_PASS_ROWS = 16384  # the most rows a CPU pass grows to for elementwise work
# Rows per sampling pass of a spline flow on a CPU: its inverse runs one small step per column,
# whose cost is mostly per operation, so larger passes pay at any thread count. Fixed, not
# sized by threads, so that a seed draws the same rows on every machine.
CPU_SPLINE_SAMPLE_ROWS = 8192
QUANTILES = 1001  # held-out score quantiles kept in a model, for percentiles and thresholds
SMALL_TABLE = 1000  # training rows under which the default flow is smaller
MIXTURE_ROWS = 50000  # training rows a mixture base's EM sees at most
REPORT_ROWS = 20_000  # synthetic rows a report draws unless told otherwise


def pass_rows(device_type: str, threads: int = 1, elementwise_width: int = 0) -> int:
    """Rows per network pass on a device of this type (``cpu``, ``cuda``, ...).

    ``elementwise_width`` is how many numbers per row the flow's elementwise layers (splines)
    work on. A spline layer's time goes mostly to elementwise operations over rows x width
    numbers, which torch splits across ``threads`` only above :data:`ELEMENTWISE_GRAIN`
    numbers each; so on a CPU with more than one thread such a flow gets passes of that many
    numbers per thread (up to :data:`CPU_MAX_PASS_ROWS` rows). Matrix products, which split at
    any size, keep the small passes that stay in cache (benchmarks/README.md).
    """
    if device_type != "cpu":
        return GPU_PASS_ROWS
    if threads < 2 or elementwise_width < 1:
        return CPU_PASS_ROWS
    wanted = ELEMENTWISE_GRAIN * threads // elementwise_width
    return max(CPU_PASS_ROWS, min(CPU_MAX_PASS_ROWS, wanted))


def flow_size(train_rows: int) -> tuple[int, int]:
    """Default ``(layers, hidden)``: 5 layers of 128 units, or 3 of 32 for tables under
    :data:`SMALL_TABLE` training rows, where the larger flow overfits (benchmarks/README.md)."""
    return (3, 32) if train_rows < SMALL_TABLE else (5, 128)


class Option:
    """One option: its field name, its flag, its help, and the values it accepts.

    ``low``/``high`` bound a number (``low_open``: strictly above ``low``); ``choices`` lists
    the values of a choice; ``shown`` is how help shows a default that is not a plain value;
    ``optional``: None is a value (``auto``'s choice, or no limit).
    """

    __slots__ = ("choices", "field", "flag", "help", "high", "low", "low_open", "optional",
                 "shown")

    def __init__(self, field: str, flag: str, help: str, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 choices: tuple[str, ...] = (), shown: str | None = None,
                 optional: bool = False) -> None:
        self.field, self.flag, self.help = field, flag, help
        self.low, self.high, self.low_open = low, high, low_open
        self.choices, self.shown, self.optional = choices, shown, optional

    def check(self, value: Any) -> None:
        """Raise :class:`UsageError` naming this option's field when ``value`` is out of range."""
        if value is None:
            if not self.optional:
                raise UsageError("needs a value, not None", field=self.field)
            return
        if self.choices and value not in self.choices:
            raise UsageError(f"must be one of {', '.join(self.choices)}, not {value!r}",
                             field=self.field)
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise UsageError(self._range(), field=self.field)
        if self.high is not None and value > self.high:
            raise UsageError(self._range(), field=self.field)

    def _range(self) -> str:
        if self.high is None:
            return "must be positive" if self.low_open and self.low == 0 else \
                f"must be at least {self.low:g}"
        return f"must be in [{self.low:g}, {self.high:g}]"


def _options(*options: Option) -> dict[str, Option]:
    return {o.field: o for o in options}


OPTIONS: dict[str, Option] = _options(
    Option("model", "--model", "auto: fit maf, nsf and unmix (and maf on a mixture base when "
           "a mixture leads), keep the best on the validation rows; maf: affine "
           "autoregressive, fastest to fit; realnvp: one pass both ways, fastest to sample; "
           "nsf: spline autoregressive, for skewed, bounded or multi-modal columns; unmix: "
           "learned linear maps between per-column splines, for columns that mix skewed or "
           "heavy-tailed sources.", choices=MODELS),
    Option("whiten", "--whiten", "Start the flow at the data's full-covariance Gaussian (helps "
           "small, smooth, correlated tables; hurts lattice-valued ones).",
           shown=f"off; auto also tries it under {SMALL_TABLE:,} rows", optional=True),
    Option("mixture", "--mixture", "Put the flow on a Gaussian-mixture base fitted by EM, its "
           "size chosen on the validation rows (MAF-MoG: helps clustered tables and "
           "lattice-valued columns; the latent rows of invert then follow that mixture, not "
           "N(0, I)).", shown="off; auto also tries it when a mixture leads", optional=True),
    Option("tails", "--tails", "Start the flow with a fixed per-column asinh layer that pulls "
           "heavy tails in, fitted to each column that it makes closer to Gaussian.",
           shown="on for nsf, off for the others", optional=True),
    Option("layers", "--layers", "Number of flow layers.", low=1, optional=True,
           shown=f"5, or 3 under {SMALL_TABLE:,} rows"),
    Option("hidden", "--hidden", "Hidden units per network layer.", low=1, optional=True,
           shown=f"128, or 32 under {SMALL_TABLE:,} rows"),
    Option("depth", "--depth", "Hidden layers per network.", low=1),
    Option("scale_bound", "--scale-bound", "Bound on each affine layer's log-scale.",
           low=0, low_open=True),
    Option("epochs", "--epochs", "Most passes over the data (counted across resumes).", low=1),
    Option("batch_size", "--batch-size", "Rows per step.", low=1),
    Option("lr", "--lr", "Adam learning rate.", low=0, low_open=True, optional=True,
           shown="0.003 for a plain --model maf, 0.01 for unmix, else 0.001"),
    Option("patience", "--patience",
           "Stop after this many epochs without a better validation score.", low=1),
    Option("min_gain", "--min-gain", "Stop once the last half of the epochs (from epoch 20) "
           "raised the best validation log-likelihood by less than this many nats per row; "
           "0 trains on until patience.", low=0),
    Option("weight_decay", "--weight-decay", "Adam weight decay.", low=0),
    Option("val_fraction", "--val-fraction", "Share of rows held out for early stopping.",
           low=0, high=0.9),
    Option("max_seconds", "--max-time", "Stop training after this many seconds.", low=0,
           optional=True),
    Option("missing", "--missing", "Rows with gaps: error, drop them, or model the gaps.",
           choices=MISSING),
    Option("columns", "--columns", "Comma-separated columns to model (default: all)."),
    Option("exclude", "--exclude", "Comma-separated columns to leave out."),
    Option("categorical", "--categorical",
           "Columns to model as categories (e.g. integer codes)."),
    Option("integer", "--integer", "Columns to model as integers (counts, ordinals)."),
    Option("positive", "--positive", "Columns that are > 0 (amounts): modelled on a log scale."),
    Option("continuous", "--continuous", "Columns to model as plain continuous: no support "
           "and no grid inferred from training."),
    Option("unbounded", "--unbounded", "Columns to model without the support inferred from "
           "training (all positive: a positive column; all in [0, 1]: bounded to [0, 1])."),
    Option("datetime", "--datetime", "Columns to read as dates and times (inferred for "
           "datetime types and ISO 8601 text): modelled as week, weekday and time of day."),
    Option("datetime_format", "--datetime-format", "Text formats of datetime columns, as "
           "COL=FORMAT with strftime codes (%d/%m/%Y %H:%M)."),
    Option("bounds", "--bounds",
           "Columns bounded to [LO, HI] (rates): modelled on a logit scale."),
    Option("condition", "--condition", "Comma-separated columns to condition on: the model "
           "learns p(other columns | these); score gives log p(others | these), and sample "
           "draws for values given with --given."),
    Option("given", "--given", "Condition values to draw for: a table (FILE, or - for stdin) "
           "whose condition columns give one condition per row, or COLUMN=VALUE, once per "
           "condition column."),
    Option("unseen", "--unseen", "A category never seen in training: an error, or score the "
           "row as the rarest training category (floor).", choices=UNSEEN),
    Option("device", "--device", "Where to compute: auto picks CUDA when available.",
           choices=DEVICES),
    Option("format", "--format",
           "Format of the input table, when the extension does not tell (stdin).",
           choices=FORMATS),
    Option("output_format", "--output-format",
           "Format of the output, overriding the extension of -o.", choices=FORMATS),
    Option("seed", "--seed", "Random seed, for reproducible runs."),
    Option("rows", "-n", "Number of rows to draw; with --given, rows per condition.", low=0,
           shown="1 per row of a --given table"),
    Option("threshold", "--threshold", "Add 'anomaly': true for rows scoring below the "
           "Q-quantile of held-out training rows (0.01 flags the least likely 1 % of typical "
           "data).", low=0, high=1),
    Option("chunk_rows", "--batch-size", "Rows per chunk read, computed and written.", low=1),
    Option("draws", "--draws", "Completed copies of each row to write, numbered in an "
           "'imputation' column when more than one (multiple imputation).", low=1),
    Option("method", "--method", "sample: draw the gaps from p(missing | observed); mode: "
           "the most likely completion.", choices=IMPUTE_METHODS),
    Option("sweeps", "--sweeps", "Gibbs sweeps for rows with several gaps.", low=1),
    Option("max_rows", "--max-rows", "Train on a uniform sample of N rows, drawn while the "
           "table streams (with --seed), for tables larger than memory.", low=1),
    Option("shared_rows", "--shared-rows", "Under torchrun, a Parquet table of more rows is "
           "read in shares, one per process; the columns' kinds and encoding come from a "
           "uniform sample of N rows that every process holds.", low=1, shown="100000"),
    Option("workers", "--workers", "Run on a local Dask cluster of N worker processes, one "
           "task per input file (per --batch-size rows for sample); needs flowcli[dask].",
           low=1),
    Option("scheduler", "--scheduler", "Run on the Dask cluster whose scheduler is at ADDRESS "
           "(tcp://host:8786); the workers must see the input and output paths."),
)


# Defaults of the options that are not fit settings.
DEFAULT_DEVICE = "auto"
DEFAULT_UNSEEN = "error"
DEFAULT_SWEEPS = 10
COMMAND_DEFAULTS: dict[str, Any] = {"device": DEFAULT_DEVICE, "unseen": DEFAULT_UNSEEN,
                                    "chunk_rows": CHUNK_ROWS, "draws": 1, "method": "sample",
                                    "sweeps": DEFAULT_SWEEPS}

# The fields of a fit config with their defaults, in the order model files hold them
# (``FitConfig`` in :mod:`flowcli.fitting.fitconfig` is built from this).
FIT_DEFAULTS: dict[str, Any] = {
    "model": "auto",
    "layers": None,  # None: sized to the table (see ``flow_size``)
    "hidden": None,
    "depth": 2,
    "scale_bound": 5.0,
    "epochs": 1000,
    "batch_size": 512,
    "lr": None,  # None: the flow's own (see ``learning_rate``)
    "patience": 20,
    "weight_decay": 0.0,
    "val_fraction": 0.1,
    "max_seconds": None,
    "missing": "error",
    "whiten": None,  # None: off, but ``auto`` tries it on small tables
    "mixture": None,  # None: off, but ``auto`` tries it when the mixture leads
    "tails": None,  # None: on for spline flows (``fitting.candidate.tails_for``)
    "min_gain": 0.01,
}


# Adam's step by flow kind when none is set; every other flow takes BASE_LEARNING_RATE
# (benchmarks/README.md: "Learning rates" for the MAF, "Its learning rate" for unmix).
BASE_LEARNING_RATE = 1e-3
LEARNING_RATES = {"maf": 3e-3, "unmix": 1e-2}


def learning_rate(flow: Mapping[str, Any] | None = None, model: str | None = None,
                  given: bool = False) -> float:
    """Adam's step, when none is set, for the flow of config ``flow`` (its ``kind``,
    ``whiten`` and ``mixture``; None: the base step) that a fit of ``model`` trains,
    ``given`` condition columns or not.

    A plain MAF (not whitened, on no mixture base, given no conditions) fitted on its own
    takes 3e-3: on most benchmark sets it stops sooner than at 1e-3 and scores better.
    Whitened, it lost on every seed of a small table; on a mixture base or given conditions
    it is unmeasured: those keep the base step. So do ``auto``'s MAFs: the later candidates
    race the first one's curve, and a MAF at 3e-3 leads so early that a flow that climbs
    slowly but ends well ahead gives up behind it. unmix's few parameters (linear maps and
    per-column knots) take 1e-2 without harm, and at 1e-3 need several times the epochs.
    """
    flow = flow or {}
    kind = flow.get("kind", "")
    plain = not (flow.get("whiten") or flow.get("mixture") or given)
    if kind == "maf" and (model == "auto" or not plain):
        return BASE_LEARNING_RATE
    return LEARNING_RATES.get(kind, BASE_LEARNING_RATE)


def default(field: str) -> Any:
    """The default of a fit config field."""
    return FIT_DEFAULTS[field]

"""The library face of flowcli: fit, score, sample and invert tables with a normalizing flow.

Example::

    import pandas as pd
    from flowcli import FlowModel

    model = FlowModel.fit(pd.read_parquet("data.parquet"), model="maf", seed=0)
    scores = model.score(df)            # log-likelihood per row, nats, in the table's units
    synth = model.sample(1000, seed=1)  # new rows with the training columns and dtypes
    model.save("model.flow")
    model = FlowModel.load("model.flow")
"""

from __future__ import annotations

import datetime as _dt
import math
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from . import __version__, checkpoint
from .engine.distributions import select_mixture
from .engine.flow import KINDS
from .engine.mixed import MixedDensity, build_mixed, rebuild_mixed
from .engine.tails import Tails
from .errors import DataError, ModelFileError, SchemaError, UsageError
from .tabular import MISSING, Encoder, Overrides, Preprocessor, Schema
from .train import EpochReport, TrainConfig, TrainResult, fit_chain, train

__all__ = ["FitConfig", "FlowModel", "latent_columns", "resolve_device"]

LATENT_PREFIX = "z_"
SCORE_BATCH = 65536  # rows per chunk read, sampled and written
# Rows per network pass. On a CPU, small passes keep the activations in cache: 2,048 rows
# score about 3 times faster than 65,536 (benchmarks/README.md).
CPU_PASS, GPU_PASS = 2048, 65536
MIXTURE_ROWS = 50000  # training rows EM sees at most (a random subset; fewer when wide)
QUANTILES = 1001  # stored held-out score quantiles, for percentiles
MODELS = ("auto", *KINDS)


def candidates(model: str, whiten: bool | None, train_rows: int,
               mixture: bool | None = None) -> list[tuple[str, bool, bool]]:
    """The ``(kind, whiten, mixture)`` flows that ``fit`` tries, in order; it keeps the best.

    ``auto`` tries MAF (fast; strong on smooth tables) and a spline flow (strong on bounded,
    lattice-valued, skewed or multi-modal columns), and on tables under 1,000 training rows
    also a whitened MAF: starting from the full-covariance Gaussian pays off when there are
    too few rows for a flow to learn the correlations, while on larger tables it loses to
    the plain flows, by tens of nats on lattice-valued ones (benchmarks/README.md).
    Last comes a MAF on a Gaussian-mixture base (MAF-MoG), which ``fit`` trains only when
    the mixture alone already beats the flows before it on the validation rows: clustered
    tables, and lattice-valued columns where a mixture component can settle on a value.
    Whitening is off unless asked for, or picked that way by ``auto``; so is the mixture
    base, and ``mixture=False`` keeps ``auto`` from trying it.
    """
    if model != "auto":
        return [(model, bool(whiten), bool(mixture))]
    mix = bool(mixture)
    if whiten is not None:
        flows = [("maf", whiten, mix), ("nsf", whiten, mix)]
    else:
        small = [("maf", True, mix)] if train_rows < SMALL_TABLE else []
        flows = [("maf", False, mix), *small, ("nsf", False, mix)]
    if mixture is None:
        flows.append(("maf", False, True))
    return flows


def tails_for(kind: str, tails: bool | None) -> bool:
    """Whether a flow of ``kind`` starts with a heavy-tail layer (:class:`~flowcli.engine.Tails`):
    as asked, else for spline flows only. Splines are the identity outside their interval, so
    a heavy-tailed column is out of their reach without it (with it, the spline flow gained
    0.5-6.5 nats per test row on seven benchmark sets and 58 on pol, and lost 0.45 on
    elevators; benchmarks/README.md).
    Affine layers rescale the tails themselves: on funnel10, where the MAF wins, compressing
    the columns first cost it 0.37 nats per test row (one seed, the benchmark's 25 s cap)."""
    return kind == "nsf" if tails is None else bool(tails)


def label(kind: str, whiten: bool, mixture: bool, tails: bool = False) -> str:
    """How a candidate is named in progress lines, ``fit``'s summary and ``info``."""
    return (kind + ("+tails" if tails else "") + ("+whiten" if whiten else "")
            + ("+mixture" if mixture else ""))


@dataclass
class FitConfig:
    """Hyperparameters of ``fit``: architecture and optimization. Plain data only."""

    model: str = "auto"
    layers: int | None = None  # None: sized to the table (see ``sized``)
    hidden: int | None = None
    depth: int = 2
    scale_bound: float = 5.0
    epochs: int = 1000
    batch_size: int = 512
    lr: float = 1e-3
    patience: int = 20
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    max_seconds: float | None = None
    missing: str = "error"
    whiten: bool | None = None  # None: off, but ``auto`` tries it on small tables
    mixture: bool | None = None  # None: off, but ``auto`` tries it when the mixture leads
    tails: bool | None = None  # None: on for spline flows (see ``tails_for``)

    def check(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"unknown model {self.model!r}; use {', '.join(MODELS)}")
        for name in ("layers", "hidden", "depth", "epochs", "batch_size", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if not self.lr > 0:
            raise UsageError("--lr must be positive")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UsageError("--val-fraction must be in [0, 1)")
        if self.missing not in MISSING:
            raise UsageError(f"--missing must be one of {', '.join(MISSING)}")


SMALL_TABLE = 1000  # training rows under which the default flow is smaller


def sized(config: FitConfig, train_rows: int) -> FitConfig:
    """Fill in ``layers`` and ``hidden`` left unset: 5 layers of 128 units, or 3 of 32 for
    tables under 1,000 training rows, where the larger flow overfits (benchmarks/README.md)."""
    small = train_rows < SMALL_TABLE
    return replace(config, layers=config.layers or (3 if small else 5),
                   hidden=config.hidden or (32 if small else 128))


class _Start(NamedTuple):
    """Where a candidate's training started: its weights, per-row held-out scores (table
    units), and their mean in the flow's units, as ``train`` reports validation scores."""

    state: dict[str, torch.Tensor]
    scores: np.ndarray
    val_ll: float


@dataclass
class _Encoded:
    """A split's rows encoded once for training: training rows at their integer cells' lower
    corners (training adds the noise), held-out rows as ``score`` encodes them."""

    x_train: np.ndarray
    ld_train: np.ndarray
    x_val: np.ndarray
    ld_val: np.ndarray
    x_held: np.ndarray  # validation rows, or without them the training rows
    ld_held: np.ndarray
    has_val: bool

    @classmethod
    def of(cls, pre: Preprocessor, train_df: pd.DataFrame, val_df: pd.DataFrame,
           source: str) -> _Encoded:
        x_train, ld_train = pre.encode(train_df, source, position=0.0)
        x_val, ld_val = pre.encode(val_df, source)
        x_held, ld_held = (x_val, ld_val) if len(val_df) else pre.encode(train_df, source)
        return cls(x_train, ld_train, x_val, ld_val, x_held, ld_held, len(val_df) > 0)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _clearly_better(new: np.ndarray, old: np.ndarray) -> bool:
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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def latent_columns(dim: int) -> list[str]:
    """Names of the latent columns written by ``invert``: ``z_0 .. z_{D-1}``."""
    return [f"{LATENT_PREFIX}{i}" for i in range(dim)]


def _split(
    df: pd.DataFrame, val_fraction: float, seed: int, source: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation rows: a seeded permutation, ``val_fraction`` held out."""
    n = len(df)
    n_val = max(int(round(n * val_fraction)), 1) if val_fraction > 0 else 0
    if n - n_val < 2:
        raise DataError(f"{source}: {n} rows are too few to fit a model (need at least 3)")
    order = np.random.default_rng(seed).permutation(n)
    return df.iloc[order[n_val:]], df.iloc[order[:n_val]]


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


class FlowModel:
    """A fitted density over a table: the preprocessing, the model and how it was trained.

    Build one with :meth:`fit` or :meth:`load`. Scores are natural-log likelihoods per row
    (nats) in the table's own units: the preprocessing's Jacobian is included, categorical
    columns contribute their exact log-probability, and integer columns a log-probability
    estimate (the dequantized density at the cell centre).
    """

    def __init__(
        self,
        preprocessor: Preprocessor,
        density: MixedDensity,
        training: dict[str, Any],
        fit_config: FitConfig,
        resume: dict[str, Any] | None = None,
        created: str | None = None,
    ) -> None:
        self.preprocessor = preprocessor
        self.density = density.eval()
        self.training = training
        self.fit_config = fit_config
        self.resume = resume or {}
        self.created = created or _utc_now()
        self._density64: MixedDensity | None = None
        self._held_out = np.zeros(0)
        # the weights and held-out scores training started from, until _settle
        self._start_point: _Start | None = None

    # ------------------------------------------------------------------ properties
    @property
    def schema(self) -> Schema:
        return self.preprocessor.schema

    @property
    def columns(self) -> list[str]:
        """The model's columns, in order."""
        return self.schema.names

    @property
    def device(self) -> torch.device:
        return next(self.density.parameters()).device

    def to(self, device: str | torch.device) -> FlowModel:
        self.density.to(resolve_device(device))
        self._density64 = None
        return self

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        data: pd.DataFrame,
        config: FitConfig | None = None,
        *,
        columns: list[str] | None = None,
        overrides: Overrides | None = None,
        seed: int | None = None,
        device: str | torch.device = "auto",
        callback: Callable[[EpochReport], None] | None = None,
        source: str = "data",
        **options: Any,
    ) -> FlowModel:
        """Learn the density of ``data``.

        Arguments:
            data: the training table.
            config: hyperparameters; keyword ``options`` replace single fields
                (``model="realnvp"``, ``layers=8``, ``missing="model"``, ...).
            columns: the columns to model (default: all).
            overrides: column kinds and bounds declared by the user
                (:class:`~flowcli.tabular.Overrides`); its ``missing`` policy is taken from
                the config.
            seed: makes the split, initialization, shuffling and noise reproducible on one
                machine (default: a random seed, recorded in the model).
            device: ``auto``, ``cpu`` or ``cuda``.
            callback: receives an :class:`~flowcli.train.EpochReport` after each epoch.
            source: the file name used in error messages.

        A Ctrl-C during training stops it early with the best weights so far; the returned
        model then has ``training["stopped"] == "interrupted"``.
        """
        config = FitConfig(**{**asdict(config or FitConfig()), **options})
        config.check()
        dev = resolve_device(device)
        seed = secrets.randbelow(2**31) if seed is None else int(seed)
        overrides = replace(overrides or Overrides(), missing=config.missing)
        table, dropped = data, 0
        if config.missing == "drop":
            used = [c for c in (columns or data.columns) if c in data.columns]
            table = data.dropna(subset=used).reset_index(drop=True)
            dropped = len(data) - len(table)
        schema = Schema.infer(table, columns, source, overrides)
        train_df, val_df = _split(table, config.val_fraction, seed, source)
        config = sized(config, len(train_df))
        pre = Preprocessor.fit(schema, train_df)
        base = {"seed": seed, "rows": len(table), "train_rows": len(train_df),
                "val_rows": len(val_df), "dropped_rows": dropped, "device": str(dev),
                "epochs": 0, "seconds": 0.0}
        kinds = candidates(config.model, config.whiten, len(train_df), config.mixture)
        if not pre.continuous:  # categories alone: no flow to choose
            kinds = kinds[:1]
        models: list[FlowModel] = []
        budget = config.max_seconds
        # With a time limit and several candidates, each first gets a probe of 40 % of the
        # limit shared out (a mixture base's EM another 20 %, at most); then the unfinished
        # ones carry on with what is left, the most promising first (see below).
        probe = None if budget is None or len(kinds) == 1 else 0.4 * budget / len(kinds)
        encoded = _Encoded.of(pre, train_df, val_df, source)
        # the mixture that auto adds last: it must lead from its first epoch, and once it has
        # given up it gets none of the time left
        gated = len(kinds) - 1 if config.mixture is None and len(kinds) > 1 and kinds[-1][2] \
            else None
        interrupted = False
        for i, (kind, whiten, mixture) in enumerate(kinds):
            flow_config = {"kind": kind, "layers": config.layers, "hidden": config.hidden,
                           "depth": config.depth, "scale_bound": config.scale_bound,
                           "whiten": whiten, "mixture": int(mixture),
                           "tails": tails_for(kind, config.tails)}
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                density = build_mixed(pre.continuous, pre.cardinalities, flow_config).to(dev)
            model = cls(pre, density, dict(base), replace(config, max_seconds=probe or budget))
            # A later candidate that has trained as long as the first without catching up
            # gives up, so that auto costs about twice the fastest fit when that one wins.
            behind = None
            if i == gated and models:
                behind = (0.0, max(_finite(m.training["val_log_likelihood"]) for m in models))
            elif models:
                behind = (models[0].training["seconds"],
                          models[0].training["val_log_likelihood"])
            # the categories' model does not depend on the flow: fitted once, then copied
            chain = models[0].density.chain if models else None
            try:
                model._train(encoded, callback, stage=len(kinds) > 1,
                             behind=behind,
                             categories=chain.state_dict() if chain is not None else None,
                             em_seconds=None if probe is None else 0.2 * budget,
                             em_target=behind[1] if i == gated and behind else None)
            except KeyboardInterrupt:
                if not models:
                    raise
                # Ctrl-C outside the training loop (the data-set start): keep the candidates
                # already trained
                interrupted = True
                break
            models.append(model)
            if model.training["stopped"] == "interrupted":
                interrupted = True
                break
        # The time left goes to the most promising candidate that the probe cut short or
        # that gave up (it may have given up against a first candidate that the probe had cut
        # short too); if that one stops early, the next most promising carries on.
        pending = [i for i, m in enumerate(models)
                   if m.training["stopped"] == "time"
                   or m.training["stopped"] == "given up" and i != gated]
        while probe is not None and pending and not interrupted:
            left = budget - sum(m.training["seconds"] for m in models)
            if left < 0.02 * budget:
                break
            i = max(pending, key=lambda i: _finite(models[i].training["val_log_likelihood"]))
            pending.remove(i)
            models[i].fit_config = replace(config, max_seconds=left)
            try:
                models[i]._train(encoded, callback, models[i].resume, stage=True)
            except KeyboardInterrupt:
                interrupted = True
            interrupted = interrupted or models[i].training["stopped"] == "interrupted"
        for m in models:
            m._settle()
        lead = 0
        for i in range(1, len(models)):
            if _clearly_better(models[i]._held_out, models[lead]._held_out):
                lead = i
        best = models[lead]
        best.fit_config = config
        if len(kinds) > 1:
            tried = [{"model": kind, "whiten": whiten, "mixture": m._components(),
                      "tails": m._tails(),
                      **{k: m.training[k] for k in ("val_log_likelihood", "epochs", "seconds",
                                                    "stopped")}}
                     for (kind, whiten, _), m in zip(kinds[: len(models)], models, strict=True)]
            interrupted = interrupted or best.training["stopped"] == "interrupted"
            best.training.update(
                candidates=tried, seconds=sum(m.training["seconds"] for m in models),
                stopped="interrupted" if interrupted else best.training["stopped"])
        return best

    def resume_fit(
        self,
        data: pd.DataFrame,
        *,
        callback: Callable[[EpochReport], None] | None = None,
        source: str = "data",
        **overrides: Any,
    ) -> FlowModel:
        """Carry on training this model on ``data`` where its last run stopped.

        The epoch count, early-stopping state and optimizer state continue; the data should be
        the table the model was fitted on (the same seed gives the same validation split).
        ``overrides`` may change ``epochs``, ``patience``, ``max_seconds`` or ``lr``.
        """
        allowed = {"epochs", "patience", "max_seconds", "lr"}
        unknown = set(overrides) - allowed
        if unknown:
            raise UsageError(f"cannot change {', '.join(sorted(unknown))} when resuming")
        self.fit_config = replace(self.fit_config, **overrides)
        self.fit_config.check()
        if not self.resume.get("optimizer"):
            raise UsageError("this model file holds no training state to resume from")
        self.schema.check_columns(data, source)
        table = data[self.columns]
        if self.fit_config.missing == "drop":
            table = table.dropna().reset_index(drop=True)
        train_df, val_df = _split(table, self.fit_config.val_fraction, self.training["seed"],
                                  source)
        self.training.update(rows=len(table), train_rows=len(train_df), val_rows=len(val_df),
                             device=str(self.device))
        resume = dict(self.resume)
        if "lr" in overrides:
            for group in resume["optimizer"].get("param_groups", []):
                group["lr"] = overrides["lr"]
        self._train(_Encoded.of(self.preprocessor, train_df, val_df, source), callback, resume)
        return self

    def _train(
        self,
        encoded: _Encoded,
        callback: Callable[[EpochReport], None] | None,
        resume: dict[str, Any] | None = None,
        stage: bool = False,
        behind: tuple[float, float] | None = None,
        categories: dict[str, torch.Tensor] | None = None,
        em_seconds: float | None = None,
        em_target: float | None = None,
    ) -> TrainResult:
        """Fit the categories (on a new model; ``categories``: load this fitted state instead),
        train the flow, and record the held-out scores.

        ``behind=(seconds, val_ll)``: give up once this run has trained that long and its best
        validation log-likelihood (table units) is still below ``val_ll``. ``em_seconds``
        limits the fit of a mixture base on top of the time limit; without it, EM counts
        against the time limit. ``em_target``: see :meth:`_fit_mixture`. ``stage``: name the
        progress reports after this model's flow (``auto``'s candidates).
        """
        config = self.fit_config
        pre, dev = self.preprocessor, self.device
        x_train, ld_train, x_val, ld_val = (encoded.x_train, encoded.ld_train, encoded.x_val,
                                            encoded.ld_val)
        tensor = {"dtype": torch.float32, "device": dev}
        widths = torch.as_tensor(pre.widths, **tensor)
        start_epoch = int((resume or {}).get("epoch", 0))
        generator = torch.Generator().manual_seed(self.training["seed"] + start_epoch)
        tconf = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                            patience=config.patience, weight_decay=config.weight_decay,
                            max_seconds=config.max_seconds)
        # report in the table's units, as scores are
        shift_train = float(ld_train.mean()) if len(ld_train) else 0.0
        shift_val = float(ld_val.mean()) if len(ld_val) else shift_train

        elapsed = [0.0]

        def give_up(r: EpochReport) -> bool:
            elapsed[0] += r.seconds
            return (behind is not None and elapsed[0] >= behind[0]
                    and r.best_val_ll + shift_val < behind[1])

        def report(r: EpochReport) -> None:
            if callback is not None:
                callback(replace(r, train_ll=r.train_ll + shift_train,
                                 val_ll=r.val_ll + shift_val,
                                 best_val_ll=r.best_val_ll + shift_val,
                                 stage=self._label() if stage else ""))

        x_train_t = torch.as_tensor(x_train, **tensor)
        x_val_t = torch.as_tensor(x_val, **tensor)
        chain, d = self.density.chain, pre.continuous
        mixture_seconds = 0.0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.training["seed"] + start_epoch)
            if resume is None:
                # from rows dequantized as training sees them: integer cells at their corners
                # would make two equal integer columns look exactly collinear to Whiten
                rows = x_train_t + torch.rand_like(x_train_t) * widths
                self.density.init_from(rows)
            if chain is not None and categories is not None:
                chain.load_state_dict(categories)
            elif chain is not None and resume is None:
                fit_chain(chain, x_train_t[:, d:], x_val_t[:, d:], generator)
            if chain is not None:
                chain.requires_grad_(False)  # fitted above; the flow trains alone below
            stopped_early = False
            if resume is None and self._components():
                tick = time.perf_counter()
                try:
                    self._fit_mixture(rows, x_val_t, generator, shift_val, em_seconds,
                                      em_target)
                except KeyboardInterrupt:  # Ctrl-C during EM: the untrained flow is kept
                    stopped_early = True
                mixture_seconds = time.perf_counter() - tick
                if tconf.max_seconds is not None and em_seconds is None:
                    tconf.max_seconds = max(tconf.max_seconds - mixture_seconds, 0.0)
            if not stopped_early and resume is None and self.density.flow is not None:
                try:
                    self._start_point = self._start(encoded)
                except KeyboardInterrupt:
                    stopped_early = True
            if stopped_early:
                result = TrainResult(epochs=0, best_epoch=0, best_val_ll=math.nan,
                                     train_ll=math.nan, seconds=0.0, stopped="interrupted",
                                     interrupted=True)
            elif self.density.flow is not None:
                start = self._start_point  # scored already: train need not score it again
                result = train(self.density, x_train_t, x_val_t, widths, tconf, generator,
                               report, resume, give_up,
                               start_val=None if start is None else start.val_ll)
            else:
                result = TrainResult(epochs=start_epoch, best_epoch=start_epoch,
                                     best_val_ll=math.nan, train_ll=math.nan, seconds=0.0,
                                     stopped="categories only")
        # before scoring: a Ctrl-C there must not leave the last run's weight average behind
        self.resume = result.resume_state()
        self.density.eval()
        scores = self._map(self.density.log_prob, encoded.x_held) + encoded.ld_held
        quantiles = np.quantile(scores, np.linspace(0, 1, QUANTILES)) if scores.size else []
        self.training.update(
            epochs=result.epochs,
            best_epoch=result.best_epoch,
            stopped=result.stopped,
            seconds=self.training.get("seconds", 0.0) + result.seconds + mixture_seconds,
            val_log_likelihood=float(np.mean(scores)) if scores.size else math.nan,
            train_log_likelihood=result.train_ll + shift_train,
            score_quantiles=[float(q) for q in quantiles],
            held_out="validation" if encoded.has_val else "training",
        )
        self._held_out = scores  # per-row held-out scores, for choosing between candidates
        return result

    def _start(self, encoded: _Encoded) -> _Start | None:
        """The untrained density's weights and held-out scores, when there are validation
        rows."""
        if not encoded.has_val:
            return None
        self.density.eval()
        state = {k: v.detach().clone() for k, v in self.density.state_dict().items()}
        flow_scores = self._map(self.density.log_prob, encoded.x_held)
        return _Start(state, flow_scores + encoded.ld_held, float(np.mean(flow_scores)))

    def _settle(self) -> None:
        """Go back to the starting weights unless training beat them by more than noise.

        Called once a candidate's training is over (after any continuation). The start can
        already be a fitted model (a Gaussian mixture, or the full-covariance Gaussian of a
        whitened flow): on mixture8 the MAF on the fitted mixture gained 0.0005 nats per
        validation row in two epochs and lost 0.0025 on the test rows. Going back also drops
        Adam's moments and the weight average from the resume state, which belong to the
        weights given up.
        """
        start, self._start_point = self._start_point, None
        if start is None:
            return
        before = start.scores
        if _clearly_better(self._held_out, before):
            return
        self.density.load_state_dict(start.state)
        self.density.eval()
        self._held_out = before
        quantiles = np.quantile(before, np.linspace(0, 1, QUANTILES)) if before.size else []
        self.training.update(best_epoch=0, val_log_likelihood=float(np.mean(before)),
                             score_quantiles=[float(q) for q in quantiles])
        optimizer = self.resume.get("optimizer")
        self.resume = {k: v for k, v in self.resume.items() if k != "average"}
        self.resume.update(best_epoch=0, best_val=start.val_ll)
        if optimizer:
            self.resume["optimizer"] = {**optimizer, "state": {}}

    def _label(self) -> str:
        """This model's flow as ``label`` names it (after the data-set start, which drops a
        heavy-tail layer that no column needs)."""
        flow = self.density.flow
        if flow is None:
            return "categories"
        return label(flow.config["kind"], bool(flow.config.get("whiten")),
                     self._components() > 0, self._tails())

    def _tails(self) -> bool:
        """Whether the flow starts with a heavy-tail layer."""
        flow = self.density.flow
        return bool(flow.config.get("tails", False)) if flow is not None else False

    def _tails_columns(self) -> list[str]:
        """The columns that the heavy-tail layer compresses."""
        assert self.density.flow is not None
        layer = next(t for t in self.density.flow.steps if isinstance(t, Tails))
        names = [spec.name for spec, e in zip(self.schema.columns, self.preprocessor.encoders,
                                              strict=True) if e.cont]
        return [name for name, on in zip(names, layer.active.tolist(), strict=True) if on]

    def _components(self) -> int:
        """Components of the flow's mixture base; 0 for the standard normal."""
        flow = self.density.flow
        return int(flow.config.get("mixture", 0)) if flow is not None else 0

    def _fit_mixture(self, rows: torch.Tensor, x_val: torch.Tensor,
                     generator: torch.Generator, shift: float,
                     em_seconds: float | None = None, target: float | None = None) -> None:
        """Fit the mixture base by EM to the rows as the untrained flow maps them (the
        identity after its data-set layers), its size chosen on the validation rows.

        Rows with gaps are left out (and then no ``target`` applies, and the recorded
        scores are of the validation rows without gaps); without validation rows, a tenth of
        the training rows chooses the size. The search over sizes stops after ``em_seconds``, by
        default the model's time limit, or once it is clear that no size would reach
        ``target`` (a validation log-likelihood in table units; see
        :func:`~flowcli.engine.distributions.select_mixture`). ``shift`` (the preprocessing's
        mean log-determinant on the validation rows) turns scores into the table's units.
        """
        flow = self.density.flow
        assert flow is not None
        d = self.preprocessor.continuous
        keep = ~torch.isnan(rows[:, :d]).any(dim=1)
        held = x_val if x_val.shape[0] else rows
        n_held = held.shape[0]
        held = held[~torch.isnan(held[:, :d]).any(dim=1)]
        if int(keep.sum()) < 5 or held.shape[0] == 0:
            return  # too few complete rows: the base stays the standard normal it starts as
        limit = self.fit_config.max_seconds if em_seconds is None else em_seconds
        # EM's rounds cost rows x features^2 per component: fewer rows for wide tables
        most = min(MIXTURE_ROWS, max(5000, 50_000_000 // d**2))
        pick = torch.randperm(int(keep.sum()), generator=generator)[:most]
        fitted = rows[keep][pick.to(rows.device)]
        if not x_val.shape[0]:
            # no validation rows: a tenth of the training rows chooses the size, which the
            # rows EM fits would always choose the largest
            cut = max(fitted.shape[0] // 10, 1)
            fitted, held = fitted[cut:], fitted[:cut]
        if held.shape[0] < n_held:
            target = None  # rows with gaps left out: not comparable with the target
        self.density.eval()
        with torch.no_grad():
            z_train = self.density.to_latent(fitted)
            z_val = self.density.to_latent(held)
            # what the rest of the model adds to the base's log-density of a held-out row
            # (the categories, the data-set layers' log-determinants), so that the mixture's
            # scores read in table units like every validation log-likelihood
            offset = shift + float(self.density.log_prob(held).mean()
                                   - flow.base.log_prob(z_val).mean())
        mixture, scores = select_mixture(
            z_train, z_val, generator=generator, max_seconds=limit,
            target=None if target is None else target - offset)
        flow.set_mixture(mixture)
        self.training["mixture"] = {
            "components": mixture.components,
            "val_by_components": {str(k): v + offset for k, v in scores.items()}}

    # ------------------------------------------------------------------ scoring
    @torch.inference_mode()
    def _map(
        self, fn: Callable[[torch.Tensor], torch.Tensor], rows: np.ndarray | torch.Tensor,
        dtype: torch.dtype = torch.float32,
    ) -> np.ndarray:
        """Apply ``fn`` to ``rows`` in passes sized for the device; float64 numpy out."""
        step = CPU_PASS if self.device.type == "cpu" else GPU_PASS
        x = torch.as_tensor(rows, dtype=dtype, device=self.device)
        if x.shape[0] == 0:
            return fn(x).double().cpu().numpy()
        return torch.cat([fn(x[i : i + step]) for i in range(0, x.shape[0], step)]
                         ).double().cpu().numpy()

    def score(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0,
              unseen: str = "error") -> pd.Series:
        """Log-likelihood of each row in nats, in the table's units; aligned to ``df.index``.

        Extra columns are ignored; missing model columns raise :class:`SchemaError`. With
        ``unseen="floor"``, a category never seen in training is scored as the rarest one.
        """
        x, logdet = self.preprocessor.encode(df, source, row_offset, unseen=unseen)
        values = self._map(self.density.log_prob, x) + logdet
        return pd.Series(values, index=df.index, name="log_prob")

    def score_batches(
        self, chunks: Iterable[pd.DataFrame], source: str = "data", unseen: str = "error"
    ) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
        """Score a stream of chunks; yields each chunk with its scores."""
        offset = 0
        for chunk in chunks:
            yield chunk, self.score(chunk, source, offset, unseen)
            offset += len(chunk)

    def scored_table(self, chunk: pd.DataFrame, scores: pd.Series, *, percentile: bool = False,
                     cutoff: float | None = None, only_score: bool = False) -> pd.DataFrame:
        """What ``flowcli score`` writes: the rows (none with ``only_score``) and ``log_prob``,
        then ``percentile`` if asked, and ``anomaly`` (score below ``cutoff``) if given."""
        out = chunk[[]].copy() if only_score else chunk.copy()
        out["log_prob"] = scores.to_numpy()
        if percentile:
            out["percentile"] = self.percentile(scores)
        if cutoff is not None:
            out["anomaly"] = scores.to_numpy() < cutoff
        return out

    def percentile(self, scores: np.ndarray | pd.Series) -> np.ndarray:
        """Share of held-out training rows (in %) that scored lower than each score."""
        q = np.asarray(self.training.get("score_quantiles") or [], dtype=np.float64)
        if q.size == 0:
            return np.full(len(scores), np.nan)
        return 100.0 * np.interp(np.asarray(scores, dtype=np.float64), q,
                                 np.linspace(0.0, 1.0, q.size), left=0.0, right=1.0)

    def threshold(self, quantile: float) -> float:
        """The held-out score below which a share ``quantile`` of held-out rows fall."""
        q = np.asarray(self.training["score_quantiles"], dtype=np.float64)
        return float(np.interp(quantile, np.linspace(0.0, 1.0, q.size), q))

    # ------------------------------------------------------------------ sampling
    @torch.inference_mode()
    def sample_batches(
        self, n: int, seed: int | None = None, batch_size: int = SCORE_BATCH
    ) -> Iterator[pd.DataFrame]:
        """Yield ``n`` new rows in chunks of at most ``batch_size``, with the training schema."""
        if n < 0:
            raise UsageError(f"cannot draw {n} rows; give a number >= 0")
        generator = torch.Generator(device=self.device)
        generator.manual_seed(secrets.randbelow(2**63) if seed is None else int(seed))
        step = CPU_PASS if self.device.type == "cpu" else GPU_PASS
        done = 0
        while True:
            size = min(batch_size, n - done)
            parts = [self.density.sample(min(step, size - i), generator)
                     for i in range(0, size, step)] or [self.density.sample(0, generator)]
            yield self.preprocessor.decode(torch.cat(parts).double().cpu().numpy())
            done += size
            if done >= n:
                return

    def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
        """``n`` new rows with the training columns, dtypes and labels."""
        return pd.concat(list(self.sample_batches(n, seed)), ignore_index=True)

    # ------------------------------------------------------------------ latent space
    def _double(self) -> MixedDensity:
        if self._density64 is None:
            twin = rebuild_mixed(self.density.config).to(self.device)
            twin.load_state_dict(self.density.state_dict())
            self._density64 = twin.double().eval()
        return self._density64

    def latent_columns(self) -> list[str]:
        """Columns of a latent table: ``z_0 .. z_{D-1}``, then the discrete columns as is."""
        return latent_columns(self.preprocessor.continuous) + self._discrete_names()

    def _discrete_parts(self) -> list[tuple[str, Encoder]]:
        """Each discrete dim's latent-table column and encoder: a categorical column keeps
        its name, a numeric column's gap indicator is ``<column>_missing``."""
        return [(e.spec.name if e.cont == 0 else f"{e.spec.name}_missing", e)
                for e in self.preprocessor.encoders if e.cards]

    def _discrete_names(self) -> list[str]:
        return [name for name, _ in self._discrete_parts()]

    def to_latent(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0
                  ) -> pd.DataFrame:
        """Latent coordinates ``z_0 ..`` of each row's continuous part, computed in float64.

        Categorical columns come along unchanged (the latent code is conditional on them),
        and a ``<column>_missing`` flag for each numeric column with modelled gaps.
        """
        x, _ = self.preprocessor.encode(df, source, row_offset)
        z = self._map(self._double().to_latent, x, torch.float64)
        out = pd.DataFrame(z, columns=latent_columns(z.shape[1]), index=df.index)
        for d, (name, e) in enumerate(self._discrete_parts(), self.preprocessor.continuous):
            out[name] = x[:, d] > 0.5 if e.cont else df[name].to_numpy()
        return out

    def from_latent(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0
                    ) -> pd.DataFrame:
        """Rows of the table from a latent table (see :meth:`to_latent`), in float64."""
        names = self.latent_columns()
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise SchemaError(
                f"{source}: missing latent column {', '.join(repr(c) for c in missing[:5])}; "
                f"latent tables have columns {', '.join(names[:8])}"
            )
        zs = latent_columns(self.preprocessor.continuous)
        cont = df[zs].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, copy=True)
        bad = ~np.isfinite(cont)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(f"{source}: column '{zs[c]}' holds {df[zs[c]].iloc[r]!r} in row "
                            f"{row_offset + r + 1}; latent values must be finite numbers")
        disc = [df[name].astype(bool).to_numpy(dtype=np.float64) if e.cont
                else e.encode(df[name], source, row_offset, 0.5)[1][:, 0]
                for name, e in self._discrete_parts()]
        codes = np.stack(disc, axis=1) if disc else np.zeros((len(df), 0))
        with torch.inference_mode():
            dens = self._double()
            rows = dens.from_latent(torch.as_tensor(cont, dtype=torch.float64,
                                                    device=self.device),
                                    torch.as_tensor(codes, dtype=torch.float64,
                                                    device=self.device))
        out = self.preprocessor.decode(rows.cpu().numpy())
        out.index = df.index
        return out

    def invert_batches(
        self, chunks: Iterable[pd.DataFrame], to_data: bool = False, source: str = "data"
    ) -> Iterator[pd.DataFrame]:
        """Map a stream of chunks to latent tables (or back, ``to_data``); columns that are
        not mapped pass through, after the mapped ones."""
        used = set(self.latent_columns() if to_data else self.columns)
        convert = self.from_latent if to_data else self.to_latent
        offset = 0
        for chunk in chunks:
            out = convert(chunk, source, offset)
            rest = [c for c in chunk.columns if c not in used and c not in out.columns]
            yield out.join(chunk[rest]) if rest else out
            offset += len(chunk)

    # ------------------------------------------------------------------ persistence
    def to_payload(self) -> dict[str, Any]:
        return {
            "flowcli_version": __version__,
            "torch_version": torch.__version__,
            "created": self.created,
            "preprocessor": self.preprocessor.to_dict(),
            "flow": {"config": self.density.config,
                     "state_dict": {k: v.detach().cpu() for k, v in
                                    self.density.state_dict().items()}},
            "fit_config": self._fit_config_record(),
            "training": self.training,
            "resume": self.resume,
        }

    def save(self, path: str) -> None:
        """Write the model file atomically."""
        checkpoint.save(self.to_payload(), path, version=self._format())

    def _fit_config_record(self) -> dict[str, Any]:
        """The fit config as the model file holds it. Files leave out the fields that came
        with later formats (``mixture`` with 3, ``tails`` with 4): the flowcli releases that read
        only the earlier ones refuse a config field they do not know."""
        record = asdict(self.fit_config)
        for field, since in (("mixture", 3), ("tails", 4)):
            if self._format() < since:
                record.pop(field)
        return record

    def _format(self) -> int:
        """The model-file format this model needs: 4 with a heavy-tail layer, 3 with a
        mixture base, else 2."""
        return 4 if self._tails() else 3 if self._components() else 2

    @classmethod
    def load(cls, path: str, device: str | torch.device = "cpu") -> FlowModel:
        """Read a model file (safely: it can hold no code) onto ``device``."""
        data = checkpoint.load(path)
        try:
            pre = Preprocessor.from_dict(data["preprocessor"])
            config, state = data["flow"]["config"], data["flow"]["state_dict"]
            if "continuous" not in config:
                # format 1 from before categories: a bare flow config and the flow's weights
                config = {"continuous": config["features"], "cardinalities": [],
                          "flow": config, "chain_hidden": 64}
                state = {f"flow.{k}": v for k, v in state.items()}
            density = rebuild_mixed(config)
            density.load_state_dict(state)
            fit_config = FitConfig(**data.get("fit_config", {}))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: damaged model file ({type(exc).__name__})") from None
        model = cls(pre, density, dict(data["training"]), fit_config, data.get("resume"),
                    data.get("created"))
        return model.to(device)

    # ------------------------------------------------------------------ description
    def info(self) -> dict[str, Any]:
        """Columns, architecture, training and versions as plain data."""
        flow = self.density.flow
        config = dict(flow.config) if flow is not None else {"kind": "none", "layers": 0,
                                                             "hidden": 0, "depth": 0,
                                                             "scale_bound": 0.0}
        config.pop("orders", None)
        return {
            "columns": [
                {**spec.to_dict(), **e.to_dict()}
                for spec, e in zip(self.schema.columns, self.preprocessor.encoders, strict=True)
            ],
            "model": {**config, "categorical_variables": len(self.density.cardinalities),
                      "parameters": sum(p.numel() for p in self.density.parameters()),
                      **({"tails_columns": self._tails_columns()} if self._tails() else {})},
            "training": {k: v for k, v in self.training.items() if k != "score_quantiles"},
            "fit_config": asdict(self.fit_config),
            "created": self.created,
            "versions": {"flowcli": __version__, "torch": torch.__version__,
                         "format": self._format()},
        }

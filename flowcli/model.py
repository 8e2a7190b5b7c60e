"""FlowModel: a fitted density over a table, and what it does: score, sample, invert, save,
load and describe. What a notebook imports; the command line is a thin shell over it.

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
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import __version__, modelfile
from .config import CHUNK_ROWS, DEFAULT_DEVICE, DEFAULT_UNSEEN, DEVICES, OPTIONS
from .describe import describe
from .engine.mixed import MixedDensity, rebuild_mixed
from .errors import ModelFileError, UsageError
from .explain import explain_table, with_columns
from .fitting import (
    Candidate,
    FitConfig,
    RankShare,
    check_unchanged,
    fit_table,
    label,
    resume_training,
)
from .impute import SWEEPS, Imputation, impute_table
from .latent import LatentMap, latent_columns
from .quantiles import level_of, percentile_of
from .rows import score_rows
from .sampling import condition_row, draw_given, draw_rows, warn_outside
from .tabular import Overrides, Preprocessor, Schema
from .training import EpochReport, ResumeState, StopReason

__all__ = ["FlowModel", "Tried", "latent_columns", "load_content", "resolve_device"]


def resolve_device(device: str | torch.device = DEFAULT_DEVICE) -> torch.device:
    """``auto`` is CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("cuda: no CUDA device is available", field="device")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"must be one of {', '.join(DEVICES)}, not {device!r}",
                         field="device")
    return torch.device(device)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def _overrides(overrides: Overrides | None, missing: str, **declared: Any) -> Overrides:
    """Column kinds declared as keyword lists (``bounds`` a dict), on top of ``overrides``."""
    base = overrides or Overrides()
    merged = {name: ({**getattr(base, name), **(given or {})}
                     if name in ("bounds", "datetime_format")
                     else set(getattr(base, name)) | set(given or ()))
              for name, given in declared.items()}
    return replace(base, missing=missing, **merged)


@dataclass(frozen=True)
class Tried:
    """One candidate that ``fit`` tried, as its summary shows it."""

    label: str
    val_log_likelihood: float
    epochs: int
    stopped: str
    seconds: float
    kept: bool
    score_rows_per_second: float | None = None  # None in files written before it was kept

    @classmethod
    def of(cls, record: dict[str, Any]) -> Tried:
        """From a training record's entry in ``candidates``."""
        name = label(record["model"], record["whiten"], bool(record.get("mixture", 0)),
                     record.get("tails", False))
        return cls(name, record["val_log_likelihood"], record["epochs"],
                   str(record["stopped"]), record["seconds"], bool(record.get("kept")),
                   record.get("score_rows_per_second"))


class FlowModel:
    """A fitted density over a table: the preprocessing, the model and how it was trained.

    Build one with :meth:`fit` or :meth:`load`. Scores are natural-log likelihoods per row
    (nats) in the table's own units: the preprocessing's Jacobian is included, categorical
    columns contribute their exact log-probability, and integer columns a log-probability
    estimate (the dequantized density at the cell centre).
    """

    def __init__(self, preprocessor: Preprocessor, density: MixedDensity,
                 training: dict[str, Any], fit_config: FitConfig,
                 resume: ResumeState | None = None, created: str | None = None) -> None:
        self.preprocessor = preprocessor
        self.density = density.eval()
        self.training = training
        self.fit_config = fit_config
        self.resume = resume
        self.created = created or _utc_now()
        self._latent: LatentMap | None = None

    # ------------------------------------------------------------------ what it is
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

    @property
    def interrupted(self) -> bool:
        """Whether the last fit or resumed run was stopped by Ctrl-C (or SIGTERM)."""
        return self.training.get("stopped") == StopReason.INTERRUPTED.value

    @property
    def tried(self) -> list[Tried]:
        """The candidates ``fit`` tried (none when it fitted one flow)."""
        return [Tried.of(c) for c in self.training.get("candidates", [])]

    def to(self, device: str | torch.device) -> FlowModel:
        self.density.to(resolve_device(device))
        self._latent = None
        return self

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        data: pd.DataFrame | RankShare,
        config: FitConfig | None = None,
        *,
        columns: list[str] | None = None,
        exclude: list[str] | None = None,
        categorical: Iterable[str] | None = None,
        integer: Iterable[str] | None = None,
        positive: Iterable[str] | None = None,
        bounds: dict[str, tuple[float, float]] | None = None,
        unbounded: Iterable[str] | None = None, continuous: Iterable[str] | None = None,
        datetime: Iterable[str] | None = None, datetime_format: dict[str, str] | None = None,
        condition: Iterable[str] | None = None,
        overrides: Overrides | None = None,
        seed: int | None = None,
        device: str | torch.device = DEFAULT_DEVICE,
        callback: Callable[[EpochReport], None] | None = None,
        source: str = "data",
        **options: Any,
    ) -> FlowModel:
        """Learn the density of ``data``.

        Arguments:
            data: the training table (under torchrun, or this rank's share of it).
            config: hyperparameters; keyword ``options`` replace single fields
                (``model="realnvp"``, ``layers=8``, ``missing="model"``, ...).
            columns, exclude: the columns to model (default: all), and those to leave out.
            categorical, integer, positive: columns declared of that kind (else inferred).
            bounds: columns bounded to ``(low, high)``, modelled on a logit scale.
            unbounded: columns to model without the support inferred from training (a
                column whose values are all positive, or all in [0, 1], keeps to that
                support by default).
            continuous: columns to model as plain continuous: neither a support nor a grid
                inferred (a float column on a regular grid of few points is modelled as the
                index of its point by default).
            datetime, datetime_format: columns of dates and times, and their text formats.
            condition: columns to condition on: the model is then of the other columns
                given these, and scores are ``log p(others | condition)``.
            overrides: the same declarations as one :class:`~flowcli.tabular.Overrides`.
            seed: makes the split, initialization, shuffling and noise reproducible on one
                machine (default: a random seed, recorded in the model).
            device: ``auto``, ``cpu`` or ``cuda``.
            callback: receives an :class:`~flowcli.training.EpochReport` after each epoch.
            source: the file name used in error messages.

        A Ctrl-C during training stops it early with the best weights so far; the returned
        model then says :attr:`interrupted`.
        """
        config = (config or FitConfig()).updated(**options)
        declared = _overrides(overrides, config.missing, categorical=categorical,
                              integer=integer, positive=positive, bounds=bounds,
                              unbounded=unbounded, continuous=continuous,
                              datetime=datetime, datetime_format=datetime_format)
        if condition is not None:
            declared = replace(declared, given=[str(c) for c in condition])
        kept = fit_table(data, config, columns=columns, exclude=exclude, overrides=declared,
                         seed=seed, device=resolve_device(device), callback=callback,
                         source=source)
        return cls(kept.pre, kept.density, kept.training, kept.config, kept.resume)

    def check_resume(self, **given: Any) -> None:
        """Refuse fit settings, ``seed``, column choices and declared kinds that differ from
        this model's: a resumed run cannot change them (the same ones are welcome)."""
        check_unchanged(self.fit_config, self.training["seed"], self.schema, given)

    def resume_fit(self, data: pd.DataFrame | RankShare, *,
                   callback: Callable[[EpochReport], None] | None = None,
                   source: str = "data", epochs: int | None = None,
                   patience: int | None = None, max_seconds: float | None = None,
                   lr: float | None = None, min_gain: float | None = None,
                   **unchanged: Any) -> FlowModel:
        """Carry on training this model on ``data`` where its last run stopped.

        The epoch count, early-stopping state and optimizer state continue; the data should be
        the table the model was fitted on (the same seed gives the same validation split).
        ``epochs``, ``patience``, ``max_seconds``, ``lr`` and ``min_gain`` may change (None:
        as they were); anything else given must be as the model has it (:meth:`check_resume`).
        """
        changes = {"epochs": epochs, "patience": patience, "max_seconds": max_seconds,
                   "lr": lr, "min_gain": min_gain}
        self.check_resume(**unchanged)
        candidate = Candidate(self.preprocessor, self.density, self.training, self.fit_config,
                              resume=self.resume)
        resume_training(candidate, data, changes, callback, source)
        self.fit_config, self.resume = candidate.config, candidate.resume
        self.density.eval()
        self._latent = None
        return self

    # ------------------------------------------------------------------ scoring
    def score(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0,
              unseen: str = DEFAULT_UNSEEN) -> pd.Series:
        """Log-likelihood of each row in nats, in the table's units; aligned to ``df.index``.
        Extra columns are ignored; missing model columns raise :class:`SchemaError`. With
        ``unseen="floor"``, a category never seen in training is scored as the rarest one."""
        if self.preprocessor.conditions:
            warn_outside(self.preprocessor, df, source)
        values = score_rows(self.preprocessor, self.density, self._latent_map.double, df,
                            source, row_offset, unseen)
        return pd.Series(values, index=df.index, name="log_prob")

    def score_batches(self, chunks: Iterable[pd.DataFrame], source: str = "data",
                      unseen: str = DEFAULT_UNSEEN) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
        """Score a stream of chunks; yields each chunk with its scores."""
        return _by_chunk(chunks, lambda c, at: (c, self.score(c, source, at, unseen)))

    def scored_table(self, chunk: pd.DataFrame, scores: pd.Series, *, percentile: bool = False,
                     cutoff: float | None = None, only_score: bool = False,
                     explain: bool = False, unseen: str = DEFAULT_UNSEEN) -> pd.DataFrame:
        """What ``flowcli score`` writes: the rows (none with ``only_score``) and ``log_prob``,
        then ``percentile`` if asked, ``anomaly`` (score below ``cutoff``) if given, and the
        :meth:`explain` columns of the anomalies (empty for other rows) if asked."""
        out = chunk[[]].copy() if only_score else chunk.copy()
        out["log_prob"] = scores.to_numpy()
        if percentile:
            out["percentile"] = self.percentile(scores)
        if cutoff is not None:
            out["anomaly"] = scores.to_numpy() < cutoff
        if explain and cutoff is not None:
            out = with_columns(out, self.explain(chunk[out["anomaly"].to_numpy()], unseen=unseen))
        return out

    def percentile(self, scores: np.ndarray | pd.Series) -> np.ndarray:
        """Share of held-out training rows (in %) that scored lower than each score."""
        return percentile_of(scores, self.training.get("score_quantiles"))

    def threshold(self, quantile: float) -> float:
        """The held-out score below which a share ``quantile`` of held-out rows fall."""
        OPTIONS["threshold"].check(quantile)
        return level_of(quantile, self.training["score_quantiles"])

    # ------------------------------------------------------------------ explaining
    def explain(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0,
                unseen: str = DEFAULT_UNSEEN) -> pd.DataFrame:
        """Per modelled column, ``<column>_cond_log_prob`` (``log p(cell | rest of row)``)
        and ``<column>_percentile``, then ``most_unusual`` (:func:`~.explain.explain_table`)."""
        return explain_table(self.preprocessor, self.density,
                             self.training.get("cell_quantiles"), df, source, row_offset, unseen)

    def explain_batches(self, chunks: Iterable[pd.DataFrame], source: str = "data",
                        unseen: str = DEFAULT_UNSEEN) -> Iterator[pd.DataFrame]:
        """Explain a stream of chunks; yields each with its explain columns after its own."""
        return _by_chunk(chunks, lambda c, at: with_columns(c, self.explain(c, source, at,
                                                                            unseen)))

    # ------------------------------------------------------------------ filling gaps
    def impute(self, df: pd.DataFrame, draws: int = 1, method: str = "sample",
               seed: int | None = None, sweeps: int = SWEEPS) -> pd.DataFrame:
        """``df``, gaps filled as :class:`~flowcli.impute.Imputation` says; the rest kept."""
        plan = Imputation(draws, method, sweeps)
        return pd.concat(list(self.impute_batches([df], plan, seed)))

    def impute_batches(self, chunks: Iterable[pd.DataFrame], plan: Imputation,
                       seed: int | None = None, source: str = "data",
                       unseen: str = DEFAULT_UNSEEN) -> Iterator[pd.DataFrame]:
        """Fill the gaps of a stream of chunks as ``plan`` says; yields each filled."""
        rng = np.random.default_rng(seed)
        return _by_chunk(chunks, lambda c, at: impute_table(
            self.preprocessor, self.density, c, plan, rng, source, at, unseen))

    # ------------------------------------------------------------------ sampling
    def sample_batches(self, n: int, seed: int | None = None, batch_size: int = CHUNK_ROWS
                       ) -> Iterator[pd.DataFrame]:
        """Yield ``n`` new rows in chunks of at most ``batch_size``, with the training schema."""
        if n < 0:
            raise UsageError(f"cannot draw {n} rows; give a number >= 0")
        generator = _generator(self.device, seed)
        return draw_rows(self.preprocessor, self.density, n, generator, batch_size)

    def sample_given_batches(self, given: Iterable[pd.DataFrame], n: int = 1,
                             seed: int | None = None, source: str = "given",
                             unseen: str = DEFAULT_UNSEEN, batch_size: int = CHUNK_ROWS
                             ) -> Iterator[pd.DataFrame]:
        """For a conditional model: ``n`` new rows for each row of the ``given`` tables, in
        order, each with its condition, in chunks of at most ``batch_size``
        (:func:`~flowcli.sampling.draw_given`)."""
        return draw_given(self.preprocessor, self.density, given, n, _generator(self.device, seed),
                          source, unseen, batch_size)

    def sample(self, n: int, seed: int | None = None,
               given: pd.DataFrame | dict[str, Any] | None = None) -> pd.DataFrame:
        """``n`` new rows with the training columns, dtypes and labels; for a conditional
        model, ``n`` for each row of ``given`` (a table, or a dict of one value per
        condition column)."""
        if given is None:
            chunks = self.sample_batches(n, seed)
        else:
            table = self.condition_table(given) if isinstance(given, dict) else given
            chunks = self.sample_given_batches([table], n, seed)
        return pd.concat(list(chunks), ignore_index=True)

    def condition_table(self, values: dict[str, Any], source: str = "given") -> pd.DataFrame:
        """One condition row from ``values`` (column -> value; text read as the column's
        type); ``source`` names it in errors."""
        return condition_row(self.schema, values, source)

    # ------------------------------------------------------------------ latent space
    @property
    def _latent_map(self) -> LatentMap:
        if self._latent is None:
            self._latent = LatentMap(self.preprocessor, self.density)
        return self._latent

    def latent_columns(self) -> list[str]:
        """A latent table's columns: ``z_0 .. z_{D-1}``, then the discrete columns."""
        return self._latent_map.columns()

    def to_latent(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0
                  ) -> pd.DataFrame:
        """Latent coordinates ``z_0 ..`` of each row's continuous part, in float64; then
        categorical columns unchanged (the latent code is conditional on them) and a
        ``<column>_missing`` flag for each numeric column with modelled gaps."""
        return self._latent_map.to_latent(df, source, row_offset)

    def from_latent(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0
                    ) -> pd.DataFrame:
        """Rows of the table from a latent table (see :meth:`to_latent`), in float64."""
        return self._latent_map.from_latent(df, source, row_offset)

    def invert_batches(self, chunks: Iterable[pd.DataFrame], to_data: bool = False,
                       source: str = "data") -> Iterator[pd.DataFrame]:
        """Map chunks to latent tables (or back, ``to_data``); other columns pass through."""
        used = set(self.latent_columns() if to_data else self.columns)
        convert = self.from_latent if to_data else self.to_latent

        def mapped(chunk: pd.DataFrame, offset: int) -> pd.DataFrame:
            out = convert(chunk, source, offset)
            rest = [c for c in chunk.columns if c not in used and c not in out.columns]
            return out.join(chunk[rest]) if rest else out

        return _by_chunk(chunks, mapped)

    # ------------------------------------------------------------------ files
    def save(self, path: str) -> None:
        """Write the model file atomically."""
        modelfile.write(_record(self), path)

    @classmethod
    def load(cls, path: str, device: str | torch.device = "cpu") -> FlowModel:
        """Read a model file (safely: it can hold no code) onto ``device``."""
        return cls(*_parts(modelfile.read(path), path)).to(device)

    # ------------------------------------------------------------------ description
    def info(self) -> dict[str, Any]:
        """Columns, architecture, training and versions as plain data."""
        return describe(self.preprocessor, self.density, self.training, self.fit_config,
                        self.created)


def load_content(content: bytes, name: str, device: str | torch.device = "cpu") -> FlowModel:
    """A model from the bytes of its file (as safe as :meth:`FlowModel.load`); ``name`` is
    how messages call it."""
    return FlowModel(*_parts(modelfile.read(name, content), name)).to(device)


def _generator(device: torch.device, seed: int | None) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(secrets.randbelow(2**63) if seed is None else int(seed))
    return generator


def _by_chunk(chunks: Iterable[pd.DataFrame], apply: Callable[[pd.DataFrame, int], Any]
              ) -> Iterator[Any]:
    """``apply(chunk, row_offset)`` to each chunk of a stream, ``row_offset`` counting the
    rows before it (for error messages that name rows)."""
    offset = 0
    for chunk in chunks:
        yield apply(chunk, offset)
        offset += len(chunk)


def _parts(record: modelfile.ModelRecord, path: str) -> tuple[Any, ...]:
    """The arguments of :class:`FlowModel` from a model file's record."""
    try:
        pre = Preprocessor.from_dict(record.preprocessor)
        density = rebuild_mixed(record.density_config)
        density.load_state_dict(record.state_dict)
        fit_config = FitConfig(**record.fit_config)
        resume = ResumeState.from_dict(record.resume)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: damaged model file ({type(exc).__name__})") from None
    return pre, density, dict(record.training), fit_config, resume, record.created


def _record(model: FlowModel) -> modelfile.ModelRecord:
    """What the model file holds of ``model``."""
    return modelfile.ModelRecord(
        preprocessor=model.preprocessor.to_dict(),
        density_config=model.density.config,
        state_dict={k: v.detach().cpu() for k, v in model.density.state_dict().items()},
        fit_config=model.fit_config.as_dict(),
        training=model.training,
        resume=model.resume.to_dict() if model.resume is not None else {},
        created=model.created,
        versions={"flowcli_version": __version__, "torch_version": torch.__version__})

"""The rows a fit learns from: columns chosen, gaps handled, the split, and the encoded
tensors, shared by a new fit and a resumed one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, SchemaError
from ..tabular import Preprocessor

__all__ = ["Encoded", "OwnRows", "choose_columns", "drop_gaps", "split"]


def choose_columns(data: pd.DataFrame, columns: list[str] | None,
                   exclude: list[str] | None, source: str) -> list[str] | None:
    """The columns to model: ``columns`` (default all) without ``exclude``; None means all."""
    if not exclude:
        return columns
    names = list(columns) if columns is not None else [str(c) for c in data.columns]
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise SchemaError(f"names no column {', '.join(map(repr, unknown))}", source=source,
                          field="exclude", column=unknown[0])
    return [n for n in names if n not in exclude]


def drop_gaps(data: pd.DataFrame, columns: list[str] | None, keep_index: bool = False
              ) -> tuple[pd.DataFrame, int]:
    """``data`` without the rows that have a gap in a modelled column, and how many went;
    its index counts the rows kept from 0 unless ``keep_index``."""
    used = [c for c in (columns or data.columns) if c in data.columns]
    table = data.dropna(subset=used)
    return (table if keep_index else table.reset_index(drop=True)), len(data) - len(table)


def split(df: pd.DataFrame, val_fraction: float, seed: int, source: str
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation rows: a seeded permutation, ``val_fraction`` held out."""
    n = len(df)
    n_val = max(int(round(n * val_fraction)), 1) if val_fraction > 0 else 0
    if n - n_val < 2:
        raise DataError(f"{n} rows are too few to fit a model (need at least 3)", source=source)
    order = np.random.default_rng(seed).permutation(n)
    return df.iloc[order[n_val:]], df.iloc[order[:n_val]]


@dataclass(frozen=True)
class OwnRows:
    """Under torchrun with the table read in shares: this rank's own training and validation
    rows, encoded, and the encoding's mean log-determinants over all ranks' rows of each."""

    x_train: np.ndarray
    x_val: np.ndarray
    shift_train: float
    shift_val: float


@dataclass
class Encoded:
    """A split's rows encoded once: training rows at their integer cells' lower corners
    (training adds the noise), held-out rows as ``score`` encodes them.

    Under torchrun with the table read in shares, ``own`` holds this rank's own rows, on
    which the training loop steps, and the shifts of all ranks' rows; the other fields then
    encode the sample every rank holds (:mod:`flowcli.fitting.shares`)."""

    x_train: np.ndarray
    ld_train: np.ndarray
    x_val: np.ndarray
    ld_val: np.ndarray
    x_held: np.ndarray  # validation rows, or without them the training rows
    ld_held: np.ndarray
    has_val: bool
    own: OwnRows | None = None

    @classmethod
    def of(cls, pre: Preprocessor, train_df: pd.DataFrame, val_df: pd.DataFrame,
           source: str) -> Encoded:
        x_train, ld_train = pre.encode(train_df, source, position=0.0)
        x_val, ld_val = pre.encode(val_df, source)
        x_held, ld_held = (x_val, ld_val) if len(val_df) else pre.encode(train_df, source)
        return cls(x_train, ld_train, x_val, ld_val, x_held, ld_held, len(val_df) > 0)

    @property
    def shift_train(self) -> float:
        """The encoding's mean log-determinant on the training rows: what turns the flow's
        scores into the table's units."""
        if self.own is not None:
            return self.own.shift_train
        return float(self.ld_train.mean()) if len(self.ld_train) else 0.0

    @property
    def shift_val(self) -> float:
        if self.own is not None:
            return self.own.shift_val
        return float(self.ld_val.mean()) if len(self.ld_val) else self.shift_train

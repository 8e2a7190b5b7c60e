"""Drawing new rows from a fitted density: of whole rows, or for given condition rows.

Rows are drawn in passes sized for the device (:func:`~flowcli.engine.passes.
sample_rows_per_pass`) and come out in chunks of at most ``batch_size`` rows, so that any
number of rows streams in bounded memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from .config import CHUNK_ROWS, DEFAULT_UNSEEN
from .engine.mixed import MixedDensity
from .engine.passes import sample_rows_per_pass
from .errors import ConditionWarning, DataError, SchemaError, UsageError
from .rows import finite_draws
from .tabular import ColumnSpec, Preprocessor, Schema

__all__ = ["condition_row", "draw_given", "draw_rows", "warn_outside"]


def _passes(density: MixedDensity, k: int, generator: torch.Generator,
            context: torch.Tensor | None = None) -> torch.Tensor:
    """``k`` encoded rows, one per row of ``context`` when the density is conditional."""
    device = next(density.parameters()).device
    step = sample_rows_per_pass(density, device)
    parts = [density.sample(min(step, k - i), generator,
                            context[i : i + step] if context is not None else None)
             for i in range(0, k, step)]
    return torch.cat(parts) if parts else density.sample(0, generator, context)


@torch.inference_mode()
def draw_rows(pre: Preprocessor, density: MixedDensity, n: int, generator: torch.Generator,
              batch_size: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """``n`` new rows of a model of whole rows, in chunks of at most ``batch_size``."""
    if pre.conditions:
        raise UsageError(f"is needed: this model is conditional on "
                         f"{', '.join(pre.schema.given)}", field="given")
    done = 0
    while True:
        size = min(batch_size, n - done)
        yield finite_draws(lambda rows: _passes(density, len(rows), generator),
                           lambda encoded, _: pre.decode(encoded), np.arange(size))
        done += size
        if done >= n:
            return


def require_conditions(pre: Preprocessor) -> None:
    """Refuse a condition to a model that takes none."""
    if not pre.conditions:
        raise UsageError("does not apply: this model is not conditional", field="given")


@torch.inference_mode()
def draw_given(pre: Preprocessor, density: MixedDensity, given: Iterable[pd.DataFrame],
               per_row: int, generator: torch.Generator, source: str = "given",
               unseen: str = DEFAULT_UNSEEN, batch_size: int = CHUNK_ROWS
               ) -> Iterator[pd.DataFrame]:
    """``per_row`` new rows for each row of the ``given`` tables (condition columns; others
    are ignored), drawn from ``p(others | condition)``, in order, each with its condition.
    A condition value outside the training range draws with a
    :class:`~flowcli.errors.ConditionWarning`; an unseen label is an error unless
    ``unseen="floor"``."""
    require_conditions(pre)
    if per_row < 0:
        raise UsageError(f"cannot draw {per_row} rows per condition; give a number >= 0")
    device = next(density.parameters()).device
    offset = 0
    for chunk in given:
        warn_outside(pre, chunk, source)
        context = torch.as_tensor(pre.context(chunk, source, offset, unseen),
                                  dtype=torch.float32, device=device)
        which = np.repeat(np.arange(len(chunk)), per_row)
        conditions = chunk[pre.schema.given].iloc[which].reset_index(drop=True)
        for start in range(0, len(which), batch_size):
            rows = np.arange(start, min(start + batch_size, len(which)))
            yield _draw_for(pre, density, generator, context[which], conditions, rows)
        offset += len(chunk)


def _draw_for(pre: Preprocessor, density: MixedDensity, generator: torch.Generator,
              context: torch.Tensor, conditions: pd.DataFrame, rows: np.ndarray
              ) -> pd.DataFrame:
    """The decoded rows ``rows`` of a conditional draw, row ``i`` drawn given
    ``context[i]`` and returned with ``conditions.iloc[i]``."""
    return finite_draws(lambda r: _passes(density, len(r), generator, context[r]),
                        lambda encoded, r: pre.decode(encoded, conditions.iloc[r]), rows)


def warn_outside(pre: Preprocessor, df: pd.DataFrame, source: str) -> None:
    """A :class:`~flowcli.errors.ConditionWarning` for each condition column of ``df`` with a
    value outside its training range: the model extrapolates there."""
    for phrase in pre.outside_range(df):
        warnings.warn(f"{source}: condition {phrase}; the model extrapolates there",
                      ConditionWarning, stacklevel=3)


def condition_row(schema: Schema, values: dict[str, Any], source: str = "given"
                  ) -> pd.DataFrame:
    """One condition row from ``values``, one per condition column of ``schema``; text is
    read as the column's training type (a number, or the label that prints as it)."""
    specs = {spec.name: spec for spec in schema.columns if spec.given}
    for name in values:
        if name not in specs:
            raise SchemaError(f"column '{name}' is not a condition of this model (its "
                              f"conditions: {', '.join(specs) or 'none'})", source=source,
                              column=name)
    lacking = [name for name in specs if name not in values]
    if lacking:
        raise SchemaError(f"missing condition column '{lacking[0]}' (this model is "
                          f"conditional on {', '.join(specs)})", source=source,
                          column=lacking[0])
    return pd.DataFrame({name: [_typed(spec, values[name], source)]
                         for name, spec in specs.items()})


def _typed(spec: ColumnSpec, value: Any, source: str) -> Any:
    """``value`` as the column's training values are typed, when it is text."""
    if not isinstance(value, str) or spec.kind == "datetime":  # dates are read as text
        return value
    if spec.categories is not None:
        for label in spec.categories:
            if label is not None and str(label).lower() == value.lower():
                return label
        return value  # unseen: scoring and sampling say so
    try:
        return float(value)
    except ValueError:
        raise DataError(f"column '{spec.name}' is not numeric: {value!r}", source=source,
                        column=spec.name, value=value) from None

"""Tables to arrays and back, with the log-determinant of the encoding.

An encoded row is ``[continuous dims, discrete dims]``: the continuous dims of every numeric
column in schema order, then the discrete dims (category indices, missing indicators) in schema
order. A conditional model's rows end with the condition's dims (its context): each condition
column's continuous dims (gaps as 0), then the one-hot codes of its discrete dims.

The encoders work on parts: a column is its own one part, a datetime column several (its
week, weekday, hour and so on, see :mod:`.dateparts`), split off on the way in and joined
on the way out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import DEFAULT_UNSEEN
from ..errors import DataError, SchemaError
from . import dateparts
from .encoders import Encoder, make_encoder
from .schema import ColumnSpec, Schema, show

__all__ = ["Preprocessor"]


class Preprocessor:
    """A schema and one fitted encoder per part of a column.

    ``score = density.log_prob(encode(df)) + logdet`` is then a log-likelihood in the table's
    own units (see the README for what each column kind contributes).
    """

    def __init__(self, schema: Schema, encoders: list[Encoder]) -> None:
        self.schema = schema
        self.encoders = [e for e in encoders if not e.spec.given]  # the modelled columns
        self.conditions = [e for e in encoders if e.spec.given]
        self.all_encoders = encoders  # in schema order
        parts = {spec.name: part_specs([spec]) for spec in schema.columns}
        self.column_of = {part.name: spec for spec in schema.columns  # part -> its column
                          for part in parts[spec.name]}
        # the part that stands for its column where a column is handled once (a datetime's
        # several parts are merged back once)
        self.first_parts = {of[0].name for of in parts.values()}

    @classmethod
    def fit(cls, schema: Schema, df: pd.DataFrame, source: str = "data") -> Preprocessor:
        """Fit encoders on the training table ``df``."""
        parts = split_parts(schema.columns, df, source)
        return cls(schema, [make_encoder(spec).fit(parts[spec.name])
                            for spec in part_specs(schema.columns)])

    def encoders_of(self, name: str) -> list[Encoder]:
        """The encoders of column ``name``'s parts."""
        return [e for e in self.all_encoders if self.column_of[e.spec.name].name == name]

    def parts(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0
              ) -> dict[str, pd.Series]:
        """The part columns of the schema columns that ``df`` holds, by part name."""
        present = [c for c in self.schema.columns if c.name in df.columns]
        return split_parts(present, df, source, row_offset)

    @property
    def continuous(self) -> int:
        """Number of continuous dims."""
        return sum(e.cont for e in self.encoders)

    @property
    def cardinalities(self) -> list[int]:
        """Category counts of the discrete dims, in order."""
        return [k for e in self.encoders for k in e.cards]

    @property
    def layout(self) -> list[tuple[Encoder, int | None, int | None]]:
        """Each modelled column's encoder with the position of its continuous dim and of its
        first discrete dim in an encoded row (None where it has none)."""
        cont_at, disc_at, out = 0, self.continuous, []
        for e in self.encoders:
            out.append((e, cont_at if e.cont else None, disc_at if e.cards else None))
            cont_at, disc_at = cont_at + e.cont, disc_at + len(e.cards)
        return out

    @property
    def context_width(self) -> int:
        """Number of condition dims (0 for a model of whole rows)."""
        return sum(e.cont + sum(e.cards) for e in self.conditions)

    @property
    def dim(self) -> int:
        """Width of the encoded array."""
        return self.continuous + len(self.cardinalities) + self.context_width

    @property
    def widths(self) -> np.ndarray:
        """Per encoded dim, the dequantization cell width (0 for continuous and discrete,
        and for the condition, which is an input, not modelled)."""
        cont = [e.width for e in self.encoders if e.cont]
        return np.array(cont + [0.0] * (len(self.cardinalities) + self.context_width))

    def encode(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0,
               position: float = 0.5, unseen: str = DEFAULT_UNSEEN
               ) -> tuple[np.ndarray, np.ndarray]:
        """Encoded rows ``(B, dim)`` and the encoding's log-determinant per row ``(B,)``.

        ``position`` in [0, 1) places integer values in their dequantization cell (0.5: the
        centre, used for scoring; 0: the corner, to which training adds uniform noise).
        ``unseen="floor"`` scores a label never seen in training as the rarest training label.
        """
        self.schema.check_columns(df, source)
        parts = self.parts(df, source, row_offset)
        cont, disc = [], []
        logdet = np.zeros(len(df))
        for e in self.encoders:
            c, d, ld = e.encode(parts[e.spec.name], source, row_offset, position, unseen)
            cont.append(c)
            disc.append(d)
            logdet = logdet + ld
        context = [self.context(df, source, row_offset, unseen)] if self.conditions else []
        return np.concatenate(cont + disc + context, axis=1).astype(np.float64), logdet

    def context(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0,
                unseen: str = DEFAULT_UNSEEN) -> np.ndarray:
        """The condition's dims of each row of ``df``, which needs the condition columns
        only; ``(B, context_width)``. Integer conditions sit at their cells' centres."""
        missing = [name for name in self.schema.given if name not in df.columns]
        if missing:
            raise SchemaError(f"missing condition column {show(missing)}", source=source,
                              column=missing[0])
        values = self.parts(df[self.schema.given], source, row_offset)
        parts = [np.zeros((len(df), 0))]
        for e in self.conditions:
            c, d, _ = e.encode(values[e.spec.name], source, row_offset, 0.5, unseen)
            parts.append(np.nan_to_num(c, nan=0.0))
            parts.extend(np.eye(k)[d[:, j].astype(np.int64)] for j, k in enumerate(e.cards))
        return np.concatenate(parts, axis=1)

    def outside_range(self, df: pd.DataFrame) -> list[str]:
        """For each numeric condition with a value of ``df`` outside its training range, a
        phrase naming the column and the range."""
        phrases = []
        for spec in self.schema.columns:
            if not spec.given or spec.min is None or spec.max is None \
                    or spec.name not in df.columns:
                continue
            if spec.kind == "datetime":  # instants as seconds since 1970, as min and max
                try:
                    values = pd.Series(dateparts.seconds(df[spec.name], spec, "given"))
                except DataError:
                    continue  # scoring or sampling names the value that cannot be read
            else:
                values = pd.to_numeric(df[spec.name], errors="coerce")
            if ((values < spec.min) | (values > spec.max)).any():
                shown = ", ".join(spec.range_ends())
                phrases.append(f"'{spec.name}' outside its training range [{shown}]")
        return phrases

    def decode(self, encoded: np.ndarray, given: pd.DataFrame | None = None) -> pd.DataFrame:
        """Encoded rows back to a table with the training columns, dtypes and labels; a
        conditional model's condition columns come from ``given``, one row per row."""
        if self.conditions and (given is None or len(given) != len(encoded)):
            raise ValueError("a conditional model decodes rows with their condition")
        n_cont = self.continuous
        cont_at, disc_at = 0, n_cont
        data = {}
        for e in self.encoders:
            c = encoded[:, cont_at : cont_at + e.cont]
            d = encoded[:, disc_at : disc_at + len(e.cards)]
            cont_at += e.cont
            disc_at += len(e.cards)
            data[e.spec.name] = e.decode(c, d).reset_index(drop=True)
        for spec in self.schema.columns:
            if spec.given:
                assert given is not None
                data[spec.name] = _as_trained(given[spec.name].reset_index(drop=True), spec)
            elif spec.kind == "datetime":
                data[spec.name] = dateparts.join(spec, data)
        return pd.DataFrame({name: data[name] for name in self.schema.names})

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(),
                "encoders": [e.to_dict() for e in self.all_encoders]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        schema = Schema.from_dict(data["schema"])
        states = data["encoders"]
        encoders = [make_encoder(s, st)
                    for s, st in zip(part_specs(schema.columns), states, strict=True)]
        return cls(schema, encoders)


def part_specs(columns: list[ColumnSpec]) -> list[ColumnSpec]:
    """The parts the encoders see, in schema order."""
    return [p for c in columns
            for p in (dateparts.part_specs(c) if c.kind == "datetime" else [c])]


def split_parts(columns: list[ColumnSpec], df: pd.DataFrame, source: str,
                row_offset: int = 0) -> dict[str, pd.Series]:
    """The part columns of ``columns`` in ``df``: a datetime column split, others as they
    are."""
    out: dict[str, pd.Series] = {}
    for spec in columns:
        if spec.kind == "datetime":
            out.update(dateparts.split(spec, df[spec.name], source, row_offset))
        else:
            out[spec.name] = df[spec.name]
    return out


def _as_trained(values: pd.Series, spec: ColumnSpec) -> pd.Series:
    """A condition column given back in its training dtype where its values allow it (a
    whole-number column read as floats from a command line), else as given."""
    if spec.kind == "datetime":
        return dateparts.as_trained(values, spec, "given")
    try:
        return values.astype(spec.dtype)
    except (TypeError, ValueError):
        return values

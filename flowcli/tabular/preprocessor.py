"""Tables to arrays and back, with the log-determinant of the encoding.

An encoded row is ``[continuous dims, discrete dims]``: the continuous dims of every numeric
column in schema order, then the discrete dims (category indices, missing indicators) in schema
order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import DEFAULT_UNSEEN
from .encoders import Encoder, make_encoder
from .schema import Schema

__all__ = ["Preprocessor"]


class Preprocessor:
    """A schema and one fitted encoder per column.

    ``score = density.log_prob(encode(df)) + logdet`` is then a log-likelihood in the table's
    own units (see the README for what each column kind contributes).
    """

    def __init__(self, schema: Schema, encoders: list[Encoder]) -> None:
        self.schema = schema
        self.encoders = encoders

    @classmethod
    def fit(cls, schema: Schema, df: pd.DataFrame) -> Preprocessor:
        """Fit encoders on the training table ``df``."""
        return cls(schema, [make_encoder(spec).fit(df[spec.name]) for spec in schema.columns])

    @property
    def continuous(self) -> int:
        """Number of continuous dims."""
        return sum(e.cont for e in self.encoders)

    @property
    def cardinalities(self) -> list[int]:
        """Category counts of the discrete dims, in order."""
        return [k for e in self.encoders for k in e.cards]

    @property
    def dim(self) -> int:
        """Width of the encoded array."""
        return self.continuous + len(self.cardinalities)

    @property
    def widths(self) -> np.ndarray:
        """Per encoded dim, the dequantization cell width (0 for continuous and discrete)."""
        cont = [e.width for e in self.encoders if e.cont]
        return np.array(cont + [0.0] * len(self.cardinalities))

    def encode(self, df: pd.DataFrame, source: str = "data", row_offset: int = 0,
               position: float = 0.5, unseen: str = DEFAULT_UNSEEN
               ) -> tuple[np.ndarray, np.ndarray]:
        """Encoded rows ``(B, dim)`` and the encoding's log-determinant per row ``(B,)``.

        ``position`` in [0, 1) places integer values in their dequantization cell (0.5: the
        centre, used for scoring; 0: the corner, to which training adds uniform noise).
        ``unseen="floor"`` scores a label never seen in training as the rarest training label.
        """
        self.schema.check_columns(df, source)
        cont, disc = [], []
        logdet = np.zeros(len(df))
        for e in self.encoders:
            c, d, ld = e.encode(df[e.spec.name], source, row_offset, position, unseen)
            cont.append(c)
            disc.append(d)
            logdet = logdet + ld
        return np.concatenate(cont + disc, axis=1).astype(np.float64), logdet

    def decode(self, encoded: np.ndarray) -> pd.DataFrame:
        """Encoded rows back to a table with the training columns, dtypes and labels."""
        n_cont = self.continuous
        cont_at, disc_at = 0, n_cont
        data = {}
        for e in self.encoders:
            c = encoded[:, cont_at : cont_at + e.cont]
            d = encoded[:, disc_at : disc_at + len(e.cards)]
            cont_at += e.cont
            disc_at += len(e.cards)
            data[e.spec.name] = e.decode(c, d).reset_index(drop=True)
        return pd.DataFrame(data)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "encoders": [e.to_dict() for e in self.encoders]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        schema = Schema.from_dict(data["schema"])
        states = data["encoders"]
        encoders = [make_encoder(s, st) for s, st in zip(schema.columns, states, strict=True)]
        return cls(schema, encoders)

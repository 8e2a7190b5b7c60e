"""Tables to float arrays and back, with the log-determinant of the encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .encoders import Encoder, make_encoder
from .schema import Schema

__all__ = ["Preprocessor"]


class Preprocessor:
    """A schema and one fitted encoder per column.

    ``score = flow.log_prob(encode(df)) + logdet`` is then a log-density in the table's own
    units (a log-probability estimate for discrete columns).
    """

    def __init__(self, schema: Schema, encoders: list[Encoder]) -> None:
        self.schema = schema
        self.encoders = encoders

    @classmethod
    def fit(cls, schema: Schema, values: np.ndarray) -> Preprocessor:
        """Fit encoders on ``values``, the validated ``(rows, columns)`` training array."""
        encoders = [make_encoder(spec).fit(values[:, j]) for j, spec in enumerate(schema.columns)]
        return cls(schema, encoders)

    @property
    def dim(self) -> int:
        """Width of the encoded array."""
        return len(self.encoders)

    @property
    def widths(self) -> np.ndarray:
        """Per encoded dimension, the dequantization cell width (0 for continuous)."""
        return np.array([e.width for e in self.encoders])

    @property
    def logdet(self) -> float:
        """``log |det d encoded / d raw|`` per row (the same for every row)."""
        return float(sum(e.logdet for e in self.encoders))

    def encode(self, values: np.ndarray, position: float = 0.5) -> np.ndarray:
        """Encode a validated array; ``position`` 0 puts discrete values at their cell's corner."""
        out = np.empty_like(values, dtype=np.float64)
        for j, enc in enumerate(self.encoders):
            out[:, j] = enc.encode(values[:, j], position)
        return out

    def decode(self, encoded: np.ndarray) -> pd.DataFrame:
        """Encoded rows back to a table with the training columns and dtypes."""
        data = {}
        for j, enc in enumerate(self.encoders):
            raw = enc.decode(encoded[:, j])
            data[enc.spec.name] = pd.Series(raw).astype(enc.spec.dtype)
        return pd.DataFrame(data)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "encoders": [e.to_dict() for e in self.encoders]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        schema = Schema.from_dict(data["schema"])
        states = data["encoders"]
        encoders = [make_encoder(s, st) for s, st in zip(schema.columns, states, strict=True)]
        return cls(schema, encoders)

"""Column encoders: raw values to the flow's standardized space and back.

Every encoder maps one column to one encoded dimension, reports the log-derivative of that map
(so densities stay in the table's own units), and decodes exactly. Discrete kinds are
dequantized: the encoded value of integer ``k`` covers the cell ``[k, k + 1)`` in raw units,
training spreads rows uniformly over their cell and scoring evaluates the cell's centre, so the
density there estimates the probability of ``k`` (the cell is one unit wide).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .schema import ColumnSpec

__all__ = ["Encoder", "make_encoder"]


class Encoder:
    """Affine standardization ``(x + offset - mean) / std`` of one column.

    Attributes:
        mean, std: of the (dequantized) training values.
        width: the dequantization cell's width in encoded units; 0 for continuous columns.
    """

    def __init__(self, spec: ColumnSpec, mean: float = 0.0, std: float = 1.0) -> None:
        self.spec = spec
        self.mean = float(mean)
        self.std = float(std)

    @property
    def discrete(self) -> bool:
        return self.spec.kind != "continuous"

    @property
    def width(self) -> float:
        return 1.0 / self.std if self.discrete else 0.0

    def fit(self, values: np.ndarray) -> Encoder:
        if self.discrete:
            # moments of k + u with u ~ U(0, 1)
            self.mean = float(values.mean()) + 0.5
            self.std = math.sqrt(float(values.var()) + 1.0 / 12.0)
        else:
            self.mean = float(values.mean())
            self.std = float(values.std())
        return self

    def encode(self, values: np.ndarray, position: float = 0.5) -> np.ndarray:
        """Encode raw values; ``position`` in [0, 1) places discrete values in their cell."""
        shift = position if self.discrete else 0.0
        return (values + shift - self.mean) / self.std

    @property
    def logdet(self) -> float:
        """``log |d encoded / d raw|``, the same for every row."""
        return -math.log(self.std)

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        raw = encoded * self.std + self.mean
        if self.discrete:
            raw = np.clip(np.floor(raw), self.spec.min, self.spec.max)
        return raw

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}


def make_encoder(spec: ColumnSpec, state: dict[str, Any] | None = None) -> Encoder:
    """The encoder for a column spec, restored from ``state`` when given."""
    return Encoder(spec, **(state or {}))

"""Table <-> array: schema inference, encoders per column kind, and their exact inverses."""

from .encoders import CategoricalEncoder, Encoder, NumericEncoder, make_encoder
from .preprocessor import Preprocessor
from .schema import KINDS, MISSING, ColumnSpec, Notice, Overrides, Schema

__all__ = ["KINDS", "MISSING", "CategoricalEncoder", "ColumnSpec", "Encoder", "Notice",
           "NumericEncoder", "Overrides", "Preprocessor", "Schema", "make_encoder"]

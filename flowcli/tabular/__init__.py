"""Table <-> array: schema inference, encoders per column kind, and their exact inverses."""

from .encoders import CategoricalEncoder, Encoder, NumericEncoder, make_encoder
from .preprocessor import Preprocessor
from .schema import KINDS, MISSING, ColumnSpec, Overrides, Schema

__all__ = ["KINDS", "MISSING", "CategoricalEncoder", "ColumnSpec", "Encoder", "NumericEncoder",
           "Overrides", "Preprocessor", "Schema", "make_encoder"]

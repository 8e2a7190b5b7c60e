"""Table <-> array: schema inference, encoders per column kind, and their exact inverses."""

from .encoders import Encoder, make_encoder
from .preprocessor import Preprocessor
from .schema import KINDS, ColumnSpec, Schema

__all__ = ["KINDS", "ColumnSpec", "Encoder", "Preprocessor", "Schema", "make_encoder"]

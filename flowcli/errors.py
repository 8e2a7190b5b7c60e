"""The exception family for expected failures.

Every error a user can cause (a bad file, a bad column, a damaged model file, an unwritable output)
is a :class:`FlowcliError`. The command line turns one into a single ``error: ...`` line on stderr
and exits with the class's ``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "AnomalyError",
    "DataError",
    "FlowcliError",
    "ModelFileError",
    "OutputError",
    "SchemaError",
    "UsageError",
]


class FlowcliError(Exception):
    """Base class of every expected failure; exit code 1."""

    exit_code: int = 1


class DataError(FlowcliError, ValueError):
    """An input table that cannot be read or used: names the file, column and row."""


class SchemaError(DataError):
    """A table whose columns do not match what the model expects."""


class ModelFileError(FlowcliError, ValueError):
    """A model file that is missing, damaged, unsafe or from an unknown format version."""


class OutputError(FlowcliError, OSError):
    """An output that cannot be written."""


class UsageError(FlowcliError, ValueError):
    """Options that contradict each other or are out of range; exit code 2."""

    exit_code = 2


class AnomalyError(FlowcliError):
    """Raised by ``score --fail-on-anomaly`` when a row is flagged; exit code 3."""

    exit_code = 3

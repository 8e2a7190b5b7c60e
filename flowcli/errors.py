"""The exception family for expected failures, carrying what went wrong as fields.

Every error a user can cause (a bad file, a bad column, a damaged model file, an unwritable
output) is a :class:`FlowcliError`. It keeps its parts apart (the file, column, row and value,
the option's field name, and advice naming an option to change), so that the library can say
``missing='model'`` to a Python caller while the command line says ``--missing model``:
``str(error)`` is the library's wording and :meth:`FlowcliError.render` takes another spelling of
options. The command line prints one ``error: ...`` line and exits with ``exit_code``; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "Advice",
    "AnomalyError",
    "ConditionWarning", "FlowcliWarning",
    "DataError",
    "FlowcliError",
    "ModelFileError",
    "OutputError",
    "RankLostError",
    "SchemaError",
    "Spelling",
    "UsageError",
    "python_spelling",
    "require_extra",
]

# How an option is written: ``spell(field, value)``, value None for the option alone.
Spelling = Callable[[str, "str | None"], str]

# Options whose values are lists of column names, as Python callers pass them.
_COLUMN_LISTS = frozenset({"columns", "exclude", "categorical", "integer", "positive",
                           "datetime"})


# Options whose keyword argument has another name.
_KEYWORDS = {"format": "fmt", "output_format": "fmt"}


def python_spelling(field: str, value: str | None) -> str:
    """An option as a keyword argument: ``missing='model'``, ``exclude=['id']``."""
    field = _KEYWORDS.get(field, field)
    if value is None:
        return field
    return f"{field}=[{value!r}]" if field in _COLUMN_LISTS else f"{field}={value!r}"


class Advice:
    """What a user can do about a problem: ``verb`` an option ``field`` set to ``value``
    (``value`` None names the option alone), or set to one of ``others``, for ``purpose``;
    ``also`` names more options that would do as well."""

    __slots__ = ("also", "field", "others", "purpose", "value", "verb")

    def __init__(self, field: str, value: str | None = None, purpose: str = "",
                 verb: str = "use", others: Sequence[str] = (),
                 also: Sequence[str] = ()) -> None:
        self.field, self.value, self.purpose = field, value, purpose
        self.verb, self.others, self.also = verb, tuple(others), tuple(also)

    def _key(self) -> tuple[Any, ...]:
        return (self.field, self.value, self.purpose, self.verb, self.others, self.also)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Advice) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Advice({self.field!r}, {self.value!r})"

    def render(self, spell: Spelling) -> str:
        names = [spell(self.field, self.value)] + [spell(f, None) for f in self.also]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        text = f"{self.verb} {listed}"
        if self.others:
            text += f" (or {', '.join(self.others)})"
        return f"{text} {self.purpose}" if self.purpose else text


class FlowcliError(Exception):
    """Base class of every expected failure; exit code 1.

    Arguments:
        problem: what is wrong, without naming any option.
        source: the file (or ``stdin``) the problem was found in.
        column, row, value: where it was found (rows count from 1) and what was there.
        field: the option the problem is about; the message starts with it.
        advice: what to change (:class:`Advice`), appended after a semicolon.
    """

    exit_code: int = 1

    def __init__(self, problem: str, *, source: str | None = None, column: str | None = None,
                 row: int | None = None, value: Any = None, field: str | None = None,
                 advice: Advice | None = None) -> None:
        self.problem = problem
        self.source = source
        self.column = column
        self.row = row
        self.value = value
        self.field = field
        self.advice = advice
        super().__init__(self.render(python_spelling))

    def __reduce__(self) -> tuple[Any, ...]:
        # crosses processes (a Dask worker to the client) with its fields, not only its text
        return _rebuilt, (type(self), dict(self.__dict__))

    def at_row(self, row: int) -> FlowcliError:
        """This error naming row ``row`` where it named :attr:`row` (rows counted in a
        part of a table, put back in the table's count)."""
        problem = self.problem.replace(f"row {self.row}", f"row {row}")
        return type(self)(problem, source=self.source, column=self.column, row=row,
                          value=self.value, field=self.field, advice=self.advice)

    def render(self, spell: Spelling) -> str:
        """The message with options written by ``spell``."""
        text = self.problem
        if self.field is not None:
            text = f"{spell(self.field, None)} {text}"
        if self.source is not None:
            text = f"{self.source}: {text}"
        if self.advice is not None:
            text = f"{text}; {self.advice.render(spell)}"
        return text


def _rebuilt(kind: type[FlowcliError], fields: dict[str, Any]) -> FlowcliError:
    """An error of ``kind`` with ``fields``, as :meth:`FlowcliError.__reduce__` sent it."""
    error = kind.__new__(kind)
    error.__dict__.update(fields)
    Exception.__init__(error, error.render(python_spelling))
    return error


class DataError(FlowcliError, ValueError):
    """An input table that cannot be read or used: names the file, column and row."""


class SchemaError(DataError):
    """A table whose columns do not match what the model expects."""


class ModelFileError(FlowcliError, ValueError):
    """A model file that is missing, damaged, unsafe or from an unknown format version."""


class OutputError(FlowcliError, OSError):
    """An output that cannot be written."""


class RankLostError(FlowcliError):
    """Under torchrun, another training process went away, so this one cannot go on."""


class UsageError(FlowcliError, ValueError):
    """Options that contradict each other or are out of range; exit code 2."""

    exit_code = 2


def require_extra(modules: Sequence[str], needs: str, extra: str) -> None:
    """Refuse, in one line naming the extra to install, when an optional package is not
    installed: ``needs`` says what needs it (``"the report's plots need matplotlib"``)."""
    import importlib

    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{needs}: pip install 'flowcli[{extra}]'") from None


class AnomalyError(FlowcliError):
    """A scored row fell below the anomaly threshold and the caller asked to fail; exit code 3."""

    exit_code = 3


class FlowcliWarning(UserWarning):
    """Base class of the library's warnings: the work is done, but a number deserves care."""


class ConditionWarning(FlowcliWarning):
    """A condition value outside its column's training range: the model extrapolates."""

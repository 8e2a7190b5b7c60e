"""What a resumed fit may change (the stopping rules and the learning rate), and the check
that everything else given for it matches the model being resumed."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import Advice, UsageError
from ..tabular import Schema
from .fitconfig import FitConfig

__all__ = ["RESUMABLE", "check_unchanged"]

# what a resumed run may change
RESUMABLE = ("epochs", "patience", "min_gain", "max_seconds", "lr")
DECLARATIONS = ("columns", "exclude", "categorical", "integer", "positive", "bounds",
                "unbounded", "continuous", "condition", "datetime", "datetime_format")
KIND_OF = {"categorical": "categorical", "integer": "integer", "positive": "positive"}


def check_unchanged(config: FitConfig, seed: int, schema: Schema, given: dict[str, Any]
                    ) -> None:
    """Refuse ``given`` settings (fit settings, ``seed``, column choices and declared kinds)
    that differ from those of the model being resumed; the same ones are welcome, so that a
    fit command can be run again with only a resume added. An unknown name is a
    ``TypeError``, as an unknown keyword argument is."""
    names = {f.name for f in fields(config)} | {"seed", *DECLARATIONS}
    unknown = sorted(set(given) - names)
    if unknown:
        raise TypeError(f"unknown fit option {', '.join(map(repr, unknown))}")
    for field, value in given.items():
        if value is None or field in RESUMABLE:
            continue
        if field == "seed":
            same = int(value) == seed
        elif field in DECLARATIONS:
            same = _declared(field, value, given, schema)
        else:
            same = value == getattr(config, field)
        if not same:
            kept = seed if field == "seed" else getattr(config, field, None)
            raise UsageError(
                "cannot be changed when resuming" + (f" (the model has {kept!r})"
                                                     if field not in DECLARATIONS else ""),
                field=field, advice=Advice(RESUMABLE[0], verb="a resumed run may change only",
                                           also=RESUMABLE[1:]))


def _declared(field: str, value: Any, given: dict[str, Any], schema: Schema) -> bool:
    """Whether a column choice or a declared kind says what the model's schema says."""
    specs = {spec.name: spec for spec in schema.columns}
    if field == "columns":
        excluded = set(given.get("exclude") or ())
        return [c for c in value if c not in excluded] == schema.names
    if field == "exclude":
        return not set(value) & set(specs)
    if field == "condition":
        return sorted(value) == sorted(schema.given)
    if field in ("datetime", "datetime_format"):
        formats = value if field == "datetime_format" else {}
        return all(name in specs and specs[name].kind == "datetime"
                   and specs[name].format in (None, formats.get(name, specs[name].format))
                   for name in value)  # a format given for a typed column goes unused
    if field in ("unbounded", "continuous"):
        return all(name in specs and not specs[name].inferred for name in value)
    if field == "bounds":
        return all(name in specs and specs[name].kind == "bounded"
                   and (specs[name].low, specs[name].high) == tuple(map(float, bound))
                   for name, bound in value.items())
    return all(name in specs and specs[name].kind == KIND_OF[field]
               and not specs[name].inferred for name in value)

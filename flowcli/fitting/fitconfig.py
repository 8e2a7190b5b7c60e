"""FitConfig: the hyperparameters of one fit, as plain data, with the defaults and checks of
:mod:`flowcli.config`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..config import FIT_DEFAULTS, OPTIONS, flow_size

__all__ = ["FitConfig"]

D = FIT_DEFAULTS


@dataclass
class FitConfig:
    """Hyperparameters of ``fit``: architecture and optimization. Plain data only; the field
    names and their order are part of the model file."""

    model: str = D["model"]
    layers: int | None = D["layers"]
    hidden: int | None = D["hidden"]
    depth: int = D["depth"]
    scale_bound: float = D["scale_bound"]
    epochs: int = D["epochs"]
    batch_size: int = D["batch_size"]
    lr: float | None = D["lr"]
    patience: int = D["patience"]
    weight_decay: float = D["weight_decay"]
    val_fraction: float = D["val_fraction"]
    max_seconds: float | None = D["max_seconds"]
    missing: str = D["missing"]
    whiten: bool | None = D["whiten"]
    mixture: bool | None = D["mixture"]
    tails: bool | None = D["tails"]
    min_gain: float = D["min_gain"]

    def check(self) -> None:
        """Raise :class:`UsageError` naming the first field out of its range."""
        for f in fields(self):
            if f.name in OPTIONS:
                OPTIONS[f.name].check(getattr(self, f.name))

    def sized(self, train_rows: int) -> FitConfig:
        """This config with ``layers`` and ``hidden`` left unset filled in for the table."""
        layers, hidden = flow_size(train_rows)
        return replace(self, layers=self.layers or layers, hidden=self.hidden or hidden)

    def updated(self, **changes: Any) -> FitConfig:
        """A checked copy with ``changes``; an unknown field is a ``TypeError``, as an
        unknown keyword argument is."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown fit option {', '.join(map(repr, unknown))}")
        config = FitConfig(**{**asdict(self), **changes})
        config.check()
        return config

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)



"""A fitted model described as plain data: its columns, its flow, how it was trained, and
the versions that wrote it. What ``info --json`` prints and ``fit --json`` reports."""

from __future__ import annotations

from typing import Any

import torch

from . import __version__, modelfile
from .engine.mixed import MixedDensity
from .engine.tails import Tails
from .fitting import FitConfig
from .tabular import ColumnSpec, Preprocessor

__all__ = ["describe"]

NO_FLOW = {"kind": "none", "layers": 0, "hidden": 0, "depth": 0, "scale_bound": 0.0}


def describe(pre: Preprocessor, density: MixedDensity, training: dict[str, Any],
             fit_config: FitConfig, created: str) -> dict[str, Any]:
    """Columns, architecture, training and versions of a fitted model as plain data."""
    flow = density.flow
    config = dict(flow.config) if flow is not None else dict(NO_FLOW)
    config.pop("orders", None)
    tails = {"tails_columns": _tails_columns(pre, density)} if config.get("tails") else {}
    return {
        "columns": [_column(pre, spec) for spec in pre.schema.columns],
        "given": pre.schema.given,
        "model": {**config, "categorical_variables": len(density.cardinalities),
                  "parameters": sum(p.numel() for p in density.parameters()), **tails},
        "training": {k: modelfile.plain(v) for k, v in training.items()
                     if k != "score_quantiles"},
        "fit_config": fit_config.as_dict(),
        "created": created,
        "versions": {"flowcli": __version__, "torch": torch.__version__,
                     "format": modelfile.format_for(config if flow is not None else None,
                                                    pre.to_dict(), fit_config.as_dict())},
    }


def _column(pre: Preprocessor, spec: ColumnSpec) -> dict[str, Any]:
    """A column's spec and its encoder's state (a datetime column's: its parts' by name)."""
    encoders = pre.encoders_of(spec.name)
    if spec.kind != "datetime":
        return {**spec.to_dict(), **encoders[0].to_dict()}
    return {**spec.to_dict(), "parts": {e.spec.name: e.to_dict() for e in encoders}}


def _tails_columns(pre: Preprocessor, density: MixedDensity) -> list[str]:
    """The columns that the flow's heavy-tail layer compresses (none without one)."""
    flow = density.flow
    layer = next((t for t in flow.steps if isinstance(t, Tails)), None) if flow else None
    if layer is None:
        return []
    names = [e.spec.name for e in pre.encoders if e.cont]
    return [name for name, on in zip(names, layer.active.tolist(), strict=True) if on]

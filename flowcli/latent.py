"""The latent space of a fitted density: table rows to latent tables and back, in float64.

A latent table has the continuous part's latent code ``z_0 .. z_{D-1}``, then the discrete
columns as they are (the code is conditional on them): each categorical column by its name,
and a ``<column>_missing`` flag for each numeric column whose gaps are modelled; then, for a
conditional model, its condition columns as they are (the code is conditional on them too).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .engine.mixed import MixedDensity, rebuild_mixed
from .engine.passes import in_passes, rows_per_pass
from .errors import DataError, SchemaError
from .rows import infinite_rows, too_far
from .tabular import Encoder, Preprocessor

__all__ = ["LATENT_PREFIX", "LatentMap", "latent_columns"]

LATENT_PREFIX = "z_"


def latent_columns(dim: int) -> list[str]:
    """Names of the latent columns written by ``invert``: ``z_0 .. z_{D-1}``."""
    return [f"{LATENT_PREFIX}{i}" for i in range(dim)]


class LatentMap:
    """Both directions for one density, through a float64 twin of it made on first use."""

    def __init__(self, preprocessor: Preprocessor, density: MixedDensity) -> None:
        self.preprocessor = preprocessor
        self.density = density
        self._twin: MixedDensity | None = None

    @property
    def device(self) -> torch.device:
        return next(self.density.parameters()).device

    def double(self) -> MixedDensity:
        """The density's float64 twin, made on first use."""
        if self._twin is None:
            twin = rebuild_mixed(self.density.config).to(self.device)
            twin.load_state_dict(self.density.state_dict())
            self._twin = twin.double().eval()
        return self._twin

    def _discrete_parts(self) -> list[tuple[str, Encoder]]:
        """Each discrete dim's latent-table column and encoder."""
        return [(e.spec.name if e.cont == 0 else f"{e.spec.name}_missing", e)
                for e in self.preprocessor.encoders if e.cards]

    def columns(self) -> list[str]:
        return latent_columns(self.preprocessor.continuous) + \
            [name for name, _ in self._discrete_parts()] + self.preprocessor.schema.given

    def to_latent(self, df: pd.DataFrame, source: str, row_offset: int) -> pd.DataFrame:
        x, _ = self.preprocessor.encode(df, source, row_offset)
        double = self.double()
        z = in_passes(double.to_latent, x, self.device, torch.float64,
                      rows_per_pass(double, self.device))
        bad = ~np.isfinite(z).all(axis=1)
        if bad.any():
            raise too_far(self.preprocessor, df, x, int(np.argmax(bad)), source, row_offset,
                          "mapped to latent space")
        out = pd.DataFrame(z, columns=latent_columns(z.shape[1]), index=df.index)
        for d, (name, e) in enumerate(self._discrete_parts(), self.preprocessor.continuous):
            out[name] = x[:, d] > 0.5 if e.cont else _labels(e, df, x[:, [d]])
        for name in self.preprocessor.schema.given:
            out[name] = df[name].to_numpy()
        return out

    def from_latent(self, df: pd.DataFrame, source: str, row_offset: int) -> pd.DataFrame:
        self._check_columns(df, source)
        cont = self._codes(df, source, row_offset)
        disc = [df[name].astype(bool).to_numpy(dtype=np.float64) if e.cont
                else e.encode(df[name], source, row_offset, 0.5)[1][:, 0]
                for name, e in self._discrete_parts()]
        codes = np.stack(disc, axis=1) if disc else np.zeros((len(df), 0))
        pre, as_tensor = self.preprocessor, {"dtype": torch.float64, "device": self.device}
        given = torch.as_tensor(pre.context(df, source, row_offset), **as_tensor) \
            if pre.conditions else None
        with torch.inference_mode():
            rows = self.double().from_latent(torch.as_tensor(cont, **as_tensor),
                                              torch.as_tensor(codes, **as_tensor), given)
        encoded = rows.cpu().numpy()
        with np.errstate(over="ignore"):
            out = pre.decode(encoded, df[pre.schema.given] if pre.conditions else None)
        _check_decoded(encoded, out, source, row_offset)
        out.index = df.index
        return out

    def _check_columns(self, df: pd.DataFrame, source: str) -> None:
        names = self.columns()
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise SchemaError(
                f"missing latent column {', '.join(repr(c) for c in missing[:5])}; "
                f"latent tables have columns {', '.join(names[:8])}", source=source,
                column=missing[0])

    def _codes(self, df: pd.DataFrame, source: str, row_offset: int) -> np.ndarray:
        """The latent code columns as finite float64 numbers."""
        zs = latent_columns(self.preprocessor.continuous)
        cont = df[zs].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64,
                                                                       copy=True)
        bad = ~np.isfinite(cont)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(f"column '{zs[c]}' holds {df[zs[c]].iloc[r]!r} in row "
                            f"{row_offset + r + 1}; latent values must be finite numbers",
                            source=source, column=zs[c], row=row_offset + int(r) + 1,
                            value=df[zs[c]].iloc[r])
        return cont


def _check_decoded(encoded: np.ndarray, table: pd.DataFrame, source: str,
                   row_offset: int) -> None:
    """Refuse latent rows that map to numbers too large to hold."""
    bad = ~np.isfinite(encoded).all(axis=1) | infinite_rows(table)
    if bad.any():
        row = row_offset + int(np.argmax(bad)) + 1
        raise DataError(f"row {row} cannot be mapped to the table: its latent values lie "
                        f"too far out for the model's arithmetic", source=source, row=row)


def _labels(encoder: Encoder, df: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
    """A label column as the rows hold it, or, for a part of a datetime column, the labels
    its codes stand for."""
    name = encoder.spec.name
    if name in df.columns:
        return df[name].to_numpy()
    return encoder.decode(np.zeros((len(codes), 0)), codes).to_numpy()

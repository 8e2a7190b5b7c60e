"""A density over mixed rows: continuous features and categorical variables together.

``p(x, c) = P(c) p(x | c)``: a :class:`~flowcli.engine.discrete.CategoricalChain` gives the
exact probability of the categories and a flow, conditioned on their one-hot codes, gives the
density of the continuous part. A row is one tensor ``[x (D columns), c (J index columns)]``.

A conditional density, ``p(x, c | g)``, also takes ``G`` given numbers per row (the encoded
condition columns) as ``[x, c, g]``: both parts see ``g`` as context, so the density of the
other columns integrates to one for every ``g``.

Missing continuous entries are ``NaN``. The density of the observed part,
``p(x_o | c) = integral of p(x_o, x_m | c) dx_m``, is bounded below with the standard normal as
the proposal for ``x_m``: ``E[log p(x_o, x_m | c) - log N(x_m)]``. Training draws ``x_m`` at
random (an unbiased estimate of that bound); evaluation puts ``x_m`` at the proposal's mode, 0,
which makes scores deterministic.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .discrete import CategoricalChain, one_hot
from .elementwise import ContextStandardize
from .flow import Flow, build
from .linear import Whiten
from .tails import Tails

__all__ = ["MixedDensity", "build_mixed", "rebuild_mixed"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class MixedDensity(nn.Module):
    """``D`` continuous features modelled by ``flow`` given ``J`` categorical ones.

    Either part may be absent (``flow=None`` when ``D == 0``, ``chain=None`` when ``J == 0``).
    ``given``: the width ``G`` of the condition, 0 for a density of whole rows.
    """

    def __init__(self, flow: Flow | None, chain: CategoricalChain | None,
                 chain_hidden: int = 64, given: int = 0) -> None:
        super().__init__()
        if flow is None and chain is None:
            raise ValueError("a mixed density needs a flow or a categorical chain")
        self.flow = flow
        self.chain = chain
        self.chain_hidden = chain_hidden
        self.continuous = flow.features if flow is not None else 0
        self.cardinalities = chain.cardinalities if chain is not None else []
        self.given = int(given)

    @property
    def config(self) -> dict[str, Any]:
        """Plain data that :func:`rebuild_mixed` turns back into the same architecture, read
        from the parts as they are now (a flow's base or heavy-tail layer may change after it
        is built)."""
        config = {"continuous": self.continuous, "cardinalities": list(self.cardinalities),
                  "flow": dict(self.flow.config) if self.flow is not None else None,
                  "chain_hidden": self.chain_hidden}
        if self.given:
            config["given"] = self.given
        return config

    @property
    def features(self) -> int:
        """Width of a row: modelled columns and the condition."""
        return self.continuous + len(self.cardinalities) + self.given

    def split(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """A row's continuous part ``x``, category indices ``c`` and condition ``g`` (None
        for a density of whole rows)."""
        d, j = self.continuous, self.continuous + len(self.cardinalities)
        return rows[:, :d], rows[:, d:j], rows[:, j:] if self.given else None

    def flow_context(self, rows: Tensor) -> Tensor | None:
        """What the flow sees as the context of each row (see :meth:`_context`)."""
        _, c, g = self.split(rows)
        return self._context(c, g)

    def _context(self, c: Tensor, g: Tensor | None) -> Tensor | None:
        """What the flow is conditioned on: the categories' one-hot codes and the condition."""
        parts = [one_hot(c, self.cardinalities).to(c.dtype)] if self.cardinalities else []
        if g is not None:
            parts.append(g)
        return torch.cat(parts, dim=1) if parts else None

    @torch.no_grad()
    def init_from(self, rows: Tensor) -> MixedDensity:
        """Data-dependent start: the chain at the marginal frequencies, and the flow's leading
        data-set layers (per-context standardization, heavy tails, whitening) from the training
        rows. A heavy-tail layer that compresses no column is dropped."""
        x, c, g = self.split(rows)
        if self.chain is not None:
            self.chain.init_from(c)
        if self.flow is None:
            return self
        context = self._context(c, g)
        for step in self.flow.steps:
            if isinstance(step, Tails):
                step.init_from(x)
                if not step.active.any():
                    self.flow.drop_tails()
                    continue
            elif isinstance(step, ContextStandardize) and context is not None:
                step.init_from(x, context)
            elif isinstance(step, Whiten):
                step.init_from(x)
            else:
                break
            x = step(x, context)[0]
        return self

    def log_prob(self, rows: Tensor) -> Tensor:
        """Log-density of each row (given its condition), shape ``(B,)``."""
        x, c, g = self.split(rows)
        total = rows.new_zeros(rows.shape[0])
        if self.chain is not None:
            total = total + self.chain.log_prob(c, g)
        if self.flow is not None:
            missing = torch.isnan(x)
            if missing.any():
                fill = torch.randn_like(x) if self.training else torch.zeros_like(x)
                x = torch.where(missing, fill, x)
                # minus the proposal's log-density at the filled-in values
                total = total + ((0.5 * fill.pow(2) + _HALF_LOG_2PI) * missing).sum(dim=1)
            total = total + self.flow.log_prob(x, self._context(c, g))
        return total

    def forward(self, rows: Tensor) -> Tensor:
        """Same as :meth:`log_prob`, so that ``DistributedDataParallel`` can wrap it."""
        return self.log_prob(rows)

    def sample(self, n: int, generator: torch.Generator | None = None,
               given: Tensor | None = None) -> Tensor:
        """``n`` rows ``[x, c]``; no entry is missing (missingness lives in ``c``). A
        conditional density needs ``given``, ``(n, G)``: one condition per row drawn."""
        if self.given and (given is None or given.shape != (n, self.given)):
            raise ValueError(f"expected a condition of shape ({n}, {self.given})")
        g = given if self.given else None
        ref = next(self.parameters())
        c = self.chain.sample(n, generator, g) if self.chain is not None else \
            ref.new_zeros(n, 0)
        if self.flow is None:
            return c
        context = self._context(c, g)
        z = self.flow.base.sample(n, generator=generator, device=ref.device, dtype=ref.dtype,
                                  context=context)
        x = self.flow.from_latent(z, context)
        return torch.cat([x, c.to(x.dtype)], dim=1)

    def to_latent(self, rows: Tensor) -> Tensor:
        """The continuous part's latent code given the categories (and condition);
        ``(B, D)``."""
        x, c, g = self.split(rows)
        if self.flow is None:
            return x
        return self.flow.to_latent(torch.nan_to_num(x, nan=0.0), self._context(c, g))

    def from_latent(self, z: Tensor, c: Tensor, given: Tensor | None = None) -> Tensor:
        """Rows ``[x, c]`` from latent codes ``z`` ``(B, D)``, categories ``c`` ``(B, J)``
        and, for a conditional density, the condition ``given`` ``(B, G)``."""
        if self.flow is None:
            return c
        x = self.flow.from_latent(z, self._context(c, given if self.given else None))
        return torch.cat([x, c.to(z.dtype)], dim=1)


def build_mixed(
    continuous: int,
    cardinalities: list[int],
    flow_config: dict[str, Any] | None = None,
    chain_hidden: int = 64,
    given: int = 0,
) -> MixedDensity:
    """A mixed density, conditional on ``given`` numbers when that is not 0; ``flow_config``
    is a :func:`~flowcli.engine.flow.build` config whose ``features`` and
    ``context_features`` are set here."""
    flow = None
    if continuous:
        config = dict(flow_config or {"kind": "maf"})
        config.update(features=continuous, context_features=sum(cardinalities) + given)
        flow = build(config)
    chain = CategoricalChain(cardinalities, chain_hidden, given) if cardinalities else None
    return MixedDensity(flow, chain, chain_hidden, given)


def rebuild_mixed(config: dict[str, Any]) -> MixedDensity:
    """The same architecture as the one ``config`` (a ``MixedDensity.config``) describes."""
    return build_mixed(config["continuous"], config["cardinalities"], config["flow"],
                       config["chain_hidden"], config.get("given", 0))


"""Per-feature affine transform, optionally conditioned on a context.

This is the layer for one-feature inputs, where coupling and autoregression mean nothing: with
no context it holds a learned shift and log-scale per feature; with a context an MLP computes
them from it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform, check_inputs, soft_clamp
from .nn import MLP

__all__ = ["ElementwiseAffine"]


class ElementwiseAffine(Transform):
    """``z = x * exp(s) + t`` per feature, ``s`` soft-bounded to ``(-bound, bound)``."""

    def __init__(
        self,
        features: int,
        hidden: int = 128,
        layers: int = 2,
        context_features: int = 0,
        scale_bound: float = 5.0,
    ) -> None:
        super().__init__(features, context_features)
        self.scale_bound = float(scale_bound)
        if context_features:
            self.net: nn.Module | None = MLP(context_features, 2 * features, hidden, layers)
        else:
            self.net = None
            self.shift = nn.Parameter(torch.zeros(features))
            self.log_scale = nn.Parameter(torch.zeros(features))

    def _params(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.net is None:
            s, t = self.log_scale.expand_as(x), self.shift.expand_as(x)
        else:
            s, t = self.net(context).chunk(2, dim=1)
        return soft_clamp(s, self.scale_bound), t

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        s, t = self._params(x, context)
        return x * s.exp() + t, s.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        s, t = self._params(z, context)
        return (z - t) * (-s).exp(), -s.sum(dim=1)

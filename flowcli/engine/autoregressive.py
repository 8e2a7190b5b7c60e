"""Masked affine autoregressive transform (MAF).

Reference: Papamakarios et al., "Masked Autoregressive Flow for Density Estimation" (2017),
https://arxiv.org/abs/1705.07057.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Transform, check_inputs, soft_clamp
from .nn import MADE

__all__ = ["MaskedAffineAutoregressive"]


class MaskedAffineAutoregressive(Transform):
    """``z_i = x_i * exp(s_i) + t_i`` with ``(s_i, t_i)`` from MADE on the earlier ``x``.

    ``forward`` (data to latent) takes one network pass, so density evaluation and training are
    fast. ``inverse`` (latent to data, used by sampling) needs ``D`` sequential passes, one per
    feature: sample in large batches. The log-scale is soft-bounded to ``(-scale_bound,
    scale_bound)``.

    Arguments:
        features: ``D``, at least 2.
        order: autoregressive position of each feature (default ``0 .. D-1``).
        hidden: hidden width of MADE.
        layers: hidden layers of MADE.
        context_features: size of the optional context.
        scale_bound: bound on the per-layer log-scale.
    """

    def __init__(
        self,
        features: int,
        order: Tensor | None = None,
        hidden: int = 128,
        layers: int = 2,
        context_features: int = 0,
        scale_bound: float = 5.0,
    ) -> None:
        super().__init__(features, context_features)
        self.scale_bound = float(scale_bound)
        self.made = MADE(features, 2, hidden, layers, order, context_features)

    def _params(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        s, t = self.made(x, context).chunk(2, dim=1)
        return soft_clamp(s, self.scale_bound), t

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        s, t = self._params(x, context)
        return x * s.exp() + t, s.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        # After pass k the first k features in the ordering are exact, so D passes suffice;
        # the last pass's s depends only on features that were already exact.
        x = torch.zeros_like(z)
        s = x
        for _ in range(self.features):
            s, t = self._params(x, context)
            x = (z - t) * (-s).exp()
        return x, -s.sum(dim=1)

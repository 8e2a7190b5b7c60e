"""Affine coupling (RealNVP).

Reference: Dinh et al., "Density estimation using Real NVP" (2017),
https://arxiv.org/abs/1605.08803.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Transform, check_inputs, soft_clamp
from .nn import MLP

__all__ = ["AffineCoupling", "alternating_mask"]


def alternating_mask(features: int, parity: int) -> Tensor:
    """A checkerboard over features: ``True`` where ``i % 2 == parity`` (those pass through)."""
    return torch.arange(features) % 2 == parity % 2


class AffineCoupling(Transform):
    """Features where ``mask`` is true pass through and condition an affine map of the rest.

    ``forward``: ``z = x * exp(s) + t`` on the transformed features, with ``(s, t)`` computed
    by an MLP from the passed-through features (and the context). The log-scale ``s`` is
    soft-bounded to ``(-scale_bound, scale_bound)`` (see :func:`soft_clamp`), so one layer can
    stretch a feature at most ``exp(scale_bound)`` times and training cannot blow up. Both
    directions take one network pass.

    Arguments:
        features: ``D``, at least 2.
        mask: boolean ``(D,)``; true entries pass through. At least one of each is needed.
        hidden: hidden width of the conditioner.
        layers: hidden layers of the conditioner.
        context_features: size of the optional context.
        scale_bound: bound on the per-layer log-scale.
    """

    def __init__(
        self,
        features: int,
        mask: Tensor,
        hidden: int = 128,
        layers: int = 2,
        context_features: int = 0,
        scale_bound: float = 5.0,
    ) -> None:
        super().__init__(features, context_features)
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != (features,):
            raise ValueError(f"mask must have {features} entries, got {tuple(mask.shape)}")
        if mask.all() or not mask.any():
            raise ValueError("mask must keep at least one feature and transform at least one")
        self.scale_bound = float(scale_bound)
        self.register_buffer("keep", mask.to(torch.get_default_dtype()))
        self.net = MLP(features + context_features, 2 * features, hidden, layers)

    def _params(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        h = x * self.keep
        if context is not None:
            h = torch.cat([h, context], dim=1)
        s, t = self.net(h).chunk(2, dim=1)
        change = 1.0 - self.keep
        return soft_clamp(s, self.scale_bound) * change, t * change

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        s, t = self._params(x, context)
        return x * s.exp() + t, s.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        s, t = self._params(z, context)  # kept features are the same on both sides
        return (z - t) * (-s).exp(), -s.sum(dim=1)

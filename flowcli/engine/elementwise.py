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

__all__ = ["ContextStandardize", "ElementwiseAffine"]


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


class ContextStandardize(Transform):
    """``z = (x - m(c)) * exp(s(c))`` with ``m`` and ``s`` linear in the context ``c``.

    With one-hot categories as the context, this is a per-category location and scale for
    every feature (added up over several categorical variables). :meth:`init_from` sets it by
    least squares, so that a flow starts from each category's own mean and spread instead of
    learning them slowly, which matters most for rare categories.
    """

    def __init__(self, features: int, context_features: int, scale_bound: float = 5.0) -> None:
        if context_features < 1:
            raise ValueError("ContextStandardize needs a context")
        super().__init__(features, context_features)
        self.scale_bound = float(scale_bound)
        self.net = nn.Linear(context_features, 2 * features)
        nn.init.zeros_(self.net.weight)
        nn.init.zeros_(self.net.bias)

    def _params(self, context: Tensor | None) -> tuple[Tensor, Tensor]:
        m, s = self.net(context).chunk(2, dim=1)
        return m, soft_clamp(s, self.scale_bound)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        m, s = self._params(context)
        return (x - m) * s.exp(), s.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        m, s = self._params(context)
        return z * (-s).exp() + m, -s.sum(dim=1)

    @torch.no_grad()
    def init_from(self, x: Tensor, context: Tensor, ridge: float = 1.0) -> ContextStandardize:
        """Least-squares location and log-scale of ``x`` given ``context``.

        NaN entries of ``x`` (missing values) are left out. ``ridge`` shrinks the effect of
        rare contexts toward the overall mean.
        """
        design = torch.cat([context, torch.ones_like(context[:, :1])], dim=1).double()
        penalty = torch.eye(design.shape[1], dtype=design.dtype, device=design.device) * ridge
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        loc = design.new_zeros(design.shape[1], self.features)
        log_sd = design.new_zeros(design.shape[1], self.features)
        for j in range(self.features):
            seen = ~torch.isnan(x[:, j])
            a, y = design[seen], x[seen, j].double()
            gram = a.T @ a + penalty
            loc[:, j] = torch.linalg.solve(gram, a.T @ y)
            residual = y - a @ loc[:, j]
            # E log|e| = log sd - 0.635 for Gaussian e
            log_sd[:, j] = torch.linalg.solve(gram, a.T @ (torch.log(residual.abs() + 1e-6)
                                                           + 0.635))
        s = (-log_sd).clamp(-0.9 * self.scale_bound, 0.9 * self.scale_bound)
        raw = s / (1.0 - s.abs() / self.scale_bound)  # undo the soft clamp
        self.net.weight.copy_(torch.cat([loc[:-1].T, raw[:-1].T]).to(self.net.weight))
        self.net.bias.copy_(torch.cat([loc[-1], raw[-1]]).to(self.net.bias))
        return self

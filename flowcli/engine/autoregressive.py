"""Masked affine autoregressive transform (MAF).

Reference: Papamakarios et al., "Masked Autoregressive Flow for Density Estimation" (2017),
https://arxiv.org/abs/1705.07057.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Transform, check_inputs, soft_clamp, soft_clamp_divisor
from .nn import MADE, stack_backward, stack_forward

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
        extra = self.made.context_term(context)
        if torch.is_grad_enabled():
            return _AffineStep.apply(x, extra, self.scale_bound, *self.made.stack())
        raw = stack_forward(x, extra, self.made.stack())[0]
        z, ladj, _ = _affine(x, raw, self.scale_bound)
        return z, ladj

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        if not torch.is_grad_enabled():  # sampling: each hidden unit computed once
            return self._swept_inverse(z, context)
        # After pass k the first k features in the ordering are exact, so D passes suffice;
        # the last pass's s depends only on features that were already exact.
        x = torch.zeros_like(z)
        s = x
        for _ in range(self.features):
            s, t = self._params(x, context)
            x = (z - t) * (-s).exp()
        return x, -s.sum(dim=1)

    def _swept_inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """The inverse by :meth:`MADE.sweep`: the same numbers, about ``D`` times fewer
        operations."""
        at = torch.argsort(self.made.order)
        z_at = z[:, at]
        ladj = z.new_zeros(z.shape[0])

        def solve(p: int, out: Tensor) -> Tensor:
            s = soft_clamp(out[:, 0], self.scale_bound)
            ladj.sub_(s)
            return (z_at[:, p] - out[:, 1]) * (-s).exp()

        return self.made.sweep(solve, z, context), ladj


def _affine(x: Tensor, raw: Tensor, bound: float) -> tuple[Tensor, Tensor, list[Tensor]]:
    """``z = x * exp(s) + t`` from MADE's output ``raw = [a, t]`` with ``s = soft_clamp(a)``.

    Returns ``(z, log-determinant, [exp(s), q])``: what the backward needs besides ``x``,
    with ``q`` the divisor of ``soft_clamp(a) = a / q`` (:func:`soft_clamp_divisor`).
    """
    a, t = raw.chunk(2, dim=1)
    q = soft_clamp_divisor(a, bound)
    s = a / q
    scale = s.exp()
    return torch.addcmul(t, x, scale), s.sum(dim=1), [scale, q]


class _AffineStep(torch.autograd.Function):
    """One MAF layer (MADE and the affine map) as a single autograd node.

    Outside the matrix products, a layer is a dozen small operations, each of which autograd
    would record and replay; here they are one node whose backward is written out: with
    ``s = a / q``, ``ds/da = 1 / q**2``.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, extra: Tensor | None, bound: float,
                *tensors: Tensor) -> tuple[Tensor, Tensor]:
        raw, inputs, weights = stack_forward(x, extra, tensors)
        z, ladj, kept = _affine(x, raw, bound)
        ctx.save_for_backward(*kept, *inputs, *weights, *tensors[1::3])  # inputs[0] is x
        return z, ladj

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_z: Tensor, grad_ladj: Tensor) -> tuple[Tensor | None, ...]:
        scale, q, *saved = ctx.saved_tensors
        direct = grad_z * scale  # dz/dx, and with x the gradient of s
        grad_s = torch.addcmul(grad_ladj[:, None], direct, saved[0])
        grad_raw = torch.cat([grad_s.div_(q).div_(q), grad_z], dim=1)
        needs = ctx.needs_input_grad
        grad_x, grad_extra, grads = stack_backward(grad_raw, saved, (*needs[:2], *needs[3:]))
        if needs[0]:
            grad_x = direct if grad_x is None else grad_x.add_(direct)
        return (grad_x, grad_extra, None, *grads)

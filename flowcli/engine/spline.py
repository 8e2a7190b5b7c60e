"""Monotone rational-quadratic splines (neural spline flows).

Reference: Durkan et al., "Neural Spline Flows" (2019), https://arxiv.org/abs/1906.04087.

Inside ``[-bound, bound]`` each feature goes through a monotone spline of ``bins`` rational-
quadratic pieces whose knots and slopes come from a network; outside it is the identity (slope
1 at both ends, so the map is smooth there). Unlike an affine layer, one spline layer can bend
a density into several modes, skew it or sharpen it, which is why spline flows win on skewed
and multi-modal tables.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Transform, check_inputs
from .nn import MADE, MLP

__all__ = [
    "ElementwiseSpline",
    "MaskedSplineAutoregressive",
    "rational_quadratic",
    "rational_quadratic_forward",
    "spline_parameter_count",
]

MIN_BIN = 1e-3
MIN_SLOPE = 1e-3
# softplus(raw + _SLOPE_SHIFT) + MIN_SLOPE is 1 at raw = 0, so zero outputs give the identity
_SLOPE_SHIFT = math.log(math.expm1(1.0 - MIN_SLOPE))


def _check_bins(bins: int) -> int:
    if bins < 2:
        raise ValueError(f"a spline needs at least 2 bins, got {bins}")
    return int(bins)


def spline_parameter_count(bins: int) -> int:
    """Unconstrained numbers per feature: ``bins`` widths, ``bins`` heights, inner slopes."""
    return 3 * bins - 1


def _knots(raw: Tensor, bound: float) -> Tensor:
    """Knot positions ``(..., K+1)`` from ``-bound`` to ``bound``."""
    bins = raw.shape[-1]
    # written out: torch.softmax over a last dimension of a few entries is ~50x slower on a CPU
    # the shift only guards exp against overflow; softmax does not depend on it, so it is
    # detached, which spares the backward pass the max's gradient
    e = (raw - raw.detach().amax(dim=-1, keepdim=True)).exp()
    sizes = MIN_BIN + (1.0 - MIN_BIN * bins) * (e / e.sum(dim=-1, keepdim=True))
    inner = torch.cumsum(sizes[..., :-1], dim=-1) * (2 * bound) - bound
    # the ends are exactly -bound and bound, whatever the rounding of the cumulative sum
    ends = torch.zeros(bins + 1, dtype=raw.dtype, device=raw.device)
    ends[0], ends[-1] = -bound, bound
    return F.pad(inner, (1, 1)) + ends


def rational_quadratic(
    x: Tensor, raw: Tensor, bound: float, inverse: bool = False
) -> tuple[Tensor, Tensor]:
    """Apply the spline elementwise; returns ``(y, log |dy/dx|)`` per element.

    Arguments:
        x: ``(B, D)`` inputs (latents when ``inverse``).
        raw: ``(B, D, 3K-1)`` unconstrained parameters: widths, heights, inner slopes; or
            ``(1, D, 3K-1)``, one spline per feature for every row, whose knots are then
            built once rather than once per row.
        bound: the spline acts on ``[-bound, bound]``; outside, the identity.
        inverse: run the map backwards; the log-derivative is then of the inverse map.
    """
    bins = (raw.shape[-1] + 1) // 3
    xk = _knots(raw[..., :bins], bound)
    yk = _knots(raw[..., bins:2 * bins], bound)
    inner = F.softplus(raw[..., 2 * bins:] + _SLOPE_SHIFT) + MIN_SLOPE
    slopes = F.pad(inner, (1, 1), value=1.0)  # slope 1 at both ends, like the identity tails

    inside = (x >= -bound) & (x <= bound)
    xc = x.clamp(-bound, bound)
    edges = yk if inverse else xk
    # bin of each value, 0..K-1: the number of inner knots at or below it
    index = (xc[..., None] >= edges[..., 1:-1]).sum(dim=-1)
    # the knots and slopes at both ends of each value's bin, picked at once, each into a
    # contiguous block (separate picks cost more, mostly in their backward passes)
    x0, x1, y0, y1, d0, d1 = _pick_ends(torch.stack([xk, yk, slopes]), index).unbind(0)
    w, h = x1 - x0, y1 - y0
    delta = h / w
    bend = d0 + d1 - 2 * delta
    if inverse:  # the root in [0, 1] of the quadratic a xi^2 + b xi + c = 0
        dy = xc - y0
        a = dy * bend + h * (delta - d0)
        b = h * d0 - dy * bend
        c = -delta * dy
        xi = (2 * c) / (-b - (b.pow(2) - 4 * a * c).clamp_min(0.0).sqrt())
    else:
        xi = (xc - x0) / w
    t = xi * (1 - xi)
    denom = delta + bend * t
    log_slope = (2 * delta.log() + (d1 * xi.pow(2) + 2 * delta * t + d0 * (1 - xi).pow(2)).log()
                 - 2 * denom.log())
    if inverse:
        out, log_slope = x0 + xi * w, -log_slope
    else:
        out = y0 + h * (delta * xi.pow(2) + d0 * t) / denom
    return torch.where(inside, out, x), torch.where(inside, log_slope, 0.0)


def _pick_ends(table: Tensor, index: Tensor) -> Tensor:
    """``(6, B, D)``: entries ``index[b, d]`` and the next of ``table[c, b, d]``, for each
    channel ``c``, in the order ``c`` = 0 left, 0 right, 1 left, 1 right, 2 left, 2 right.
    ``table`` is ``(3, B, D, K+1)``, or ``(3, 1, D, K+1)`` for one spline per feature shared
    by every row. Picked from the flat table: a gather would expand a shared table to every
    row, and its backward pass would fill and sum an array of that size."""
    _, tables, features, knots = table.shape
    # each (row, feature)'s first knot in the flat table; a shared table's broadcast
    start = torch.arange(0, tables * features * knots, knots, device=index.device)
    left = (index + start.view(tables, features)).reshape(-1)
    both = torch.stack([left, left + 1])
    return table.reshape(3, -1).index_select(1, both.reshape(-1)).view(6, *index.shape)


def _exps(raw: Tensor) -> tuple[Tensor, Tensor]:
    """For ``raw`` ``(2, K, *S)`` (width and height logits): ``exp(raw)`` and its sums over
    ``K``, the two parts of each softmax. Unshifted when every sum lies well inside float
    range, which one look at the ``(2, *S)`` sums tells (a pass over ``raw`` for its maximum
    would cost as much as the ``exp``); shifted by the maximum otherwise."""
    if torch.compiler.is_compiling():  # fused, the shift costs little; a branch would not
        e = (raw - raw.amax(dim=1, keepdim=True)).exp()
        return e, e.sum(dim=1)
    e = raw.exp()
    total = e.sum(dim=1)
    if total.numel() == 0:
        return e, total
    low, high = torch.aminmax(total)
    if not (float(low) > 1e-30 and float(high) < 1e30):
        e = (raw - raw.amax(dim=1, keepdim=True)).exp()
        total = e.sum(dim=1)
    return e, total


class _Bin(NamedTuple):
    """The bin each value falls in, as tensors of the values' shape: its number (0 .. K-1, as
    floats), the sums of ``exp`` of the width and height logits of the bins before it and of
    its own, the raw slopes at its two knots (meaningless at an end knot), and 1.0 where its
    left knot is inner (``index > 0``) and where it is the last bin."""

    index: Tensor
    width_below: Tensor
    width: Tensor
    height_below: Tensor
    height: Tensor
    left_slope: Tensor
    right_slope: Tensor
    inner_left: Tensor
    last: Tensor


def _find_bins(level: Tensor, e: Tensor, total: Tensor, slopes: Tensor) -> _Bin:
    """The bins of values at ``level`` (their place in ``[0, 1]``), one knot at a time.

    Knot ``k`` sits at ``k * MIN_BIN + scale * C_k / T`` with ``C_k`` the sum of the first
    ``k`` width exps and ``T`` all of them; ``passed`` is 1.0 where a value lies at or past
    it. Passing is monotone in ``k``, so ``previous - passed`` is 1.0 exactly in the bin
    before the knot, and every quantity of the bin is a sum of products with it: a dozen
    operations over the values per knot, where gathers over ``(K, *S)`` and operations on
    ``(2, *S)`` pairs cost more. ``e`` and ``total`` are as :func:`_exps` gives them,
    ``slopes`` the ``(K - 1, *S)`` raw inner slopes.
    """
    bins = e.shape[1]
    scale = 1.0 - MIN_BIN * bins
    ew, eh = e[0], e[1]
    reach, step = level * (total[0] / scale), total[0] * (MIN_BIN / scale)
    zero = torch.zeros_like(level)
    index, cumulative, w_below, w_own, h_below, h_own, left, right = (
        zero.clone() for _ in range(8))
    previous, passed, inner_left = torch.ones_like(level), torch.empty_like(level), zero
    for k in range(1, bins):
        cumulative += ew[k - 1]
        torch.le(cumulative, torch.add(reach, step, alpha=-k), out=passed)
        index += passed
        w_below.addcmul_(passed, ew[k - 1])
        h_below.addcmul_(passed, eh[k - 1])
        own = previous - passed  # 1.0 in bin k - 1
        w_own.addcmul_(own, ew[k - 1])
        h_own.addcmul_(own, eh[k - 1])
        if k > 1:
            left.addcmul_(own, slopes[k - 2])
        right.addcmul_(own, slopes[k - 1])
        if k == 1:
            inner_left = passed.clone()
        previous, passed = passed, previous
    w_own.addcmul_(previous, ew[-1])  # the last bin
    h_own.addcmul_(previous, eh[-1])
    left.addcmul_(previous, slopes[-1])
    return _Bin(index, w_below, w_own, h_below, h_own, left, right, inner_left, previous)


def _slope(raw: Tensor, inner: Tensor) -> Tensor:
    """The derivative at a knot: from ``raw`` where ``inner`` is 1.0, else 1 (an end)."""
    return (F.softplus(raw + _SLOPE_SHIFT) + (MIN_SLOPE - 1.0)).mul_(inner).add_(1.0)


def rational_quadratic_forward(x: Tensor, raw: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """:func:`rational_quadratic` forward, without autograd, for ``raw`` laid out ``(3K-1,
    *S)`` for values ``x`` of shape ``S`` (parameter-major: each parameter of every value
    one contiguous block, so every operation runs over all the values at full vector width;
    on rows laid out ``(B, D)`` each ran over ``D`` values at a time, far slower). Only the
    knots around each value are built (see :func:`_find_bins`), where the general form
    builds them all and gathers. Scoring uses it."""
    bins = (raw.shape[0] + 1) // 3
    scale, span = 1.0 - MIN_BIN * bins, 2.0 * bound
    xc = x.clamp(-bound, bound)
    e, total = _exps(raw[:2 * bins].view(2, bins, *x.shape))
    found = _find_bins((xc + bound) / span, e, total, raw[2 * bins:])
    floor = found.index * MIN_BIN
    x0 = -bound + span * (floor + scale * found.width_below / total[0])
    w = span * (MIN_BIN + scale * found.width / total[0])
    y0 = -bound + span * (floor + scale * found.height_below / total[1])
    h = span * (MIN_BIN + scale * found.height / total[1])
    d0 = _slope(found.left_slope, found.inner_left)
    d1 = _slope(found.right_slope, 1.0 - found.last)
    delta = h / w
    xi = (xc - x0) / w
    t = xi * (1 - xi)
    denom = delta + (d0 + d1 - 2 * delta) * t
    log_slope = (2 * delta.log() + (d1 * xi * xi + 2 * delta * t + d0 * (1 - xi) ** 2).log()
                 - 2 * denom.log())
    out = y0 + h * (delta * xi * xi + d0 * t) / denom
    inside = (x >= -bound) & (x <= bound)
    return torch.where(inside, out, x), torch.where(inside, log_slope, 0.0)


class MaskedSplineAutoregressive(Transform):
    """``z_i = spline_i(x_i)`` with the spline of feature ``i`` from MADE on the earlier ``x``.

    Like the affine MAF layer, density evaluation takes one network pass and sampling ``D``.

    Arguments:
        features: ``D``, at least 2.
        order: autoregressive position of each feature (default ``0 .. D-1``).
        hidden, layers: size of MADE.
        context_features: size of the optional context.
        bins: rational-quadratic pieces per spline.
        bound: the splines act on ``[-bound, bound]``, the identity outside.
    """

    def __init__(
        self,
        features: int,
        order: Tensor | None = None,
        hidden: int = 128,
        layers: int = 2,
        context_features: int = 0,
        bins: int = 8,
        bound: float = 5.0,
    ) -> None:
        super().__init__(features, context_features)
        self.bins, self.bound = _check_bins(bins), float(bound)
        self.made = MADE(features, spline_parameter_count(bins), hidden, layers, order,
                         context_features)

    def _raw(self, x: Tensor, context: Tensor | None) -> Tensor:
        """``(B, 3K-1, D)``: MADE groups outputs by parameter, ``out[:, k * D + i]`` is
        parameter ``k`` of feature ``i``."""
        out = self.made(x, context)
        return out.view(x.shape[0], spline_parameter_count(self.bins), self.features)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        if torch.is_grad_enabled():  # training: the form whose backward pass is cheap
            raw = self._raw(x, context)
            z, ladj = rational_quadratic(x, raw.transpose(1, 2), self.bound)
            return z, ladj.sum(dim=1)
        # scoring: every parameter of every value as one contiguous (D, B) block
        raw = self.made.transposed(x, context).view(
            spline_parameter_count(self.bins), self.features, x.shape[0])
        z, ladj = rational_quadratic_forward(x.t().contiguous(), raw, self.bound)
        return z.t().contiguous(), ladj.sum(dim=0)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        if not torch.is_grad_enabled():  # sampling: each hidden unit computed once
            return self._swept_inverse(z, context)
        # One pass per feature in autoregressive order. Pass k needs only feature k's spline:
        # its parameters depend on features already final, so only those output units of
        # MADE are computed and only that one spline is inverted (D times less work than
        # recomputing every spline in every pass).
        made, count = self.made, spline_parameter_count(self.bins)
        weight, bias = made.output_layer.masked_weight(), made.output_layer.bias
        params = torch.arange(count, device=z.device) * self.features
        x = torch.zeros_like(z)
        ladj = z.new_zeros(z.shape[0])
        for i in torch.argsort(made.order).tolist():
            rows = params + i  # feature i's outputs: out[:, k * D + i]
            raw = F.linear(made.hidden(x, context), weight[rows], bias[rows])
            xi, step = rational_quadratic(z[:, i : i + 1], raw[:, None, :], self.bound,
                                          inverse=True)
            x = torch.cat([x[:, :i], xi, x[:, i + 1 :]], dim=1)
            ladj = ladj + step[:, 0]
        return x, ladj

    def _swept_inverse(self, z: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """The inverse by :meth:`MADE.sweep`: the same numbers, each hidden unit computed
        once rather than once per feature."""
        at = torch.argsort(self.made.order)
        z_at = z[:, at]
        ladj = z.new_zeros(z.shape[0])

        def solve(p: int, out: Tensor) -> Tensor:
            x, step = rational_quadratic(z_at[:, p : p + 1], out[:, None, :], self.bound,
                                         inverse=True)
            ladj.add_(step[:, 0])
            return x[:, 0]

        return self.made.sweep(solve, z, context), ladj


class ElementwiseSpline(Transform):
    """A spline per feature: free parameters, or an MLP of the context when there is one.

    The layer for one-column tables, where a single affine layer could only fit a Gaussian.
    """

    def __init__(
        self,
        features: int,
        hidden: int = 128,
        layers: int = 2,
        context_features: int = 0,
        bins: int = 8,
        bound: float = 5.0,
    ) -> None:
        super().__init__(features, context_features)
        self.bins, self.bound = _check_bins(bins), float(bound)
        count = spline_parameter_count(bins)
        if context_features:
            self.net: nn.Module | None = MLP(context_features, count * features, hidden, layers)
        else:
            self.net = None
            self.raw = nn.Parameter(torch.zeros(features, count))

    def _raw(self, x: Tensor, context: Tensor | None) -> Tensor:
        if self.net is None:
            return self.raw[None]  # the same knots for every row: built once
        return self.net(context).view(x.shape[0], self.features,
                                      spline_parameter_count(self.bins))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        z, ladj = rational_quadratic(x, self._raw(x, context), self.bound)
        return z, ladj.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        x, ladj = rational_quadratic(z, self._raw(z, context), self.bound, inverse=True)
        return x, ladj.sum(dim=1)

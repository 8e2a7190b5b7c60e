"""A fixed per-feature layer that pulls heavy tails in, set from the training data.

A flow whose layers are affine far from the data (spline flows are the identity outside their
interval) keeps the tails of its Gaussian base: it cannot put the mass of a heavy-tailed column
far out without spreading the bulk too (Jaini et al., "Tails of Lipschitz Triangular Flows",
2020, https://arxiv.org/abs/1907.04481). This layer compresses such a column first with the
inverse hyperbolic sine, the transform behind Johnson's S_U family: logarithmic far out,
the identity near the centre.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Transform, check_inputs

__all__ = ["Tails", "fit_tails"]

# far-out bound of asinh((x - loc) / scale) when mapping back: sinh(15) is 1.6e6 scales from the
# centre, finite in float32, where an unbounded sinh would overflow to inf while sampling
_LIMIT = 15.0
_SCALE_RANGE = (0.05, 1000.0)  # in standard deviations of the column


class Tails(Transform):
    """``w = s * asinh((x - m) / s)`` per feature, one ``s`` on each side of ``m``, then
    ``z = (w - a) / b`` with ``a`` and ``b`` the mean and standard deviation of ``w``.

    The slope of ``w`` is 1 at ``m`` and falls as ``s / |x - m|`` beyond ``s``: a column with a
    tail like ``sinh`` of a Gaussian comes out Gaussian, one like a log-normal nearly so; the
    layers after it see it standardized again, as they saw the column before. Features whose
    ``active`` flag is off pass through unchanged. It holds buffers, not parameters, set by
    :meth:`init_from` from the marginal of each column; a new layer is the identity.
    """

    def __init__(self, features: int, context_features: int = 0) -> None:
        super().__init__(features, context_features)
        self.register_buffer("loc", torch.zeros(features))
        self.register_buffer("scale", torch.ones(2, features))  # below and above ``loc``
        self.register_buffer("shift", torch.zeros(features))
        self.register_buffer("spread", torch.ones(features))
        self.register_buffer("active", torch.zeros(features, dtype=torch.bool))

    def _scale(self, side: Tensor) -> Tensor:
        return torch.where(side < 0, self.scale[0], self.scale[1])

    def _compress(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``w`` and ``log dw/dx`` of every feature, the inactive ones included."""
        u = x - self.loc
        s = self._scale(u)
        t = u / s
        return s * torch.asinh(t), -0.5 * torch.log1p(t * t)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        w, ladj = self._compress(x)
        z = torch.where(self.active, (w - self.shift) / self.spread, x)
        ladj = torch.where(self.active, ladj - self.spread.log(), 0.0)
        return z, ladj.sum(dim=1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        w = z * self.spread + self.shift
        s = self._scale(w)  # w has the sign of x - loc
        t = (w / s).clamp(-_LIMIT, _LIMIT)
        x = torch.where(self.active, self.loc + s * torch.sinh(t), z)
        ladj = torch.where(self.active, torch.log(torch.cosh(t)) + self.spread.log(), 0.0)
        return x, ladj.sum(dim=1)

    @torch.no_grad()
    def init_from(self, x: Tensor, min_gain: float = 0.05, min_kurtosis: float = 1.0,
                  rows: int = 5000) -> Tails:
        """Fit each column on the rows of ``x`` without NaN (evenly spaced, at most ``rows``).

        A column is compressed when its tails are heavy (excess kurtosis above
        ``min_kurtosis``; a Gaussian's is 0) and compressing it raises its log-likelihood
        under a Gaussian fit by more than ``min_gain`` nats per row (see :func:`fit_tails`);
        the others stay as they are. The kurtosis test keeps light-tailed columns out: on a
        two-humped column the Gaussian fit also rises when one hump is squeezed, which only
        leaves the layers after it more to undo. With fewer than 20 complete rows the layer
        stays the identity.
        """
        x = x[~torch.isnan(x).any(dim=1)]
        if x.shape[0] < 20:
            return self
        x = x[:: -(-x.shape[0] // rows)]
        loc, scale, gain = fit_tails(x)
        u = x.double() - x.double().mean(dim=0)
        kurtosis = u.pow(4).mean(dim=0) / u.pow(2).mean(dim=0).pow(2).clamp_min(1e-300) - 3.0
        active = (gain > min_gain) & (kurtosis.to(gain.dtype) > min_kurtosis)
        self.loc.copy_(torch.where(active, loc, 0.0))
        self.scale.copy_(torch.where(active, scale, 1.0))
        w = self._compress(x.to(self.loc.dtype))[0].double()
        self.shift.copy_(torch.where(active, w.mean(dim=0), 0.0))
        self.spread.copy_(torch.where(active, w.std(dim=0).clamp_min(1e-12), 1.0))
        self.active.copy_(active)
        return self


def _profile_nll(x: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    """Per column: the negative log-likelihood per row of ``x`` when the compressed column is
    Gaussian with its own mean and variance, up to a constant."""
    u = x - loc
    s = torch.where(u < 0, log_scale[0], log_scale[1]).exp()
    t = u / s
    z = s * torch.asinh(t)
    return 0.5 * torch.log(z.var(dim=0) + 1e-12) + 0.5 * torch.log1p(t * t).mean(dim=0)


def fit_tails(x: Tensor, iterations: int = 50) -> tuple[Tensor, Tensor, Tensor]:
    """``(loc, scale, gain)`` of a :class:`Tails` layer for the columns of ``x`` (no NaN).

    Each column's centre and two tail scales maximize its Gaussian log-likelihood after the
    transform (the log-determinant included), by L-BFGS in float64 on standardized columns;
    the scales stay within 0.05 to 1,000 standard deviations. ``gain`` is the rise in nats
    per row over the Gaussian fit of the column as it is (0 when nothing helps).
    """
    dtype = x.dtype
    x = x.double()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-12)
    x = (x - mean) / std
    low, high = (math.log(v) for v in _SCALE_RANGE)
    loc = x.median(dim=0).values.clone().requires_grad_(True)
    log_scale = torch.zeros(2, x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([loc, log_scale], max_iter=iterations,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = _profile_nll(x, loc, log_scale.clamp(low, high)).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    log_scale = log_scale.detach().clamp(low, high)
    nll = _profile_nll(x, loc.detach(), log_scale)
    gain = torch.nan_to_num(0.5 * torch.log(x.var(dim=0) + 1e-12) - nll, nan=0.0).clamp_min(0.0)
    return ((mean + std * loc.detach()).to(dtype), (std * log_scale.exp()).to(dtype),
            gain.to(dtype))

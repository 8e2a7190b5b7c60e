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
_LOG_SCALE_RANGE = (math.log(_SCALE_RANGE[0]), math.log(_SCALE_RANGE[1]))


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
        """Fit each column on its values in ``x`` (evenly spaced rows, at most ``rows``; NaN,
        a gap, is left out of its own column only).

        A column is compressed when its tails are heavy (excess kurtosis above
        ``min_kurtosis``; a Gaussian's is 0) and compressing it raises its log-likelihood
        under a Gaussian fit by more than ``min_gain`` nats per row (see :func:`fit_tails`);
        the others stay as they are. The kurtosis test keeps light-tailed columns out: on a
        two-humped column the Gaussian fit also rises when one hump is squeezed, which only
        leaves the layers after it more to undo. A column with fewer than 20 values stays as
        it is.
        """
        if x.shape[0] == 0:
            return self
        x = x[:: -(-x.shape[0] // rows)]
        present = ~torch.isnan(x)
        filled = torch.where(present, x, 0.0).double()
        u = filled - _mean(filled, present)
        kurtosis = _mean(u**4, present) / _mean(u**2, present).pow(2).clamp_min(1e-300) - 3.0
        heavy = (kurtosis > min_kurtosis) & (present.sum(dim=0) >= 20)
        if not heavy.any():
            return self
        columns = heavy.nonzero()[:, 0]
        loc, scale, gain = fit_tails(x[:, columns])
        active = torch.zeros_like(heavy)
        active[columns] = gain > min_gain
        self.loc[columns] = torch.where(active[columns], loc, 0.0).to(self.loc.dtype)
        self.scale[:, columns] = torch.where(active[columns], scale, 1.0).to(self.scale.dtype)
        w = torch.where(present, self._compress(torch.where(present, x, self.loc).to(
            self.loc.dtype))[0], 0.0).double()
        shift = _mean(w, present)
        spread = _mean((w - shift) ** 2, present).sqrt()
        self.shift.copy_(torch.where(active, shift, 0.0))
        self.spread.copy_(torch.where(active, spread.clamp_min(1e-12), 1.0))
        self.active.copy_(active)
        return self


def _mean(v: Tensor, present: Tensor) -> Tensor:
    """Per column, the mean of ``v`` over the rows where ``present`` (0 for none)."""
    return torch.where(present, v, 0.0).sum(dim=0) / present.sum(dim=0).clamp_min(1)


def _profile_nll(v: Tensor, params: Tensor) -> Tensor:
    """The negative log-likelihood per value of the column ``v`` when, compressed with
    ``params = (loc, log scale below, log scale above)``, it is Gaussian with its own mean
    and variance, up to a constant."""
    u = v - params[0]
    s = torch.where(u < 0, params[1], params[2]).clamp(*_LOG_SCALE_RANGE).exp()
    t = u / s
    z = s * torch.asinh(t)
    return 0.5 * torch.log(z.var(unbiased=False) + 1e-12) + 0.5 * torch.log1p(t * t).mean()


def fit_tails(x: Tensor, iterations: int = 100) -> tuple[Tensor, Tensor, Tensor]:
    """``(loc, scale, gain)`` of a :class:`Tails` layer for the columns of ``x``.

    Each column's centre and two tail scales maximize its Gaussian log-likelihood after the
    transform (the log-determinant included), by L-BFGS in float64 on the standardized
    column, one column at a time (fitting all at once would share one line search, which
    leaves wide tables short of the optimum); the scales stay within 0.05 to 1,000 standard
    deviations. NaN values are left out. ``gain`` is the rise in nats per value over the
    Gaussian fit of the column as it is (0 when nothing helps, or with fewer than 2 values).
    """
    d = x.shape[1]
    loc = torch.zeros(d, dtype=torch.float64, device=x.device)
    scale = torch.ones(2, d, dtype=torch.float64, device=x.device)
    gain = torch.zeros(d, dtype=torch.float64, device=x.device)
    for j in range(d):
        v = x[:, j][~torch.isnan(x[:, j])].double()
        if v.numel() < 2:
            continue
        mean, std = v.mean(), v.std(unbiased=False)
        if not std > 0:
            continue
        v = (v - mean) / std
        params = torch.stack([v.median(), v.new_zeros(()), v.new_zeros(())]).requires_grad_()
        optimizer = torch.optim.LBFGS([params], max_iter=iterations,
                                      line_search_fn="strong_wolfe")

        def closure(v: Tensor = v, params: Tensor = params,
                    optimizer: torch.optim.LBFGS = optimizer) -> Tensor:
            optimizer.zero_grad()
            loss = _profile_nll(v, params)
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        p = params.detach()
        loc[j] = mean + std * p[0]
        scale[:, j] = std * p[1:].clamp(*_LOG_SCALE_RANGE).exp()
        gain[j] = torch.nan_to_num(-_profile_nll(v, p), nan=0.0).clamp_min(0.0)
    return loc.to(x.dtype), scale.to(x.dtype), gain.to(x.dtype)

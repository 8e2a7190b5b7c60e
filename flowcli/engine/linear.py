"""Linear layers: a fixed whitening set from the data, and a learned invertible map."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Transform, check_inputs

__all__ = ["LULinear", "Whiten"]


class Whiten(Transform):
    """``z = L^-1 (x - m)`` with ``m`` the mean and ``L L^T`` the covariance of the data.

    Placed first in a flow and set by :meth:`init_from`, it makes the untrained flow the
    full-covariance Gaussian fit of the data, so training starts there and the layers after
    it only learn what a Gaussian misses. This matters most on small, correlated tables,
    where a flow that must also learn the correlations overfits before it finds them.
    It holds buffers, not parameters: training leaves it alone. A new layer is the identity.
    """

    def __init__(self, features: int, context_features: int = 0) -> None:
        super().__init__(features, context_features)
        self.register_buffer("loc", torch.zeros(features))
        # W = L^-1, lower triangular; the inverse solves with W itself rather than keeping L,
        # so the two directions undo each other exactly in any precision the layer is cast to
        self.register_buffer("weight", torch.eye(features))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        ladj = self.weight.diagonal().log().sum()
        return (x - self.loc) @ self.weight.T, ladj.expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        ladj = -self.weight.diagonal().log().sum()
        x = torch.linalg.solve_triangular(self.weight, z.T, upper=False).T + self.loc
        return x, ladj.expand(z.shape[0])

    @torch.no_grad()
    def init_from(self, x: Tensor) -> Whiten:
        """Mean and covariance of the rows of ``x`` without NaN.

        A ridge of 1e-6 of the mean variance keeps collinear columns factorizable. With fewer
        complete rows than twice the number of features, the layer stays the identity.
        """
        x = x[~torch.isnan(x).any(dim=1)].double()
        if x.shape[0] < 2 * self.features:
            return self
        loc = x.mean(dim=0)
        eye = torch.eye(self.features, dtype=x.dtype, device=x.device)
        cov = torch.atleast_2d(torch.cov(x.T))
        cov = cov + eye * (1e-6 * float(cov.diagonal().mean()) + 1e-12)
        inverse = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), eye, upper=False)
        self.loc.copy_(loc)
        self.weight.copy_(inverse)
        return self


class LULinear(Transform):
    """``z = W x + b`` with ``W = L U`` learned: ``L`` lower triangular with a unit diagonal,
    ``U`` upper triangular with a positive diagonal ``exp(s)``.

    Every matrix whose leading principal minors are all positive is reachable (they are the
    running products of ``exp(s)``), the log-determinant is ``sum(s)`` without a
    factorization, and the inverse is two triangular solves. Between per-feature layers it
    lets a flow undo a mixing of its columns, which per-feature maps cannot. A new layer is
    the identity.
    """

    def __init__(self, features: int, context_features: int = 0) -> None:
        if features < 2:
            raise ValueError(f"a linear mixing layer needs at least 2 features, got {features}")
        super().__init__(features, context_features)
        pairs = features * (features - 1) // 2
        self.lower = nn.Parameter(torch.zeros(pairs))  # below the diagonal, row by row
        self.upper = nn.Parameter(torch.zeros(pairs))  # above the diagonal, row by row
        self.log_diagonal = nn.Parameter(torch.zeros(features))
        self.bias = nn.Parameter(torch.zeros(features))

    def factors(self) -> tuple[Tensor, Tensor]:
        """``(L, U)``."""
        d, ref = self.features, self.lower
        below = torch.tril_indices(d, d, -1, device=ref.device)
        above = torch.triu_indices(d, d, 1, device=ref.device)
        lower = torch.eye(d, dtype=ref.dtype, device=ref.device).index_put(tuple(below),
                                                                           self.lower)
        upper = torch.diag(self.log_diagonal.exp()).index_put(tuple(above), self.upper)
        return lower, upper

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        lower, upper = self.factors()
        return torch.addmm(self.bias, x, (lower @ upper).T), \
            self.log_diagonal.sum().expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        lower, upper = self.factors()
        y = torch.linalg.solve_triangular(lower, (z - self.bias).T, upper=False,
                                          unitriangular=True)
        x = torch.linalg.solve_triangular(upper, y, upper=True).T
        return x, -self.log_diagonal.sum().expand(z.shape[0])

"""A fixed linear whitening layer, set from the training data before training starts."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Transform, check_inputs

__all__ = ["Whiten"]


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

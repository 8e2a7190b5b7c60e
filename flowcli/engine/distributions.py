"""Base distributions: the standard normal, and a Gaussian mixture fitted by EM."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["MIXTURE_SIZES", "GaussianMixture", "StandardNormal", "fit_mixture", "select_mixture"]


class _Base(nn.Module):
    """What the bases share: ``features`` and the way ``sample`` picks its device and dtype."""

    features: int

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``n`` draws of shape ``(n, D)``, by default on the base's device and in its dtype."""
        ref = next(self.buffers())
        device = torch.device(device) if device is not None else ref.device
        return self._draw(n, generator, device, dtype or ref.dtype)

    def _draw(self, n: int, generator: torch.Generator | None, device: torch.device,
              dtype: torch.dtype) -> Tensor:
        raise NotImplementedError


class StandardNormal(_Base):
    """The standard normal on ``features`` dimensions; nothing in its ``state_dict``."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.register_buffer(
            "_log_z", torch.tensor(0.5 * features * math.log(2 * math.pi)), persistent=False
        )

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of each row of ``z`` ``(B, D)``; shape ``(B,)``."""
        return -0.5 * z.pow(2).sum(dim=1) - self._log_z.to(z.dtype)

    def _draw(self, n: int, generator: torch.Generator | None, device: torch.device,
              dtype: torch.dtype) -> Tensor:
        return torch.randn(n, self.features, generator=generator, device=device, dtype=dtype)


class GaussianMixture(_Base):
    """A mixture of ``components`` full-covariance Gaussians on ``features`` dimensions.

    The base of MAF-MoG (Papamakarios et al. 2017): a flow whose latent space is a mixture
    rather than one Gaussian. Its weights, means and covariance factors are buffers, set by
    :func:`fit_mixture` (EM) before the flow trains; training leaves them alone. A new one is
    the standard normal.

    Buffers: ``log_weights`` ``(K,)``, ``means`` ``(K, D)``, ``scale_tril`` ``(K, D, D)`` (lower
    Cholesky factors ``L_k`` of the covariances) and ``whiten`` ``(K, D, D)`` (``L_k^-1``).
    """

    def __init__(self, features: int, components: int = 1) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"a mixture needs at least 1 component, got {components}")
        self.features, self.components = features, components
        eye = torch.eye(features).expand(components, features, features)
        self.register_buffer("log_weights", torch.full((components,), -math.log(components)))
        self.register_buffer("means", torch.zeros(components, features))
        self.register_buffer("scale_tril", eye.clone())
        self.register_buffer("whiten", eye.clone())

    @torch.no_grad()
    def set(self, weights: Tensor, means: Tensor, covariances: Tensor) -> GaussianMixture:
        """Take these mixture weights ``(K,)``, means ``(K, D)`` and covariances ``(K, D, D)``."""
        covariances = covariances.double()
        scale = torch.linalg.cholesky(covariances)
        eye = torch.eye(self.features, dtype=scale.dtype, device=scale.device)
        inverse = torch.linalg.solve_triangular(scale, eye.expand_as(scale), upper=False)
        self.log_weights.copy_(weights.double().clamp_min(1e-300).log()
                               - weights.double().sum().log())
        self.means.copy_(means)
        self.scale_tril.copy_(scale)
        self.whiten.copy_(inverse)
        return self

    def component_log_prob(self, z: Tensor) -> Tensor:
        """``log w_k + log N(z | m_k, S_k)`` for each row and component; ``(B, K)``."""
        # L_k^-1 (z - m_k) for every k at once: one matrix product, then the shifts
        k, d = self.components, self.features
        y = (z @ self.whiten.reshape(k * d, d).T).view(-1, k, d)
        y = y - (self.whiten @ self.means.unsqueeze(2)).squeeze(2)
        log_det = self.scale_tril.diagonal(dim1=1, dim2=2).log().sum(dim=1)
        return (self.log_weights - log_det - 0.5 * self.features * math.log(2 * math.pi)
                - 0.5 * y.pow(2).sum(dim=2))

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density of each row of ``z`` ``(B, D)``; shape ``(B,)``."""
        return torch.logsumexp(self.component_log_prob(z), dim=1)

    def _draw(self, n: int, generator: torch.Generator | None, device: torch.device,
              dtype: torch.dtype) -> Tensor:
        """A component by weight, then its Gaussian."""
        if n == 0:
            return torch.zeros(0, self.features, device=device, dtype=dtype)
        weights = self.log_weights.double().exp().to(device)
        k = torch.multinomial(weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.features, generator=generator, device=device, dtype=dtype)
        out = self.means.to(device=device, dtype=dtype)[k]
        scale = self.scale_tril.to(device=device, dtype=dtype)
        for c in range(self.components):  # one product per component, not a factor per row
            rows = (k == c).nonzero().squeeze(1)
            out[rows] += eps[rows] @ scale[c].T
        return out


_SLICE = 8192  # rows per pass of a mixture's density: a (rows, components, features) array


def _sliced(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn`` over ``x`` in slices of ``_SLICE`` rows, concatenated."""
    return torch.cat([fn(x[i : i + _SLICE]) for i in range(0, x.shape[0], _SLICE)])


def _kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """``k`` well-spread starting centres: each next one drawn with probability proportional
    to its squared distance from the nearest centre so far (Arthur and Vassilvitskii 2007)."""
    first = int(torch.randint(0, x.shape[0], (1,), generator=generator))
    centres = [x[first]]
    nearest = (x - x[first]).pow(2).sum(dim=1)
    for _ in range(1, k):
        total = nearest.sum()
        if not total > 0:  # fewer distinct rows than centres
            i = int(torch.randint(0, x.shape[0], (1,), generator=generator))
        else:
            # drawn on the host, where ``generator`` lives, whatever the rows' device
            i = int(torch.multinomial((nearest / total).cpu(), 1, generator=generator))
        centres.append(x[i])
        nearest = torch.minimum(nearest, (x - x[i]).pow(2).sum(dim=1))
    return torch.stack(centres)


@torch.no_grad()
def fit_mixture(
    x: Tensor,
    components: int,
    generator: torch.Generator | None = None,
    iterations: int = 100,
    tol: float = 1e-3,
    ridge: float = 1e-8,
    deadline: float | None = None,
) -> GaussianMixture:
    """A :class:`GaussianMixture` fitted to the rows of ``x`` by EM, in float64.

    Starts from k-means++ centres and 10 rounds of k-means, then runs EM until the mean
    log-likelihood gains less than ``tol`` nats per row, ``iterations`` rounds are done or
    ``time.perf_counter()`` passes ``deadline`` (every round improves the fit, so stopping
    early still gives a valid mixture). ``ridge`` (times the identity) is added to every
    covariance, meant for standardized rows: it keeps a component that settles on equal rows
    finite. A component may still settle on a value of a lattice-valued column, if the
    caller's held-out rows reward it (they do when they sit on the same lattice); at 1e-8 its
    spread stays above 1e-4 standard deviations, which float32 scoring resolves.
    """
    x = x.double()
    n, d = x.shape
    if n < components:
        raise ValueError(f"{components} components need at least as many rows, got {n}")
    centres = _kmeans_plus_plus(x, components, generator)
    for _ in range(10):
        label = torch.cdist(x, centres).argmin(dim=1)
        counts = torch.bincount(label, minlength=components).to(x.dtype)[:, None]
        sums = torch.zeros_like(centres).index_add_(0, label, x)
        # a centre that lost all its rows stays where it was
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    resp = torch.nn.functional.one_hot(label, components).to(x.dtype)
    mixture = GaussianMixture(d, components).to(device=x.device, dtype=x.dtype)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    previous = -math.inf
    for _ in range(iterations):
        # M step: weights, means and covariances from the responsibilities, one component
        # at a time so that memory stays at a few copies of x
        mass = resp.sum(dim=0) + 1e-10
        means = resp.T @ x / mass[:, None]
        cov = torch.stack([((x - means[k]) * resp[:, k, None]).T @ (x - means[k])
                           for k in range(components)]) / mass[:, None, None]
        mixture.set(mass / n, means, cov + ridge * eye)
        # E step, in slices of rows for the same reason
        joint = _sliced(mixture.component_log_prob, x)
        total = torch.logsumexp(joint, dim=1, keepdim=True)
        resp = (joint - total).exp()
        current = float(total.mean())
        if current - previous < tol or deadline is not None and time.perf_counter() > deadline:
            break
        previous = current
    return mixture


MIXTURE_SIZES = (1, 2, 5, 10, 20)


@torch.no_grad()
def select_mixture(
    x_train: Tensor,
    x_val: Tensor,
    sizes: tuple[int, ...] = MIXTURE_SIZES,
    generator: torch.Generator | None = None,
    max_seconds: float | None = None,
    target: float | None = None,
) -> tuple[GaussianMixture, dict[int, float]]:
    """The mixture, of the ``sizes`` tried, whose mean log-likelihood on ``x_val`` is highest.

    Sizes are tried in increasing order; the search stops at the first size that does worse
    than the one before it, at a size with fewer than 5 training rows per component, or once
    ``max_seconds`` have passed (a fit that is running then stops early and still counts).
    EM fits all of ``x_train``: on large tables, pass a random subset. A size whose
    covariances cannot be factorized ends the search; when not even one Gaussian can be
    fitted, the result is the standard normal. With a ``target`` score (what another model
    reaches on ``x_val``), the search also stops once the mixture is further below the target
    than twice what the last step up in size gained, times the steps left: larger mixtures
    would not get there, and EM costs time. (The steps left are counted because on
    lattice-valued tables a step up can gain more than the one before, as components settle
    on values; benchmarks/README.md.)
    Returns the mixture and the validation score of each size tried.
    """
    start = time.perf_counter()
    deadline = None if max_seconds is None else start + max_seconds
    x_val = x_val.double()
    best: GaussianMixture | None = None
    scores: dict[int, float] = {}
    for i, k in enumerate(sizes):
        if best is not None and (k * 5 > x_train.shape[0] or deadline is not None
                                 and time.perf_counter() > deadline):
            break
        try:
            mixture = fit_mixture(x_train, k, generator, deadline=deadline)
        except torch.linalg.LinAlgError:  # a covariance beyond what float64 can factorize
            break
        score = float(_sliced(mixture.log_prob, x_val).mean())
        scores[k] = score if math.isfinite(score) else -math.inf
        if best is not None and scores[k] <= scores[best.components]:
            break
        previous = scores[best.components] if best is not None else None
        best = mixture
        left = sum(1 for j in sizes[i + 1:] if j * 5 <= x_train.shape[0])  # sizes still to try
        if (target is not None and previous is not None
                and target - scores[k] > 2 * left * (scores[k] - previous)):
            break
    if best is None:  # not even one Gaussian could be fitted: the standard normal
        best = GaussianMixture(x_train.shape[1]).to(device=x_train.device,
                                                     dtype=torch.float64)
    return best, scores

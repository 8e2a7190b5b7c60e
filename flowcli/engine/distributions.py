"""Base distributions: the standard normal, a Gaussian mixture fitted by EM, and a mixture
whose weights and means move with a context."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["MIXTURE_SIZES", "ContextMixture", "GaussianMixture", "StandardNormal",
           "fit_context_mixture", "fit_mixture", "select_mixture"]


class _Base(nn.Module):
    """What the bases share: ``features`` and the way ``sample`` picks its device and dtype."""

    features: int

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        context: Tensor | None = None,
    ) -> Tensor:
        """``n`` draws of shape ``(n, D)``, by default on the base's device and in its dtype
        (a base that takes no context ignores it)."""
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

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of each row of ``z`` ``(B, D)``; shape ``(B,)``. (No context.)"""
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

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of each row of ``z`` ``(B, D)``; shape ``(B,)``. (No context.)"""
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


class ContextMixture(nn.Module):
    """A mixture of ``components`` full-covariance Gaussians whose weights and means move with
    a context ``c`` of ``context_features`` numbers: ``log w_k(c) = a_k + v_k . c + g' Q_k g``
    (normalized over k) with ``g`` the last ``squared`` numbers of ``c`` (a conditional
    flow's condition, after the modelled labels' one-hot codes, whose squares would repeat
    them), ``m_k(c) = m_k + W_k c``, covariances ``L_k L_k^T`` fixed in ``c``.

    The base of a conditional flow. Its family holds the conditionals of a Gaussian mixture
    given some of its columns (weights quadratic, means linear in them) and, with one-hot
    labels as the context, a mixture of each label's own, so a flow on it starts from the
    structure such tables have. Unlike :class:`GaussianMixture`, its numbers are parameters,
    trained with the flow; :meth:`take` starts it as a fitted mixture that ignores the
    context. For every context it is a mixture of Gaussians, so it integrates to one.
    """

    def __init__(self, features: int, components: int, context_features: int,
                 squared: int | None = None) -> None:
        super().__init__()
        if components < 1 or context_features < 1:
            raise ValueError("a context mixture needs a component and a context")
        squared = context_features if squared is None else squared
        if not 0 <= squared <= context_features:
            raise ValueError(f"squared must be in 0..{context_features}, got {squared}")
        self.features, self.components = features, components
        self.context_features, self.squared = context_features, squared
        k, d, c = components, features, context_features
        self.logits = nn.Parameter(torch.zeros(k))
        self.logits_context = nn.Parameter(torch.zeros(k, c))
        self.logits_square = nn.Parameter(torch.zeros(k, squared, squared))
        self.means = nn.Parameter(torch.zeros(k, d))
        self.means_context = nn.Parameter(torch.zeros(k * d, c))
        self.tril = nn.Parameter(torch.zeros(k, d, d))  # strictly lower part of L_k
        self.log_diag = nn.Parameter(torch.zeros(k, d))  # log of L_k's diagonal

    @torch.no_grad()
    def take(self, mixture: GaussianMixture) -> ContextMixture:
        """Start as ``mixture``, whatever the context."""
        ref = self.logits
        self.logits.copy_(mixture.log_weights.to(ref))
        self.means.copy_(mixture.means.to(ref))
        self.tril.copy_(mixture.scale_tril.to(ref).tril(-1))
        self.log_diag.copy_(mixture.scale_tril.to(ref).diagonal(dim1=1, dim2=2).log())
        self.logits_context.zero_()
        self.logits_square.zero_()
        self.means_context.zero_()
        return self

    def _parts(self, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per row: log-weights ``(B, K)``, means ``(B, K, D)``; and the factors ``(K, D, D)``."""
        k, s = self.components, self.squared
        log_w = self.logits + context @ self.logits_context.T
        if s:
            g = context[:, context.shape[1] - s:]
            log_w = log_w + ((g @ self.logits_square.view(k * s, s).T).view(-1, k, s)
                             * g.unsqueeze(1)).sum(dim=2)
        log_w = torch.log_softmax(log_w, dim=1)
        means = self.means + (context @ self.means_context.T).view(
            -1, self.components, self.features)
        scale = self.tril.tril(-1) + torch.diag_embed(self.log_diag.exp())
        return log_w, means, scale

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Log-density of each row of ``z`` ``(B, D)`` given its ``context`` ``(B, C)``."""
        if context is None:
            raise ValueError("a context mixture needs a context")
        log_w, means, scale = self._parts(context)
        eye = torch.eye(self.features, device=z.device, dtype=z.dtype)
        whiten = torch.linalg.solve_triangular(scale, eye.expand_as(scale), upper=False)
        y = torch.einsum("kij,bkj->bki", whiten, z.unsqueeze(1) - means)
        log_det = self.log_diag.sum(dim=1)
        return torch.logsumexp(log_w - log_det - 0.5 * self.features * math.log(2 * math.pi)
                               - 0.5 * y.pow(2).sum(dim=2), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype | None = None,
               context: Tensor | None = None) -> Tensor:
        """One draw per row of ``context`` ``(n, C)``: a component by its weight there, then
        its Gaussian."""
        if context is None or context.shape[0] != n:
            raise ValueError(f"a context mixture needs a context of {n} rows")
        device = torch.device(device) if device is not None else self.logits.device
        dtype = dtype or self.logits.dtype
        if n == 0:
            return torch.zeros(0, self.features, device=device, dtype=dtype)
        log_w, means, scale = self._parts(context.to(self.logits))
        k = torch.multinomial(log_w.exp(), 1, generator=generator).squeeze(1)
        eps = torch.randn(n, self.features, generator=generator, device=device,
                          dtype=self.logits.dtype)
        draws = means[torch.arange(n, device=device), k]
        for c in range(self.components):  # one product per component, not a factor per row
            rows = (k == c).nonzero().squeeze(1)
            draws[rows] += eps[rows] @ scale[c].T
        return draws.to(dtype)


def fit_context_mixture(mixture: ContextMixture, z: Tensor, context: Tensor,
                        generator: torch.Generator | None = None, steps: int = 300,
                        batch: int = 4096, lr: float = 0.01,
                        deadline: float | None = None) -> ContextMixture:
    """Fit how ``mixture``'s weights and means move with the context, by ``steps`` Adam steps
    on random batches of the rows ``z`` and their ``context`` (fewer once
    ``time.perf_counter()`` passes ``deadline``), the rest of the flow left as it is. Run
    from :meth:`ContextMixture.take`, so that a conditional flow's training starts from a
    base that already depends on its condition, as an unconditional flow's starts from EM's
    mixture."""
    optimizer = torch.optim.Adam(list(mixture.parameters()), lr=lr)
    for _ in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            break
        pick = torch.randint(0, z.shape[0], (min(batch, z.shape[0]),), generator=generator)
        pick = pick.to(z.device)
        loss = -mixture.log_prob(z[pick], context[pick]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return mixture


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

"""A normalizing flow and the builders for its families.

``Flow.log_prob(x) = base.log_prob(z) + logabsdet`` with ``(z, logabsdet) = transform(x)``;
sampling pushes base draws through ``transform.inverse``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .autoregressive import MaskedAffineAutoregressive
from .base import Compose, Transform, check_inputs
from .coupling import AffineCoupling, alternating_mask
from .distributions import ContextMixture, GaussianMixture, StandardNormal
from .elementwise import ContextStandardize, ElementwiseAffine
from .linear import LULinear, Whiten
from .spline import ElementwiseSpline, MaskedSplineAutoregressive
from .tails import Tails

__all__ = ["KINDS", "Flow", "build", "maf", "nsf", "realnvp", "unmix"]

KINDS = ("maf", "realnvp", "nsf", "unmix")


class Flow(nn.Module):
    """A density on ``R^D``: a transform to latent space and a base density there.

    The base is the standard normal, or with ``config["mixture"] = K`` a mixture of ``K``
    Gaussians (:class:`GaussianMixture`, set with :meth:`set_mixture`; MAF-MoG). With a mixture
    base the latent rows follow that mixture rather than ``N(0, I)``. With
    ``config["base_context"] = G`` too, the mixture's weights and means move with the
    context, its weights quadratic in the last ``G`` context numbers (:class:`ContextMixture`).

    Attributes:
        config: plain data that :func:`build` turns back into the same architecture.
    """

    def __init__(self, transform: Transform, config: dict[str, Any]) -> None:
        super().__init__()
        self.transform = transform
        self.config = dict(config)
        self.base = _base_of(self.config, transform.features, transform.context_features)

    def set_mixture(self, mixture: GaussianMixture, condition: int = 0) -> Flow:
        """Make ``mixture`` (on this flow's features) the base, recording its size in
        ``config``; with ``condition``, the width of a conditional flow's condition (the
        last numbers of its context), as the start of a :class:`ContextMixture`."""
        if mixture.features != self.features:
            raise ValueError(f"expected a mixture on {self.features} features, "
                             f"got {mixture.features}")
        if condition and not 0 < condition <= self.context_features:
            raise ValueError("a context mixture needs a flow with a context that holds the "
                             "condition")
        ref = next(self.transform.parameters(), None)
        self.config["mixture"] = mixture.components
        self.config.pop("base_context", None)
        if condition:
            self.config["base_context"] = int(condition)
        self.base = _base_of(self.config, self.features, self.context_features)
        if condition:
            self.base.take(mixture)
        else:
            self.base.load_state_dict(mixture.state_dict())
        if ref is not None:
            self.base.to(device=ref.device, dtype=ref.dtype)
        return self

    def drop_tails(self) -> Flow:
        """Remove the :class:`Tails` layer, leaving the flow as if built without it (for a layer
        that compresses no column: files then stay readable by releases without it), and from
        ``config``."""
        self.transform = _chain([t for t in self.steps if not isinstance(t, Tails)],
                                self.features)
        self.config.pop("tails", None)
        return self

    @property
    def steps(self) -> list[Transform]:
        """The transform's layers in order, data side first."""
        steps = self.transform
        return list(steps.transforms) if isinstance(steps, Compose) else [steps]

    @property
    def features(self) -> int:
        return self.transform.features

    @property
    def context_features(self) -> int:
        return self.transform.context_features

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Natural-log density of each row, shape ``(B,)``."""
        z, ladj = self.transform(x, context)
        return self.base.log_prob(z, context) + ladj

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Same as :meth:`log_prob`, so that ``DistributedDataParallel(flow)(x)`` trains it."""
        return self.log_prob(x, context)

    def to_latent(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Map data rows to latent rows (the normalizing direction)."""
        return self.transform(x, context)[0]

    def from_latent(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Map latent rows to data rows."""
        return self.transform.inverse(z, context)[0]

    def sample(
        self,
        n: int,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``n`` rows; with a context, one row per context row (``n`` must match)."""
        if context is not None and context.shape[0] != n:
            raise ValueError(f"expected a context of {n} rows, got {context.shape[0]}")
        ref = next(self.parameters())
        z = self.base.sample(n, generator=generator, device=ref.device, dtype=ref.dtype,
                             context=context)
        check_inputs(z, context, self.features, self.context_features)
        return self.transform.inverse(z, context)[0]


def _base_of(config: dict[str, Any], features: int, context_features: int
             ) -> StandardNormal | GaussianMixture | ContextMixture:
    """The base that ``config`` names: see :class:`Flow`."""
    components = int(config.get("mixture", 0))
    if not components:
        return StandardNormal(features)
    if config.get("base_context"):
        return ContextMixture(features, components, context_features,
                              int(config["base_context"]))
    return GaussianMixture(features, components)


def _check_sizes(features: int, layers: int, hidden: int, depth: int) -> None:
    for name, value in (("features", features), ("layers", layers), ("hidden", hidden),
                        ("depth", depth)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def realnvp(
    features: int,
    layers: int = 5,
    hidden: int = 128,
    depth: int = 2,
    context_features: int = 0,
    scale_bound: float = 5.0,
    whiten: bool = False,
    mixture: int = 0,
    tails: bool = False,
) -> Flow:
    """RealNVP: affine couplings with alternating checkerboard masks.

    With one feature, coupling means nothing and a single per-feature affine layer is used.
    ``whiten`` puts a :class:`Whiten` layer first (after the
    per-context layer, if any; set it with ``init_from``). ``mixture=K`` gives the flow a base
    of ``K`` Gaussians (see :class:`Flow`). ``tails`` puts a :class:`Tails` layer first (after the
    per-context layer, if any; set it with ``init_from``).
    """
    _check_sizes(features, layers, hidden, depth)
    config = dict(kind="realnvp", features=features, layers=layers, hidden=hidden, depth=depth,
                  context_features=context_features, scale_bound=scale_bound, whiten=whiten,
                  **_base(mixture), **_tails(tails))
    return Flow(_stack(
        config, lambda: ElementwiseAffine(1, hidden, depth, context_features, scale_bound),
        lambda: [AffineCoupling(features, alternating_mask(features, i), hidden, depth,
                                context_features, scale_bound) for i in range(layers)]), config)


def _base(mixture: int) -> dict[str, int]:
    """The config entry of the base: none for the standard normal (so that such model files
    stay readable by releases without mixture bases), else ``mixture`` (the number of
    components)."""
    if mixture < 0:
        raise ValueError(f"mixture must be 0 (standard normal) or a component count, "
                         f"got {mixture}")
    return {"mixture": int(mixture)} if mixture else {}


def _tails(tails: bool) -> dict[str, bool]:
    """The config entry of the heavy-tail layer: none without it (so that such model files
    stay readable by releases without the layer)."""
    return {"tails": True} if tails else {}


def _orders(features: int, layers: int, orders: list[list[int]] | None) -> list[list[int]]:
    """One autoregressive ordering per layer: as given, or reversed between layers."""
    if orders is None:
        orders = [list(range(features)) if i % 2 == 0 else list(range(features))[::-1]
                  for i in range(layers)]
    if len(orders) != layers:
        raise ValueError(f"expected {layers} orders, got {len(orders)}")
    return [list(map(int, o)) for o in orders]


def _stack(config: dict[str, Any], single: Callable[[], Transform],
           layers: Callable[[], list[Transform]]) -> Transform:
    """The transform of a flow: ``single()`` for one feature, else ``layers()``.

    With a context, a per-feature affine layer whose shift and scale depend on it comes first
    (:class:`ContextStandardize`): it lets each context (say, each category) move and rescale
    the data directly, which the layers after it would learn slowly for rare contexts. With
    ``config["tails"]``, a :class:`Tails` layer follows (after the per-context layer, so that
    a column whose spread differs between categories does not look heavy-tailed); with
    ``config["whiten"]``, a :class:`Whiten` layer. A lone one-feature layer is not wrapped
    (see :func:`_chain`).
    """
    features, context = config["features"], config["context_features"]
    first: list[Transform] = []
    if features > 1 and context:
        first.append(ContextStandardize(features, context, config["scale_bound"]))
    if config.get("tails"):
        first.append(Tails(features, context))
    if config["whiten"]:
        first.append(Whiten(features, context))
    return _chain(first + ([single()] if features == 1 else layers()), features)


def _chain(steps: list[Transform], features: int) -> Transform:
    """``steps`` as one transform; a lone one-feature layer is not wrapped in :class:`Compose`,
    so that its weights keep the state-dict keys that model files of one-column flows hold."""
    return steps[0] if len(steps) == 1 and features == 1 else Compose(*steps)


def maf(
    features: int,
    layers: int = 5,
    hidden: int = 128,
    depth: int = 2,
    context_features: int = 0,
    scale_bound: float = 5.0,
    orders: list[list[int]] | None = None,
    whiten: bool = False,
    mixture: int = 0,
    tails: bool = False,
) -> Flow:
    """MAF: masked affine autoregressive layers, the ordering reversed between layers.

    Pass ``orders`` (one permutation per layer) for other orderings, for example random ones.
    With one feature a single per-feature affine layer is used. ``whiten`` puts a
    :class:`Whiten` layer first (after the
    per-context layer, if any; set it with ``init_from``). ``mixture=K`` gives the flow a base
    of ``K`` Gaussians (see :class:`Flow`). ``tails`` puts a :class:`Tails` layer first (after the
    per-context layer, if any; set it with ``init_from``).
    """
    _check_sizes(features, layers, hidden, depth)
    orders = _orders(features, layers, orders)
    config = dict(kind="maf", features=features, layers=layers, hidden=hidden, depth=depth,
                  context_features=context_features, scale_bound=scale_bound, orders=orders,
                  whiten=whiten, **_base(mixture), **_tails(tails))
    return Flow(_stack(
        config, lambda: ElementwiseAffine(1, hidden, depth, context_features, scale_bound),
        lambda: [MaskedAffineAutoregressive(features, torch.tensor(o), hidden, depth,
                                            context_features, scale_bound) for o in orders]),
        config)


def nsf(
    features: int,
    layers: int = 5,
    hidden: int = 128,
    depth: int = 2,
    context_features: int = 0,
    scale_bound: float = 5.0,
    bins: int = 8,
    bound: float = 5.0,
    orders: list[list[int]] | None = None,
    whiten: bool = False,
    mixture: int = 0,
    tails: bool = False,
) -> Flow:
    """Neural spline flow: masked autoregressive rational-quadratic splines.

    Each layer bends every feature through a monotone spline of ``bins`` pieces on
    ``[-bound, bound]`` (the identity outside), its knots set by MADE on the earlier features;
    the ordering is reversed between layers unless ``orders`` is given. Density evaluation
    takes one pass per layer, sampling ``D``. With one feature, one spline with free knots.
    ``scale_bound`` bounds the log-scale of the per-context affine layer that comes first when
    there is a context. ``whiten`` puts a :class:`Whiten` layer first (after the
    per-context layer, if any; set it with
    ``init_from``). ``mixture=K`` gives the flow a base of ``K`` Gaussians (see :class:`Flow`).
    ``tails`` puts a :class:`Tails` layer first (after the per-context layer, if any; set it
    with ``init_from``): splines are the identity outside ``[-bound, bound]``, so heavy tails
    there stay out of their reach.
    """
    _check_sizes(features, layers, hidden, depth)
    orders = _orders(features, layers, orders)
    config = dict(kind="nsf", features=features, layers=layers, hidden=hidden, depth=depth,
                  context_features=context_features, scale_bound=scale_bound, bins=bins,
                  bound=bound, orders=orders, whiten=whiten, **_base(mixture),
                  **_tails(tails))
    return Flow(_stack(
        config, lambda: ElementwiseSpline(1, hidden, depth, context_features, bins, bound),
        lambda: [MaskedSplineAutoregressive(features, torch.tensor(o), hidden, depth,
                                            context_features, bins, bound) for o in orders]),
        config)


def unmix(
    features: int,
    layers: int = 3,
    hidden: int = 128,
    depth: int = 2,
    context_features: int = 0,
    scale_bound: float = 5.0,
    bins: int = 8,
    bound: float = 5.0,
    whiten: bool = False,
    mixture: int = 0,
    tails: bool = False,
) -> Flow:
    """Learned linear maps alternating with per-feature splines: ``layers`` times an
    :class:`LULinear` then an :class:`ElementwiseSpline` of ``bins`` pieces on
    ``[-bound, bound]``.

    Each step can undo a linear mixing of the features and then bend each one on its own:
    the structure of tables whose columns are skewed or heavy-tailed sources mixed together
    (sensor channels, portfolio returns), which autoregressive layers only approximate and
    overfit on. With few parameters (``layers * D * (D + 3 * bins)``), it needs many rows
    less than a MAF. ``hidden`` and ``depth`` size the splines' network when there is a
    context; ``scale_bound``, ``whiten``, ``mixture`` and ``tails`` are as in :func:`nsf`.
    """
    _check_sizes(features, layers, hidden, depth)
    config = dict(kind="unmix", features=features, layers=layers, hidden=hidden, depth=depth,
                  context_features=context_features, scale_bound=scale_bound, bins=bins,
                  bound=bound, whiten=whiten, **_base(mixture), **_tails(tails))

    def spline() -> Transform:
        return ElementwiseSpline(features, hidden, depth, context_features, bins, bound)

    return Flow(_stack(config, spline, lambda: [
        step for _ in range(layers)
        for step in (LULinear(features, context_features), spline())]), config)


def build(config: dict[str, Any]) -> Flow:
    """Rebuild a flow from its ``config``; load the weights with ``load_state_dict``."""
    config = dict(config)
    kind = config.pop("kind", None)
    base_context = int(config.pop("base_context", 0))
    builders = {"maf": maf, "realnvp": realnvp, "nsf": nsf, "unmix": unmix}
    if kind not in builders:
        raise ValueError(f"unknown flow kind {kind!r}; expected one of {', '.join(KINDS)}")
    flow = builders[kind](**config)
    if base_context:
        flow.config["base_context"] = base_context
        flow.base = _base_of(flow.config, flow.features, flow.context_features)
    return flow

"""The transform protocol and its composition.

A transform maps data to latent in ``forward`` (the normalizing direction) and latent to data in
``inverse``. Both return ``(outputs, logabsdet)`` where ``logabsdet`` has shape ``(B,)`` and is
``log |det d outputs / d inputs|``. At matching points the two log-determinants sum to zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Compose", "Inverse", "Transform", "check_inputs", "soft_clamp",
           "soft_clamp_divisor"]


def check_inputs(
    x: Tensor, context: Tensor | None, features: int, context_features: int
) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, features)`` and ``context`` fits it."""
    if x.dim() != 2 or x.shape[1] != features:
        raise ValueError(f"expected inputs of shape (B, {features}), got {tuple(x.shape)}")
    if context_features:
        if context is None:
            raise ValueError(f"this transform needs a context of shape (B, {context_features})")
        if context.dim() != 2 or context.shape != (x.shape[0], context_features):
            raise ValueError(
                f"expected context of shape ({x.shape[0]}, {context_features}), "
                f"got {tuple(context.shape)}"
            )
    elif context is not None:
        raise ValueError("this transform takes no context (context_features=0)")


class Transform(nn.Module):
    """Base class: an invertible map with a tractable log-determinant.

    Subclasses set ``features`` and ``context_features`` and implement ``forward`` and
    ``inverse`` with the signature ``(x, context=None) -> (y, logabsdet)``.
    """

    features: int
    context_features: int

    def __init__(self, features: int, context_features: int = 0) -> None:
        super().__init__()
        if features < 1:
            raise ValueError(f"features must be at least 1, got {features}")
        if context_features < 0:
            raise ValueError(f"context_features must be >= 0, got {context_features}")
        self.features = features
        self.context_features = context_features

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class Compose(Transform):
    """Apply transforms in sequence; ``inverse`` runs them in reverse order."""

    def __init__(self, *transforms: Transform) -> None:
        if not transforms:
            raise ValueError("Compose needs at least one transform")
        features = transforms[0].features
        context_features = transforms[0].context_features
        for t in transforms:
            if t.features != features or t.context_features != context_features:
                raise ValueError(
                    f"all transforms must share features={features} and "
                    f"context_features={context_features}, got {t.features} and "
                    f"{t.context_features}"
                )
        super().__init__(features, context_features)
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(x, context, self.features, self.context_features)
        ladjs = []
        for t in self.transforms:
            x, ladj = t(x, context)
            ladjs.append(ladj)
        # summed at once: two operations to train through, not one per layer
        return x, torch.stack(ladjs).sum(dim=0)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_inputs(z, context, self.features, self.context_features)
        total = z.new_zeros(z.shape[0])
        for t in reversed(self.transforms):
            z, ladj = t.inverse(z, context)
            total = total + ladj
        return z, total


class Inverse(Transform):
    """Swap a transform's two directions."""

    def __init__(self, transform: Transform) -> None:
        super().__init__(transform.features, transform.context_features)
        self.transform = transform

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, context)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.forward(z, context)


def soft_clamp(a: Tensor, bound: float) -> Tensor:
    """Squash ``a`` smoothly into ``(-bound, bound)``; the identity near zero (slope 1)."""
    return a / soft_clamp_divisor(a, bound)


def soft_clamp_divisor(a: Tensor, bound: float) -> Tensor:
    """``q = 1 + |a| / bound``: ``soft_clamp(a) = a / q``, and its slope is ``1 / q**2``."""
    return a.abs().div_(bound).add_(1.0)  # in place on the fresh |a|: autograd keeps ``a``


"""Networks that parameterize the transforms: a plain MLP and MADE.

Reference: Germain et al., "MADE: Masked Autoencoder for Distribution Estimation" (2015),
https://arxiv.org/abs/1502.03509.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MADE", "MLP", "MaskedLinear"]


class MLP(nn.Sequential):
    """``layers`` hidden layers of width ``hidden`` with ReLU; the last layer starts at zero.

    Starting the output layer at zero makes every transform start as the identity, which keeps
    the first steps of training well behaved.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int, layers: int) -> None:
        if layers < 1:
            raise ValueError(f"an MLP needs at least one hidden layer, got {layers}")
        modules: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            # in place: saves an allocation per layer (about a quarter of scoring time on a CPU)
            modules += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        last = nn.Linear(width, out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        modules.append(last)
        super().__init__(*modules)


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (a buffer)."""

    def __init__(self, mask: Tensor) -> None:
        out_features, in_features = mask.shape
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(torch.get_default_dtype()))

    def masked_weight(self) -> Tensor:
        return self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class MADE(nn.Module):
    """A masked MLP whose output ``k * features + i`` depends only on inputs before ``i``.

    "Before" follows ``order``: a permutation of ``range(features)`` where ``order[j]`` is the
    position of feature ``j`` in the autoregressive ordering. Hidden units get degrees cycling over
    ``1 .. features - 1`` (``0 .. features - 1`` with a context); a hidden mask keeps connections
    with degree ``>=``, the output mask strict ``>``. The context, if any, enters every
    first-layer unit through an unmasked linear layer, so every output may depend on it.

    Arguments:
        features: number of autoregressive inputs ``D`` (at least 2).
        outputs_per_feature: ``K``; the output has ``K * D`` columns grouped by parameter:
            ``out[:, k * D + i]`` is parameter ``k`` of feature ``i``.
        hidden: hidden width.
        layers: number of hidden layers.
        order: the autoregressive position of each feature (default ``0 .. D-1``).
        context_features: size of the optional context.
    """

    def __init__(
        self,
        features: int,
        outputs_per_feature: int,
        hidden: int,
        layers: int,
        order: Tensor | None = None,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if features < 2:
            raise ValueError(f"MADE needs at least 2 features, got {features}")
        if layers < 1:
            raise ValueError(f"MADE needs at least one hidden layer, got {layers}")
        if order is None:
            order = torch.arange(features)
        order = torch.as_tensor(order, dtype=torch.long)
        if sorted(order.tolist()) != list(range(features)):
            raise ValueError(f"order must be a permutation of 0..{features - 1}")
        self.features = features
        self.outputs_per_feature = outputs_per_feature
        self.context_features = context_features
        self.register_buffer("order", order.clone())

        in_degrees = order + 1  # 1..D
        # Hidden degrees cycle over 1..D-1. With a context they start at 0: units of degree 0
        # see only the context, so the first feature's parameters can depend on it too.
        low = 0 if context_features else 1
        hidden_degrees = torch.arange(hidden) % (features - low) + low
        masks = [(hidden_degrees[:, None] >= in_degrees[None, :])]
        for _ in range(layers - 1):
            masks.append(hidden_degrees[:, None] >= hidden_degrees[None, :])
        out_degrees = in_degrees.repeat(outputs_per_feature)
        masks.append(out_degrees[:, None] > hidden_degrees[None, :])

        self.hidden_layers = nn.ModuleList(MaskedLinear(m) for m in masks[:-1])
        self.output_layer = MaskedLinear(masks[-1])
        nn.init.zeros_(self.output_layer.weight)
        nn.init.zeros_(self.output_layer.bias)
        self.context_layer = (
            nn.Linear(context_features, hidden, bias=False) if context_features else None
        )

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.output_layer(self.hidden(x, context))

    def hidden(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The last hidden layer's activations, before ``output_layer``."""
        h = self.hidden_layers[0](x)
        if self.context_layer is not None:
            if context is None:
                raise ValueError("this MADE needs a context")
            h = h + self.context_layer(context)
        h = F.relu_(h)  # in place: the input is a fresh matmul output, so this is safe
        for layer in self.hidden_layers[1:]:
            h = F.relu_(layer(h))
        return h

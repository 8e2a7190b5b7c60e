"""Networks that parameterize the transforms: a plain MLP and MADE.

Reference: Germain et al., "MADE: Masked Autoencoder for Distribution Estimation" (2015),
https://arxiv.org/abs/1502.03509.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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
        extra = self.context_term(context)
        if torch.is_grad_enabled():
            return _MaskedStack.apply(x, extra, *self.stack())
        return stack_forward(x, extra, self.stack())[0]

    def stack(self) -> list[Tensor]:
        """``weight, mask, bias`` of every masked layer, first to last."""
        tensors: list[Tensor] = []
        for layer in (*self.hidden_layers, self.output_layer):
            tensors += [layer.weight, layer.mask, layer.bias]
        return tensors

    def context_term(self, context: Tensor | None) -> Tensor | None:
        """What the context adds to the first layer's pre-activation (``None`` without one)."""
        if self.context_layer is None:
            return None
        if context is None:
            raise ValueError("this MADE needs a context")
        return self.context_layer(context)

    def transposed(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """:meth:`forward`'s output transposed, ``(outputs, B)``, without autograd: one
        product of the output weights with the hidden activations, each output's values
        for all rows then one contiguous row."""
        layer = self.output_layer
        return torch.addmm(layer.bias[:, None], layer.masked_weight(),
                           self.hidden(x, context).t())

    def hidden(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The last hidden layer's activations, before ``output_layer``."""
        return torch.relu_(stack_forward(x, self.context_term(context), self.stack()[:-3])[0])

    @torch.no_grad()
    def sweep(self, solve: Callable[[int, Tensor], Tensor], rows: Tensor,
              context: Tensor | None = None) -> Tensor:
        """Run the autoregression: for each position ``p`` of the ordering in turn,
        ``solve(p, out)`` turns the outputs of the feature there, ``(B, K)`` (which depend only
        on the features before it), into that feature's values ``(B,)``. Returns the features
        ``(B, D)`` in their own order, ``rows``'s dtype and device.

        Each hidden unit is computed once, when the last feature it depends on is known, and
        added once into the units and outputs that depend on it, so the whole sweep costs
        about one network pass instead of one pass per feature (sampling, inverses).
        """
        sweep = _Sweep(self, rows, self.context_term(context))
        sweep.settle(0)  # units that see only the context
        for p in range(self.features):
            sweep.x[p] = solve(p, sweep.outputs(p))
            if p + 1 < self.features:
                sweep.learn(p)
                sweep.settle(p + 1)
        return sweep.x[self.order].T.contiguous()


class _Sweep:
    """A MADE's layers with the hidden units sorted by degree and the inputs and outputs by
    position, so that the units of one degree are one slice, and the running pre-activations
    of a :meth:`MADE.sweep` of ``rows`` rows.

    Everything is held transposed, a row per unit (or feature, or output) and a column per
    row of the batch, so that a slice of units is one contiguous block: settling the units of
    one degree adds them into every later unit and output with one product (``addmm_``:
    inner size the slice's few units, fused with the sum). In all, about one network pass of
    arithmetic.
    """

    def __init__(self, made: MADE, rows: Tensor, extra: Tensor | None) -> None:
        layers = (*made.hidden_layers, made.output_layer)
        weights = [layer.masked_weight() for layer in layers]
        degree = made.hidden_layers[0].mask.sum(dim=1).long()  # inputs a unit sees
        by_degree = torch.argsort(degree, stable=True)
        at = torch.argsort(made.order)  # the feature at each position
        bounds = torch.arange(made.features + 1, device=degree.device)
        self.starts = torch.searchsorted(degree[by_degree], bounds).tolist()
        k, d, h = made.outputs_per_feature, made.features, by_degree.shape[0]
        self.first = weights[0][by_degree][:, at].T.contiguous()  # (D, H)
        self.weights = [w[by_degree][:, by_degree] for w in weights[1:-1]]
        self.weights.append(weights[-1].view(k, d, h)[:, at][:, :, by_degree]
                            .transpose(0, 1).reshape(d * k, h))  # outputs by position
        self.k, n = k, rows.shape[0]
        self.pre = [layer.bias[by_degree, None].expand(h, n).clone() for layer in layers[:-1]]
        if extra is not None:
            self.pre[0] += extra[:, by_degree].T
        bias = made.output_layer.bias.view(k, d)[:, at].T.reshape(d * k, 1)
        self.out = bias.expand(d * k, n).clone()
        self.x = rows.new_zeros(d, n)  # the features by position

    def outputs(self, p: int) -> Tensor:
        """The outputs of the feature at position ``p``, ``(B, K)``."""
        return self.out[p * self.k : (p + 1) * self.k].T

    def learn(self, p: int) -> None:
        """The feature at position ``p`` is known: into the first layer's units of higher
        degree."""
        low = self.starts[p + 1]
        self.pre[0][low:].addr_(self.first[p, low:], self.x[p])

    def settle(self, q: int) -> None:
        """The units of degree ``q`` are final in every layer: activate them and add them
        into the later layers' units and the outputs of positions ``q`` on."""
        low, high = self.starts[q], self.starts[q + 1]
        if low == high:
            return
        units = self.pre[0][low:high].relu()
        for pre, weight in zip(self.pre[1:], self.weights, strict=False):
            pre[low:].addmm_(weight[low:, low:high], units)
            units = pre[low:high].relu()
        start = q * self.k
        self.out[start:].addmm_(self.weights[-1][start:, low:high], units)


def stack_forward(x: Tensor, extra: Tensor | None, tensors: Sequence[Tensor]
                  ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """MADE's masked layers: ``(output, inputs of each layer, masked weights)``.

    ``tensors`` is :meth:`MADE.stack`; ``extra`` (:meth:`MADE.context_term`) is added to the
    first layer's pre-activation; every layer but the last is followed by a ReLU.
    """
    weights = [tensors[i] * tensors[i + 1] for i in range(0, len(tensors), 3)]
    inputs = [x]
    h = F.linear(x, weights[0], tensors[2])
    if extra is not None:
        h = h + extra
    for k in range(1, len(weights)):
        h = torch.relu_(h)  # in place: a fresh matmul output
        inputs.append(h)
        h = F.linear(h, weights[k], tensors[3 * k + 2])
    return h, inputs, weights


def stack_backward(grad: Tensor, saved: Sequence[Tensor], needs: Sequence[bool]
                   ) -> tuple[Tensor | None, Tensor | None, list[Tensor | None]]:
    """Gradients of :func:`stack_forward`: ``(input, extra, [weight, mask, bias] per layer)``.

    ``saved`` is ``inputs + weights + masks`` as :func:`stack_forward` and the stack give
    them; ``needs`` says which of ``x, extra, *stack`` want a gradient. Weight gradients are
    masked, as autograd's would be through ``weight * mask``.
    """
    n = len(saved) // 3
    inputs, weights, masks = saved[:n], saved[n:2 * n], saved[2 * n:]
    grads: list[Tensor | None] = [None] * (3 * n)
    for k in reversed(range(n)):
        if needs[2 + 3 * k]:
            grads[3 * k] = _weight_grad(grad, inputs[k]) * masks[k]
        if needs[4 + 3 * k]:
            grads[3 * k + 2] = grad.sum(dim=0)
        if k:  # through the ReLU, in place: the product is fresh
            grad = _input_grad(grad, weights[k])
            torch.ops.aten.threshold_backward.grad_input(grad, inputs[k], 0, grad_input=grad)
    grad_x = _input_grad(grad, weights[0]) if needs[0] else None
    return grad_x, grad if needs[1] else None, grads


def _weight_grad(grad: Tensor, inputs: Tensor) -> Tensor:
    """``grad.T @ inputs``, computed as the transpose of ``inputs.T @ grad`` when that is wider.

    The narrow side goes first: on x86 CPU BLAS a product with a handful of columns runs 3 to
    4 times slower than its transpose (benchmarks/README.md, micro-benchmark).
    """
    if inputs.shape[1] < grad.shape[1]:
        return inputs.t().mm(grad).t()
    return grad.t().mm(inputs)


def _input_grad(grad: Tensor, weight: Tensor) -> Tensor:
    """``grad @ weight``, transposed like :func:`_weight_grad` when the result is narrow."""
    if weight.shape[1] < _NARROW:
        return weight.t().mm(grad.t()).t()
    return grad.mm(weight)


_NARROW = 16  # results with fewer columns are computed transposed (from 16 on it costs more)


class _MaskedStack(torch.autograd.Function):
    """MADE's masked layers as one autograd node, with a hand-written backward.

    The same products autograd would run, without its bookkeeping for each small operation,
    and with narrow products in their fast orientation. First derivatives only: nothing in
    the engine takes second ones.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, extra: Tensor | None, *tensors: Tensor) -> Tensor:
        out, inputs, weights = stack_forward(x, extra, tensors)
        ctx.save_for_backward(*inputs, *weights, *tensors[1::3])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grad_x, grad_extra, grads = stack_backward(grad, ctx.saved_tensors,
                                                   ctx.needs_input_grad)
        return (grad_x, grad_extra, *grads)

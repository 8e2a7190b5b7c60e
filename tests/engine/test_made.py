"""MADE connectivity: output i depends exactly on the inputs before i in the ordering."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from flowcli.engine import MADE


def expected_pattern(order: torch.Tensor, k: int) -> torch.Tensor:
    """(k*D, D) booleans: True where output row may depend on input column."""
    allowed = order[None, :] < order[:, None]  # [i, j]: j comes before i
    return allowed.repeat(k, 1)


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]])
@pytest.mark.parametrize("layers", [1, 3])
def test_jacobian_pattern_is_autoregressive(order: list[int], layers: int) -> None:
    order_t = torch.tensor(order)
    made = MADE(5, 2, 32, layers, order_t).double()
    with torch.no_grad():
        for p in made.parameters():
            p.copy_(torch.randn_like(p))
    jac = jacobian(lambda v: made(v.unsqueeze(0)).squeeze(0), torch.randn(5, dtype=torch.float64))
    nonzero = jac.abs() > 0
    allowed = expected_pattern(order_t, 2)
    assert not (nonzero & ~allowed).any(), "an output depends on a later input"
    # with 32 hidden units and random weights every allowed path is used
    assert (nonzero == allowed).all()


def test_mask_product_is_strictly_lower_triangular_in_order() -> None:
    order = torch.tensor([3, 1, 0, 2])
    made = MADE(4, 1, 12, 2, order)
    product = made.output_layer.mask
    for layer in reversed(made.hidden_layers):
        product = product @ layer.mask
    allowed = expected_pattern(order, 1)
    assert ((product > 0) == allowed).all()


def test_context_reaches_every_output() -> None:
    made = MADE(3, 2, 16, 2, context_features=2).double()
    with torch.no_grad():
        for p in made.parameters():
            p.copy_(torch.randn_like(p))
    x = torch.randn(1, 3, dtype=torch.float64)
    c0 = torch.randn(2, dtype=torch.float64)
    jac = jacobian(lambda c: made(x, c.unsqueeze(0)).squeeze(0), c0)
    assert (jac.abs().sum(dim=1) > 0).all()


def test_refuses_one_feature() -> None:
    with pytest.raises(ValueError, match="at least 2 features"):
        MADE(1, 2, 8, 1)


def _randomized(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return module


def _gradients(fn, leaves: list[torch.Tensor]) -> list[torch.Tensor]:  # noqa: ANN001
    outputs = fn()
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outputs)
    return list(torch.autograd.grad(loss, leaves))


# 5 features: narrow products (computed transposed); 20 features with 24 hidden units: the
# first layer's input gradient is wide, its weight gradient and the output layer's are not
@pytest.mark.parametrize(("features", "hidden"), [(5, 32), (20, 24)])
@pytest.mark.parametrize("context", [0, 3])
@pytest.mark.parametrize("layers", [1, 2])
def test_hand_written_backward_matches_autograd(features: int, hidden: int, context: int,
                                                layers: int) -> None:
    """MADE's one-node backward against autograd through the same forward, every gradient."""
    from flowcli.engine.nn import stack_forward

    made = _randomized(MADE(features, 3, hidden, layers, torch.randperm(features),
                            context)).double()
    x = torch.randn(9, features, dtype=torch.float64, requires_grad=True)
    c = torch.randn(9, context, dtype=torch.float64) if context else None
    leaves = [x, *made.parameters()]
    fused = _gradients(lambda: made(x, c), leaves)
    plain = _gradients(lambda: stack_forward(x, made.context_term(c), made.stack())[0], leaves)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # masked weights get exactly zero gradient, as through ``weight * mask``
    grads = dict(zip(["x", *dict(made.named_parameters())], fused, strict=True))
    for name, layer in made.named_modules():
        if hasattr(layer, "mask"):
            assert grads[f"{name}.weight"][layer.mask == 0].eq(0).all()
            assert grads[f"{name}.weight"][layer.mask == 1].ne(0).any()


@pytest.mark.parametrize("features", [3, 17])
@pytest.mark.parametrize("context", [0, 2])
def test_maf_layer_backward_passes_gradcheck(features: int, context: int) -> None:
    """The MAF layer's one-node backward (MADE and the soft-bounded affine map) against
    finite differences, for the inputs, the context and every parameter."""
    from flowcli.engine import MaskedAffineAutoregressive

    layer = _randomized(MaskedAffineAutoregressive(features, torch.randperm(features), 8, 2,
                                                   context, scale_bound=2.0)).double()
    x = torch.randn(4, features, dtype=torch.float64, requires_grad=True)
    c = torch.randn(4, context, dtype=torch.float64, requires_grad=True) if context else None
    params = dict(layer.named_parameters())

    def fn(x: torch.Tensor, c: torch.Tensor | None, *values: torch.Tensor):  # noqa: ANN202
        state = dict(zip(params, values, strict=True))
        return torch.func.functional_call(layer, state, (x, c))

    inputs = (x, c, *(p.detach().clone().requires_grad_() for p in params.values()))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [2, 0, 4, 1, 3]])
@pytest.mark.parametrize(("hidden", "layers", "context"), [(32, 2, 0), (3, 1, 0), (16, 3, 2)])
def test_a_sweep_gives_each_output_from_the_values_before_it(order: list[int], hidden: int,
                                                              layers: int, context: int) -> None:
    """``sweep`` feeds ``solve`` exactly what a full pass over the finished row gives."""
    torch.manual_seed(0)
    made = MADE(5, 3, hidden, layers, torch.tensor(order), context).double()
    with torch.no_grad():
        for p in made.parameters():
            p.copy_(torch.randn_like(p))
    c = torch.randn(40, context, dtype=torch.float64) if context else None
    seen: dict[int, torch.Tensor] = {}
    at = torch.argsort(torch.tensor(order))

    def solve(p: int, out: torch.Tensor) -> torch.Tensor:
        seen[p] = out.clone()
        return torch.tanh(out.sum(dim=1)) + p  # any function of the outputs

    rows = torch.zeros(40, 5, dtype=torch.float64)
    x = made.sweep(solve, rows, c)
    with torch.no_grad():
        full = made(x, c).view(40, 3, 5)
    for p in range(5):
        assert torch.allclose(seen[p], full[:, :, at[p]], atol=1e-12)
        assert torch.allclose(x[:, at[p]], torch.tanh(seen[p].sum(dim=1)) + p)

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

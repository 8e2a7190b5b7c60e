"""Gauss-Kronrod rules: exact to the degrees they promise, and containing their Gauss rule."""

from __future__ import annotations

import numpy as np
import pytest

from flowcli.quadrature import kronrod


def monomial_integral(degree: int) -> float:
    return 0.0 if degree % 2 else 2.0 / (degree + 1)


@pytest.mark.parametrize("n", [3, 7, 8])
def test_the_kronrod_rule_is_exact_to_degree_3n_plus_1_and_no_further(n: int) -> None:
    rule = kronrod(n)
    assert len(rule.nodes) == 2 * n + 1 and (rule.weights > 0).all()
    top = 3 * n + 1 + (n % 2 == 1)  # odd n: symmetry makes the next (odd) degree exact too
    for degree in range(top + 1):
        got = float(rule.weights @ rule.nodes ** degree)
        assert got == pytest.approx(monomial_integral(degree), abs=1e-13), degree
    even = top + 1 if top % 2 else top + 2
    assert abs(rule.weights @ rule.nodes ** even - monomial_integral(even)) > 1e-10


def test_the_gauss_rule_on_the_kronrod_nodes_is_exact_to_degree_2n_minus_1() -> None:
    rule = kronrod(8)
    nodes, weights = rule.nodes[rule.gauss], rule.gauss_weights
    for degree in range(16):
        got = float(weights @ nodes ** degree)
        assert got == pytest.approx(monomial_integral(degree), abs=1e-13), degree
    assert abs(weights @ nodes ** 16 - monomial_integral(16)) > 1e-6
    np.testing.assert_array_equal(rule.nodes, -rule.nodes[::-1])


def test_the_15_point_rule_is_the_one_in_the_literature() -> None:
    # QUADPACK's qk15: the nodes and weights of the non-negative half, outermost first
    nodes = [0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
             0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
             0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
             0.207784955007898467600689403773245, 0.0]
    weights = [0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
               0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
               0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
               0.204432940075298892414161999234649, 0.209482141084727828012999174891714]
    seven = kronrod(7)
    np.testing.assert_allclose(seven.nodes[::-1][:8], nodes, atol=1e-14)
    np.testing.assert_allclose(seven.weights[::-1][:8], weights, atol=1e-14)


def test_rules_past_15_points_are_refused() -> None:
    with pytest.raises(ValueError, match="1 to 15"):
        kronrod(16)

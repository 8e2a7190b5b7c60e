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


def test_the_gauss_rule_sits_on_the_kronrod_nodes() -> None:
    rule = kronrod(8)
    gauss_nodes, gauss_weights = np.polynomial.legendre.leggauss(8)
    np.testing.assert_allclose(rule.nodes[rule.gauss], gauss_nodes, atol=1e-15)
    np.testing.assert_array_equal(rule.gauss_weights, gauss_weights)
    # the 7-point pair of the literature (QUADPACK's qk15): its outermost node and weight
    seven = kronrod(7)
    assert seven.nodes[-1] == pytest.approx(0.991455371120812639206854697526329, abs=1e-15)
    assert seven.weights[-1] == pytest.approx(0.022935322010529224963732008058970, abs=1e-15)

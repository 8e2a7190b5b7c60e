"""Gauss-Kronrod rules on [-1, 1]: a Gauss rule of ``n`` points and the Kronrod rule of
``2n + 1`` points that contains it.

The Kronrod rule gives an integral exact for polynomials of degree ``3n + 1`` and the Gauss
rule on its own nodes a second one, exact to degree ``2n - 1``; their difference estimates
the error of the coarser one (and so, pessimistically, of the finer). One set of evaluations
pays for both, where a separate Gauss pair (``2n`` and ``n`` points) costs ``3n``.

The added nodes are the roots of the Stieltjes polynomial ``E``, of degree ``n + 1``, which
is orthogonal to ``P_n x^k`` for ``k = 0..n`` (``P_n`` the Legendre polynomial); the weights
make the rule exact on the Legendre polynomials up to degree ``2n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre

__all__ = ["KronrodRule", "kronrod"]


@dataclass(frozen=True)
class KronrodRule:
    """``nodes`` and ``weights`` of the Kronrod rule, in increasing order; the Gauss rule's
    nodes are ``nodes[gauss]`` and its weights ``gauss_weights``."""

    nodes: np.ndarray
    weights: np.ndarray
    gauss: np.ndarray
    gauss_weights: np.ndarray


def kronrod(n: int) -> KronrodRule:
    """The ``n``-point Gauss and ``2n + 1``-point Kronrod rules, for ``n`` up to 15 (past
    that the roots found lose digits)."""
    if not 1 <= n <= 15:
        raise ValueError(f"Kronrod rules are built here for 1 to 15 Gauss points, not {n}")
    gauss_nodes, gauss_weights = legendre.leggauss(n)
    nodes = np.sort(np.concatenate([gauss_nodes, _stieltjes_roots(n)]))
    nodes = (nodes - nodes[::-1]) / 2  # symmetric about 0, as the rule is
    # exact on P_0 .. P_2n: the integral of P_j over [-1, 1] is 2 for j = 0, else 0
    values = np.stack([legendre.legval(nodes, _unit(j)) for j in range(2 * n + 1)])
    weights = np.linalg.solve(values, np.eye(2 * n + 1)[0] * 2.0)
    gauss = np.searchsorted(nodes, gauss_nodes)
    return KronrodRule(nodes, weights, gauss, gauss_weights)


def _stieltjes_roots(n: int) -> np.ndarray:
    """The ``n + 1`` roots of ``E = P_{n+1} + sum_{j <= n} c_j P_j`` with ``E`` orthogonal
    to ``P_n x^k``, ``k = 0..n``; the integrals by a Gauss rule exact to their degree."""
    x, w = legendre.leggauss(3 * n + 2)
    tests = np.stack([x ** k * legendre.legval(x, _unit(n)) * w for k in range(n + 1)])
    basis = np.stack([legendre.legval(x, _unit(j)) for j in range(n + 2)])
    coefficients = np.linalg.solve(tests @ basis[:-1].T, -tests @ basis[-1])
    roots = legendre.legroots(np.append(coefficients, 1.0))
    assert np.abs(roots.imag).max(initial=0.0) < 1e-9, "the Stieltjes roots are real"
    return np.sort(roots.real)


def _unit(j: int) -> list[float]:
    """Legendre-series coefficients of ``P_j``."""
    return [0.0] * j + [1.0]

"""The fidelity figures of flowcli report, against their definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from flowcli.quality import (
    column_pairs,
    column_shapes,
    contingency_similarity,
    correlation_similarity,
    ks_complement,
    tv_complement,
)


def test_ks_complement_is_one_minus_scipys_distance() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = np.round(rng.normal(size=rng.integers(5, 300)), 1)  # ties included
        b = np.round(rng.normal(0.3, 1.2, size=rng.integers(5, 300)), 1)
        with_gaps = pd.Series(np.append(a, [np.nan, np.nan]))
        assert ks_complement(with_gaps, pd.Series(b)) == pytest.approx(
            1 - ks_2samp(a, b).statistic, abs=1e-12)
    assert np.isnan(ks_complement(pd.Series([np.nan]), pd.Series([1.0])))


def test_tv_complement_counts_labels_only_one_side_has() -> None:
    real, synthetic = pd.Series(["a", "a", "b", None]), pd.Series(["a", "b", "c", "c"])
    # shares a 2/3 b 1/3 against a 1/4 b 1/4 c 1/2: distance (5/12 + 1/12 + 1/2) / 2 = 1/2
    assert tv_complement(real, synthetic) == pytest.approx(0.5)
    assert tv_complement(real, real.iloc[::-1]) == pytest.approx(1.0)


def test_correlation_similarity_spans_zero_to_one() -> None:
    x = np.arange(50.0)
    up = pd.DataFrame({"x": x, "y": 2 * x})
    down = pd.DataFrame({"x": x, "y": -x})
    assert correlation_similarity(up, down) == pytest.approx(0.0)
    assert correlation_similarity(up, up.sample(frac=1, random_state=0)) == pytest.approx(1.0)


def test_pairs_and_associations_take_each_pairs_rows_with_both_values() -> None:
    """Correlations come from one pass over a table; each pair's must still be the one over
    the rows holding both of its values, gaps in different rows for different columns."""
    from flowcli.quality import association_matrix

    rng = np.random.default_rng(4)
    tables = []
    for _ in range(2):
        t = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
        t["b"] += t["a"]
        for name in ("a", "b", "c"):
            t.loc[rng.random(300) < 0.2, name] = np.nan
        tables.append(t)
    real, synthetic = tables
    pairs = column_pairs(real, synthetic, numeric=["a", "b", "c"])
    def rho(table: pd.DataFrame, a: str, b: str, method: str = "pearson") -> float:
        return table[[a, b]].dropna().corr(method=method).iloc[0, 1]

    for a, b in (("a", "b"), ("a", "c"), ("b", "c")):
        want = 1 - abs(rho(real, a, b) - rho(synthetic, a, b)) / 2
        assert pairs[(a, b)]["score"] == pytest.approx(want, abs=1e-12)
        for method in ("pearson", "spearman"):
            matrix = association_matrix(real, ["a", "b", "c"], method)
            assert matrix.loc[a, b] == pytest.approx(rho(real, a, b, method), abs=1e-12)


def test_contingency_similarity_takes_gaps_as_values_and_bins_numbers() -> None:
    real = pd.DataFrame({"k": ["a", "a", "b", None], "v": [0.0, 1.0, 2.0, 3.0]})
    same = real.iloc[[3, 2, 1, 0]]
    assert contingency_similarity(real, same, numeric=["v"]) == pytest.approx(1.0)
    moved = real.assign(k=["a", "b", "b", None])  # one row of four changes cell
    assert contingency_similarity(real, moved, numeric=["v"]) == pytest.approx(0.75)
    beyond = real.assign(v=[0.0, 1.0, 2.0, 99.0])  # past the real range: the open last bin
    assert contingency_similarity(real, beyond, numeric=["v"]) == pytest.approx(1.0)


def test_each_column_and_pair_gets_the_figure_of_its_kind() -> None:
    rng = np.random.default_rng(1)
    real = pd.DataFrame({"n": rng.normal(size=200), "m": rng.normal(size=200),
                         "k": rng.choice(["x", "y"], 200)})
    shapes = column_shapes(real, real, numeric=["n", "m"])
    assert {c: s["metric"] for c, s in shapes.items()} == {
        "n": "ks_complement", "m": "ks_complement", "k": "tv_complement"}
    assert all(s["score"] == pytest.approx(1.0) for s in shapes.values())
    pairs = column_pairs(real, real, numeric=["n", "m"])
    assert {p: s["metric"] for p, s in pairs.items()} == {
        ("n", "m"): "correlation_similarity", ("n", "k"): "contingency_similarity",
        ("m", "k"): "contingency_similarity"}
    shifted = real.assign(n=real["n"] + 3.0)
    assert column_shapes(real, shifted, numeric=["n", "m"])["n"]["score"] < 0.2


def test_associations_measure_each_kind_of_pair() -> None:
    from flowcli.quality import association_matrix, correlation_ratio, cramers_v

    rng = np.random.default_rng(2)
    k = pd.Series(rng.choice(["x", "y", "z"], 3000))
    same = k.map({"x": "p", "y": "q", "z": "r"})
    assert cramers_v(k, same) == pytest.approx(1.0)
    assert cramers_v(k, pd.Series(rng.choice(["u", "v"], 3000))) < 0.06
    step = k.map({"x": 0.0, "y": 1.0, "z": 2.0})
    assert correlation_ratio(k, step) == pytest.approx(1.0)
    assert correlation_ratio(k, pd.Series(rng.normal(size=3000))) < 0.06
    table = pd.DataFrame({"k": k, "s": step + rng.normal(0, 0.01, 3000), "t": -step})
    matrix = association_matrix(table, numeric=["s", "t"])
    assert matrix.loc["s", "t"] == pytest.approx(-1.0, abs=1e-3)
    assert matrix.loc["k", "s"] == matrix.loc["s", "k"] == pytest.approx(1.0, abs=1e-3)

"""``explain``: each cell's log-density given the rest of its row, against closed forms and
brute force, and from the command line."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flowcli import FlowModel
from flowcli.cli import app
from flowcli.conditionals import Line, label_normalizer, log_normalizer
from flowcli.errors import FlowcliWarning

FIT = dict(model="maf", layers=2, hidden=16, epochs=30, patience=10)


def _gaussian(cov: np.ndarray, mean: np.ndarray):
    precision = np.linalg.inv(cov)
    _, logdet = np.linalg.slogdet(2 * np.pi * cov)

    def joint(x: np.ndarray) -> np.ndarray:
        d = x - mean
        return -0.5 * np.einsum("ij,jk,ik->i", d, precision, d) - 0.5 * logdet

    def conditional(x: np.ndarray, j: int) -> np.ndarray:
        rest = [k for k in range(len(mean)) if k != j]
        var = 1.0 / precision[j, j]
        mu = mean[j] - var * (precision[j, rest] @ (x[:, rest] - mean[rest]).T)
        return -0.5 * np.log(2 * np.pi * var) - 0.5 * (x[:, j] - mu) ** 2 / var

    return joint, conditional


@pytest.mark.parametrize("tightness", [1.0, 1e-2, 1e-4])
def test_numeric_cells_match_the_closed_form_gaussian_conditional(tightness: float) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T / 4 + tightness * np.eye(4)
    mean = rng.normal(size=4)
    joint, conditional = _gaussian(cov, mean)
    x = rng.multivariate_normal(mean, cov, size=300)
    x[:10, 2] += 6.0  # cells far from where the rest of the row puts them
    for j in range(4):
        log_z, bound = log_normalizer(joint, Line.coordinate(x, j))
        assert np.abs(joint(x) - log_z - conditional(x, j)).max() < 1e-3
        assert bound.max() < 1e-3


def test_two_separate_narrow_modes_are_both_found() -> None:
    def joint(x: np.ndarray) -> np.ndarray:
        modes = np.logaddexp(-0.5 * ((x[:, 0] - 3.0) / 0.02) ** 2,
                             -0.5 * ((x[:, 0] + 4.0) / 0.02) ** 2)
        return modes - np.log(2 * 0.02 * np.sqrt(2 * np.pi))

    log_z, bound = log_normalizer(joint, Line.coordinate(np.zeros((4, 1)), 0))
    np.testing.assert_allclose(log_z, 0.0, atol=1e-6)
    assert bound.max() < 1e-4


def test_a_kinked_conditional_meets_the_tolerance_by_cutting_its_kink_panels() -> None:
    """A Laplace density has a kink at its mode, where Gauss rules converge slowly:
    only the panels around it are cut, until the error estimate and the true error are
    both under the tolerance."""
    calls = []

    def joint(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return -np.abs(x[:, 0] - 0.3) / 0.5 - np.log(2 * 0.5)

    x = np.zeros((5, 1))
    for tolerance in (1e-3, 1e-6):
        calls.clear()
        log_z, bound = log_normalizer(joint, Line.coordinate(x, 0), tolerance)
        assert bound.max() < tolerance
        assert np.abs(log_z).max() < tolerance
        # the first 12 panels and the coarse grid, plus a few cut panels per row
        assert sum(calls) < len(x) * (96 * 5 + 17 * 12 + 17 * 4 * 4 * 6)


@pytest.mark.parametrize("scale", [0.2, 0.5])
def test_kinks_anywhere_on_the_panels_rarely_escape_the_tolerance(scale: float) -> None:
    """Two kinks, at a position each row draws against its panels: the error estimate
    falls short now and then, but few rows end over the tolerance."""
    def joint(x: np.ndarray) -> np.ndarray:
        t = x[:, 0] - x[:, 1]
        return -np.abs(t) / scale - 0.5 * np.abs(t - 0.7) / scale

    x = np.column_stack([np.zeros(1000), np.random.default_rng(0).uniform(-3, 3, 1000)])
    log_z, _ = log_normalizer(joint, Line.coordinate(x, 0), 1e-4)
    z = scale / 1.5 * np.exp(-0.35 / scale) + scale / 1.5 * np.exp(-0.7 / scale) + \
        scale / 0.5 * (np.exp(-0.35 / scale) - np.exp(-0.7 / scale))  # piecewise exponential
    assert np.mean(np.abs(log_z - np.log(z)) > 1e-4) < 0.015


def test_label_cells_sum_the_joint_over_labels() -> None:
    table = np.log(np.array([[0.1, 0.2, 0.3], [0.05, 0.05, 0.3]]))

    def joint(x: np.ndarray) -> np.ndarray:
        return table[x[:, 0].astype(int), x[:, 1].astype(int)]

    x = np.array([[0.0, 2.0], [1.0, 0.0]])
    np.testing.assert_allclose(label_normalizer(joint, x, 1, 3), np.log([0.6, 0.4]))


def _table(n: int = 2500, seed: int = 0) -> pd.DataFrame:
    """Three correlated numbers (one positive), and a label that depends on them."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0, 0], [[1, .8, .5], [.8, 1, .6], [.5, .6, 1]], size=n)
    return pd.DataFrame({"a": z[:, 0], "b": 2 * z[:, 1] + 5, "price": np.exp(0.5 * z[:, 2]),
                         "kind": np.where(z[:, 0] + 0.3 * rng.normal(size=n) > 0, "x", "y")})


@pytest.fixture(scope="module")
def model() -> FlowModel:
    return FlowModel.fit(_table(), seed=0, device="cpu", **FIT)


def test_a_numeric_cell_matches_brute_force_integration_of_scores(model: FlowModel) -> None:
    rows = _table(3, seed=4)
    explained = model.explain(rows)
    for column, grid in (("a", np.linspace(-12, 12, 48_001)),
                         ("price", np.linspace(1e-6, 40, 400_001))):
        for i in range(len(rows)):
            trial = pd.concat([rows.iloc[[i]]] * len(grid), ignore_index=True)
            trial[column] = grid
            log_z = np.log(np.trapezoid(np.exp(model.score(trial).to_numpy()), grid))
            expected = model.score(rows.iloc[[i]]).iloc[0] - log_z
            assert explained[f"{column}_cond_log_prob"].iloc[i] == pytest.approx(expected,
                                                                                  abs=0.01)


def test_label_cells_are_exact_probabilities(model: FlowModel) -> None:
    row = _table(1, seed=5)
    total = sum(np.exp(model.explain(row.assign(kind=k))["kind_cond_log_prob"].iloc[0])
                for k in ("x", "y"))
    assert total == pytest.approx(1.0, abs=1e-6)


def test_explain_columns_and_percentiles(model: FlowModel) -> None:
    rows = _table(50, seed=6)
    out = model.explain(rows)
    names = [f"{c}_{part}" for c in model.columns for part in ("cond_log_prob", "percentile")]
    assert list(out.columns) == [*names, "most_unusual"]
    assert out.index.equals(rows.index)
    percentiles = out[[n for n in names if n.endswith("percentile")]].to_numpy()
    assert ((percentiles >= 0) & (percentiles <= 100)).all()
    assert set(model.training["cell_quantiles"]) == set(model.columns)
    # the held-out cells rank near uniformly: the median percentile of fresh rows is central
    assert 30 < np.median(percentiles) < 70


def test_a_planted_cell_is_named_most_unusual() -> None:
    rng = np.random.default_rng(3)
    cov = 0.9 * np.ones((5, 5)) + 0.1 * np.eye(5)
    names = [f"c{j}" for j in range(5)]
    train = pd.DataFrame(rng.multivariate_normal(np.zeros(5), cov, size=4000), columns=names)
    model = FlowModel.fit(train, seed=0, device="cpu", **FIT)
    rows = pd.DataFrame(rng.multivariate_normal(np.zeros(5), cov, size=10), columns=names)
    planted = rng.integers(0, 5, size=10)
    for i, j in enumerate(planted):
        rows.iloc[i, j] += 2.0  # 6 sd of the cell given the rest (0.33), inside its range
    named = model.explain(rows)["most_unusual"].tolist()
    assert sum(n == names[j] for n, j in zip(named, planted, strict=True)) >= 9


def test_a_missing_cell_is_not_explained() -> None:
    table = _table(2000)
    table.loc[::7, "b"] = np.nan
    model = FlowModel.fit(table, seed=0, device="cpu", missing="model", **FIT)
    rows = _table(4, seed=8)
    rows.loc[0, "b"] = np.nan
    out = model.explain(rows)
    assert np.isnan(out["b_cond_log_prob"].iloc[0]) and np.isnan(out["b_percentile"].iloc[0])
    assert out["most_unusual"].iloc[0] != "b"
    assert np.isfinite(out["b_cond_log_prob"].iloc[1:]).all()


def test_a_model_without_a_reference_warns_and_leaves_percentiles_empty(
        model: FlowModel, tmp_path: Path) -> None:
    model.save(str(tmp_path / "m.flow"))
    old = FlowModel.load(str(tmp_path / "m.flow"))
    assert old.training["cell_quantiles"] == model.training["cell_quantiles"]
    del old.training["cell_quantiles"]
    with pytest.warns(FlowcliWarning, match="percentiles are empty"):
        out = old.explain(_table(5, seed=9))
    assert out["a_percentile"].isna().all() and np.isfinite(out["a_cond_log_prob"]).all()
    assert (out["most_unusual"] != "").all()


def test_a_conditional_model_explains_the_modelled_columns_only() -> None:
    table = _table(2000)
    model = FlowModel.fit(table, seed=0, device="cpu", condition=["kind"], **FIT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = model.explain(_table(5, seed=2))
    assert [c for c in out.columns if c.endswith("_cond_log_prob")] == \
        ["a_cond_log_prob", "b_cond_log_prob", "price_cond_log_prob"]


# ---------------------------------------------------------------- the command line
def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def model_file(model: FlowModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("explain")
    model.save(str(folder / "m.flow"))
    _table(40, seed=11).assign(id=range(40)).to_csv(folder / "new.csv", index=False)
    return folder / "m.flow"


def test_explain_passes_the_input_through(model_file: Path) -> None:
    result = run("explain", model_file, model_file.parent / "new.csv")
    assert result.exit_code == 0, result.stderr
    out = pd.read_csv(io.StringIO(result.stdout))
    assert list(out.columns[:5]) == ["a", "b", "price", "kind", "id"]
    assert out["most_unusual"].isin(["a", "b", "price", "kind"]).all() and len(out) == 40


def test_score_explains_only_the_flagged_rows(model_file: Path) -> None:
    result = run("score", model_file, model_file.parent / "new.csv", "--threshold", "0.2",
                 "--explain", "-q")
    assert result.exit_code == 0, result.stderr
    out = pd.read_csv(io.StringIO(result.stdout))
    flagged = out["anomaly"].to_numpy()
    assert 0 < flagged.sum() < len(out)
    assert out.loc[flagged, "a_cond_log_prob"].notna().all()
    assert out.loc[~flagged, "a_cond_log_prob"].isna().all()
    assert out.loc[~flagged, "most_unusual"].isna().all()  # empty in the CSV


def test_score_explains_flagged_rows_with_unseen_labels_floored(model_file: Path,
                                                                 tmp_path: Path) -> None:
    data = tmp_path / "unseen.csv"
    _table(20, seed=12).assign(kind="z").to_csv(data, index=False)
    result = run("score", model_file, data, "--threshold", "0.9", "--unseen", "floor",
                 "--explain", "-q")
    assert result.exit_code == 0, result.stderr
    out = pd.read_csv(io.StringIO(result.stdout))
    assert out["anomaly"].any()
    assert out.loc[out["anomaly"], "kind_cond_log_prob"].notna().all()


def test_explain_refuses_bad_input_in_one_line(model_file: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    out = tmp_path / "out.csv"
    result = run("explain", model_file, tmp_path / "bad.csv", "-o", out)
    assert result.exit_code == 1 and "missing model column 'price'" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not out.exists()
    needs = run("score", model_file, tmp_path / "bad.csv", "--explain")
    assert needs.exit_code == 2 and "needs --threshold" in needs.stderr

"""``impute``: draws from p(missing | observed) against closed forms and brute force, the mode,
what comes back untouched, and the command line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from flowcli import FlowModel
from flowcli.cli import app
from flowcli.conditionals import draw_label
from flowcli.errors import UsageError
from flowcli.impute import Gaps, Imputation, complete

FIT = dict(model="maf", layers=2, hidden=16, epochs=30, patience=10)
COV = np.array([[1.0, 0.5, 0.5, 0.3], [0.5, 1.0, 0.97, 0.4], [0.5, 0.97, 1.0, 0.4],
                [0.3, 0.4, 0.4, 1.0]])
MEAN = np.array([0.3, -1.0, 2.0, 0.5])


def _gaussian_joint(x: np.ndarray) -> np.ndarray:
    d = x - MEAN
    precision = np.linalg.inv(COV)
    return -0.5 * np.einsum("ij,jk,ik->i", d, precision, d)


def _conditional(x: np.ndarray, gaps: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the Gaussian's ``gaps`` given the rest of row ``x``."""
    seen = [j for j in range(len(MEAN)) if j not in gaps]
    cross = COV[np.ix_(gaps, seen)]
    solve = np.linalg.solve(COV[np.ix_(seen, seen)], np.column_stack([x[seen] - MEAN[seen],
                                                                       cross.T]))
    return MEAN[gaps] + cross @ solve[:, 0], COV[np.ix_(gaps, gaps)] - cross @ solve[:, 1:]


def _numbers(dims: list[int], width: int = 4, rows: int = 1) -> Gaps:
    """Gaps in the numeric ``dims`` of ``rows`` rows of ``width`` continuous dims."""
    mask = np.repeat(np.isin(np.arange(width), dims)[None], rows, axis=0)
    return Gaps(mask, [np.zeros_like] * width)


def test_one_gap_is_drawn_from_its_exact_conditional() -> None:
    row = np.array([[0.1, -0.4, 0.0, 1.2]])
    drawn = complete(_gaussian_joint, row, _numbers([2]), Imputation(draws=4000),
                     np.random.default_rng(0))
    mean, cov = _conditional(row[0], [2])
    assert stats.kstest(drawn[:, 2], stats.norm(mean[0], np.sqrt(cov[0, 0])).cdf).pvalue > 0.01
    np.testing.assert_array_equal(drawn[:, [0, 1, 3]], np.repeat(row[:, [0, 1, 3]], 4000, 0))


def test_gibbs_draws_of_correlated_gaps_match_the_closed_form() -> None:
    """Gaps correlated 0.95 given the rest: coordinate-wise Gibbs would need about 50 sweeps
    to forget its start; moving along the curvature's axes needs one."""
    row = np.array([[1.5, 0.0, 0.0, -0.5]])
    drawn = complete(_gaussian_joint, row, _numbers([1, 2]), Imputation(draws=4000, sweeps=1),
                     np.random.default_rng(1))
    mean, cov = _conditional(row[0], [1, 2])
    for k, j in enumerate([1, 2]):
        exact = stats.norm(mean[k], np.sqrt(cov[k, k]))
        assert stats.kstest(drawn[:, j], exact.cdf).pvalue > 0.01
    np.testing.assert_allclose(np.cov(drawn[:, [1, 2]].T), cov, atol=0.06)


def test_rows_with_different_gaps_are_drawn_together_each_from_its_own() -> None:
    rows = np.array([[0.1, -0.4, 0.0, 1.2], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -1.0],
                     [0.5, 0.5, 0.5, 0.5]])
    patterns = [[2], [1, 2, 3], [0, 1, 2, 3], []]
    mask = np.array([np.isin(np.arange(4), p) for p in patterns])
    gaps = Gaps(mask, [np.zeros_like] * 4)
    drawn = complete(_gaussian_joint, rows, gaps, Imputation(draws=3000),
                     np.random.default_rng(3)).reshape(4, 3000, 4)
    for i, pattern in enumerate(patterns[:3]):
        mean, cov = _conditional(rows[i], pattern)
        for k, j in enumerate(pattern):
            exact = stats.norm(mean[k], np.sqrt(cov[k, k]))
            assert stats.kstest(drawn[i, :, j], exact.cdf).pvalue > 0.01, (i, j)
        kept = [j for j in range(4) if j not in pattern]
        assert (drawn[i][:, kept] == rows[i, kept]).all()
    assert (drawn[3] == rows[3]).all()


def _banana(x: np.ndarray) -> np.ndarray:
    """A curved, skewed joint of (a, b) given an observed c: not Gaussian in any axes."""
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    return -0.5 * a**2 - 0.5 * ((b - 0.8 * a**2 - 0.5 * c) / 0.5) ** 2 - 0.5 * c**2


def test_gibbs_chains_converge_to_the_brute_force_conditional() -> None:
    row = np.array([[0.0, 0.0, 1.0]])
    grid = np.linspace(-8, 12, 801)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    cells = np.column_stack([a.ravel(), b.ravel(), np.ones(a.size)])
    p = np.exp(_banana(cells)).reshape(a.shape)
    rng = np.random.default_rng(2)
    for sweeps in (10, 30):
        drawn = complete(_banana, row, _numbers([0, 1], width=3),
                         Imputation(draws=3000, sweeps=sweeps), rng)
        for j, marginal in ((0, p.sum(axis=1)), (1, p.sum(axis=0))):
            cdf = np.cumsum(marginal) / marginal.sum()
            assert stats.kstest(drawn[:, j], lambda v, c=cdf: np.interp(v, grid, c)
                                ).pvalue > 0.01, (sweeps, j)


def test_the_mode_of_gaussian_gaps_is_their_conditional_mean() -> None:
    row = np.array([[1.5, 0.0, 0.0, -0.5], [-1.0, 0.0, 0.0, 2.0]])
    filled = complete(_gaussian_joint, row, _numbers([1, 2], rows=2), Imputation(method="mode"),
                      np.random.default_rng(0))
    for i in range(2):
        np.testing.assert_allclose(filled[i, [1, 2]], _conditional(row[i], [1, 2])[0],
                                   atol=1e-3)


def test_labels_are_drawn_with_their_exact_probabilities() -> None:
    table = np.log(np.array([[0.1, 0.2, 0.3], [0.05, 0.05, 0.3]]))

    def joint(x: np.ndarray) -> np.ndarray:
        return table[x[:, 0].astype(int), x[:, 1].astype(int)]

    x = np.zeros((20_000, 2))
    codes = draw_label(joint, x, 1, np.arange(3), np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(codes.astype(int)) / len(x), [1 / 6, 1 / 3, 1 / 2],
                               atol=0.01)
    assert draw_label(joint, x[:1], 1, np.array([0, 1]), None)[0] == 1  # the likelier allowed


def _table(n: int = 2500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0, 0, 0], [[1, .8, .5], [.8, 1, .6], [.5, .6, 1]], size=n)
    return pd.DataFrame({"a": z[:, 0], "b": 2 * z[:, 1] + 5, "price": np.exp(0.5 * z[:, 2]),
                         "count": np.round(3 * z[:, 0] + 10).astype(np.int64),
                         "kind": np.where(z[:, 0] + 0.3 * rng.normal(size=n) > 0, "x", "y")})


@pytest.fixture(scope="module")
def model() -> FlowModel:
    return FlowModel.fit(_table(), seed=0, device="cpu", **FIT)


def _holes(seed: int = 7) -> pd.DataFrame:
    rows = _table(40, seed=seed)
    rows.insert(0, "id", np.arange(100, 140))
    rows.loc[0, "a"] = np.nan
    rows.loc[1, ["a", "b"]] = np.nan
    rows.loc[2, "kind"] = None
    rows.loc[3, ["price", "kind", "count"]] = np.nan
    rows.loc[4, ["a", "b", "price", "count", "kind"]] = np.nan
    rows.index = rows.index + 500
    return rows


def test_observed_cells_come_back_bit_for_bit(model: FlowModel) -> None:
    holes = _holes()
    filled = model.impute(holes, draws=3, seed=0)
    assert list(filled.columns) == [*holes.columns, "imputation"]
    assert filled["imputation"].tolist() == [1, 2, 3] * len(holes)
    assert (filled.index == holes.index.repeat(3)).all()
    copies = holes.loc[holes.index.repeat(3)]
    for name in holes.columns:
        seen = copies[name].notna().to_numpy()
        assert (filled[name].to_numpy()[seen] == copies[name].to_numpy()[seen]).all(), name
        if name in ("a", "b", "price"):  # floats: the same bits
            assert (filled[name].to_numpy()[seen].view(np.int64)
                    == copies[name].to_numpy(dtype=np.float64)[seen].view(np.int64)).all()
    assert not filled[model.columns].isna().any().any()


def test_filled_columns_have_the_training_dtypes_and_labels(model: FlowModel) -> None:
    filled = model.impute(_holes(), seed=0)
    assert filled["count"].dtype == np.int64  # gaps had made it float
    assert set(filled["kind"]) <= {"x", "y"}
    assert (filled["price"] > 0).all()


def test_draws_differ_and_a_seed_repeats_them(model: FlowModel) -> None:
    holes = _holes()
    first = model.impute(holes, draws=2, seed=3)
    again = model.impute(holes, draws=2, seed=3)
    pd.testing.assert_frame_equal(first, again)
    gaps = first.loc[500, "a"].to_numpy()
    assert gaps[0] != gaps[1]


def test_the_mode_is_deterministic_and_needs_one_draw(model: FlowModel) -> None:
    holes = _holes()
    pd.testing.assert_frame_equal(model.impute(holes, method="mode", seed=1),
                                  model.impute(holes, method="mode", seed=2))
    with pytest.raises(UsageError, match="one completion"):
        model.impute(holes, method="mode", draws=3)


def test_a_gap_is_drawn_near_what_the_rest_of_the_row_says(model: FlowModel) -> None:
    """``count`` is round(3a + 10): a filled ``a`` must land near (count - 10) / 3."""
    rows = _table(200, seed=9)
    holes = rows.assign(a=np.nan)
    filled = model.impute(holes, seed=0)
    assert np.abs(filled["a"] - rows["a"]).mean() < 0.25
    assert np.abs(filled["a"] - rows["a"]).mean() < 0.5 * np.abs(rows["a"]).mean()


def test_gaps_of_a_model_with_modelled_gaps_are_filled_with_values() -> None:
    train = _table(1500, seed=3)
    train.loc[::7, "price"] = np.nan
    train.loc[::11, "kind"] = None
    fitted = FlowModel.fit(train, seed=0, device="cpu", missing="model", **FIT)
    filled = fitted.impute(_holes().drop(columns="id"), draws=2, seed=0)
    assert not filled[fitted.columns].isna().any().any()
    assert set(filled["kind"]) <= {"x", "y"}


def test_a_conditional_model_fills_the_modelled_columns_given_the_condition() -> None:
    fitted = FlowModel.fit(_table(1500, seed=4), seed=0, device="cpu", condition=["kind"],
                           **FIT)
    holes = _holes().drop(columns="id")
    holes["kind"] = holes["kind"].fillna("x")
    filled = fitted.impute(holes, seed=0)
    assert (filled["kind"] == holes["kind"]).all()
    assert not filled[["a", "b", "price", "count"]].isna().any().any()


@pytest.fixture(scope="module")
def model_file(model: FlowModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("impute") / "m.flow"
    model.save(str(path))
    return path


def test_impute_from_the_command_line(model_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "holes.csv"
    _holes().to_csv(data, index=False)
    out = tmp_path / "filled.parquet"
    result = CliRunner().invoke(app, ["impute", str(model_file), str(data), "-o", str(out),
                                      "--draws", "2", "--seed", "0"])
    assert result.exit_code == 0, result.output
    filled = pd.read_parquet(out)
    assert len(filled) == 80 and filled["imputation"].tolist()[:4] == [1, 2, 1, 2]
    assert filled["count"].dtype == np.int64 and not filled.isna().any().any()


def test_impute_refuses_bad_input_in_one_line(model_file: Path, tmp_path: Path) -> None:
    data = tmp_path / "short.csv"
    _holes().drop(columns="b").to_csv(data, index=False)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["impute", str(model_file), str(data), "-o", str(out)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "'b'" in result.output
    assert not out.exists()
    result = CliRunner().invoke(app, ["impute", str(model_file), str(data), "--method", "mode",
                                      "--draws", "3"])
    assert result.exit_code == 2 and "one completion" in result.output


def interruptible() -> None:
    """In the child: Ctrl-C as Python takes it by default (a run started in the background
    inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_impute_leaves_no_file(model_file: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "flowcli", "impute", str(model_file), "-",
                             "-o", "out.csv", "--batch-size", "10"], cwd=tmp_path,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    assert proc.stdin is not None
    proc.stdin.write(_holes().to_csv(index=False))  # rows arrive, then the input stalls
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".out.csv.") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, "impute never started writing"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert list(tmp_path.iterdir()) == []

"""fit --max-rows: a uniform sample of a streamed table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from flowcli import FlowModel
from flowcli.cli import app
from flowcli.reservoir import uniform_sample


def _chunks(n: int, size: int):
    table = pd.DataFrame({"i": np.arange(n), "x": np.arange(n) * 0.5})
    return [table.iloc[a:a + size] for a in range(0, n, size)]


def test_every_row_is_equally_likely_to_be_kept() -> None:
    counts = np.zeros(50)
    for seed in range(2000):
        sample, seen = uniform_sample(_chunks(50, 7), 10, seed)
        assert seen == 50 and len(sample) == 10 and sample["i"].is_unique
        counts[sample["i"].to_numpy()] += 1
    share = counts / 2000
    # each row is kept with probability 10/50; 2000 draws put 4 standard errors at 0.036
    assert np.abs(share - 0.2).max() < 0.036
    # chunk boundaries do not matter: first and last rows of chunks are kept alike
    assert abs(share[::7].mean() - 0.2) < 0.02


def test_the_sample_keeps_the_table_order_and_follows_the_seed() -> None:
    a, _ = uniform_sample(_chunks(10_000, 333), 500, seed=1)
    b, _ = uniform_sample(_chunks(10_000, 333), 500, seed=1)
    c, _ = uniform_sample(_chunks(10_000, 333), 500, seed=2)
    assert a["i"].is_monotonic_increasing
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert list(a.columns) == ["i", "x"] and (a["x"] == a["i"] * 0.5).all()


def test_a_table_smaller_than_the_sample_comes_back_whole() -> None:
    sample, seen = uniform_sample(_chunks(30, 8), 100, seed=0)
    assert seen == 30 and sample["i"].tolist() == list(range(30))
    empty, seen = uniform_sample([pd.DataFrame({"i": []})], 5, seed=0)
    assert seen == 0 and list(empty.columns) == ["i"]


def test_fit_max_rows_trains_on_a_sample_and_says_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    data.to_csv(tmp_path / "t.csv", index=False)
    args = ["fit", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m.flow"), "--max-rows", "800",
            "--model", "maf", "--layers", "1", "--hidden", "8", "--epochs", "2", "-q"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    fitted = FlowModel.load(str(tmp_path / "m.flow"))
    t = fitted.training
    assert (t["rows"], t["max_rows"], t["sampled_from"]) == (800, 800, 3000)
    shown = CliRunner().invoke(app, ["info", str(tmp_path / "m.flow")]).output
    assert "800 rows (720 train, 80 validation, a uniform sample of 3,000)" in shown
    # a resumed run keeps the sample's size and the seed that draws it
    resumed = CliRunner().invoke(app, ["fit", str(tmp_path / "t.csv"), "-o",
                                       str(tmp_path / "m2.flow"), "--resume",
                                       str(tmp_path / "m.flow"), "--epochs", "3", "-q"])
    assert resumed.exit_code == 0, resumed.output
    again = FlowModel.load(str(tmp_path / "m2.flow")).training
    assert (again["epochs"], again["seed"], again["rows"], again["sampled_from"]) == \
        (3, t["seed"], 800, 3000)
    changed = CliRunner().invoke(app, ["fit", str(tmp_path / "t.csv"), "-o",
                                       str(tmp_path / "m3.flow"), "--resume",
                                       str(tmp_path / "m.flow"), "--max-rows", "900"])
    assert changed.exit_code == 2 and "--max-rows" in changed.output
    assert not (tmp_path / "m3.flow").exists()


def test_a_bad_row_is_named_within_the_sample(tmp_path: Path) -> None:
    data = pd.DataFrame({"a": np.arange(3000.0)})
    data.loc[2500, "a"] = np.nan
    data.to_csv(tmp_path / "t.csv", index=False)
    done = CliRunner().invoke(app, ["fit", str(tmp_path / "t.csv"), "-o",
                                    str(tmp_path / "m.flow"), "--max-rows", "2999"])
    assert done.exit_code == 1
    assert "t.csv (its sample of 2,999 rows): column 'a' has a missing value" in done.output

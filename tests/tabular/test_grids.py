"""Grids found in float columns, exactly and up to the rounding their values were written with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowcli.tabular.grids import GRID_POINTS, Grid, Precision, find_grid


def written(values: np.ndarray, fmt: str) -> np.ndarray:
    """``values`` as a file holds them after writing with ``fmt`` and reading back."""
    return np.array([float(format(v, fmt)) for v in values])


def test_precision_is_the_coarser_of_decimals_and_significant_digits() -> None:
    digits = Precision.of(np.array([8.7988, -27.201, 0.0030490]))
    assert (digits.decimals, digits.digits) == (6, 5)  # 0.003049: 6 decimals, 4 digits
    assert digits.places(np.array([8.7988, -27.201, 456.8, 0.0])).tolist() == [4, 3, 2, 6]
    cents = Precision.of(np.array([12.34, 5.1, 1500.0]))
    assert (cents.decimals, cents.digits) == (2, 4)  # 1500: two digits, not four
    assert cents.places(np.array([5.1, 1234.56])).tolist() == [2, 0]
    assert cents.round(np.array([5.1049999, 1234.56, -0.004])).tolist() == [5.1, 1235.0, -0.0]
    assert Precision(0, 2).round(np.array([12345.0])).tolist() == [12000.0]


@pytest.mark.parametrize("fmt", [".5g", ".3f", ".2f"])
def test_standardized_codes_written_rounded_lie_on_a_grid_that_gives_them_back(fmt: str) -> None:
    rng = np.random.default_rng(0)
    codes = np.arange(-40, 160)  # 200 points: more than a lattice warning's 50
    recorded = written((codes - 37.3) / 29.7, fmt)
    points = np.unique(recorded)
    assert np.ptp(np.diff(points)) > 1e-4  # rounding moved the points off an exact grid
    grid = find_grid(points, 20 * len(points))
    assert grid is not None and grid.precision is not None
    assert grid.step == pytest.approx(1 / 29.7, rel=1e-4)
    k = grid.index(points)
    np.testing.assert_array_equal(np.diff(k), 1)
    np.testing.assert_array_equal(grid.point(k), points)  # exactly the recorded values
    assert grid.holds(rng.choice(points, 50)).all()
    assert not grid.holds(points[:5] + 0.3 * grid.step).any()


def test_an_exact_grid_holds_values_up_to_float_noise() -> None:
    points = np.arange(12) * 0.1  # 0.30000000000000004 carries no rounding to find
    grid = find_grid(points, 1000)
    assert grid is not None and grid.step == pytest.approx(0.1)
    assert grid.holds(np.array([0.3, 0.1 * 3, 1.1])).all()
    assert not grid.holds(np.array([0.31, 0.35])).any()


@pytest.mark.parametrize("points, rows, why", [
    ([0.0, 1.0, 2.3, 4.0], 1000, "one value off the grid by more than its rounding"),
    ([0.0, 1.0, 2.0, 3.0], 79, "fewer than 20 rows per value"),
    ([0.0, 0.001, 1.0], 1000, "a thousand steps for three values"),
    (list(np.random.default_rng(1).normal(size=40)), 5000, "values at full precision"),
    (list(range(GRID_POINTS + 1)), 10**6, "more values than a grid has"),
])
def test_values_no_grid_and_rounding_explain_have_none(points: list, rows: int, why: str) -> None:
    assert find_grid(np.sort(np.array(points, dtype=float)), rows) is None, why


def test_a_rounded_grid_column_samples_only_recorded_values_and_refuses_others() -> None:
    from flowcli.errors import DataError
    from flowcli.tabular.preprocessor import Preprocessor
    from flowcli.tabular.schema import Schema

    rng = np.random.default_rng(2)
    df = pd.DataFrame({"code": written((rng.integers(0, 90, 4000) - 44.2) / 13.1, ".5g")})
    schema = Schema.infer(df)
    spec = schema.columns[0]
    assert spec.kind == "integer" and spec.digits == 5
    assert Schema.from_dict(schema.to_dict()).columns[0] == spec
    pre = Preprocessor.fit(schema, df)
    x, _ = pre.encode(df)
    np.testing.assert_array_equal(pre.decode(x)["code"], df["code"])
    drawn = pre.decode(np.linspace(-3, 3, 400)[:, None])["code"]
    assert set(drawn) <= set(written((np.arange(90) - 44.2) / 13.1, ".5g"))
    with pytest.raises(DataError, match="lies on a grid of step 0.0763"):
        pre.encode(pd.DataFrame({"code": [df["code"][0] + 1e-4]}))


def test_a_grid_column_of_an_older_file_is_exact_and_written_as_format_5() -> None:
    from flowcli.modelfile import format_for
    from flowcli.tabular.schema import ColumnSpec

    old = {"name": "half", "kind": "integer", "dtype": "float64", "min": 0.25, "max": 10.25,
           "inferred": True, "step": 0.5, "offset": 0.25}
    spec = ColumnSpec.from_dict(old)
    assert spec.grid == Grid(0.5, 0.25) and spec.to_dict() == {**old, "categories": None,
                                                               "low": None, "high": None,
                                                               "missing": 0.0,
                                                               "distinct": None}
    assert spec.grid.holds(np.array([0.75, 10.25])).all()
    assert not spec.grid.holds(np.array([0.8])).any()
    assert format_for(None, {"schema": [spec.to_dict()]}) == 5


def test_a_grid_written_by_hand_is_exact_and_keeps_format_5() -> None:
    from flowcli.modelfile import format_for
    from flowcli.tabular.schema import Schema

    df = pd.DataFrame({"price": np.random.default_rng(4).choice([1.99, 2.49, 4.99, 9.99], 400)})
    spec = Schema.infer(df).columns[0]
    assert spec.step == pytest.approx(0.5) and spec.decimals is None
    assert format_for(None, {"schema": [spec.to_dict()]}) == 5


def test_few_values_rounding_could_put_on_many_grids_stay_continuous() -> None:
    from flowcli.tabular.schema import Schema

    # 1.5, 2.7, 3.8 fit a step of 1.15 to one decimal, as three values often would by chance
    df = pd.DataFrame({"dose": np.random.default_rng(5).choice([1.5, 2.7, 3.8], 2000)})
    assert Schema.infer(df).columns[0].step is None
    assert find_grid(np.array([1.5, 2.7, 3.8]), 2000) is None


def test_a_zero_left_by_float_arithmetic_is_a_zero() -> None:
    points = np.unique(written(np.arange(100) * (1 / 29.7) - 37 / 29.7, ".5g"))
    assert 0 < abs(points[np.argmin(np.abs(points))]) < 1e-15  # -2.2204e-16
    grid = find_grid(points, 20 * len(points))
    assert grid is not None and grid.precision is not None
    assert np.signbit(grid.point(np.arange(100.0))).sum() == 37  # no -0.0 among them


def test_far_from_its_values_a_rounded_grid_holds_nothing() -> None:
    points = np.unique(written((np.arange(90) - 44.2) / 34.6, ".5g"))
    grid = find_grid(points, 20 * len(points))
    assert grid is not None and grid.precision is not None
    # at these sizes 5 digits leave a last unit coarser than the step
    assert not grid.holds(np.array([12345.0, 98765.0, 1e6, 3.5e7])).any()


@pytest.mark.parametrize("dtype", ["float32", "Float32", "float32[pyarrow]"])
def test_float32_dtypes_of_pandas_and_arrow_read_as_their_decimals(dtype: str) -> None:
    from flowcli.tabular.schema import Schema

    codes = np.random.default_rng(6).integers(0, 80, 3000)
    df = pd.DataFrame({"code": written((codes - 30.2) / 9.1, ".5g")}).astype(dtype)
    assert Schema.infer(df).columns[0].digits == 5


def test_float32_values_written_rounded_lie_on_their_grid_up_to_their_width() -> None:
    recorded = written((np.arange(0, 150) - 61.7) / 7.3, ".5g").astype(np.float32)
    points = np.unique(recorded).astype(np.float64)
    assert find_grid(points, 20 * len(points)) is None  # as float64 they carry 16 digits
    grid = find_grid(points, 20 * len(points), float32=True)
    assert grid is not None and grid.precision is not None and grid.precision.digits == 5
    back = grid.point(grid.index(points)).astype(np.float32)
    np.testing.assert_array_equal(back, recorded)
    assert grid.holds(points).all() and not grid.holds(points + 0.01).any()


def test_a_float32_column_written_rounded_round_trips_on_its_grid() -> None:
    from flowcli.tabular.preprocessor import Preprocessor
    from flowcli.tabular.schema import Schema

    rng = np.random.default_rng(3)
    codes = rng.integers(0, 80, 3000)
    df = pd.DataFrame({"code": written((codes - 30.2) / 9.1, ".5g").astype(np.float32)})
    schema = Schema.infer(df)
    assert schema.columns[0].step is not None and schema.columns[0].digits == 5
    pre = Preprocessor.fit(schema, df)
    x, _ = pre.encode(df)
    decoded = pre.decode(x)["code"]
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, df["code"])

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowcli.errors import DataError, SchemaError
from flowcli.tabular import Overrides, Schema


def table() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.5, 2.5, 3.0], "n": [1, 2, 3], "flag": [True, False, True]})


def test_infers_kinds_dtypes_and_ranges() -> None:
    schema = Schema.infer(table())
    assert [(c.name, c.kind, c.dtype) for c in schema.columns] == [
        ("x", "continuous", "float64"), ("n", "integer", "int64"), ("flag", "boolean", "bool")
    ]
    assert (schema.columns[1].min, schema.columns[1].max) == (1.0, 3.0)
    assert schema.columns[2].categories == [False, True]
    assert Schema.from_dict(schema.to_dict()).columns == schema.columns


def test_text_columns_are_categories_and_whole_floats_integers() -> None:
    df = table().assign(city=["b", "a", "b"], whole=[1.0, 2.0, 5.0])
    schema = Schema.infer(df)
    city = schema.columns[3]
    assert (city.kind, city.categories) == ("categorical", ["a", "b"])
    assert (schema.columns[4].kind, schema.columns[4].dtype) == ("integer", "float64")


def test_text_among_numbers_names_the_first_bad_row() -> None:
    df = pd.DataFrame({"x": ["1.0", "2.0", "oops", "4"]})
    with pytest.raises(DataError, match=r"column 'x' is not numeric: 'oops' in row 3; fix the "
                                        r"value, or declare it --categorical x"):
        Schema.infer(df)


def test_free_text_ids_and_dates_are_refused_with_the_reason() -> None:
    n = 300
    words = pd.DataFrame({"note": [f"note number {i}" for i in range(n)]})
    with pytest.raises(DataError, match=r"column 'note' has 300 distinct text values \(free text "
                                        r"or an id\?\).*--exclude note"):
        Schema.infer(words)
    dates = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=n).astype(str)})
    with pytest.raises(DataError, match=r"column 'day' holds dates"):
        Schema.infer(dates)
    ids = pd.DataFrame({"id": np.arange(100, 100 + n), "x": np.random.default_rng(0).random(n)})
    with pytest.raises(DataError, match=r"column 'id' counts 1 by 1 through the rows"):
        Schema.infer(ids)


def test_missing_values_are_refused_unless_modelled() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.nan], "y": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DataError, match=r"^d.csv: column 'x' has a missing value in row 3; use "
                                        r"--missing model"):
        Schema.infer(df, source="d.csv")
    spec = Schema.infer(df, overrides=Overrides(missing="model")).columns[0]
    assert spec.missing == 0.5


def test_infinity_is_refused() -> None:
    df = pd.DataFrame({"x": [1.0, np.inf, 2.0]})
    with pytest.raises(DataError, match=r"column 'x' holds inf in row 2"):
        Schema.infer(df)


def test_constant_continuous_column_is_refused() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.5], "c": [7.5, 7.5, 7.5]})
    with pytest.raises(DataError, match=r"column 'c' is constant \(7.5 in every row\)"):
        Schema.infer(df)


def test_overrides_are_checked() -> None:
    df = pd.DataFrame({"r": [0.1, 0.5, 1.2], "a": [1.0, 0.0, 3.0], "n": [1.5, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"'r' is bounded to \[0, 1\] but holds 1.2 in row 3"):
        Schema.infer(df, overrides=Overrides(bounds={"r": (0.0, 1.0)}))
    with pytest.raises(DataError, match=r"column 'a' is declared positive but holds 0 in row 2"):
        Schema.infer(df, overrides=Overrides(positive={"a"}))
    with pytest.raises(DataError, match=r"column 'n' is declared integer but holds 1.5 in row 1"):
        Schema.infer(df, overrides=Overrides(integer={"n"}))
    with pytest.raises(SchemaError, match=r"no column 'zz'"):
        Schema.infer(df, overrides=Overrides(positive={"zz"}))
    with pytest.raises(SchemaError, match=r"'a' is declared but left out of the model"):
        Schema.infer(df, ["r"], overrides=Overrides(positive={"a"}))


def test_header_only_and_unknown_columns() -> None:
    with pytest.raises(DataError, match="no data rows"):
        Schema.infer(pd.DataFrame({"x": pd.Series([], dtype=float)}))
    with pytest.raises(SchemaError, match=r"no column 'zz'; the columns are 'x', 'n', 'flag'"):
        Schema.infer(table(), ["x", "zz"])


def test_check_columns_names_missing_and_unexpected() -> None:
    schema = Schema.infer(table(), ["x", "n"])
    df = pd.DataFrame({"X": [1.0], "n": [1]})
    with pytest.raises(SchemaError, match=r"^new.csv: missing model column 'x'; columns not "
                                          r"seen in training: 'X'$"):
        schema.check_columns(df, "new.csv")


def test_lattice_columns_get_a_warning() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"level": rng.choice([0.25, 0.5, 0.75, 1.5], 400),
                       "x": rng.normal(size=400)})
    schema = Schema.infer(df)
    assert schema.warnings(400) == [
        "column 'level' takes only 4 distinct values in 400 rows: a continuous density spikes "
        "on them and its likelihood means little; declare it --categorical level if they are "
        "codes"
    ]
    assert schema.columns[1].warning(400) is None

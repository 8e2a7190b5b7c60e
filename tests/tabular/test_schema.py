from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowcli.errors import DataError, SchemaError
from flowcli.tabular import Schema


def table() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.5, 2.5, 3.0], "n": [1, 2, 3], "flag": [True, False, True]})


def test_infers_kinds_dtypes_and_ranges() -> None:
    schema = Schema.infer(table())
    assert [(c.name, c.kind, c.dtype) for c in schema.columns] == [
        ("x", "continuous", "float64"), ("n", "integer", "int64"), ("flag", "boolean", "bool")
    ]
    assert (schema.columns[1].min, schema.columns[1].max) == (1.0, 3.0)
    assert Schema.from_dict(schema.to_dict()).columns == schema.columns


def test_refuses_a_text_column_naming_it_and_the_row() -> None:
    df = table().assign(city=["a", "b", "c"])
    with pytest.raises(DataError, match=r"^f.csv: column 'city' is not numeric: 'a' in row 1; "
                                        r"leave it out with --columns$"):
        Schema.infer(df, source="f.csv")
    assert Schema.infer(df, ["x", "n"]).names == ["x", "n"]


def test_text_among_numbers_names_the_first_bad_row() -> None:
    df = pd.DataFrame({"x": ["1.0", "2.0", "oops", "4"]})
    with pytest.raises(DataError, match=r"column 'x' is not numeric: 'oops' in row 3"):
        Schema.infer(df)


def test_missing_values_name_column_and_first_row() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.nan], "y": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DataError, match=r"^d.csv: column 'x' has a missing value in row 3$"):
        Schema.infer(df, source="d.csv")


def test_infinity_is_refused() -> None:
    df = pd.DataFrame({"x": [1.0, np.inf, 2.0]})
    with pytest.raises(DataError, match=r"column 'x' holds inf in row 2"):
        Schema.infer(df)


def test_constant_continuous_column_is_refused() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": [7.0, 7.0, 7.0]})
    with pytest.raises(DataError, match=r"column 'c' is constant \(7 in every row\)"):
        Schema.infer(df)


def test_header_only_and_unknown_columns() -> None:
    with pytest.raises(DataError, match="no data rows"):
        Schema.infer(pd.DataFrame({"x": pd.Series([], dtype=float)}))
    with pytest.raises(SchemaError, match=r"no column 'zz'; the columns are 'x', 'n', 'flag'"):
        Schema.infer(table(), ["x", "zz"])


def test_validate_reorders_ignores_extras_and_counts_rows_with_offset() -> None:
    schema = Schema.infer(table(), ["x", "n"])
    df = pd.DataFrame({"extra": ["p", "q"], "n": [5, 6], "x": [0.5, 0.25]})
    np.testing.assert_array_equal(schema.validate(df), [[0.5, 5.0], [0.25, 6.0]])
    bad = pd.DataFrame({"x": [1.0, None], "n": [1, 2]})
    with pytest.raises(DataError, match="column 'x' has a missing value in row 102"):
        schema.validate(bad, row_offset=100)


def test_validate_names_missing_and_unexpected_columns() -> None:
    schema = Schema.infer(table(), ["x", "n"])
    df = pd.DataFrame({"X": [1.0], "n": [1]})
    with pytest.raises(SchemaError, match=r"^new.csv: missing model column 'x'; columns not "
                                          r"seen in training: 'X'$"):
        schema.validate(df, "new.csv")


def test_integer_columns_refuse_fractions_but_take_whole_floats() -> None:
    schema = Schema.infer(table(), ["n"])
    np.testing.assert_array_equal(schema.validate(pd.DataFrame({"n": [2.0, 3.0]})), [[2], [3]])
    with pytest.raises(DataError, match=r"column 'n' holds whole numbers in the model but 2.5 "
                                        r"in row 2"):
        schema.validate(pd.DataFrame({"n": [1.0, 2.5]}))

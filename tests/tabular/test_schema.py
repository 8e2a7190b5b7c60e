from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowcli.errors import Advice, DataError, SchemaError
from flowcli.tabular import Notice, Overrides, Schema


def cli_spelling(field: str, value: str | None) -> str:
    """Options as the command line writes them (``--missing model``)."""
    return f"--{field.replace('_', '-')}" + (f" {value}" if value is not None else "")


def table() -> pd.DataFrame:
    return pd.DataFrame({"x": [-1.5, 2.5, 3.0], "n": [1, 2, 3], "flag": [True, False, True]})


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
                                        r"value, or declare it categorical=\['x'\]$") as info:
        Schema.infer(df)
    err = info.value
    assert (err.column, err.row, err.value, err.advice.field) == ("x", 3, "oops", "categorical")
    assert err.render(cli_spelling) == ("data: column 'x' is not numeric: 'oops' in row 3; fix "
                                        "the value, or declare it --categorical x")


def test_free_text_ids_and_dates_are_refused_with_the_reason() -> None:
    n = 300
    words = pd.DataFrame({"note": [f"note number {i}" for i in range(n)]})
    with pytest.raises(DataError, match=r"column 'note' has 300 distinct text values \(free text "
                                        r"or an id\?\).*exclude=\['note'\]$"):
        Schema.infer(words)
    dates = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=n).strftime("%d.%m.%Y")})
    with pytest.raises(DataError, match=r"column 'day' holds dates not in ISO 8601; give their "
                                        r"format with datetime_format='day=FORMAT'"):
        Schema.infer(dates)
    iso = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=n).astype(str)})
    assert Schema.infer(iso).columns[0].kind == "datetime"
    ids = pd.DataFrame({"id": np.arange(100, 100 + n), "x": np.random.default_rng(0).random(n)})
    with pytest.raises(DataError, match=r"column 'id' counts 1 by 1 through the rows"):
        Schema.infer(ids)


def test_missing_values_are_refused_unless_modelled() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.nan], "y": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DataError, match=r"^d.csv: column 'x' has a missing value in row 3; use "
                                        r"missing='model' \(or drop\) to fit on rows with "
                                        r"gaps$") as info:
        Schema.infer(df, source="d.csv")
    err = info.value
    assert (err.source, err.column, err.row, err.advice) == (
        "d.csv", "x", 3, Advice("missing", "model", purpose="to fit on rows with gaps",
                                others=("drop",)))
    assert err.render(cli_spelling) == ("d.csv: column 'x' has a missing value in row 3; use "
                                        "--missing model (or drop) to fit on rows with gaps")
    spec = Schema.infer(df, overrides=Overrides(missing="model")).columns[0]
    assert spec.missing == 0.5


def test_infinity_is_refused() -> None:
    df = pd.DataFrame({"x": [1.0, np.inf, 2.0]})
    with pytest.raises(DataError, match=r"column 'x' holds inf in row 2") as info:
        Schema.infer(df)
    assert (info.value.column, info.value.row, info.value.value) == ("x", 2, np.inf)


def test_constant_continuous_column_is_refused() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.5], "c": [7.5, 7.5, 7.5]})
    with pytest.raises(DataError, match=r"column 'c' is constant \(7.5 in every row\), so it "
                                        r"has no density; leave it out with exclude=\['c'\]$"):
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
    df = pd.DataFrame({"level": rng.choice([0.25, 0.6, 0.75, 1.7], 400),
                       "x": rng.normal(size=400)})
    schema = Schema.infer(df)
    notes = schema.warnings(400)
    assert len(notes) == 1 and isinstance(notes[0], Notice)
    assert str(notes[0]) == (
        "column 'level' takes only 4 distinct values in 400 rows: a continuous density spikes "
        "on them and its likelihood means little; declare it categorical=['level'] if they are "
        "codes"
    )
    assert notes[0].render(cli_spelling) == (
        "column 'level' takes only 4 distinct values in 400 rows: a continuous density spikes "
        "on them and its likelihood means little; declare it --categorical level if they are "
        "codes"
    )
    assert (notes[0].column, notes[0].advice.field, notes[0].advice.value) == (
        "level", "categorical", "level")
    assert schema.columns[1].warning(400) is None


# Each case: a table, the arguments to Schema.infer, the command line's message (which names
# flags), and the fields the error carries.
REFUSALS = [
    (pd.DataFrame({"a": [1.0, np.nan]}), {},
     "s.csv: column 'a' has a missing value in row 2; use --missing model (or drop) to fit on "
     "rows with gaps", {"column": "a", "row": 2, "advice": "missing"}),
    (pd.DataFrame({"x": ["1.0", "2.0", "oops", "4"]}), {},
     "s.csv: column 'x' is not numeric: 'oops' in row 3; fix the value, or declare it "
     "--categorical x", {"column": "x", "row": 3, "value": "oops", "advice": "categorical"}),
    (pd.DataFrame({"id": np.arange(100, 130)}), {},
     "s.csv: column 'id' counts 1 by 1 through the rows (an id?), so it has no useful density; "
     "leave it out with --exclude id", {"column": "id", "advice": "exclude"}),
    (pd.DataFrame({"c": [7.5, 7.5]}), {},
     "s.csv: column 'c' is constant (7.5 in every row), so it has no density; leave it out "
     "with --exclude c", {"column": "c", "value": 7.5, "advice": "exclude"}),
    (pd.DataFrame({"d": ["2024-01-01", "2024-13-45"]}), {},
     "s.csv: column 'd' holds '2024-13-45' in row 2, not an ISO 8601 date or time; fix the "
     "value, or give its format with --datetime-format d=FORMAT (strftime codes such as "
     "%d/%m/%Y)", {"column": "d", "row": 2, "value": "2024-13-45",
                   "advice": "datetime_format"}),
    (pd.DataFrame({"day": pd.date_range("2024-01-01", periods=300).strftime("%d.%m.%Y")}), {},
     "s.csv: column 'day' holds dates not in ISO 8601; give their format with "
     "--datetime-format day=FORMAT (strftime codes such as %d/%m/%Y)",
     {"column": "day", "advice": "datetime_format"}),
    (pd.DataFrame({"z": [f"{i:05d}" for i in range(200)]}), {},
     "s.csv: column 'z' holds numbers stored as text (such as '00000'); convert it to numbers, "
     "or leave it out with --exclude z", {"column": "z", "value": "00000", "advice": "exclude"}),
    (pd.DataFrame({"note": [f"note number {i}" for i in range(300)]}), {},
     "s.csv: column 'note' has 300 distinct text values (free text or an id?), too many to "
     "model as categories; leave it out with --exclude note",
     {"column": "note", "advice": "exclude"}),
    (pd.DataFrame({"a": [1.0, 2.0]}), {"columns": ["a", "a"]},
     "s.csv: --columns names a column twice", {"column": "a", "field": "columns"}),
    (pd.DataFrame({"r": [0.1, 1.2]}), {"overrides": Overrides(bounds={"r": (0.0, 1.0)})},
     "s.csv: column 'r' is bounded to [0, 1] but holds 1.2 in row 2",
     {"column": "r", "row": 2, "value": 1.2}),
    (pd.DataFrame({"r": [0.1, -1.5]}), {"overrides": Overrides(positive={"r"})},
     "s.csv: column 'r' is declared positive but holds -1.5 in row 2",
     {"column": "r", "row": 2, "value": -1.5}),
    (pd.DataFrame({"r": [1.0, 2.5]}), {"overrides": Overrides(integer={"r"})},
     "s.csv: column 'r' is declared integer but holds 2.5 in row 2",
     {"column": "r", "row": 2, "value": 2.5}),
    (pd.DataFrame({"x": [1.0, 3.0, -np.inf]}), {},
     "s.csv: column 'x' holds -inf in row 3", {"column": "x", "row": 3, "value": -np.inf}),
    (pd.DataFrame({"a": [np.nan, np.nan]}), {"overrides": Overrides(missing="model")},
     "s.csv: column 'a' has no values", {"column": "a"}),
    (pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), {},
     "s.csv: column 'a' appears more than once", {"column": "a"}),
    (pd.DataFrame({"a": [1.0, 2.0]}), {"columns": ["a", "zz", "yy"]},
     "s.csv: no column 'zz', 'yy'; the columns are 'a'", {"column": "zz"}),
    (pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 3.0]}),
     {"columns": ["a"], "overrides": Overrides(positive={"b"})},
     "s.csv: 'b' is declared but left out of the model", {"column": "b"}),
]


@pytest.mark.parametrize(("df", "kwargs", "cli", "fields"), REFUSALS)
def test_refusals_carry_their_fields_and_name_no_flag(
        df: pd.DataFrame, kwargs: dict, cli: str, fields: dict) -> None:
    with pytest.raises(DataError) as info:
        Schema.infer(df, source="s.csv", **kwargs)
    err = info.value
    assert err.render(cli_spelling) == cli
    assert "--" not in str(err)
    assert err.source == "s.csv"
    expected = {"column": None, "row": None, "value": None, "field": None, "advice": None,
                **fields}
    got = {"column": err.column, "row": err.row, "value": err.value, "field": err.field,
           "advice": err.advice.field if err.advice else None}
    assert got == expected
    assert err.row is None or type(err.row) is int


def test_check_columns_carries_the_first_missing_column() -> None:
    schema = Schema.infer(table(), ["x", "n"])
    with pytest.raises(SchemaError) as info:
        schema.check_columns(pd.DataFrame({"n": [1]}), "new.csv")
    assert (info.value.source, info.value.column) == ("new.csv", "x")


def test_float_columns_on_a_regular_grid_are_discrete_on_it() -> None:
    rng = np.random.default_rng(0)
    k = rng.integers(0, 12, 3000)
    df = pd.DataFrame({"code": (k - 5.5) / 3.45, "half": rng.integers(0, 20, 3000) * 0.5,
                       "x": rng.normal(size=3000), "few": rng.choice([0.1, 0.35, 0.9], 3000)})
    columns = {c.name: c for c in Schema.infer(df).columns}
    assert columns["code"].kind == "integer" and columns["code"].inferred
    assert columns["code"].step == pytest.approx(1 / 3.45)
    assert columns["half"].kind_label == "grid of 0.5 (inferred)"
    assert columns["half"].offset == 0.0
    assert columns["x"].kind == "continuous"
    assert columns["few"].kind == "bounded"  # not a regular grid: a lattice warning instead
    opted = Schema.infer(df, overrides=Overrides(continuous={"code", "half"})).columns
    assert [c.kind for c in opted[:2]] == ["continuous", "continuous"]
    assert Schema.from_dict(Schema.infer(df).to_dict()).columns[0] == columns["code"]

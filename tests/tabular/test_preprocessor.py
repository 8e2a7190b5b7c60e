from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcli.errors import DataError
from flowcli.tabular import Overrides, Preprocessor, Schema
from flowcli.tabular.encoders import SCALES


def cli_spelling(field: str, value: str | None) -> str:
    """Options as the command line writes them (``--unseen floor``)."""
    return f"--{field.replace('_', '-')}" + (f" {value}" if value is not None else "")


def fitted(df: pd.DataFrame, overrides: Overrides | None = None) -> Preprocessor:
    return Preprocessor.fit(Schema.infer(df, overrides=overrides), df)


def mixed_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = np.exp(rng.normal(3, 1, n))
    amount[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "x": rng.normal(10, 2, n),
        "n": rng.poisson(4, n).astype("int64"),
        "flag": rng.random(n) < 0.3,
        "city": pd.Series(rng.choice(["paris", "lyon", "nice"], n), dtype="str"),
        "kind": pd.Categorical(rng.choice(["a", "b"], n)),
        "rate": rng.beta(2, 5, n),
        "amount": amount,
        "code": rng.choice([3, 7, 9], n),
    })


OVERRIDES = Overrides(categorical={"code"}, bounds={"rate": (0.0, 1.0)}, positive={"amount"},
                      missing="model", unbounded={"x"})


def test_kinds_layout_and_round_trip() -> None:
    df = mixed_table()
    pre = fitted(df, OVERRIDES)
    kinds = {c.name: c.kind for c in pre.schema.columns}
    assert kinds == {"x": "continuous", "n": "integer", "flag": "boolean", "city": "categorical",
                     "kind": "categorical", "rate": "bounded", "amount": "positive",
                     "code": "categorical"}
    assert pre.continuous == 4  # x, n, rate, amount
    assert pre.cardinalities == [2, 3, 2, 2, 3]  # flag, city, kind, amount_missing, code
    x, logdet = pre.encode(df)
    assert x.shape == (len(df), pre.dim) and np.isfinite(logdet).all()
    back = pre.decode(np.nan_to_num(x, nan=0.0))
    assert list(back.columns) == list(df.columns)
    assert list(back.dtypes) == list(df.dtypes)
    np.testing.assert_allclose(back["x"], df["x"], rtol=1e-12)
    np.testing.assert_allclose(back["rate"], df["rate"], rtol=1e-9)
    np.testing.assert_allclose(back["amount"], df["amount"], rtol=1e-9)  # NaN where missing
    for c in ("n", "flag", "city", "kind", "code"):
        assert back[c].tolist() == df[c].tolist(), c
    assert list(back["kind"].cat.categories) == ["a", "b"]


def test_any_point_in_an_integer_cell_decodes_to_that_integer() -> None:
    df = pd.DataFrame({"n": [0, 1, 2, 5, 9]})
    pre = fitted(df)
    for position in (0.0, 0.3, 0.5, 0.999):
        assert pre.decode(pre.encode(df, position=position)[0])["n"].tolist() == [0, 1, 2, 5, 9]


def test_decode_clips_integers_and_bounds() -> None:
    pre = fitted(pd.DataFrame({"n": [3, 4, 5]}))
    assert pre.decode(np.array([[-50.0], [50.0]]))["n"].tolist() == [3, 5]
    pre = fitted(pd.DataFrame({"r": [0.2, 0.5, 0.7]}), Overrides(bounds={"r": (0.0, 1.0)}))
    assert pre.decode(np.array([[-1e3], [1e3]]))["r"].between(0, 1).all()


@pytest.mark.parametrize("column", ["x", "n", "rate", "amount"])
def test_logdet_matches_autograd_derivative(column: str) -> None:
    df = mixed_table().dropna()
    pre = fitted(df, OVERRIDES)
    enc = next(e for e in pre.encoders if e.spec.name == column)
    _, _, logdet = enc.encode(df[column].head(5), "d", 0, 0.5)
    x = torch.tensor(df[column].head(5).to_numpy(), dtype=torch.float64, requires_grad=True)
    if column == "amount":
        u = torch.log(x)
    elif column == "rate":
        p = 1e-4 + (1 - 2e-4) * x
        u = torch.log(p) - torch.log1p(-p)
    else:
        u = x + (0.5 if column == "n" else 0.0)
    y = (u - enc.mean) / enc.std
    (grad,) = torch.autograd.grad(y.sum(), x)
    np.testing.assert_allclose(torch.log(grad.abs()).numpy(), logdet, rtol=1e-10)


def test_missing_values_become_nan_and_an_indicator() -> None:
    df = mixed_table()
    pre = fitted(df, OVERRIDES)
    x, logdet = pre.encode(df)
    gaps = df["amount"].isna().to_numpy()
    amount_dim = 3
    assert np.isnan(x[gaps, amount_dim]).all() and not np.isnan(x[~gaps, amount_dim]).any()
    indicator = pre.continuous + 3  # after flag, city, kind
    assert (x[:, indicator] == gaps).all()
    assert np.isfinite(logdet).all()


def test_unseen_category_is_an_error_or_the_rarest_label() -> None:
    df = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 2 + ["z"] * 9})
    pre = fitted(df)
    new = pd.DataFrame({"c": ["a", "q"]})
    with pytest.raises(DataError, match=r"^new.csv: column 'c' holds 'q' in row 12, a value "
                                        r"never seen in training; use unseen='floor' to take "
                                        r"such values as the rarest training value$") as info:
        pre.encode(new, "new.csv", row_offset=10)
    err = info.value
    assert (err.source, err.column, err.row, err.value) == ("new.csv", "c", 12, "q")
    assert (err.advice.field, err.advice.value) == ("unseen", "floor")
    assert err.render(cli_spelling) == (
        "new.csv: column 'c' holds 'q' in row 12, a value never seen in training; use --unseen "
        "floor to take such values as the rarest training value")
    x, _ = pre.encode(new, unseen="floor")
    assert x[:, 0].tolist() == [0.0, 1.0]  # 'b' is the rarest


def test_bad_values_name_column_and_row() -> None:
    pre = fitted(mixed_table().dropna(), OVERRIDES)
    cases = {"rate": (1.5, r"column 'rate' is bounded to \[0, 1\] but 1.5 in row 3"),
             "amount": (-2.0, r"column 'amount' is positive in the model but -2.0 in row 3"),
             "n": (2.5, r"column 'n' holds whole numbers in the model but 2.5 in row 3"),
             "x": (np.inf, r"column 'x' holds inf in row 3")}
    for column, (value, message) in cases.items():
        df = mixed_table().dropna().head(5).reset_index(drop=True)
        df[column] = df[column].astype("float64")
        df.loc[2, column] = value
        with pytest.raises(DataError, match=message) as info:
            pre.encode(df)
        err = info.value
        assert (err.source, err.column, err.row, err.value) == ("data", column, 3, value)
        assert err.advice is None and err.render(cli_spelling) == str(err)


def test_text_and_gaps_in_scored_rows_name_column_and_row() -> None:
    pre = fitted(mixed_table().dropna(), OVERRIDES)
    df = mixed_table().dropna().head(5).reset_index(drop=True)
    text = df.assign(x=df["x"].astype(object))
    text.loc[1, "x"] = "oops"
    with pytest.raises(DataError, match=r"^new.csv: column 'x' is not numeric: 'oops' in row "
                                        r"12$") as info:
        pre.encode(text, "new.csv", row_offset=10)
    assert (info.value.column, info.value.row, info.value.value) == ("x", 12, "oops")
    gaps = df.assign(x=df["x"].where(df.index != 3), city=df["city"].where(df.index != 1))
    with pytest.raises(DataError, match=r"^new.csv: column 'x' has a missing value in row "
                                        r"14$") as info:
        pre.encode(gaps, "new.csv", row_offset=10)
    assert (info.value.column, info.value.row, info.value.value) == ("x", 14, None)
    with pytest.raises(DataError, match=r"^new.csv: column 'city' has a missing value in row "
                                        r"12$") as info:
        pre.encode(gaps.assign(x=df["x"]), "new.csv", row_offset=10)
    assert (info.value.column, info.value.row) == ("city", 12)


def test_serialization_round_trip() -> None:
    df = mixed_table()
    pre = fitted(df, OVERRIDES)
    twin = Preprocessor.from_dict(pre.to_dict())
    np.testing.assert_array_equal(twin.encode(df)[0], pre.encode(df)[0])
    assert math.isclose(twin.encode(df)[1].sum(), pre.encode(df)[1].sum())


labels = st.sampled_from(["red", "green", "blue", "x y", "", "1a"])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(3, 40),
    seed=st.integers(0, 2**31),
    with_missing=st.booleans(),
    kinds=st.lists(st.sampled_from(["float", "int", "bool", "label", "positive", "bounded"]),
                   min_size=1, max_size=5),
)
def test_round_trip_property(n: int, seed: int, with_missing: bool, kinds: list[str]) -> None:
    """Random schemas: every kind decodes exactly what it encoded."""
    rng = np.random.default_rng(seed)
    data, overrides = {}, Overrides(missing="model")
    for i, kind in enumerate(kinds):
        name = f"c{i}"
        if kind == "float":
            col = pd.Series(rng.normal(0, 10.0 ** rng.integers(-3, 4), n))
        elif kind == "int":
            col = pd.Series(rng.integers(-1000, 1000, n))
        elif kind == "bool":
            col = pd.Series(rng.random(n) < 0.5)
        elif kind == "label":
            col = pd.Series(rng.choice(["red", "green", "x y", ""], n), dtype="str")
        elif kind == "positive":
            col = pd.Series(np.exp(rng.normal(0, 3, n)))
            overrides.positive.add(name)
        else:
            col = pd.Series(rng.uniform(-5, 5, n))
            overrides.bounds[name] = (-5.0, 5.0)
        if with_missing and kind in ("float", "positive", "bounded"):
            col[0] = np.nan
        data[name] = col
    df = pd.DataFrame(data)
    if (df.nunique() < 2).any():
        return  # constant columns are refused, tested elsewhere
    pre = fitted(df, overrides)
    x, logdet = pre.encode(df)
    assert np.isfinite(logdet).all()
    back = pre.decode(np.nan_to_num(x, nan=0.0))
    for name, col in df.items():
        if col.dtype == np.float64:
            np.testing.assert_allclose(back[name], col, rtol=1e-8, atol=1e-12)
        else:
            assert back[name].tolist() == col.tolist()
        assert back[name].dtype == col.dtype


def _torch_soft(x: torch.Tensor, kind: str, s: float) -> torch.Tensor:
    """The soft log and soft logit written again with torch, for autograd."""
    if kind == "positive":
        return s * torch.log(torch.expm1(x / s))
    p = 1e-4 + (1 - 2e-4) * x
    return s * (torch.log(torch.expm1(p / s)) - torch.log(-torch.expm1((p - 1) / s)))


@pytest.mark.parametrize("kind", ["positive", "bounded"])
@pytest.mark.parametrize("factor", [f for f in SCALES if f is not None])
def test_inferred_supports_have_exact_inverses_and_logdets(kind: str, factor: float) -> None:
    rng = np.random.default_rng(1)
    values = np.exp(rng.normal(1, 1, 200)) if kind == "positive" else rng.beta(2, 5, 200)
    df = pd.DataFrame({"v": values})
    pre = fitted(df)
    enc = pre.encoders[0]
    assert enc.spec.kind == kind and enc.spec.inferred
    enc.scale = factor * (float(np.median(values)) if kind == "positive" else 1.0)
    u, _ = enc._forward(values)
    enc.mean, enc.std = float(u.mean()), float(u.std())
    x, logdet = pre.encode(df)
    back = pre.decode(x)["v"].to_numpy()
    np.testing.assert_allclose(back, values, rtol=1e-8)
    t = torch.tensor(values[:20], dtype=torch.float64, requires_grad=True)
    y = (_torch_soft(t, kind, enc.scale) - enc.mean) / enc.std
    (grad,) = torch.autograd.grad(y.sum(), t)
    np.testing.assert_allclose(torch.log(grad).numpy(), logdet[:20], rtol=1e-7, atol=1e-9)


def test_supports_are_inferred_unless_opted_out() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"premium": np.exp(rng.normal(6, 0.5, 300)),
                       "share": rng.beta(2, 2, 300), "temp": rng.normal(0, 1, 300),
                       "count": rng.poisson(3, 300)})
    kinds = {c.name: c.kind_label for c in Schema.infer(df).columns}
    assert kinds == {"premium": "positive (inferred)", "share": "bounded (inferred)",
                     "temp": "continuous", "count": "integer"}
    spec = Schema.infer(df).columns[1]
    assert (spec.low, spec.high) == (0.0, 1.0)
    opted = Schema.infer(df, overrides=Overrides(unbounded={"premium", "share"}))
    assert [c.kind for c in opted.columns[:2]] == ["continuous", "continuous"]
    declared = Schema.infer(df, overrides=Overrides(positive={"premium"}))
    assert declared.columns[0].kind_label == "positive"


def test_a_value_outside_an_inferred_support_is_refused_naming_it() -> None:
    df = pd.DataFrame({"premium": [10.5, 20.25, 35.75, 50.5]})
    pre = fitted(df)
    with pytest.raises(DataError) as info:
        pre.encode(pd.DataFrame({"premium": [12.0, -3.0]}), "new.csv")
    error = info.value
    assert (error.column, error.row, error.value) == ("premium", 2, -3.0)
    assert error.render(cli_spelling) == (
        "new.csv: column 'premium' is positive in the model (as every training value was) but "
        "-3.0 in row 2; refit with --unbounded premium to model it without that bound")


def test_a_grid_column_round_trips_and_refuses_values_off_the_grid() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"half": rng.integers(0, 20, 2000) * 0.5 + 0.25})
    pre = fitted(df)
    enc = pre.encoders[0]
    assert enc.spec.step == 0.5 and enc.discrete
    x, logdet = pre.encode(df)
    np.testing.assert_array_equal(pre.decode(x)["half"], df["half"])
    assert np.allclose(logdet, -np.log(enc.std))  # a log-probability of the grid point
    decoded = pre.decode(np.linspace(-30, 30, 500)[:, None])["half"].to_numpy()
    assert set(decoded) <= set(df["half"])  # only grid points, inside the training range
    with pytest.raises(DataError) as info:
        pre.encode(pd.DataFrame({"half": [0.75, 1.3]}))
    assert info.value.render(cli_spelling) == (
        "data: column 'half' lies on a grid of step 0.5 from 0.25 (as every training value was) "
        "but 1.3 in row 2; refit with --continuous half to model it as continuous")

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowcli.tabular import Preprocessor, Schema


def fitted(df: pd.DataFrame) -> tuple[Preprocessor, np.ndarray]:
    schema = Schema.infer(df)
    values = schema.validate(df)
    return Preprocessor.fit(schema, values), values


def test_round_trip_restores_values_and_dtypes(gaussian_table: pd.DataFrame) -> None:
    df = gaussian_table.assign(flag=gaussian_table["n"] > 3,
                               small=lambda d: d["n"].astype("int16"))
    pre, values = fitted(df)
    back = pre.decode(pre.encode(values))
    assert list(back.columns) == list(df.columns)
    assert list(back.dtypes) == list(df.dtypes)
    np.testing.assert_allclose(back[["a", "b"]], df[["a", "b"]], rtol=1e-12)
    pd.testing.assert_series_equal(back["n"], df["n"])
    pd.testing.assert_series_equal(back["flag"], df["flag"])


def test_any_point_in_an_integer_cell_decodes_to_that_integer() -> None:
    df = pd.DataFrame({"n": [0, 1, 2, 5, 9]})
    pre, values = fitted(df)
    for position in (0.0, 0.3, 0.5, 0.999):
        assert pre.decode(pre.encode(values, position))["n"].tolist() == [0, 1, 2, 5, 9]


def test_decode_clips_integers_to_the_training_range() -> None:
    pre, _ = fitted(pd.DataFrame({"n": [3, 4, 5]}))
    assert pre.decode(np.array([[-50.0], [50.0]]))["n"].tolist() == [3, 5]


def test_logdet_matches_autograd_derivative(gaussian_table: pd.DataFrame) -> None:
    pre, values = fitted(gaussian_table)
    for j, enc in enumerate(pre.encoders):
        x = torch.tensor(values[:3, j], dtype=torch.float64, requires_grad=True)
        y = (x + (0.5 if enc.discrete else 0.0) - enc.mean) / enc.std
        (grad,) = torch.autograd.grad(y.sum(), x)
        np.testing.assert_allclose(torch.log(grad.abs()).numpy(), enc.logdet)
    assert math.isclose(pre.logdet, sum(e.logdet for e in pre.encoders))


def test_encoded_training_data_is_standardized(gaussian_table: pd.DataFrame) -> None:
    pre, values = fitted(gaussian_table)
    encoded = pre.encode(values, 0.0) + np.random.default_rng(0).random(values.shape) * pre.widths
    np.testing.assert_allclose(encoded.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(encoded.std(axis=0), 1.0, atol=0.05)
    assert pre.widths[0] == 0.0 and pre.widths[2] > 0.0


def test_serialization_round_trip(gaussian_table: pd.DataFrame) -> None:
    pre, values = fitted(gaussian_table)
    twin = Preprocessor.from_dict(pre.to_dict())
    np.testing.assert_array_equal(twin.encode(values), pre.encode(values))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    floats=arrays(np.float64, st.integers(2, 30), elements=finite, unique=True),
    ints=st.lists(st.integers(-10**6, 10**6), min_size=30, max_size=30),
)
def test_round_trip_property(floats: np.ndarray, ints: list[int]) -> None:
    n = len(floats)
    df = pd.DataFrame({"f": floats, "i": np.array(ints[:n], dtype="int64")})
    pre, values = fitted(df)
    back = pre.decode(pre.encode(values))
    np.testing.assert_allclose(back["f"], df["f"], rtol=1e-9, atol=1e-9 * np.abs(floats).max())
    assert back["i"].tolist() == df["i"].tolist()

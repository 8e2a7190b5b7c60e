"""Mixed tables: categories, booleans, bounds, positives and gaps, fitted end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowcli import FlowModel
from flowcli.tabular import Overrides

FAST = dict(layers=3, hidden=32, patience=10, epochs=200)

# chi-square critical values at p = 0.001 by degrees of freedom
CHI2_999 = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52}


@pytest.fixture(scope="module")
def shop() -> tuple[FlowModel, pd.DataFrame]:
    rng = np.random.default_rng(4)
    n = 4000
    store = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1])
    base = {"north": 20.0, "south": 35.0, "east": 50.0, "west": 80.0}
    spend = np.array([base[s] for s in store]) * np.exp(rng.normal(0, 0.3, n))
    spend[rng.random(n) < 0.08] = np.nan
    df = pd.DataFrame({
        "store": pd.Series(store, dtype="str"),
        "member": rng.random(n) < np.where(store == "west", 0.8, 0.3),
        "spend": spend,
        "items": rng.poisson(3, n).astype("int64"),
        "discount": rng.beta(2, 8, n),
    })
    model = FlowModel.fit(df, seed=0, device="cpu", missing="model",
                          overrides=Overrides(positive={"spend"}, bounds={"discount": (0, 1)}),
                          **FAST)
    return model, df


def test_one_categorical_column_probabilities_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"c": rng.choice(list("abcde"), 3000, p=[0.5, 0.2, 0.15, 0.1, 0.05])})
    model = FlowModel.fit(df, seed=0, device="cpu", **FAST)
    assert "candidates" not in model.training  # no flow, so auto has nothing to choose
    labels = pd.DataFrame({"c": list("abcde")})
    probs = np.exp(model.score(labels))
    assert 0.95 <= probs.sum() <= 1.0 + 1e-6
    np.testing.assert_allclose(probs, df["c"].value_counts(normalize=True).sort_index(),
                               atol=0.02)


def test_sampled_categories_match_training_frequencies(shop) -> None:
    model, df = shop
    synth = model.sample(20000, seed=1)
    for column in ("store", "member"):
        train = df[column].value_counts(normalize=True).sort_index()
        counts = synth[column].value_counts().reindex(train.index, fill_value=0)
        assert set(synth[column].unique()) <= set(train.index)
        expected = train * len(synth)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < CHI2_999[len(train) - 1], (column, chi2)


def test_dependence_on_categories_survives(shop) -> None:
    model, df = shop
    synth = model.sample(20000, seed=2)
    sd = df["spend"].std()
    real = df.groupby("store")["spend"].mean()
    fake = synth.groupby("store")["spend"].mean()
    assert ((real - fake).abs() < 0.1 * sd).all(), (real, fake)
    member_real = df.groupby("store")["member"].mean()
    member_fake = synth.groupby("store")["member"].mean()
    assert ((member_real - member_fake).abs() < 0.05).all()


def test_samples_keep_schema_ranges_and_missing_rates(shop) -> None:
    model, df = shop
    synth = model.sample(20000, seed=3)
    assert list(synth.columns) == list(df.columns)
    assert list(synth.dtypes) == list(df.dtypes)
    assert synth["items"].between(df["items"].min(), df["items"].max()).all()
    assert synth["discount"].between(0, 1).all()
    assert (synth["spend"].dropna() > 0).all()
    assert abs(synth["spend"].isna().mean() - df["spend"].isna().mean()) < 0.01


def test_rows_with_gaps_score_finite_and_unseen_labels(shop) -> None:
    model, df = shop
    rows = df.head(50)
    scores = model.score(rows)
    assert np.isfinite(scores).all()
    gap = rows["spend"].isna()
    assert gap.any() and (~gap).any()
    new = rows.head(3).assign(store=["north", "mars", "south"])
    with pytest.raises(Exception, match=r"column 'store' holds 'mars' in row 2, a value never "
                                        r"seen in training"):
        model.score(new)
    floor = model.score(new, unseen="floor")
    as_rarest = model.score(new.assign(store=["north", "west", "south"]))
    np.testing.assert_allclose(floor, as_rarest)


def test_latent_round_trip_with_categories_and_gaps(shop) -> None:
    model, df = shop
    rows = df.head(40)
    z = model.to_latent(rows)
    assert list(z.columns) == ["z_0", "z_1", "z_2", "store", "member", "spend_missing"]
    back = model.from_latent(z)
    pd.testing.assert_frame_equal(back[["store", "member", "items"]],
                                  rows[["store", "member", "items"]])
    np.testing.assert_allclose(back["spend"], rows["spend"], rtol=1e-8)
    np.testing.assert_allclose(back["discount"], rows["discount"], rtol=1e-8)


def test_spline_flow_on_a_mixed_table_survives_the_file(tmp_path, shop) -> None:
    _, df = shop
    model = FlowModel.fit(df.head(1500), seed=0, device="cpu", missing="model", model="nsf",
                          overrides=Overrides(positive={"spend"}, bounds={"discount": (0, 1)}),
                          layers=2, hidden=16, epochs=4)
    assert model.info()["model"]["kind"] == "nsf" and model.info()["model"]["bins"] == 8
    path = tmp_path / "m.flow"
    model.save(str(path))
    again = FlowModel.load(str(path))
    rows = df.tail(200)
    np.testing.assert_array_equal(model.score(rows), again.score(rows))
    synth = again.sample(300, seed=1)
    assert set(synth["store"]) <= set(df["store"])
    assert np.isfinite(again.score(synth.dropna())).all()
    back = again.from_latent(again.to_latent(rows))
    np.testing.assert_allclose(back["discount"], rows["discount"], rtol=1e-6)

"""Conditional models, ``fit --condition``: densities of some columns given the others, from
Python and from the command line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from flowcli import FlowModel
from flowcli.cli import app
from flowcli.errors import ConditionWarning, DataError, SchemaError, UsageError

FIT = dict(model="maf", layers=2, hidden=16, epochs=40, patience=10)


def _shops(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """An amount whose mean depends on a shop (label) and a load (number, with gaps), and a
    payment method (label) that depends on the amount."""
    rng = np.random.default_rng(seed)
    shop = rng.choice(["north", "south"], n)
    load = rng.normal(0.0, 1.0, n)
    amount = np.where(shop == "north", -2.0, 2.0) + 0.5 * load + rng.normal(0.0, 0.5, n)
    card = rng.random(n) < 1 / (1 + np.exp(-amount))
    table = pd.DataFrame({"shop": shop, "load": load, "amount": amount,
                          "paid": np.where(card, "card", "cash")})
    table.loc[::10, "load"] = np.nan
    return table


@pytest.fixture(scope="module")
def model() -> FlowModel:
    return FlowModel.fit(_shops(), seed=0, device="cpu", condition=["shop", "load"],
                         missing="model", **FIT)


@pytest.fixture(scope="module")
def mixture_model() -> FlowModel:
    """On a mixture base whose weights and means move with the condition."""
    return FlowModel.fit(_shops(), seed=0, device="cpu", condition=["shop", "load"],
                         missing="model", mixture=True, **FIT)


@pytest.fixture(scope="module")
def model_file(model: FlowModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("conditional") / "c.flow"
    model.save(str(path))
    return path


# ---------------------------------------------------------------- the library
def test_the_model_is_of_the_other_columns(model: FlowModel) -> None:
    assert model.schema.given == ["shop", "load"]
    assert model.info()["given"] == ["shop", "load"]
    kinds = {c["name"]: c.get("given", False) for c in model.info()["columns"]}
    assert kinds == {"shop": True, "load": True, "amount": False, "paid": False}


@pytest.mark.parametrize(("shop", "load"), [("north", 0.0), ("south", 1.5), ("north", np.nan)])
def test_scores_are_a_density_of_the_others_for_each_condition(model: FlowModel, shop: str,
                                                               load: float) -> None:
    assert _total(model, shop, load) == pytest.approx(1.0, abs=2e-3)


def _total(model: FlowModel, shop: str, load: float) -> float:
    """The density given the condition, summed over the labels and integrated over the
    amount: 1 for every condition, gaps included."""
    amounts = np.linspace(-10.0, 10.0, 4001)
    total = 0.0
    for paid in ("card", "cash"):
        rows = pd.DataFrame({"shop": shop, "load": load, "amount": amounts, "paid": paid})
        total += np.trapezoid(np.exp(model.score(rows).to_numpy()), amounts)
    return total


@pytest.mark.parametrize(("shop", "load"), [("north", 0.0), ("south", -1.0), ("south", np.nan)])
def test_a_mixture_base_given_the_condition_is_a_density(mixture_model: FlowModel, shop: str,
                                                         load: float) -> None:
    assert mixture_model.info()["model"]["base_context"] >= 1  # the condition's width
    assert _total(mixture_model, shop, load) == pytest.approx(1.0, abs=2e-3)


def test_a_mixture_base_given_the_condition_samples_and_survives_the_file(
        mixture_model: FlowModel, tmp_path: Path) -> None:
    north = mixture_model.sample(3000, seed=1, given={"shop": "north", "load": 0.0})
    south = mixture_model.sample(3000, seed=1, given={"shop": "south", "load": 0.0})
    assert north["amount"].mean() == pytest.approx(-2.0, abs=0.15)
    assert south["amount"].mean() == pytest.approx(2.0, abs=0.15)
    path = tmp_path / "m.flow"
    mixture_model.save(str(path))
    loaded = FlowModel.load(str(path))
    rows = _shops(100, seed=7)
    np.testing.assert_array_equal(loaded.score(rows), mixture_model.score(rows))
    assert torch.load(path, weights_only=True)["format_version"] == 9
    back = loaded.from_latent(loaded.to_latent(rows))
    np.testing.assert_allclose(back["amount"], rows["amount"], atol=1e-6)


def test_samples_follow_their_condition(model: FlowModel) -> None:
    north = model.sample(3000, seed=1, given={"shop": "north", "load": 0.0})
    south = model.sample(3000, seed=1, given={"shop": "south", "load": 0.0})
    assert (north["shop"] == "north").all() and (north["load"] == 0.0).all()
    assert north["amount"].mean() == pytest.approx(-2.0, abs=0.15)
    assert south["amount"].mean() == pytest.approx(2.0, abs=0.15)
    assert list(north.columns) == ["shop", "load", "amount", "paid"]
    assert (north["paid"] == "cash").mean() > (south["paid"] == "cash").mean() + 0.5


def test_sampling_given_a_table_draws_for_each_row_in_order(model: FlowModel) -> None:
    given = pd.DataFrame({"load": [0.5, np.nan, -1.0], "shop": ["south", "north", "south"],
                          "note": ["x", "y", "z"]})
    drawn = model.sample(4, seed=3, given=given)
    assert len(drawn) == 12
    assert drawn["shop"].tolist() == ["south"] * 4 + ["north"] * 4 + ["south"] * 4
    assert drawn["load"].isna().tolist() == [False] * 4 + [True] * 4 + [False] * 4
    assert "note" not in drawn.columns
    again = model.sample(4, seed=3, given=given)
    pd.testing.assert_frame_equal(drawn, again)


def test_text_conditions_are_read_as_the_training_types(model: FlowModel) -> None:
    row = model.condition_table({"shop": "NORTH", "load": "0.25"})
    assert row["shop"].tolist() == ["north"] and row["load"].tolist() == [0.25]
    with pytest.raises(DataError, match="given: column 'load' is not numeric: 'high'"):
        model.condition_table({"shop": "north", "load": "high"})
    with pytest.raises(SchemaError, match="given: missing condition column 'load'"):
        model.condition_table({"shop": "north"})


def test_latent_codes_are_given_the_condition_both_ways(model: FlowModel) -> None:
    rows = _shops(200, seed=5)
    latent = model.to_latent(rows)
    assert {"shop", "load"} <= set(latent.columns)
    back = model.from_latent(latent)
    np.testing.assert_allclose(back["amount"], rows["amount"], atol=1e-8)
    assert back["paid"].tolist() == rows["paid"].tolist()
    pd.testing.assert_series_equal(back["shop"], rows["shop"], check_dtype=False)
    moved = latent.assign(shop=np.where(latent["shop"] == "north", "south", "north"))
    assert not np.allclose(model.from_latent(moved)["amount"], rows["amount"])


def test_a_condition_outside_its_training_range_warns(model: FlowModel) -> None:
    far = pd.DataFrame({"shop": ["north"], "load": [40.0], "amount": [0.0], "paid": ["card"]})
    with pytest.warns(ConditionWarning, match=r"'load' outside its training range \[-"):
        assert np.isfinite(model.score(far)).all()
    with pytest.warns(ConditionWarning, match="'load' outside its training range"):
        model.sample(2, seed=0, given={"shop": "south", "load": 40.0})


def test_an_unseen_condition_label_is_an_error_unless_floored(model: FlowModel) -> None:
    given = pd.DataFrame({"shop": ["north", "east"], "load": [0.0, 0.0]})
    with pytest.raises(DataError, match="column 'shop' holds 'east' in row 2"):
        model.sample(1, seed=0, given=given)
    drawn = pd.concat(model.sample_given_batches([given], 1, seed=0, unseen="floor"))
    assert drawn["shop"].tolist() == ["north", "east"]


def test_a_conditional_model_survives_the_model_file(model: FlowModel, model_file: Path
                                                     ) -> None:
    loaded = FlowModel.load(str(model_file))
    rows = _shops(100, seed=7)
    np.testing.assert_array_equal(loaded.score(rows), model.score(rows))
    assert loaded.schema.given == ["shop", "load"]


def test_sampling_must_say_whether_it_is_given(model: FlowModel, fitted_model) -> None:
    with pytest.raises(UsageError, match="is needed: this model is conditional on shop, load"):
        model.sample(3)
    plain, _, _ = fitted_model
    with pytest.raises(UsageError, match="does not apply: this model is not conditional"):
        plain.sample(3, given=pd.DataFrame({"a": [1.0]}))


@pytest.mark.parametrize(("condition", "options", "message"), [
    (["region"], {}, "names no column 'region'"),
    (["shop"], {"exclude": ["shop"]}, "names 'shop', which is left out of the model"),
    (["shop", "load", "amount", "paid"], {}, "names every column"),
    (["shop", "shop"], {}, "names a condition twice"),
])
def test_bad_conditions_are_refused_before_training(condition: list[str], options: dict,
                                                    message: str) -> None:
    with pytest.raises((UsageError, SchemaError), match=message):
        FlowModel.fit(_shops(200), condition=condition, missing="model", **options, **FIT)


def test_a_resumed_fit_keeps_its_conditions(model: FlowModel) -> None:
    model.check_resume(condition=["load", "shop"])
    with pytest.raises(UsageError, match="cannot be changed when resuming"):
        model.check_resume(condition=["shop"])


# ---------------------------------------------------------------- the command line
def run(*args: object, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def test_fit_condition_and_info_say_given(tmp_path: Path) -> None:
    _shops(600).to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "c.flow"
    fitted = run("fit", tmp_path / "t.csv", "-o", out, "--condition", "shop,load",
                 "--missing", "model", "--model", "maf", "--layers", "2", "--hidden", "8",
                 "--epochs", "3", "--seed", "0")
    assert fitted.exit_code == 0, fitted.stderr
    assert "given" in fitted.stderr and "shop, load" in fitted.stderr
    shown = run("info", out)
    assert "categorical, given" in shown.stdout
    assert "given" in shown.stdout and "log p(others | these)" in shown.stdout


def test_sample_given_pairs(model_file: Path) -> None:
    result = run("sample", model_file, "--given", "shop=south", "--given", "load=0.5",
                 "-n", "7", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    drawn = pd.read_csv(io.StringIO(result.stdout))
    assert len(drawn) == 7 and (drawn["shop"] == "south").all() and (drawn["load"] == 0.5).all()
    assert result.stderr == ""


def test_sample_given_a_table_on_stdin_draws_n_per_row(model_file: Path, tmp_path: Path
                                                       ) -> None:
    given = "shop,load\nnorth,0.1\nsouth,-0.3\nnorth,\n"
    result = run("sample", model_file, "--given", "-", "-n", "3", "--seed", "1", input=given)
    assert result.exit_code == 0, result.stderr
    drawn = pd.read_csv(io.StringIO(result.stdout))
    assert drawn["shop"].tolist() == ["north"] * 3 + ["south"] * 3 + ["north"] * 3
    (tmp_path / "g.csv").write_text(given)
    once = run("sample", model_file, "--given", tmp_path / "g.csv", "--seed", "1")
    assert len(pd.read_csv(io.StringIO(once.stdout))) == 3  # one row per given row


def test_sample_warns_in_one_line_and_quiet_silences_it(model_file: Path) -> None:
    args = ("sample", model_file, "--given", "shop=north", "--given", "load=50", "-n", "2")
    loud = run(*args)
    assert loud.exit_code == 0
    assert loud.stderr.splitlines() == [
        loud.stderr.splitlines()[0]] and loud.stderr.startswith(
        "warning: --given: condition 'load' outside its training range [")
    assert run(*args, "-q").stderr == ""


@pytest.mark.parametrize(("given", "message", "code"), [
    (["shop=east", "load=0"], "--given: column 'shop' holds 'east' in row 1", 1),
    (["shop=north"], "--given: missing condition column 'load'", 1),
    (["shop=north", "load=high"], "--given: column 'load' is not numeric: 'high'", 1),
    (["shop=north", "load=0", "amount=1"], "--given: column 'amount' is not a condition", 1),
    (["shop=north", "shop=south"], "gives 'shop' twice", 2),
    (["nowhere.csv"], "nowhere.csv", 1),
    ([], "--given is needed: this model is conditional on shop, load", 2),
])
def test_bad_conditions_get_one_line_and_no_output(model_file: Path, tmp_path: Path,
                                                   given: list[str], message: str,
                                                   code: int) -> None:
    flags = [part for value in given for part in ("--given", value)]
    out = tmp_path / "out.csv"
    result = run("sample", model_file, *flags, "-n", "2", "-o", out)
    assert result.exit_code == code
    assert message in result.stderr and "Traceback" not in result.stderr
    if code == 1:  # usage errors (2) come from Typer, which the entry point makes one line
        assert len(result.stderr.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_given_file_missing_a_condition_column_names_it(model_file: Path, tmp_path: Path
                                                          ) -> None:
    (tmp_path / "g.csv").write_text("shop\nnorth\n")
    result = run("sample", model_file, "--given", tmp_path / "g.csv")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert result.stderr.endswith("g.csv: missing condition column 'load'\n")


def test_score_and_invert_round_trip_on_the_command_line(model_file: Path, tmp_path: Path
                                                         ) -> None:
    _shops(50, seed=9).to_csv(tmp_path / "new.csv", index=False)
    scored = run("score", model_file, tmp_path / "new.csv", "--percentile")
    assert scored.exit_code == 0, scored.stderr
    table = pd.read_csv(io.StringIO(scored.stdout))
    assert np.isfinite(table["log_prob"]).all() and table["percentile"].between(0, 100).all()
    latent = run("invert", model_file, tmp_path / "new.csv", "-o", tmp_path / "z.csv", "-q")
    assert latent.exit_code == 0, latent.stderr
    back = run("invert", model_file, tmp_path / "z.csv", "--to-data")
    again = pd.read_csv(io.StringIO(back.stdout))
    np.testing.assert_allclose(again["amount"], pd.read_csv(tmp_path / "new.csv")["amount"],
                               atol=1e-6)

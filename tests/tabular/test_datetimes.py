"""Datetime columns: read from every form, split into parts and joined back exactly, modelled
with a density that sums to one over the instants, sampled in the training dtype and zone,
and refused in one line when they cannot be read."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from flowcli import FlowModel
from flowcli.errors import DataError, SchemaError
from flowcli.tabular import Overrides, Schema
from flowcli.tabular.dateparts import join, split


def _stamps(n: int, seed: int, freq: str = "s", zone: str | None = None) -> pd.Series:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-03-20", tz=zone)
    offsets = pd.to_timedelta(rng.integers(0, 60 * 86_400, n), "s").floor(freq)
    return pd.Series(start + offsets, name="ts").dt.as_unit("us")


@pytest.mark.parametrize("freq,zone,resolution", [
    ("s", None, 1), ("min", "UTC", 60), ("h", "Europe/Paris", 3600), ("D", None, 86_400)])
def test_parts_join_back_to_the_same_instants(freq, zone, resolution) -> None:
    stamps = _stamps(500, 0, freq, zone)
    spec = Schema.infer(stamps.to_frame()).columns[0]
    assert (spec.kind, spec.resolution, spec.zone) == ("datetime", resolution, zone)
    parts = split(spec, stamps, "data", 0)
    assert len(parts) == {86_400: 2, 3600: 3}.get(resolution, 4)
    back = join(spec, parts)
    assert back.dtype == stamps.dtype and (back.to_numpy() == stamps.to_numpy()).all()


def test_sub_second_times_keep_their_resolution() -> None:
    stamps = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(
        np.random.default_rng(1).integers(0, 10**9, 400), "ms"), name="ts")
    spec = Schema.infer(stamps.to_frame()).columns[0]
    assert spec.resolution == 0.001
    assert (join(spec, split(spec, stamps, "data", 0)) == stamps).all()


def test_daylight_saving_days_split_on_one_fixed_offset() -> None:
    """Paris changes clocks on 2024-03-31: both sides land on one local clock, so the
    split stays a bijection (no hour lost, none counted twice)."""
    hours = pd.Series(pd.date_range("2024-03-30", "2024-04-02", freq="h", tz="Europe/Paris"))
    spec = Schema.infer(hours.rename("t").to_frame()).columns[0]
    parts = split(spec, hours, "data", 0)
    assert spec.shift == 7200  # summer time is the commoner offset here
    assert parts["t.hour"].nunique() == 24
    assert (join(spec, parts) == hours).all()


def test_a_date_columns_probabilities_sum_to_one() -> None:
    rng = np.random.default_rng(2)
    days = pd.Timestamp("2024-05-01") + pd.to_timedelta(
        np.round(rng.normal(10, 4, 3000)).clip(0, 20), "D")
    table = pd.DataFrame({"day": days.date})
    model = FlowModel.fit(table, model="maf", epochs=40, seed=0)
    every = pd.date_range("2024-03-01", "2024-07-31", freq="D").date
    total = float(np.exp(model.score(pd.DataFrame({"day": every}))).sum())
    assert total == pytest.approx(1.0, abs=0.03)


def test_hourly_slots_sum_to_one() -> None:
    """At hour resolution a score is the log-probability of the hour slot."""
    rng = np.random.default_rng(3)
    hour = np.round(rng.normal(14, 3, 4000)).clip(0, 23)  # a daily rhythm, quiet at night
    hours = pd.Timestamp("2024-04-29", tz="UTC") + pd.to_timedelta(  # four whole weeks
        rng.integers(0, 28, 4000) * 24 + hour, "h")
    model = FlowModel.fit(pd.DataFrame({"t": hours}), model="maf", epochs=30, seed=0)
    every = pd.date_range("2024-04-15", "2024-06-01", freq="h", tz="UTC")
    total = float(np.exp(model.score(pd.DataFrame({"t": every}))).sum())
    assert total == pytest.approx(1.0, abs=0.05)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, FlowModel]:
    rng = np.random.default_rng(4)
    n = 3000
    stamps = _stamps(n, 4, "s", "UTC")
    hour = stamps.dt.hour.to_numpy()
    table = pd.DataFrame({"ts": stamps, "amount": np.exp(rng.normal(2 + 0.05 * hour, 0.3)),
                          "day": (stamps.dt.tz_localize(None).dt.normalize()).dt.date})
    table.loc[rng.random(n) < 0.05, "ts"] = pd.NaT
    return table, FlowModel.fit(table, model="maf", epochs=8, seed=0, missing="model")


def test_samples_keep_dtype_zone_range_resolution_and_gaps(events) -> None:
    table, model = events
    drawn = model.sample(3000, seed=1)
    assert drawn["ts"].dtype == table["ts"].dtype
    assert isinstance(drawn["day"].iloc[0], dt.date) and not isinstance(
        drawn["day"].iloc[0], dt.datetime)
    present = drawn["ts"].dropna()
    assert present.min() >= table["ts"].min() and present.max() <= table["ts"].max()
    assert (present.dt.microsecond == 0).all()
    assert 0.02 < drawn["ts"].isna().mean() < 0.09
    scores = model.score(table)
    assert np.isfinite(scores).all() and (model.score(table) == scores).all()


def test_latent_round_trip_gives_back_the_instants(events) -> None:
    table, model = events
    rows = table.dropna().head(50)
    back = model.from_latent(model.to_latent(rows))
    assert (back["ts"].to_numpy() == rows["ts"].to_numpy()).all()
    assert list(back["day"]) == list(rows["day"])


def test_csv_and_parquet_give_the_same_model(tmp_path) -> None:
    stamps = _stamps(800, 5, "s", "UTC")
    table = pd.DataFrame({"ts": stamps, "x": np.random.default_rng(5).normal(size=800)})
    table.to_parquet(tmp_path / "t.parquet")
    table.to_csv(tmp_path / "t.csv", index=False)
    models = [FlowModel.fit(pd.read_parquet(tmp_path / "t.parquet"), model="maf", epochs=2,
                            seed=0),
              FlowModel.fit(pd.read_csv(tmp_path / "t.csv"), model="maf", epochs=2, seed=0)]
    assert models[0].score(table).equals(models[1].score(table))


def test_text_in_a_format_of_its_own_is_read_and_written_so() -> None:
    stamps = _stamps(600, 6, "min")
    text = pd.DataFrame({"when": stamps.dt.strftime("%d/%m/%Y %H:%M")})
    model = FlowModel.fit(text, model="maf", epochs=2, seed=0,
                          datetime_format={"when": "%d/%m/%Y %H:%M"})
    drawn = model.sample(20, seed=0)["when"]
    assert pd.to_datetime(drawn, format="%d/%m/%Y %H:%M").notna().all()


@pytest.mark.parametrize("values,overrides,message", [
    (["2024-01-01T10:00:00+01:00", "2024-01-02T10:00:00+02:00"], {},
     r"column 'ts' mixes time zones: '2024-01-01T10:00:00\+01:00' in row 1 and "
     r"'2024-01-02T10:00:00\+02:00' in row 2"),
    (["2024-01-01", "2024-02-30", "2024-03-01"], {},
     r"column 'ts' holds '2024-02-30' in row 2, not an ISO 8601 date or time"),
    (["2024-01-01", "0000-02-01", "2024-03-01"], {},
     r"column 'ts' holds '0000-02-01' in row 2, a year out of range \(1 to 9999\)"),
    (["2024-01-01", "2024-02-01"], {"integer": {"ts"}},
     r"column 'ts' holds dates, such as '2024-01-01', but is declared integer"),
    ([1.5, 2.5], {"datetime": {"ts"}},
     r"column 'ts' is declared datetime but holds numbers"),
    (["01/02/2024", "31/02/2024"], {"datetime_format": {"ts": "%d/%m/%Y"}},
     r"column 'ts' holds '31/02/2024' in row 2, not a date in the format %d/%m/%Y$"),
])
def test_bad_datetimes_are_one_line_naming_the_column(values, overrides, message) -> None:
    with pytest.raises((DataError, SchemaError), match=message):
        Schema.infer(pd.DataFrame({"ts": values}), overrides=Overrides(**overrides))


def test_scoring_refuses_times_with_the_wrong_kind_of_zone(events) -> None:
    table, model = events
    naive = table.head(3).assign(ts=table["ts"].head(3).dt.tz_localize(None))
    with pytest.raises(DataError, match=r"column 'ts' holds times without a time zone \(row 1 "
                                        r"first\); the model's are in UTC"):
        model.score(naive)
    with pytest.raises(DataError, match=r"column 'ts' holds 'soon' in row 2"):
        model.score(table.head(3).astype({"ts": object}).assign(
            ts=["2024-04-01T00:00:00Z", "soon", None]))


def test_explain_scores_each_part(events) -> None:
    table, model = events
    found = model.explain(table.dropna().head(5))
    assert {"ts.week_cond_log_prob", "ts.weekday_cond_log_prob", "ts.hour_cond_log_prob",
            "ts.second_cond_log_prob", "day.week_cond_log_prob"} <= set(found.columns)


def test_impute_fills_a_datetime_gap_from_the_rest_of_the_row() -> None:
    rng = np.random.default_rng(13)
    stamps = _stamps(4000, 13, "s", "UTC")
    table = pd.DataFrame({"ts": stamps, "x": stamps.dt.hour + rng.normal(0, 0.5, 4000)})
    table.loc[rng.random(4000) < 0.05, "ts"] = pd.NaT
    model = FlowModel.fit(table, model="maf", epochs=30, seed=0, missing="model")
    rows = pd.DataFrame({"ts": pd.Series([pd.NaT] * 40, dtype=table["ts"].dtype),
                         "x": [4.0] * 20 + [20.0] * 20})
    filled = model.impute(rows, seed=0)
    assert filled["ts"].dtype == table["ts"].dtype and filled["ts"].notna().all()
    hours = filled["ts"].dt.hour.to_numpy()
    assert np.median(hours[:20]) < 8 and np.median(hours[20:]) > 16
    assert (filled["x"] == rows["x"]).all()


def test_the_report_compares_datetimes_as_numbers(events) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    from flowcli.report import build_report

    table, model = events
    found, page = build_report(model, table, holdout=table.tail(500), rows=1000)
    assert 0.5 < found["columns"]["ts"]["ks_complement"] <= 1.0
    assert 0.3 < found["privacy"]["membership_auc"] < 0.7 and "<section id=\"scores\">" in page


def test_a_datetime_condition_is_given_as_text(tmp_path) -> None:
    stamps = _stamps(1500, 7, "s", "UTC")
    table = pd.DataFrame({"ts": stamps, "x": stamps.dt.hour + np.random.default_rng(7).normal(
        0, 0.5, 1500)})
    model = FlowModel.fit(table, model="maf", epochs=20, seed=0, condition=["ts"])
    late = model.sample(400, seed=0, given={"ts": "2024-04-01T20:30:00Z"})
    early = model.sample(400, seed=0, given={"ts": "2024-04-01T03:30:00Z"})
    assert late["x"].mean() - early["x"].mean() > 10
    assert np.isfinite(model.score(table)).all()


def _cli(*args: object):
    from typer.testing import CliRunner

    from flowcli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_the_command_line_fits_and_samples_dates_in_their_own_format(tmp_path) -> None:
    stamps = _stamps(800, 8, "min")
    pd.DataFrame({"when": stamps.dt.strftime("%d/%m/%Y %H:%M"),
                  "x": np.random.default_rng(8).normal(size=800)}).to_csv(
        tmp_path / "t.csv", index=False)
    done = _cli("fit", tmp_path / "t.csv", "-o", tmp_path / "m.flow", "--model", "maf",
                "--epochs", "2", "--seed", "0", "--datetime-format", "when=%d/%m/%Y %H:%M")
    assert done.exit_code == 0, done.output
    assert "datetime per minute" in done.output
    done = _cli("sample", tmp_path / "m.flow", "-n", "5", "--seed", "0", "-o",
                tmp_path / "s.csv")
    drawn = pd.read_csv(tmp_path / "s.csv")["when"]
    assert pd.to_datetime(drawn, format="%d/%m/%Y %H:%M").notna().all()


@pytest.mark.parametrize("values,extra,line", [
    (["2024-01-01T10:00:00Z", "2024-01-02T10:00:00+02:00"], [],
     "t.csv: column 'ts' mixes time zones: '2024-01-01T10:00:00Z' in row 1 and "
     "'2024-01-02T10:00:00+02:00' in row 2 (convert them to one zone, UTC say)"),
    (["2024-01-01", "2024-01-02"], ["--positive", "ts"],
     "t.csv: column 'ts' holds dates, such as '2024-01-01', but is declared positive; "
     "leave it out of --positive"),
    (["2024-01-01", "2024-01-02"], ["--datetime-format", "ts"],
     "expected COLUMN=FORMAT"),
])
def test_bad_dates_on_the_command_line_are_one_line(tmp_path, values, extra, line) -> None:
    pd.DataFrame({"ts": values, "x": [1.0, 2.0]}).to_csv(tmp_path / "t.csv", index=False)
    done = _cli("fit", tmp_path / "t.csv", "-o", tmp_path / "m.flow", *extra)
    assert done.exit_code != 0 and line in done.output
    assert not (tmp_path / "m.flow").exists()


def test_dates_in_a_daylight_saving_zone_stay_dates(tmp_path) -> None:
    days = pd.Series(pd.date_range("2021-01-01", periods=730, freq="D", tz="Europe/Paris"))
    table = pd.DataFrame({"d": days.sample(3000, replace=True, random_state=0).to_numpy()})
    spec = Schema.infer(table).columns[0]
    assert (spec.resolution, spec.zone) == (86_400, "Europe/Paris")
    assert (join(spec, split(spec, table["d"], "data", 0)) == table["d"]).all()
    model = FlowModel.fit(table, model="maf", epochs=2, seed=0)
    drawn = model.sample(2000, seed=0)["d"]
    assert str(drawn.dt.tz) == "Europe/Paris" and (drawn.dt.hour == 0).all()


def test_a_zone_with_two_offsets_reads_its_own_text_back(tmp_path) -> None:
    stamps = _stamps(2000, 9, "s", "Europe/Paris")  # March to May: +01:00 and +02:00
    model = FlowModel.fit(stamps.to_frame(), model="maf", epochs=2, seed=0)
    model.sample(500, seed=0).to_csv(tmp_path / "s.csv", index=False)
    text = pd.read_csv(tmp_path / "s.csv")
    assert text["ts"].str.endswith("+01:00").any() and text["ts"].str.endswith("+02:00").any()
    assert np.isfinite(model.score(text)).all()
    assert np.allclose(model.score(text), model.score(pd.read_csv(tmp_path / "s.csv").assign(
        ts=lambda t: pd.to_datetime(t["ts"], utc=True).dt.tz_convert("Europe/Paris"))))


def test_a_datetime_condition_comes_back_in_the_training_dtype() -> None:
    days = pd.Series(pd.date_range("2021-01-01", periods=200, freq="D")).dt.date
    table = pd.DataFrame({"d": days.sample(1000, replace=True, random_state=1).to_numpy(),
                          "x": np.random.default_rng(1).normal(size=1000)})
    model = FlowModel.fit(table, model="maf", epochs=2, seed=0, condition=["d"])
    drawn = model.sample(3, seed=0, given={"d": "2021-06-01"})
    assert list(drawn["d"]) == [dt.date(2021, 6, 1)] * 3


def test_instants_at_the_ends_of_iso_years_stay_inside_the_range() -> None:
    series = pd.Series(["9999-12-31T23:59:59.999999", "9999-12-01T00:00:00.000001"] * 3)
    spec = Schema.infer(series.rename("t").to_frame()).columns[0]
    parts = split(spec, series, "data", 0)
    for shift in (-3, 3):
        moved = dict(parts, **{"t.week": parts["t.week"] + shift})
        back = join(spec, moved)
        assert (back >= pd.Timestamp("9999-12-01")).all()
        assert (back <= pd.Timestamp("9999-12-31T23:59:59.999999")).all()


def test_a_column_named_like_a_part_is_refused() -> None:
    table = pd.DataFrame({"ts": _stamps(100, 10), "ts.hour": np.arange(100) % 7 * 1.5})
    with pytest.raises(SchemaError, match=r"column 'ts.hour' has the name of a part of "
                                          r"datetime column 'ts'"):
        Schema.infer(table)


def test_resuming_accepts_the_same_declarations(tmp_path) -> None:
    table = _stamps(600, 11).to_frame()
    model = FlowModel.fit(table, model="maf", epochs=1, seed=0, datetime=["ts"],
                          datetime_format={"ts": "%Y-%m-%d %H:%M:%S"})
    model.check_resume(datetime=["ts"], datetime_format={"ts": "%Y-%m-%d %H:%M:%S"})


def test_a_format_may_hold_a_comma() -> None:
    from flowcli.cli.fit import parse_formats

    assert parse_formats("a=%d %b, %Y,b=%H:%M") == {"a": "%d %b, %Y", "b": "%H:%M"}


def test_a_datetime_condition_outside_training_is_warned_of() -> None:
    from flowcli.errors import ConditionWarning

    stamps = _stamps(800, 12, "s", "UTC")
    table = pd.DataFrame({"ts": stamps, "x": np.random.default_rng(12).normal(size=800)})
    model = FlowModel.fit(table, model="maf", epochs=1, seed=0, condition=["ts"])
    with pytest.warns(ConditionWarning, match=r"'ts' outside its training range \[2024-03-20"):
        model.score(table.head(3).assign(ts=pd.Timestamp("2030-01-01", tz="UTC")))


def test_python_datetimes_with_and_without_a_zone_are_mixed_zones() -> None:
    values = pd.Series([dt.datetime(2024, 1, 1, 10),
                        dt.datetime(2024, 1, 2, 10, tzinfo=dt.timezone.utc)] * 3, dtype=object)
    with pytest.raises(DataError, match=r"column 't' mixes time zones: '2024-01-01 10:00:00' in "
                                        r"row 1 and '2024-01-02 10:00:00\+00:00' in row 2"):
        Schema.infer(values.rename("t").to_frame())

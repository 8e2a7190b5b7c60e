"""Datetime columns on an event table: do samples keep the daily and weekly rhythm, the
trend, and the other columns' dependence on the hour?

Usage (from the repository root)::

    python benchmarks/events.py [--rows 30000] [--seed 0] [--max-seconds 600]

The table: payments over 2024 (UTC, whole seconds), more of them as the year goes on (a
trend), fewer at weekends, in a day with a morning and an evening peak; ``amount`` (positive)
and ``channel`` (three labels) depend on the hour; ``settled`` is a date 1 to 4 days
after the payment's. It is written as CSV and as Parquet; ``flowcli fit`` with its defaults runs on
the Parquet file, and again with ``--epochs 2`` on both files to show that they give the same
model. Reported, for as many synthetic rows as training rows:

- the dtype and zone of the samples, and whether they lie inside the training range and on
  whole seconds (dates on whole days);
- total-variation distance of hour-of-day and of day-of-week, real against synthetic;
- Kolmogorov-Smirnov distance of the instants; the share of rows settled 1 to 4 days after
  the payment;
- per hour band (0-6, 6-12, 12-18, 18-24), the mean of log(amount) and the share of each
  channel, real against synthetic, in units of the real column's standard deviation;
- scores of the real rows: finite, and equal on a second run.

Beside it, what a user does without a datetime kind: the same table with ``ts`` as seconds
and ``settled`` as days since 1970, fitted with the same defaults, sampled and turned back.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BANDS = (0, 6, 12, 18, 24)
EPOCH = pd.Timestamp("1970-01-01")


def events(n: int, seed: int) -> pd.DataFrame:
    """The event table (see the module docstring)."""
    rng = np.random.default_rng(seed)
    days = np.arange(366)
    weight = (1.0 + days / 365.0) * np.where(
        (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D")).day_of_week >= 5, 0.4, 1.0)
    day = rng.choice(days, n, p=weight / weight.sum())
    evening = rng.random(n) < 0.35
    hour = np.where(evening, rng.normal(19.5, 1.5, n), rng.normal(9.5, 2.0, n)) % 24
    seconds = np.floor(hour * 3600).astype(np.int64)
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(day, "D") \
        + pd.to_timedelta(seconds, "s")
    amount = np.exp(rng.normal(3.0 + 0.06 * hour, 0.5))
    p_web = np.clip(0.2 + 0.03 * hour, 0, 0.9)
    channel = np.where(rng.random(n) < p_web, "web",
                       np.where(rng.random(n) < 0.5, "card", "cash"))
    settled = (ts.tz_localize(None).normalize()
               + pd.to_timedelta(rng.integers(1, 5, n), "D")).date
    return pd.DataFrame({"ts": ts, "amount": amount.round(2), "channel": channel,
                         "settled": settled})


def total_variation(a: pd.Series, b: pd.Series) -> float:
    p = a.value_counts(normalize=True)
    q = b.value_counts(normalize=True)
    return 0.5 * float(p.subtract(q, fill_value=0).abs().sum())


def ks(a: np.ndarray, b: np.ndarray) -> float:
    both = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), both, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), both, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def by_hour_band(real: pd.DataFrame, synthetic: pd.DataFrame) -> pd.DataFrame:
    """Per hour band, the gap in mean log(amount) and in each channel's share, in units of
    the real column's standard deviation."""
    rows = []
    sd_amount = float(np.log(real["amount"]).std())
    for low, high in zip(BANDS[:-1], BANDS[1:], strict=True):
        cut = {}
        for name, table in (("real", real), ("synthetic", synthetic)):
            hours = table["ts"].dt.hour
            cut[name] = table[(hours >= low) & (hours < high)]
        gaps = {"amount": abs(np.log(cut["real"]["amount"]).mean()
                              - np.log(cut["synthetic"]["amount"]).mean()) / sd_amount}
        for label in sorted(real["channel"].unique()):
            share = (real["channel"] == label).astype(float)
            gaps[label] = abs((cut["real"]["channel"] == label).mean()
                              - (cut["synthetic"]["channel"] == label).mean()) / share.std()
        rows.append({"hours": f"{low}-{high}", "real rows": len(cut["real"]),
                     **{k: round(float(v), 3) for k, v in gaps.items()}})
    return pd.DataFrame(rows)


def _lag_share(table: pd.DataFrame) -> float:
    """The share of rows settled 1 to 4 days after the payment's day."""
    lag = (pd.to_datetime(table["settled"]) - table["ts"].dt.tz_localize(None).dt.normalize())
    return float(lag.dt.days.between(1, 4).mean())


def flowcli(*args: str) -> float:
    """Run the command; its wall time in seconds."""
    start = time.perf_counter()
    # outside the repository: ``-m`` puts the working folder first on the import path, so
    # only there does PYTHONPATH choose the sources timed
    subprocess.run([sys.executable, "-m", "flowcli", *args], check=True,
                   cwd=tempfile.gettempdir())
    return time.perf_counter() - start


def as_numbers(table: pd.DataFrame) -> pd.DataFrame:
    """What a user does without a datetime kind: seconds and days since 1970."""
    return table.assign(ts=table["ts"].astype("int64") / 1e6,
                        settled=(pd.to_datetime(table["settled"]) - EPOCH).dt.days)


def from_numbers(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(ts=pd.to_datetime(table["ts"].round(), unit="s", utc=True),
                        settled=(EPOCH + pd.to_timedelta(table["settled"], "D")).dt.date)


def fidelity(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """The figures of the module docstring, real against synthetic."""
    ts = synthetic["ts"]
    instants = [t.astype("int64").to_numpy() for t in (real["ts"], ts)]
    settled = [pd.to_datetime(t["settled"]).dt.day_of_week for t in (real, synthetic)]
    bands = by_hour_band(real, synthetic)
    return {"TV hour of day": total_variation(real["ts"].dt.hour, ts.dt.hour),
            "TV day of week": total_variation(real["ts"].dt.day_of_week, ts.dt.day_of_week),
            "KS instants": ks(*instants),
            "TV settled weekday": total_variation(*settled),
            "settled 1-4 days after (real " + f"{_lag_share(real):.1%})": _lag_share(synthetic),
            "worst hour-band gap, sd": float(bands.iloc[:, 2:].to_numpy().max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=None)
    args = parser.parse_args()
    from flowcli import FlowModel

    real = events(args.rows, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        where = Path(folder)
        real.to_parquet(where / "events.parquet")
        real.to_csv(where / "events.csv", index=False)
        as_numbers(real).to_parquet(where / "numbers.parquet")
        cap = ["--max-time", str(args.max_seconds)] if args.max_seconds else []
        seconds = {name: flowcli("fit", str(where / f"{name}.parquet"), "-o",
                                 str(where / f"{name}.flow"), "--seed", "0", "-q", *cap)
                   for name in ("events", "numbers")}
        for name in ("csv", "parquet"):
            flowcli("fit", str(where / f"events.{name}"), "-o", str(where / f"{name}.flow"),
                    "--seed", "0", "--epochs", "2", "-q")
        model = FlowModel.load(str(where / "events.flow"))
        numbers = FlowModel.load(str(where / "numbers.flow"))
        same = [FlowModel.load(str(where / f"{n}.flow")).score(real.head(2000))
                for n in ("csv", "parquet")]
    report(real, model, numbers, seconds, same)


def report(real: pd.DataFrame, model: Any, numbers: Any, seconds: dict[str, float],
           same: list[pd.Series]) -> None:
    synthetic = model.sample(len(real), seed=1)
    scores = model.score(real)
    print(f"rows {len(real):,}; default fit {seconds['events']:.1f} s (as numbers: "
          f"{seconds['numbers']:.1f} s); kept {_kept(model)} (as numbers: {_kept(numbers)})")
    print("kinds:", {c.name: c.kind_label for c in model.schema.columns})
    ts, day = synthetic["ts"], synthetic["settled"]
    print(f"samples: ts {ts.dtype}, settled {type(day.iloc[0]).__name__}; inside range: "
          f"{bool(ts.min() >= real['ts'].min() and ts.max() <= real['ts'].max())}; whole "
          f"seconds: {bool((ts.dt.microsecond == 0).all())}")
    table = pd.DataFrame({"datetime kind": fidelity(real, synthetic),
                          "as numbers": fidelity(real, from_numbers(
                              numbers.sample(len(real), seed=1)))})
    print(table.round(4).to_string())
    print("dependence on the hour, |real - synthetic| / real sd per band:")
    print(by_hour_band(real, synthetic).to_string(index=False))
    print(f"scores finite: {bool(np.isfinite(scores).all())}; deterministic: "
          f"{bool((model.score(real) == scores).all())}; CSV and Parquet models score alike: "
          f"max difference {float((same[0] - same[1]).abs().max()):.2e}")


def _kept(model: Any) -> str:
    return next((t.label for t in model.tried if t.kept), "model")


if __name__ == "__main__":
    main()

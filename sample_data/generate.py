"""Regenerate the sample tables: ``python sample_data/generate.py``.

``sensors.csv`` / ``sensors.parquet``: 4,000 readings of a machine's sensors (numeric, with a
nonlinear dependence between load and temperature and an integer error count), and
``sensors_new.csv``: 20 fresh readings, the last three of them faulty.

``transactions.csv`` / ``transactions.parquet``: 6,000 card payments: a skewed positive
amount that depends on the merchant category, the hour of day, a merchant category with 12
levels, an online flag, a rate (share of the amount refunded, in [0, 1]), about 3 % of amounts
missing, and 6 planted anomalies (ids 900001..900006).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def readings(n: int, rng: np.random.Generator) -> pd.DataFrame:
    load = rng.beta(2.0, 3.0, n) * 100.0
    temperature = 40.0 + 0.004 * load**2 + rng.normal(0.0, 1.5, n)
    vibration = np.exp(rng.normal(-1.0 + 0.01 * load, 0.3, n))
    pressure = 101.3 + 0.02 * temperature + rng.normal(0.0, 0.4, n)
    errors = rng.poisson(0.2 + 0.02 * load, n)
    return pd.DataFrame({
        "load": load.round(2),
        "temperature": temperature.round(2),
        "vibration": vibration.round(4),
        "pressure": pressure.round(2),
        "errors": errors.astype("int64"),
    })


CATEGORIES = {  # merchant category: (share, log-amount mean, share online)
    "grocery": (0.22, 3.2, 0.10), "fuel": (0.12, 3.8, 0.02), "restaurant": (0.14, 3.4, 0.15),
    "travel": (0.04, 6.0, 0.70), "electronics": (0.05, 5.2, 0.60), "clothing": (0.08, 4.2, 0.50),
    "pharmacy": (0.07, 2.9, 0.20), "entertainment": (0.06, 3.6, 0.55),
    "utilities": (0.05, 4.6, 0.90), "hotel": (0.03, 5.6, 0.65), "transport": (0.10, 2.5, 0.30),
    "books": (0.04, 3.0, 0.75),
}


def transactions(n: int, rng: np.random.Generator) -> pd.DataFrame:
    names = list(CATEGORIES)
    shares = np.array([CATEGORIES[c][0] for c in names])
    merchant = rng.choice(names, n, p=shares / shares.sum())
    log_mean = np.array([CATEGORIES[c][1] for c in merchant])
    online = rng.random(n) < np.array([CATEGORIES[c][2] for c in merchant])
    hour = np.where(online, rng.integers(0, 24, n),
                    np.clip(np.round(rng.normal(14, 3.5, n)), 6, 23)).astype("int64")
    amount = np.round(np.exp(log_mean + rng.normal(0, 0.6, n) + 0.3 * online), 2)
    refunded = np.where(rng.random(n) < 0.85, rng.beta(1, 30, n), rng.beta(2, 3, n))
    df = pd.DataFrame({
        "amount": amount,
        "hour": hour,
        "merchant": merchant,
        "online": online,
        "refunded": refunded.round(4),
    })
    df.loc[rng.random(n) < 0.03, "amount"] = np.nan
    return df


def planted(rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "amount": [9800.0, 4.1, 15000.0, 3.2, 31.5, 2600.0],
        "hour": [3, 4, 14, 2, 13, 23],
        "merchant": ["pharmacy", "travel", "grocery", "hotel", "fuel", "books"],
        "online": [False, False, False, False, True, True],
        "refunded": [0.0, 0.95, 0.99, 0.9, 0.97, 0.98],
    })


def main() -> None:
    rng = np.random.default_rng(7)
    train = readings(4000, rng)
    train.to_csv(HERE / "sensors.csv", index=False)
    train.to_parquet(HERE / "sensors.parquet", index=False)
    new = readings(20, rng)
    new.insert(0, "reading_id", np.arange(1001, 1021))
    # three faults: overheating at low load, a vibration spike, a burst of errors
    new.loc[17, ["load", "temperature"]] = [12.5, 71.3]
    new.loc[18, "vibration"] = 4.2
    new.loc[19, "errors"] = 14
    new.to_csv(HERE / "sensors_new.csv", index=False)

    pay = pd.concat([transactions(6000, rng), planted(rng)], ignore_index=True)
    pay.insert(0, "id", np.concatenate([np.arange(1, 6001), np.arange(900001, 900007)]))
    pay = pay.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pay.to_csv(HERE / "transactions.csv", index=False)
    pay.to_parquet(HERE / "transactions.parquet", index=False)


if __name__ == "__main__":
    main()

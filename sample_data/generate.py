"""Regenerate the sample tables: ``python sample_data/generate.py``.

``sensors.csv`` / ``sensors.parquet``: 4,000 readings of a machine's sensors (numeric, with a
nonlinear dependence between load and temperature and an integer error count), and
``sensors_new.csv``: 20 fresh readings, the last three of them faulty.
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


if __name__ == "__main__":
    main()

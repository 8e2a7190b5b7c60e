"""``explain`` measured: its error against a closed form, its speed per column, whether it
names planted anomalies, and what its held-out reference adds to a fit.

Usage (from the repository root)::

    python benchmarks/explain.py [--rows 20000] [--seed 0]

1. **Error.** A 6-column Gaussian fitted as a whitened MAF whose learning rate (1e-9) leaves
   it at its Gaussian start: a flow whose density is a known Gaussian (checked: a quadratic
   recovered from its scores by finite differences reproduces them to about 1e-5 nats, the
   float32 rounding). ``explain``'s ``log p(x_c | x_-c)`` against the closed-form Gaussian
   conditional of that quadratic, on 2,000 rows of which 200 have one cell moved by 6
   standard deviations.
2. **Speed.** Rows per second of ``FlowModel.explain`` for MAF and NSF flows of 5 layers x 128
   hidden at 8 and 16 columns (after 2 epochs: the cost does not depend on training), and
   cells per second (rows x columns).
3. **Planted anomalies.** An 8-column table (correlated, one skewed and one heavy-tailed
   column) fitted with the defaults; 200 test rows each get one cell moved by 6 standard
   deviations of that cell given the rest; the share where ``most_unusual`` names it.
4. **Reference cost.** The seconds ``fit`` spends on the held-out cells behind the
   percentiles, against the whole fit, for that default fit.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def _quadratic(score, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, precision)`` of a log-density that is a quadratic, by finite differences."""
    eye, base = np.eye(dim), np.zeros((1, dim))
    precision = np.array([[-(score(base + eye[i] + eye[j]) - score(base + eye[i])
                             - score(base + eye[j]) + score(base))[0]
                           for j in range(dim)] for i in range(dim)])
    gradient = np.array([(score(base + eye[i]) - score(base - eye[i]))[0] / 2
                         for i in range(dim)])
    return np.linalg.solve(precision, gradient), precision


def error_against_closed_form(seed: int) -> None:
    from flowcli import FlowModel

    rng = np.random.default_rng(seed)
    dim = 6
    a = rng.normal(size=(dim, dim))
    cov = a @ a.T / dim + 0.1 * np.eye(dim)
    names = [f"c{j}" for j in range(dim)]
    train = pd.DataFrame(rng.multivariate_normal(np.zeros(dim), cov, size=5000), columns=names)
    model = FlowModel.fit(train, seed=seed, device="cpu", model="maf", whiten=True, epochs=1,
                          lr=1e-9, unbounded=names)

    def score(x: np.ndarray) -> np.ndarray:
        return model.score(pd.DataFrame(x, columns=names)).to_numpy()

    mean, precision = _quadratic(score, dim)
    rows = rng.multivariate_normal(np.zeros(dim), cov, size=2000)
    probe = rng.normal(size=(500, dim))
    constant = score(mean[None, :])[0]
    fitted = constant - 0.5 * np.einsum("ij,jk,ik->i", probe - mean, precision, probe - mean)
    print(f"\n1. error: quadratic fit of the flow's scores off by at most "
          f"{np.abs(fitted - score(probe)).max():.1e} nats")
    moved = rng.choice(len(rows), 200, replace=False)
    rows[moved, rng.integers(0, dim, 200)] += 6 * np.sqrt(np.diag(cov)).mean()
    explained = model.explain(pd.DataFrame(rows, columns=names))
    print("| column | conditional sd | max abs error, nats | mean abs error |")
    print("|---|---:|---:|---:|")
    for j, name in enumerate(names):
        rest = [k for k in range(dim) if k != j]
        var = 1.0 / precision[j, j]
        mu = mean[j] - var * (precision[j, rest] @ (rows[:, rest] - mean[rest]).T)
        exact = -0.5 * np.log(2 * np.pi * var) - 0.5 * (rows[:, j] - mu) ** 2 / var
        error = np.abs(explained[f"{name}_cond_log_prob"].to_numpy() - exact)
        print(f"| {name} | {np.sqrt(var):.3f} | {error.max():.2e} | {error.mean():.2e} |")


def speed(seed: int) -> None:
    from flowcli import FlowModel

    print("\n2. speed: FlowModel.explain, 5 layers x 128 hidden, 2,000 rows\n"
          "| flow | columns | rows/s | cells/s |\n|---|---:|---:|---:|")
    rng = np.random.default_rng(seed)
    for kind in ("maf", "nsf"):
        for dim in (8, 16):
            names = [f"c{j}" for j in range(dim)]
            table = pd.DataFrame(rng.normal(size=(5000, dim)), columns=names)
            model = FlowModel.fit(table, seed=seed, device="cpu", model=kind, epochs=2,
                                  layers=5, hidden=128, unbounded=names)
            rows = table.iloc[:2000]
            tick = time.perf_counter()
            model.explain(rows)
            rate = len(rows) / (time.perf_counter() - tick)
            print(f"| {kind} | {dim} | {rate:,.0f} | {rate * dim:,.0f} |")


def _anomaly_table(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    corr = 0.6 * np.ones((8, 8)) + 0.4 * np.eye(8)
    z = rng.multivariate_normal(np.zeros(8), corr, size=n)
    table = pd.DataFrame(z, columns=[f"c{j}" for j in range(8)])
    table["c6"] = np.exp(0.5 * z[:, 6])
    table["c7"] = np.sinh(z[:, 7])
    return table, corr


def planted(rows: int, seed: int) -> None:
    from flowcli import FlowModel

    rng = np.random.default_rng(seed)
    train, corr = _anomaly_table(rng, rows)
    tick = time.perf_counter()
    model = FlowModel.fit(train, seed=seed, device="cpu")
    fit_seconds = time.perf_counter() - tick
    test, _ = _anomaly_table(rng, 200)
    z_sd = np.sqrt(1.0 / np.diag(np.linalg.inv(corr)))  # sd of a latent cell given the rest
    columns = rng.integers(0, 8, 200)
    latent = np.column_stack([test[c].to_numpy() for c in test.columns])
    latent[:, 6], latent[:, 7] = 2 * np.log(latent[:, 6]), np.arcsinh(latent[:, 7])
    latent[np.arange(200), columns] += 6 * z_sd[columns] * rng.choice([-1, 1], 200)
    moved = pd.DataFrame(latent, columns=test.columns)
    moved["c6"], moved["c7"] = np.exp(0.5 * moved["c6"]), np.sinh(moved["c7"])
    named = model.explain(moved)["most_unusual"].to_numpy()
    hits = float(np.mean(named == np.array([f"c{j}" for j in columns])))
    print(f"\n3. planted: {hits:.1%} of 200 rows name the moved cell "
          f"(kept {model.info()['model']['kind']}, {rows:,} training rows)")
    reference(model, train, fit_seconds)


def reference(model, train: pd.DataFrame, fit_seconds: float) -> None:
    from flowcli.explain import held_out_quantiles

    tick = time.perf_counter()
    held_out_quantiles(model.preprocessor, model.density, train.iloc[:2000], 0)
    seconds = time.perf_counter() - tick
    print(f"\n4. reference: {seconds:.1f} s of the {fit_seconds:.1f} s fit "
          f"({seconds / fit_seconds:.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    error_against_closed_form(args.seed)
    speed(args.seed)
    planted(args.rows, args.seed)


if __name__ == "__main__":
    main()

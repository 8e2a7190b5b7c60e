"""``impute`` against scikit-learn's imputers on held-out rows with cells removed at random,
and its draws against a closed-form conditional.

Usage (from the repository root, with the bench extra: ``make bench`` installs it)::

    python benchmarks/impute.py [--sets gmm-mixed,wine,parkinsons] [--share 0.2] [--seed 0]

Each set is split as in ``run.py`` (80 % train, 10 % validation: flowcli fits on both, holding
out its own 10 %; the last 10 % test, at most :data:`TEST_ROWS` rows). In the test rows a
share of the cells is removed at random (at least one cell of each row stays). Then:

- **flowcli**: ``FlowModel.fit`` with its defaults, and ``impute`` with 20 draws; the mean of
  the draws is its point estimate, their most frequent label its guess for a label, and the
  interval between the draws' 5 % and 95 % quantiles (Weibull plotting positions, under
  which 20 exact draws cover the truth 90 % of the time) its 90 % interval.
- **IterativeImputer** (``random_state=0``, its defaults: Bayesian ridge, 10 rounds) and
  **KNNImputer** (5 neighbours), fitted on the same training rows, numbers only.
- Reported: RMSE over the removed numeric cells, each column in units of its training sd;
  the share of removed labels guessed right against the column's most frequent label; the
  90 % interval's coverage; and rows/s of one ``impute`` draw.

``gmm-mixed`` is a table drawn for this script: six numbers from a three-component Gaussian
mixture and the component as a label, which 10 % of rows have wrong. ``wine`` and
``parkinsons`` are the UCI tables.

**Gaussian check**: a 6-column Gaussian table (20,000 rows) fitted with the defaults; for
five test rows with two cells removed, 2,000 draws each against the closed-form conditional
of those cells given the rest: Kolmogorov-Smirnov distance and p-value per cell.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import _random_cov, load  # noqa: E402

DRAWS = 20
TEST_ROWS = 600


def gmm_mixed(seed: int, n: int = 20_000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test tables of the ``gmm-mixed`` set."""
    rng = np.random.default_rng(seed + 300)
    means = rng.normal(scale=2.0, size=(3, 6))
    covs = [_random_cov(rng, 6, rng.uniform(0.5, 1.5)) for _ in range(3)]

    def draw(m: int) -> pd.DataFrame:
        parts = rng.choice(3, size=m, p=[0.5, 0.3, 0.2])
        x = np.stack([rng.multivariate_normal(means[c], covs[c]) for c in parts])
        wrong = rng.random(m) < 0.1
        label = np.where(wrong, rng.choice(3, size=m), parts)
        table = pd.DataFrame(x, columns=[f"x{j}" for j in range(6)])
        table["group"] = np.array(["red", "green", "blue"])[label]
        return table

    return draw(n), draw(TEST_ROWS)


def uci(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = load(name)
    columns = [f"c{j}" for j in range(data.dim)]
    train = pd.DataFrame(np.vstack([data.train, data.val]), columns=columns)
    return train, pd.DataFrame(data.test[:TEST_ROWS], columns=columns)


def remove_cells(test: pd.DataFrame, share: float, rng: np.random.Generator) -> np.ndarray:
    """A mask of removed cells: each cell with probability ``share``, one cell of any row
    that would lose all kept."""
    mask = rng.random(test.shape) < share
    full = mask.all(axis=1)
    mask[full, rng.integers(0, test.shape[1], int(full.sum()))] = False
    return mask


def flowcli_draws(train: pd.DataFrame, holes: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Imputed draws (``DRAWS`` per row, in long form); prints the fit's seconds and the
    rows/s of one draw."""
    from flowcli import FlowModel

    tick = time.perf_counter()
    model = FlowModel.fit(train, seed=seed, device="cpu")
    fit_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    model.impute(holes, seed=seed)
    rate = len(holes) / (time.perf_counter() - tick)
    print(f"  flowcli kept {model.info()['model']['kind']}, fit {fit_seconds:.0f} s; "
          f"impute {rate:,.0f} rows/s (one draw)")
    return model.impute(holes, draws=DRAWS, seed=seed)


def sklearn_fills(train: pd.DataFrame, holes: pd.DataFrame, numbers: list[str]
                  ) -> dict[str, np.ndarray]:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer

    out = {}
    for name, imputer in (("IterativeImputer", IterativeImputer(random_state=0)),
                          ("KNNImputer", KNNImputer(n_neighbors=5))):
        imputer.fit(train[numbers].to_numpy())
        out[name] = imputer.transform(holes[numbers].to_numpy())
    return out


def evaluate(name: str, train: pd.DataFrame, test: pd.DataFrame, share: float,
             seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = remove_cells(test, share, rng)
    holes = test.mask(mask)
    numbers = [c for c in test.columns if pd.api.types.is_numeric_dtype(test[c])]
    labels = [c for c in test.columns if c not in numbers]
    print(f"\n{name}: {len(train):,} train rows, {len(test)} test rows, {mask.sum():,} cells "
          f"removed ({share:.0%})")
    draws = flowcli_draws(train, holes, seed)
    by_row = draws.groupby(level=0, sort=False)
    sd = train[numbers].std().to_numpy()
    num_mask = mask[:, [test.columns.get_loc(c) for c in numbers]]
    truth = test[numbers].to_numpy()
    fills = {"flowcli (mean of 20 draws)": by_row[numbers].mean().to_numpy()}
    fills.update(sklearn_fills(train, holes, numbers))
    print("| imputer | RMSE, sd units |\n|---|---:|")
    for system, filled in fills.items():
        error = ((filled - truth) / sd)[num_mask]
        print(f"| {system} | {np.sqrt(np.mean(error**2)):.4f} |")
    coverage = _coverage(draws, numbers, truth, num_mask)
    print(f"90 % intervals from {DRAWS} draws cover {coverage:.1%} of {num_mask.sum():,} "
          f"removed numbers")
    for column in labels:
        removed = mask[:, test.columns.get_loc(column)]
        guess = by_row[column].agg(lambda s: s.value_counts().index[0]).to_numpy()[removed]
        right = np.mean(guess == test[column].to_numpy()[removed])
        baseline = np.mean(train[column].mode()[0] == test[column].to_numpy()[removed])
        print(f"label {column}: flowcli right {right:.1%} of {removed.sum()}, the column's "
              f"mode {baseline:.1%}")


def _coverage(draws: pd.DataFrame, numbers: list[str], truth: np.ndarray,
              mask: np.ndarray) -> float:
    """Share of removed cells inside the draws' 5-95 % interval (Weibull positions)."""
    values = draws[numbers].to_numpy().reshape(len(truth), DRAWS, len(numbers))
    low, high = np.quantile(values, [0.05, 0.95], axis=1, method="weibull")
    inside = (truth >= low) & (truth <= high)
    return float(inside[mask].mean())


def gaussian_check(seed: int) -> None:
    from scipy import stats

    from flowcli import FlowModel

    rng = np.random.default_rng(seed + 400)
    cov = _random_cov(rng, 6, 1.0)
    mean = rng.normal(size=6)
    names = [f"g{j}" for j in range(6)]
    train = pd.DataFrame(rng.multivariate_normal(mean, cov, 20_000), columns=names)
    model = FlowModel.fit(train, seed=seed, device="cpu")
    print(f"\nGaussian check: kept {model.info()['model']['kind']}; 2,000 draws per row\n"
          "| row | cell | KS distance | p-value |\n|---|---|---:|---:|")
    for i, row in enumerate(rng.multivariate_normal(mean, cov, 5)):
        gaps = sorted(rng.choice(6, 2, replace=False))
        seen = [j for j in range(6) if j not in gaps]
        cross = cov[np.ix_(gaps, seen)]
        solve = np.linalg.solve(cov[np.ix_(seen, seen)], cross.T)
        mu = mean[gaps] + solve.T @ (row[seen] - mean[seen])
        var = np.diag(cov[np.ix_(gaps, gaps)] - cross @ solve)
        holes = pd.DataFrame([row], columns=names)
        holes.iloc[0, gaps] = np.nan
        drawn = model.impute(holes, draws=2000, seed=seed + i)
        for k, j in enumerate(gaps):
            test = stats.kstest(drawn[names[j]], stats.norm(mu[k], np.sqrt(var[k])).cdf)
            print(f"| {i} | {names[j]} | {test.statistic:.4f} | {test.pvalue:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="gmm-mixed,wine,parkinsons")
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-gaussian", action="store_true")
    args = parser.parse_args()
    for name in args.sets.split(","):
        train, test = gmm_mixed(args.seed) if name == "gmm-mixed" else uci(name)
        evaluate(name, train, test, args.share, args.seed)
    if not args.no_gaussian:
        gaussian_check(args.seed)


if __name__ == "__main__":
    main()

"""Benchmark data sets: synthetic tables with closed-form densities, UCI tables, sklearn tables,
and the numeric columns of any CSV file named by its path.

Every data set is split 80/10/10 into train/validation/test after a shuffle with
``numpy.random.default_rng(0).permutation`` and is returned as float64 arrays. Synthetic sets also
carry the exact log-density of every test row, so the mean is the best achievable test
log-likelihood.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ALL_SETS", "Dataset", "load", "split"]

SYNTHETIC = ("mixture8", "funnel10", "warped16", "mixed12")
UCI = ("kin40k", "protein", "elevators", "parkinsons", "pol", "wine")
SKLEARN = ("breast_cancer", "digits")
ALL_SETS = SYNTHETIC + UCI + SKLEARN

ROWS = 30_000
LOG_2PI = float(np.log(2.0 * np.pi))
DEFAULT_UCI = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "uci"


@dataclass
class Dataset:
    """A table split three ways; ``true_test_ll`` is set for synthetic sets only."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    true_test_ll: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    def lattice_columns(self, max_values: int = 50) -> list[int]:
        """Columns with at most ``max_values`` distinct training values."""
        return [j for j in range(self.dim) if np.unique(self.train[:, j]).size <= max_values]


def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with ``default_rng(0)``; first 80 % train, next 10 % validation, last 10 % test."""
    order = np.random.default_rng(0).permutation(x.shape[0])
    x = x[order]
    n_train, n_val = int(0.8 * x.shape[0]), int(0.1 * x.shape[0])
    return x[:n_train], x[n_train:n_train + n_val], x[n_train + n_val:]


def _gauss_logpdf(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    chol = np.linalg.cholesky(cov)
    sol = np.linalg.solve(chol, (x - mean).T)
    half_logdet = np.log(np.diag(chol)).sum()
    return -0.5 * (sol**2).sum(axis=0) - half_logdet - 0.5 * x.shape[1] * LOG_2PI


def _random_cov(rng: np.random.Generator, dim: int, scale: float) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return scale * (a @ a.T / dim + 0.1 * np.eye(dim))


def mixture(rng: np.random.Generator, n: int, dim: int = 8, k: int = 5
            ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Five Gaussians with random means (scale 3) and random full covariances."""
    means = rng.normal(scale=3.0, size=(k, dim))
    covs = [_random_cov(rng, dim, rng.uniform(0.3, 1.5)) for _ in range(k)]
    weights = rng.dirichlet(np.full(k, 5.0))
    labels = rng.choice(k, size=n, p=weights)
    x = np.empty((n, dim))
    for c in range(k):
        rows = labels == c
        x[rows] = rng.multivariate_normal(means[c], covs[c], size=int(rows.sum()))

    def logpdf(y: np.ndarray) -> np.ndarray:
        parts = np.stack([np.log(weights[c]) + _gauss_logpdf(y, means[c], covs[c])
                          for c in range(k)])
        top = parts.max(axis=0)
        return top + np.log(np.exp(parts - top).sum(axis=0))

    return x, logpdf


def funnel(rng: np.random.Generator, n: int, dim: int = 10
           ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Neal's funnel: ``v ~ N(0, 3^2)``, ``x_i | v ~ N(0, exp(v))`` for ``i = 1 .. dim-1``."""
    v = rng.normal(scale=3.0, size=n)
    rest = rng.normal(size=(n, dim - 1)) * np.exp(v / 2.0)[:, None]
    x = np.column_stack([v, rest])

    def logpdf(y: np.ndarray) -> np.ndarray:
        v, r = y[:, 0], y[:, 1:]
        lv = -0.5 * (v / 3.0) ** 2 - np.log(3.0) - 0.5 * LOG_2PI
        lr = -0.5 * (r**2).sum(axis=1) * np.exp(-v) - 0.5 * r.shape[1] * (v + LOG_2PI)
        return lv + lr

    return x, logpdf


def warped(rng: np.random.Generator, n: int, dim: int = 16
           ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """A correlated Gaussian ``y`` warped per column.

    The first half of the columns is ``x = sinh(y)`` (heavy tails), the second half is
    ``x = sign(y) sqrt|y|`` (bimodal, density zero at 0). The density follows from the change of
    variables ``y = asinh(x)`` and ``y = sign(x) x^2``.
    """
    cov = _random_cov(rng, dim, 1.0)
    sd = np.sqrt(np.diag(cov))
    cov = cov / np.outer(sd, sd)  # a correlation matrix: unit marginals
    y = rng.multivariate_normal(np.zeros(dim), cov, size=n)
    h = dim // 2
    x = np.column_stack([np.sinh(y[:, :h]), np.sign(y[:, h:]) * np.sqrt(np.abs(y[:, h:]))])

    def logpdf(z: np.ndarray) -> np.ndarray:
        a, b = z[:, :h], z[:, h:]
        yy = np.column_stack([np.arcsinh(a), np.sign(b) * b**2])
        ladj = -0.5 * np.log1p(a**2).sum(axis=1) + np.log(2.0 * np.abs(b)).sum(axis=1)
        return _gauss_logpdf(yy, np.zeros(dim), cov) + ladj

    return x, logpdf


def warped_then_mixed(rng: np.random.Generator, n: int, dim: int = 12
                      ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Independent sinh-arcsinh columns mixed by a fixed random rotation and scaling.

    Each hidden column is ``w = sinh((asinh(z) + skew) / tail)`` of a standard normal ``z``
    (Jones and Pewsey's family: ``skew`` in ``[-1, 1]``, ``tail`` in ``[0.5, 0.9]``, below 1
    for heavier tails than a Gaussian); the table is ``x = w S Q`` with ``Q`` a random
    rotation and ``S`` scales in ``[0.5, 2]``. No column of ``x`` is one warped source, so
    per-column maps cannot undo the warps: a flow must unmix first. The density follows from
    ``w = x Q^T S^-1`` and ``z = sinh(tail asinh(w) - skew)``.
    """
    skew = rng.uniform(-1.0, 1.0, size=dim)
    tail = rng.uniform(0.5, 0.9, size=dim)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    scales = rng.uniform(0.5, 2.0, size=dim)
    mix = scales[:, None] * rotation
    z = rng.normal(size=(n, dim))
    x = np.sinh((np.arcsinh(z) + skew) / tail) @ mix

    def logpdf(y: np.ndarray) -> np.ndarray:
        w = y @ rotation.T / scales
        inner = tail * np.arcsinh(w) - skew
        zz = np.sinh(inner)
        ladj = np.log(tail * np.cosh(inner)) - 0.5 * np.log1p(w**2)
        return (-0.5 * zz**2 - 0.5 * LOG_2PI + ladj).sum(axis=1) - np.log(scales).sum()

    return x, logpdf


def _synthetic(name: str, rows: int) -> Dataset:
    rng = np.random.default_rng({"mixture8": 11, "funnel10": 12, "warped16": 13,
                                 "mixed12": 14}[name])
    maker = {"mixture8": mixture, "funnel10": funnel, "warped16": warped,
             "mixed12": warped_then_mixed}[name]
    return _known(name, *maker(rng, rows))


def _known(name: str, x: np.ndarray, logpdf: Callable[[np.ndarray], np.ndarray]) -> Dataset:
    """A synthetic set split three ways, with the exact mean log-density of its test rows."""
    train, val, test = split(x)
    return Dataset(name, train, val, test, float(logpdf(test).mean()),
                   [f"synthetic, {x.shape[0]} rows, exact density known"])


def uci_dir() -> Path:
    """``$FLOWCLI_UCI_DIR``, else ``../shared/data/uci`` relative to the repository root."""
    return Path(os.environ.get("FLOWCLI_UCI_DIR", DEFAULT_UCI))


def _uci(name: str, directory: Path | None) -> Dataset:
    import pandas as pd

    path = (directory or uci_dir()) / f"{name}.csv.gz"
    x = pd.read_csv(path, header=None).to_numpy(dtype=np.float64)
    train, val, test = split(x)
    return Dataset(name, train, val, test, None, [f"UCI {path.name}, {x.shape[0]} rows"])


def _sklearn(name: str) -> Dataset:
    from sklearn.datasets import load_breast_cancer, load_digits

    if name == "breast_cancer":
        x = load_breast_cancer().data.astype(np.float64)
        notes = ["sklearn breast cancer, 569 rows"]
    else:
        x = load_digits().data.astype(np.float64)
        # dequantize once with a fixed seed; every system sees the same noisy table
        x = x + np.random.default_rng(5).uniform(0.0, 1.0, size=x.shape)
        notes = ["sklearn digits, 1797 rows, pixels + U[0,1) noise: LL of dequantized data"]
    train, val, test = split(x)
    return Dataset(name, train, val, test, None, notes)


def _table(path: Path) -> Dataset:
    """A CSV file's numeric columns of more than one value (``fit`` refuses a constant one),
    rows with a missing value dropped; a first column with no header or named ``rownames``
    (R's row names) is taken as the index."""
    import pandas as pd

    df = pd.read_csv(path)
    first = str(df.columns[0]) if len(df.columns) else ""
    if first.startswith("Unnamed") or first == "rownames":
        df = df.drop(columns=df.columns[0])
    df = df.select_dtypes("number").dropna()
    df = df.loc[:, df.nunique() > 1]
    train, val, test = split(df.to_numpy(dtype=np.float64))
    return Dataset(re.sub(r"\.csv(\.gz)?$", "", path.name), train, val, test, None,
                   [f"{path.name}, {len(df)} rows with no missing value, "
                    f"numeric columns {', '.join(map(str, df.columns))}"])


def _mixed(name: str, rows: int) -> Dataset | None:
    """``mixedD@S``: a warped-then-mixed set of ``D`` columns drawn with seed ``S`` (default
    14), for checks on sets no default was tuned on; None for other names."""
    match = re.fullmatch(r"mixed(\d+)(?:@(\d+))?", name)
    if match is None or name == "mixed12":
        return None
    x, logpdf = warped_then_mixed(np.random.default_rng(int(match[2] or 14)), rows,
                                  int(match[1]))
    return _known(name, x, logpdf)


def load(name: str, rows: int = ROWS, uci: Path | None = None) -> Dataset:
    """Load one data set by name; ``rows`` sizes the synthetic ones. ``mixedD@S`` names a
    warped-then-mixed set of ``D`` columns drawn with seed ``S``; a name ending in ``.csv``
    or ``.csv.gz`` is a file's numeric columns, for checks on tables no default was tuned on."""
    if name in SYNTHETIC:
        return _synthetic(name, rows)
    mixed = _mixed(name, rows)
    if mixed is not None:
        return mixed
    if name in UCI:
        return _uci(name, uci)
    if name in SKLEARN:
        return _sklearn(name)
    if name.endswith((".csv", ".csv.gz")):
        return _table(Path(name))
    raise ValueError(f"unknown data set {name!r}; choose from {', '.join(ALL_SETS)}")

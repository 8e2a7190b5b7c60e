"""Conditional densities against the truth and against zuko, and conditional sampling per
condition.

Usage (from the repository root, with the bench extra: ``make bench`` installs it)::

    python benchmarks/conditional.py [--rows 20000] [--seed 0] [--max-seconds 600]

Two known-density tables, each split into train (flowcli holds out its own 10 % of it for early
stopping; the zuko flows get the same 90/10 split) and a test table of the same size drawn
afresh:

- ``gmm-numeric``: an 8-column mixture of five full-covariance Gaussians; the condition is its
  first three columns. Truth: ``log p(x) - log p(x_a)``, the marginal being the mixture of the
  components' marginals.
- ``gmm-label``: a label with four values (50, 30, 18 and 2 % of rows) and, given it, five
  columns from a two-Gaussian mixture of the label's own and a label ``tier`` (three values)
  independent of them; the condition is the label. Truth: ``log p(x | label) + log p(tier |
  label)``.

flowcli is ``FlowModel.fit(train, condition=[...])`` with its defaults (``--max-seconds`` caps
each fit; the default is no cap below a user's patience). zuko's MAF and NSF (5 transforms,
2 x 128 hidden, the shared training recipe of ``training.py``) take the condition as context,
standardized, labels one-hot; on ``gmm-label`` they model the five columns given the label and
the tier, and the tier given the label by its training frequencies (its exact maximum
likelihood estimate). Reported: mean test log p(x | c) in nats/row, each system's gap to the
truth, and the share of the better zuko flow's gap that flowcli closes.

Sampling: for each label of ``gmm-label`` (the 2 % one included), 20,000 rows drawn given the
label against 20,000 true rows given it: the largest Kolmogorov-Smirnov distance over the five
columns, and the total-variation distance of ``tier``. For ``gmm-numeric``, the test rows in
each quarter of the first condition column, with four rows drawn given each one's condition,
against the test rows themselves: the largest KS distance over the modelled columns.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import _gauss_logpdf, _random_cov  # noqa: E402
from training import Recipe, batched_log_prob, fit_flow  # noqa: E402

LABELS = np.array(["a", "b", "c", "rare"])
LABEL_WEIGHTS = np.array([0.5, 0.3, 0.18, 0.02])
TIERS = np.array(["low", "mid", "high"])


def _logsumexp(parts: np.ndarray) -> np.ndarray:
    top = parts.max(axis=0)
    return top + np.log(np.exp(parts - top).sum(axis=0))


class Mixture:
    """A Gaussian mixture that draws rows and gives exact joint and marginal log-densities."""

    def __init__(self, rng: np.random.Generator, dim: int, k: int, spread: float = 3.0):
        self.means = rng.normal(scale=spread, size=(k, dim))
        self.covs = np.stack([_random_cov(rng, dim, rng.uniform(0.3, 1.5)) for _ in range(k)])
        self.weights = rng.dirichlet(np.full(k, 5.0))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        parts = rng.choice(len(self.weights), size=n, p=self.weights)
        x = np.empty((n, self.means.shape[1]))
        for c in range(len(self.weights)):
            rows = parts == c
            x[rows] = rng.multivariate_normal(self.means[c], self.covs[c], size=int(rows.sum()))
        return x

    def logpdf(self, x: np.ndarray, dims: np.ndarray | None = None) -> np.ndarray:
        """Log-density of ``x``, the marginal on ``dims`` when given (``x`` holds those)."""
        d = np.arange(self.means.shape[1]) if dims is None else dims
        return _logsumexp(np.stack([np.log(w) + _gauss_logpdf(x, m[d], c[np.ix_(d, d)])
                                    for w, m, c in zip(self.weights, self.means, self.covs,
                                                       strict=True)]))


class Task:
    """A table, its condition columns, and the exact ``log p(others | condition)``."""

    def __init__(self, name: str, given: list[str], draw: Callable[[np.random.Generator, int],
                 pd.DataFrame], truth: Callable[[pd.DataFrame], np.ndarray]) -> None:
        self.name, self.given, self.draw, self.truth = name, given, draw, truth


def gmm_numeric(seed: int) -> Task:
    mix = Mixture(np.random.default_rng(seed + 100), dim=8, k=5)
    names = [f"x{j}" for j in range(8)]
    a = np.arange(3)

    def draw(rng: np.random.Generator, n: int) -> pd.DataFrame:
        return pd.DataFrame(mix.draw(rng, n), columns=names)

    def truth(df: pd.DataFrame) -> np.ndarray:
        x = df[names].to_numpy()
        return mix.logpdf(x) - mix.logpdf(x[:, a], a)

    return Task("gmm-numeric", names[:3], draw, truth)


def gmm_label(seed: int) -> Task:
    rng = np.random.default_rng(seed + 200)
    mixes = [Mixture(rng, dim=5, k=2, spread=2.0) for _ in LABELS]
    tiers = rng.dirichlet(np.full(len(TIERS), 2.0), size=len(LABELS))
    names = [f"x{j}" for j in range(5)]

    def draw_given(rng: np.random.Generator, labels: np.ndarray) -> pd.DataFrame:
        x = np.empty((len(labels), 5))
        tier = np.empty(len(labels), dtype=object)
        for i, label in enumerate(LABELS):
            rows = labels == label
            x[rows] = mixes[i].draw(rng, int(rows.sum()))
            tier[rows] = rng.choice(TIERS, size=int(rows.sum()), p=tiers[i])
        return pd.DataFrame({"label": labels, **dict(zip(names, x.T, strict=True)),
                             "tier": tier})

    def draw(rng: np.random.Generator, n: int) -> pd.DataFrame:
        return draw_given(rng, rng.choice(LABELS, size=n, p=LABEL_WEIGHTS))

    def truth(df: pd.DataFrame) -> np.ndarray:
        out = np.empty(len(df))
        x, tier = df[names].to_numpy(), df["tier"].to_numpy()
        for i, label in enumerate(LABELS):
            rows = (df["label"] == label).to_numpy()
            t = pd.Series(tier[rows]).map({t: j for j, t in enumerate(TIERS)}).to_numpy()
            out[rows] = mixes[i].logpdf(x[rows]) + np.log(tiers[i][t.astype(int)])
        return out

    task = Task("gmm-label", ["label"], draw, truth)
    task.draw_given = draw_given  # type: ignore[attr-defined]
    return task


class ZukoConditional:
    """A zuko flow of the numeric modelled columns with the condition as context (numbers
    standardized, labels one-hot); labels among the modelled columns go into the context
    too and are modelled by their training frequencies given the condition's labels."""

    def __init__(self, kind: str, task: Task) -> None:
        self.kind, self.task = kind, task

    def _split(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        given = df[self.task.given]
        others = df.drop(columns=self.task.given)
        numeric = others.select_dtypes("number")
        labels = pd.concat([given, others.drop(columns=numeric.columns)], axis=1)
        text = labels.select_dtypes(exclude="number")
        context = pd.get_dummies(text, columns=list(text.columns)) if len(text.columns) \
            else pd.DataFrame(index=df.index)
        context = context.reindex(columns=self.dummies, fill_value=0) \
            if hasattr(self, "dummies") else context
        self.dummies = list(context.columns)
        numbers = given.select_dtypes("number").to_numpy(dtype=np.float64)
        return numeric.to_numpy(dtype=np.float64), \
            np.concatenate([numbers, context.to_numpy(dtype=np.float64)], axis=1)

    def _label_log_prob(self, df: pd.DataFrame) -> np.ndarray:
        """log p(modelled labels | condition labels) by training frequencies."""
        modelled = [c for c in df.columns if c not in self.task.given
                    and not pd.api.types.is_numeric_dtype(df[c])]
        if not modelled:
            return np.zeros(len(df))
        keys = [c for c in self.task.given if not pd.api.types.is_numeric_dtype(df[c])]
        joint = df.groupby(keys + modelled).size() if not hasattr(self, "joint") else None
        if joint is not None:
            self.joint, self.marginal = joint, df.groupby(keys).size()
        index = pd.MultiIndex.from_frame(df[keys + modelled])
        counts = self.joint.reindex(index).fillna(0.5).to_numpy()
        totals = self.marginal.reindex(pd.Index(df[keys[0]]) if len(keys) == 1 else
                                       pd.MultiIndex.from_frame(df[keys])).to_numpy()
        return np.log(counts / totals)

    def fit(self, train: pd.DataFrame, recipe: Recipe) -> None:
        import zuko

        cut = int(0.9 * len(train))
        x, c = self._split(train)
        self._label_log_prob(train.iloc[:cut])
        self.mx, self.sx = x[:cut].mean(0), x[:cut].std(0)
        self.mc = c[:cut].mean(0)
        self.sc = np.where(c[:cut].std(0) > 0, c[:cut].std(0), 1.0)
        cls = zuko.flows.MAF if self.kind == "maf" else zuko.flows.NSF
        torch.manual_seed(recipe.seed)
        self.flow = cls(x.shape[1], c.shape[1], transforms=5, hidden_features=(128, 128))
        rows = self._tensor(x, c)
        self.info = fit_flow(self.flow, self._log_prob, rows[:cut], rows[cut:], recipe)

    def _tensor(self, x: np.ndarray, c: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.concatenate([(x - self.mx) / self.sx, (c - self.mc) / self.sc],
                                              axis=1), dtype=torch.float32)

    def _log_prob(self, rows: torch.Tensor) -> torch.Tensor:
        d = len(self.mx)
        return self.flow(rows[:, d:]).log_prob(rows[:, :d])

    def log_prob(self, df: pd.DataFrame) -> np.ndarray:
        x, c = self._split(df)
        out = batched_log_prob(self._log_prob, self._tensor(x, c)).double().numpy()
        return out - np.log(self.sx).sum() + self._label_log_prob(df)


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def _tv(a: pd.Series, b: pd.Series) -> float:
    pa, pb = a.value_counts(normalize=True), b.value_counts(normalize=True)
    return 0.5 * float(pa.subtract(pb, fill_value=0.0).abs().sum())


def sampling_by_label(model: Any, task: Task, rng: np.random.Generator, n: int = 20_000
                      ) -> list[tuple[str, float, float]]:
    """Per label: the largest KS over the numeric columns and the TV of ``tier``."""
    out = []
    for label in LABELS:
        drawn = model.sample(n, seed=7, given={"label": label})
        real = task.draw_given(rng, np.full(n, label))  # type: ignore[attr-defined]
        numeric = [c for c in real.columns if c.startswith("x")]
        out.append((str(label), max(_ks(drawn[c].to_numpy(), real[c].to_numpy())
                                    for c in numeric), _tv(drawn["tier"], real["tier"])))
    return out


def sampling_by_band(model: Any, task: Task, test: pd.DataFrame) -> list[tuple[str, float]]:
    """Per quarter of the first condition column: the largest KS over the modelled columns."""
    band = pd.qcut(test[task.given[0]], 4, labels=False)
    drawn = model.sample(4, seed=7, given=test[task.given])
    drawn_band = np.repeat(band.to_numpy(), 4)
    others = [c for c in test.columns if c not in task.given]
    return [(f"q{q + 1}", max(_ks(drawn.loc[drawn_band == q, c].to_numpy(),
                                  test.loc[(band == q).to_numpy(), c].to_numpy())
                              for c in others)) for q in range(4)]


def run_task(task: Task, rows: int, seed: int, max_seconds: float | None) -> None:
    from flowcli import FlowModel

    rng = np.random.default_rng(seed)
    train, test = task.draw(rng, rows), task.draw(rng, rows)
    truth = float(task.truth(test).mean())
    results: dict[str, tuple[float, float]] = {}
    tick = time.perf_counter()
    model = FlowModel.fit(train, condition=task.given, seed=seed, max_seconds=max_seconds)
    results["flowcli"] = (float(model.score(test).mean()), time.perf_counter() - tick)
    kept = model.info()["model"]["kind"]
    for kind in ("maf", "nsf"):
        peer = ZukoConditional(kind, task)
        tick = time.perf_counter()
        peer.fit(train, Recipe(max_epochs=1000, max_seconds=max_seconds or 1e9, seed=seed))
        results[f"zuko-{kind}"] = (float(peer.log_prob(test).mean()), time.perf_counter() - tick)
    print(f"\n{task.name}: {rows:,} train rows, {rows:,} test rows, given "
          f"{', '.join(task.given)}; true mean test log p(x | c) {truth:.4f}")
    print("| system | test log p(x \\| c) | gap to truth | fit s |")
    print("|---|---:|---:|---:|")
    for name, (ll, seconds) in results.items():
        label = f"flowcli (kept {kept})" if name == "flowcli" else name
        print(f"| {label} | {ll:.4f} | {truth - ll:.4f} | {seconds:.0f} |")
    best = max(results[k][0] for k in ("zuko-maf", "zuko-nsf"))
    closed = (results["flowcli"][0] - best) / (truth - best) if truth > best else float("nan")
    print(f"flowcli closes {closed:.0%} of the better zuko flow's gap")
    if task.name == "gmm-label":
        print("| label | share | max KS over columns | TV of tier |\n|---|---:|---:|---:|")
        for (label, ks, tv), share in zip(sampling_by_label(model, task, rng), LABEL_WEIGHTS,
                                          strict=True):
            print(f"| {label} | {share:.0%} | {ks:.4f} | {tv:.4f} |")
    else:
        print("| band of x0 | max KS over columns |\n|---|---:|")
        for band, ks in sampling_by_band(model, task, test):
            print(f"| {band} | {ks:.4f} |")


def data_floor(task: Task, rows: int, draws: int = 20, n: int = 20_000) -> None:
    """How far each label's own training rows are from the truth: the largest KS distance
    over the five columns between the rows with that label among ``rows`` drawn (90 %, the
    share flowcli trains on) and ``n`` true rows given it, over ``draws`` training tables. A
    model that learns the label's conditional from those rows starts from that distance."""
    names = [f"x{j}" for j in range(5)]
    print("| label | training rows | their max KS: median | 10th-90th percentile |")
    print("|---|---:|---:|---|")
    for label in LABELS:
        found, count = [], 0
        for d in range(draws):
            train = task.draw(np.random.default_rng(1000 + d), rows).iloc[: int(0.9 * rows)]
            own = train[train["label"] == label]
            real = task.draw_given(np.random.default_rng(5000 + d),  # type: ignore[attr-defined]
                                   np.full(n, label))
            found.append(max(_ks(own[c].to_numpy(), real[c].to_numpy()) for c in names))
            count = len(own)
        low, mid, high = np.percentile(found, [10, 50, 90])
        print(f"| {label} | {count:,} | {mid:.4f} | {low:.4f}-{high:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--task", choices=("gmm-numeric", "gmm-label"), action="append")
    parser.add_argument("--data-floor", action="store_true",
                        help="only measure how far gmm-label's training rows per label are "
                             "from the truth (no fits)")
    args = parser.parse_args()
    if args.data_floor:
        data_floor(gmm_label(args.seed), args.rows)
        return
    makers = {"gmm-numeric": gmm_numeric, "gmm-label": gmm_label}
    for name in args.task or list(makers):
        run_task(makers[name](args.seed), args.rows, args.seed, args.max_seconds)


if __name__ == "__main__":
    main()

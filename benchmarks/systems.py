"""The systems under comparison, each behind one small adapter.

Every adapter takes float64 numpy rows in the data's own units: ``fit(train, val, recipe)``,
``log_prob(x)`` (nats per row, data units) and ``sample(n)``. Engine-level flows (flowcli MAF and
RealNVP, zuko MAF and NSF, nflows MAF) standardize with the training mean and standard deviation
and add the standardization log-determinant back; they share :func:`training.fit_flow`.
``flowcli-api`` is ``FlowModel.fit`` with its defaults, given train + validation rows (it holds out
its own 10 % for early stopping). ``gmm`` is scikit-learn's full-covariance GaussianMixture.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from training import Recipe, batched_log_prob, fit_flow

__all__ = ["SYSTEMS", "System", "grid_columns", "make"]

LAYERS, HIDDEN, DEPTH = 5, 128, 2
SYSTEMS = ("flowcli-maf", "flowcli-realnvp", "flowcli-api", "flowcli-nsf", "zuko-maf", "zuko-nsf",
           "nflows-maf", "gmm")
GMM_COMPONENTS = (1, 2, 5, 10, 20)


class System:
    """Adapter interface; ``info`` collects what ``fit`` learned about the run."""

    name = "system"

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    def fit(self, train: np.ndarray, val: np.ndarray, recipe: Recipe) -> None:
        raise NotImplementedError

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int) -> np.ndarray:
        raise NotImplementedError


def build_flow(kind: str, dim: int) -> tuple[Any, Callable[[Any], Any], Callable[[int], Any]]:
    """``(module, log_prob, sample)`` for an engine-level flow with the shared architecture."""
    import torch

    if kind in ("flowcli-maf", "flowcli-realnvp", "flowcli-spline", "flowcli-unmix"):
        from flowcli.engine import maf, nsf, realnvp, unmix

        builder = {"flowcli-maf": maf, "flowcli-realnvp": realnvp, "flowcli-spline": nsf,
                   "flowcli-unmix": unmix}[kind]
        flow = builder(dim, layers=LAYERS, hidden=HIDDEN, depth=DEPTH)
        return flow, flow.log_prob, lambda n: flow.sample(n)
    if kind in ("zuko-maf", "zuko-nsf"):
        import zuko

        cls = zuko.flows.MAF if kind == "zuko-maf" else zuko.flows.NSF
        zflow = cls(dim, transforms=LAYERS, hidden_features=(HIDDEN,) * DEPTH)
        return zflow, lambda x: zflow().log_prob(x), lambda n: zflow().sample((n,))
    if kind == "nflows-maf":
        from nflows.distributions.normal import StandardNormal
        from nflows.flows.base import Flow
        from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
        from nflows.transforms.base import CompositeTransform
        from nflows.transforms.permutations import ReversePermutation

        steps: list[torch.nn.Module] = []
        for i in range(LAYERS):
            if i:
                steps.append(ReversePermutation(features=dim))
            # non-residual MADE: an input layer plus num_blocks hidden layers = DEPTH layers
            steps.append(MaskedAffineAutoregressiveTransform(
                features=dim, hidden_features=HIDDEN, num_blocks=DEPTH - 1,
                use_residual_blocks=False))
        nflow = Flow(CompositeTransform(steps), StandardNormal([dim]))
        return nflow, nflow.log_prob, lambda n: nflow.sample(n)
    raise ValueError(f"unknown engine flow {kind!r}")


class EngineFlow(System):
    """An engine-level flow on standardized inputs, trained by the shared loop."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.name = kind

    def fit(self, train: np.ndarray, val: np.ndarray, recipe: Recipe) -> None:
        import torch

        self.mean = train.mean(axis=0)
        self.std = train.std(axis=0)
        self.std[self.std == 0] = 1.0
        self.logdet = -float(np.log(self.std).sum())
        torch.manual_seed(recipe.seed)
        self.module, self._log_prob, self._sample = build_flow(self.name, train.shape[1])
        self.info.update(fit_flow(self.module, self._log_prob, self._tensor(train),
                                  self._tensor(val), recipe))

    def _tensor(self, x: np.ndarray) -> Any:
        import torch

        return torch.as_tensor((x - self.mean) / self.std, dtype=torch.float32)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        out = batched_log_prob(self._log_prob, self._tensor(x))
        return out.double().numpy() + self.logdet

    def sample(self, n: int) -> np.ndarray:
        import torch

        with torch.no_grad():
            z = self._sample(n).double().numpy()
        return z * self.std + self.mean


class FlowcliApi(System):
    """``FlowModel.fit(df, seed=0, device="cpu")``: the defaults, with only the time caps set.

    ``flowcli-nsf`` is the same with ``model="nsf"`` (``flowcli fit --model nsf``), and
    ``flowcli-nsf-notails`` the spline flow without its heavy-tail layer (``--no-tails``), to
    measure what that layer does.
    """

    def __init__(self, name: str = "flowcli-api", **options: Any) -> None:
        super().__init__()
        self.name = name
        self.options = options

    def fit(self, train: np.ndarray, val: np.ndarray, recipe: Recipe) -> None:
        from flowcli import FlowModel

        df = self._frame(np.concatenate([train, val]))
        self.model = FlowModel.fit(df, seed=recipe.seed, device="cpu", epochs=recipe.max_epochs,
                                   max_seconds=recipe.max_seconds, continuous=grid_columns(df),
                                   **self.options)
        t = self.model.training
        kinds = [str(c.kind) for c in self.model.schema.columns]
        if "candidates" in t:
            self.info["candidates"] = [
                {k: c.get(k) for k in ("model", "whiten", "mixture", "tails",
                                       "val_log_likelihood", "epochs", "seconds")}
                for c in t["candidates"]]
        self.info.update(epochs=t["epochs"], best_epoch=t.get("best_epoch"),
                         stopped=t.get("stopped"), train_seconds=t["seconds"],
                         column_kinds={k: kinds.count(k) for k in sorted(set(kinds))})

    @staticmethod
    def _frame(x: np.ndarray) -> Any:
        import pandas as pd

        return pd.DataFrame(x, columns=[f"c{j}" for j in range(x.shape[1])])

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return self.model.score(self._frame(x)).to_numpy()

    def sample(self, n: int) -> np.ndarray:
        return self.model.sample(n, seed=1).to_numpy(dtype=np.float64)


def grid_columns(df: Any) -> list[str]:
    """The float columns flowcli would model on a grid. The peers model every column as a
    density, so flowcli's adapters keep these continuous (``continuous=``) for its scores to
    compare with theirs; on its grid a column's part of a score is a log-probability."""
    from flowcli.tabular import Schema

    return [c.name for c in Schema.infer(df).columns if c.step is not None]


class Gmm(System):
    """Full-covariance Gaussian mixture; the component count is chosen on validation."""

    name = "gmm"

    def fit(self, train: np.ndarray, val: np.ndarray, recipe: Recipe) -> None:
        from sklearn.mixture import GaussianMixture

        start = time.perf_counter()
        best, best_val, tried = None, -np.inf, {}
        for k in GMM_COMPONENTS:
            if k * 5 > train.shape[0]:
                continue
            gmm = GaussianMixture(k, covariance_type="full", random_state=recipe.seed)
            gmm.fit(train)
            score = float(gmm.score(val))
            tried[k] = round(score, 3)
            if score > best_val or best is None:
                best, best_val = gmm, score
            if time.perf_counter() - start > recipe.max_seconds:
                break
        assert best is not None
        self.model = best
        self.info.update(epochs=None, stopped=f"k={best.n_components}",
                         train_seconds=time.perf_counter() - start, val_by_k=tried)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return self.model.score_samples(x)

    def sample(self, n: int) -> np.ndarray:
        return self.model.sample(n)[0]


def make(name: str) -> System:
    """A fresh adapter for a system name from :data:`SYSTEMS`."""
    if name == "flowcli-api":
        return FlowcliApi()
    if name == "flowcli-nsf":
        return FlowcliApi(name, model="nsf")
    if name == "flowcli-nsf-notails":
        return FlowcliApi(name, model="nsf", tails=False)
    if name == "gmm":
        return Gmm()
    if name in SYSTEMS:
        return EngineFlow(name)
    raise ValueError(f"unknown system {name!r}; choose from "
                     f"{', '.join((*SYSTEMS, 'flowcli-nsf-notails'))}")

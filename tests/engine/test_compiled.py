"""Long scoring jobs of spline flows compile their passes: the same scores to float32's last
digits, nothing compiled for a MAF or a short job, and eager scoring when compiling fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from flowcli import FlowModel
from flowcli.engine import compiled
from flowcli.engine.compiled import scorer_for
from flowcli.errors import FlowcliWarning


def _model(kind: str) -> tuple[FlowModel, pd.DataFrame]:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(6000, 3)), columns=["a", "b", "c"])
    table["d"] = rng.choice(["x", "y"], 6000)
    # a small flow: compiling costs seconds per layer
    return FlowModel.fit(table, model=kind, epochs=1, seed=0, layers=2, hidden=32), table


def test_a_long_job_scores_compiled_as_it_scores_eagerly(monkeypatch) -> None:
    model, table = _model("nsf")
    table = pd.concat([table] * 30, ignore_index=True)  # passes enough for every trial
    eager = model.score(table)
    assert scorer_for(model.density).compiled is None  # not asked to compile
    monkeypatch.setenv("FLOWCLI_COMPILE_AFTER", "0")
    fast = model.score(table)
    assert scorer_for(model.density).compiled is not None
    assert len(scorer_for(model.density).timings) == compiled.TRIALS  # timed both ways
    assert np.abs(fast - eager).max() < 1e-4


def test_a_maf_and_a_job_told_never_do_not_compile(monkeypatch) -> None:
    monkeypatch.setenv("FLOWCLI_COMPILE_AFTER", "0")
    model, table = _model("maf")
    model.score(table)
    assert scorer_for(model.density).compiled is None
    monkeypatch.setenv("FLOWCLI_COMPILE_AFTER", "never")
    spline, table = _model("nsf")
    spline.score(pd.concat([table] * 10, ignore_index=True))
    assert scorer_for(spline.density).compiled is None


def test_when_compiling_fails_scoring_goes_on_eagerly(monkeypatch) -> None:
    model, table = _model("nsf")
    table = pd.concat([table] * 10, ignore_index=True)
    eager = model.score(table)

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setenv("FLOWCLI_COMPILE_AFTER", "0")
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(FlowcliWarning, match="uncompiled: torch.compile failed"):
        again = model.score(table)
    assert (again == eager).all() and scorer_for(model.density).uncompiled
    monkeypatch.delenv("FLOWCLI_COMPILE_AFTER")
    assert compiled._compile_after() == float("inf")  # compiling is asked for, never assumed


def test_compiled_passes_slower_than_eager_ones_are_dropped(monkeypatch) -> None:
    import time

    model, table = _model("nsf")
    table = pd.concat([table] * 30, ignore_index=True)  # passes enough for every trial

    def slow(fn, **kwargs):
        def wrapped(x):
            time.sleep(0.05)
            return fn(x)
        return wrapped

    monkeypatch.setenv("FLOWCLI_COMPILE_AFTER", "0")
    monkeypatch.setattr(torch, "compile", slow)
    model.score(table)
    scorer = scorer_for(model.density)
    assert len(scorer.timings) == compiled.TRIALS and not scorer.faster and scorer.uncompiled


def test_a_scorer_given_compile_after_does_not_read_the_environment(monkeypatch) -> None:
    """Benchmarks and other callers in one process set when their own scorer compiles."""
    model, _ = _model("nsf")
    x = torch.randn(256, model.density.flow.features)

    def after_a_pass(scorer: compiled.Scorer) -> bool:
        scorer.scored = x.shape[0]
        return scorer._compiles(x, x.shape[0])

    monkeypatch.setenv("FLOWCLI_COMPILE_AFTER", "0")
    assert after_a_pass(compiled.Scorer(model.density))
    assert not after_a_pass(compiled.Scorer(model.density, compile_after=float("inf")))
    monkeypatch.setenv("FLOWCLI_COMPILE_AFTER", "never")
    assert not after_a_pass(compiled.Scorer(model.density))
    assert after_a_pass(compiled.Scorer(model.density, compile_after=0))

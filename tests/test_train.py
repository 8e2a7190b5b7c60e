"""The training loop: its parameter buffer, resumed runs and DistributedDataParallel."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from flowcli import FlowModel
from flowcli.engine import maf
from flowcli.training import TrainConfig, TrainResult, evaluate, train


def _rows() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(600, 3, generator=g) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3],
                                                          [0.0, 0.0, 1.0]])


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))


def _holds(module: torch.nn.Module, tensors: list[torch.Tensor]) -> bool:
    """Whether ``module``'s parameters are ``tensors``, in order, bit for bit."""
    return all(torch.equal(p.detach(), t)
               for p, t in zip(module.parameters(), tensors, strict=True))


def _four_epochs_and_two_halves(
        x_train: torch.Tensor, x_val: torch.Tensor, check: Callable[[torch.nn.Module,
                                                                    TrainResult], None],
        **config: Any) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same MAF trained 4 epochs at once and 2 + 2 with a resume between; ``check`` sees
    the halves after the first two epochs, with their result."""
    torch.manual_seed(0)
    whole = maf(3, 2, 16)
    halves = copy.deepcopy(whole)
    train(whole, x_train, x_val, config=TrainConfig(epochs=4, **config),
          generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    first = train(halves, x_train, x_val, config=TrainConfig(epochs=2, **config), generator=g)
    check(halves, first)
    train(halves, x_train, x_val, config=TrainConfig(epochs=4, **config), generator=g,
          resume=first.resume_state())
    return whole, halves


def test_a_resumed_run_is_the_run_it_continues() -> None:
    """Two epochs, saved, then two more: the same weights, bit for bit, as four at once. The
    optimizer state crosses the resume one entry per parameter, as model files hold it."""

    def check(halves: torch.nn.Module, first: TrainResult) -> None:
        state = first.resume_state()
        params = list(halves.parameters())
        assert sorted(state.optimizer["state"]) == list(range(len(params)))
        for i, p in enumerate(params):
            assert state.optimizer["state"][i]["exp_avg"].shape == p.shape

    x = _rows()
    whole, halves = _four_epochs_and_two_halves(x, x[:0], check, batch_size=64)
    assert _same_weights(whole, halves)


def test_after_training_each_parameter_has_its_own_memory() -> None:
    torch.manual_seed(0)
    flow = maf(3, 2, 16)
    train(flow, _rows(), _rows()[:50], config=TrainConfig(epochs=2, batch_size=64))
    params = list(flow.parameters())
    assert len({p.untyped_storage().data_ptr() for p in params}) == len(params)
    assert all(p.grad is None for p in params)


def test_an_optimizer_state_for_other_parameters_is_refused() -> None:
    torch.manual_seed(0)
    flow = maf(3, 2, 16)
    x = _rows()
    state = train(flow, x, x[:0], config=TrainConfig(epochs=1, batch_size=64)).resume_state()
    other = maf(3, 3, 16)
    with pytest.raises(ValueError, match="does not match"):
        train(other, x, x[:0], config=TrainConfig(epochs=2, batch_size=64), resume=state)
    params = list(other.parameters())  # not left as views of the training buffer
    assert len({p.untyped_storage().data_ptr() for p in params}) == len(params)
    assert all(p.grad is None for p in params)


def test_saved_optimizer_states_cross_the_buffer_unchanged() -> None:
    """One entry per parameter -> the buffer -> one entry per parameter gives back the saved
    moments; a parameter without state gets zeros, and the step count is the largest."""
    from flowcli.training import ParameterBuffer as _Flat

    torch.manual_seed(0)
    flow = maf(3, 2, 16)
    params = list(flow.parameters())
    g = torch.Generator().manual_seed(0)
    state = {i: {"step": torch.tensor(float(7 + (i == 2))),
                 "exp_avg": torch.randn(p.shape, generator=g),
                 "exp_avg_sq": torch.rand(p.shape, generator=g)}
             for i, p in enumerate(params) if i != 1}
    saved = {"state": state, "param_groups": [{"lr": 0.25, "fused": None,
                                               "params": list(range(len(params)))}]}
    flat = _Flat(params)
    try:
        joined = flat.join_state(saved, {"lr": 1e-3, "fused": True, "params": [0]})
        assert joined["param_groups"] == [{"lr": 0.25, "fused": True, "params": [0]}]
        assert float(joined["state"][0]["step"]) == 8.0
        back = flat.split_state(joined)
    finally:
        flat.release()
    for i, p in enumerate(params):
        for key in ("exp_avg", "exp_avg_sq"):
            expected = state[i][key] if i in state else torch.zeros_like(p)
            assert torch.equal(back["state"][i][key], expected)


def test_a_callback_that_drops_the_gradients_changes_nothing() -> None:
    """``model.zero_grad()`` between epochs (gradients set to None) does not cut the
    parameters off from the training buffer."""
    x = _rows()
    flows = []
    for drop in (False, True):
        torch.manual_seed(0)
        flow = maf(3, 2, 16)
        train(flow, x, x[:100], config=TrainConfig(epochs=3, batch_size=64),
              generator=torch.Generator().manual_seed(1),
              callback=(lambda r, f=flow: f.zero_grad()) if drop else None)
        flows.append(flow)
    assert _same_weights(*flows)


def test_a_format_1_model_file_resumes(tmp_path: Path) -> None:
    """Its optimizer state was written one entry per parameter, by a release before the
    parameter buffer; training carries on from it."""
    data = Path(__file__).parent / "data"
    model = FlowModel.load(str(data / "format1_maf.flow"))
    rows = pd.read_csv(data / "format1_scores.csv")[["a", "b"]]
    before = model.training["epochs"]
    steps = float(model.resume.optimizer["state"][0]["step"])
    assert steps > 0
    model.resume_fit(pd.concat([rows] * 20, ignore_index=True), epochs=before + 2)
    # Adam's step count carried on from the saved one, on every parameter
    batches = -(-model.training["train_rows"] // model.fit_config.batch_size)
    after = model.resume.optimizer["state"]
    assert {float(v["step"]) for v in after.values()} == {steps + 2 * batches}
    assert model.training["epochs"] == before + 2
    assert np.isfinite(model.score(rows).to_numpy()).all()


@pytest.mark.parametrize("bucket_view", [False, True])
def test_distributed_data_parallel_wraps_the_flow_unchanged(tmp_path: Path,
                                                            bucket_view: bool) -> None:
    """``train`` on ``DistributedDataParallel(flow)`` (one process, gloo) gives the weights of
    ``train`` on the flow itself: the loop stays a plain loop that DDP can wrap, also when DDP
    hands out its own gradient buckets."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0,
                            world_size=1)
    try:
        torch.manual_seed(0)
        flow = maf(3, 2, 16)
        twin, start = copy.deepcopy(flow), copy.deepcopy(flow)
        x = _rows()
        config = TrainConfig(epochs=3, batch_size=64)
        ddp = DistributedDataParallel(flow, gradient_as_bucket_view=bucket_view)
        train(ddp, x, x[:100], config=config,
              generator=torch.Generator().manual_seed(1))
        train(twin, x, x[:100], config=config, generator=torch.Generator().manual_seed(1))
    finally:
        dist.destroy_process_group()
    assert not _same_weights(flow, start)
    assert _same_weights(flow, twin)


def test_a_start_score_from_the_caller_is_not_recomputed() -> None:
    """``start_val`` stands for the starting weights' validation score: here one no epoch
    can beat, so the start is what training keeps."""
    torch.manual_seed(0)
    flow = maf(3, 2, 16)
    start = copy.deepcopy(flow)
    x = _rows()
    result = train(flow, x, x[:100], config=TrainConfig(epochs=2, batch_size=64),
                   start_val=1e9)
    assert result.best_epoch == 0 and result.best_val_ll == 1e9
    assert _same_weights(flow, start)


def test_the_clip_is_torchs() -> None:
    from flowcli.training.params import clip_ as _clip

    for scale in (0.01, 10.0):  # under and over the bound
        g = torch.randn(1000, generator=torch.Generator().manual_seed(3)) * scale
        p = torch.nn.Parameter(torch.zeros(1000))
        p.grad = g.clone()
        expected = torch.nn.utils.clip_grad_norm_(p, 5.0)
        mine = g.clone()
        assert torch.allclose(_clip(mine, 5.0), expected)
        assert torch.allclose(mine, p.grad, rtol=1e-6, atol=0)


class _Spiky(torch.nn.Module):
    """A Gaussian whose loss stays finite but whose gradient is NaN on the second call."""

    def __init__(self) -> None:
        super().__init__()
        self.mu = torch.nn.Parameter(torch.zeros(2))
        self.calls = 0
        self.stepped_on_nan = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.stepped_on_nan |= not bool(torch.isfinite(self.mu).all())
        ll = -0.5 * ((x - self.mu) ** 2).sum(dim=1)
        if self.calls == 2:  # sqrt at 0: a finite value with an infinite slope
            ll = ll - (self.mu[0] - self.mu[0].detach()).abs().sqrt()
        return ll


def test_a_non_finite_gradient_under_a_finite_loss_rolls_back() -> None:
    model = _Spiky()
    x = torch.randn(64, 2) + 3.0
    notes = []
    train(model, x, x[:8], None, TrainConfig(epochs=2, batch_size=32, lr=0.1),
          callback=lambda r: notes.append(r.note))
    assert "non-finite loss or gradient" in notes[0]
    assert not model.stepped_on_nan  # the bad gradient was never applied
    assert torch.isfinite(model.mu).all() and float(model.mu.detach().abs().sum()) > 0


class _Interrupting(torch.nn.Module):
    """Wraps a flow and raises Ctrl-C on the given call."""

    def __init__(self, flow: torch.nn.Module, at: int) -> None:
        super().__init__()
        self.flow, self.at, self.calls = flow, at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.flow(x)


def test_a_run_interrupted_mid_epoch_ends_on_the_last_best_weights() -> None:
    """Without validation rows the best weights are the last full epoch's (their average):
    steps taken in the interrupted epoch are undone."""
    torch.manual_seed(0)
    flow = maf(3, 2, 16)
    after_one = copy.deepcopy(flow)
    x = _rows()  # 600 rows: 10 steps of 64 an epoch
    train(after_one, x, x[:0], config=TrainConfig(epochs=1, batch_size=64),
          generator=torch.Generator().manual_seed(1))
    wrapped = _Interrupting(flow, at=14)  # the 4th step of the second epoch
    result = train(wrapped, x, x[:0], config=TrainConfig(epochs=3, batch_size=64),
                   generator=torch.Generator().manual_seed(1))
    assert result.interrupted and result.epochs == 1
    assert _same_weights(flow, after_one)


def test_the_average_weighs_the_steps_polynomially() -> None:
    """After K steps the average is sum_k w_k v_k over the start (k = 0) and the K iterates,
    with weights proportional to (k+1)(k+2)...(k+8) (the product of the per-step weights
    9 / (k + 9)); far into training the per-step weight stops at ``AVERAGE_FLOOR``."""
    from flowcli.training import AVERAGE_FLOOR
    from flowcli.training import ParameterBuffer as _Flat
    from flowcli.training import WeightAverage as _Average

    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    flat = _Flat([p])
    flat.attach()
    try:
        average = _Average(flat)
        values = torch.randn(31, 3, generator=torch.Generator().manual_seed(0),
                             dtype=torch.float64)
        flat.param.data.copy_(values[0])
        average.reset()
        for v in values[1:]:
            flat.param.data.copy_(v)
            average.update()
        big_k = len(values) - 1
        weights = torch.tensor([9.0 * math.prod(range(k + 1, k + 9)) if k else
                                math.prod(range(1, 10)) for k in range(big_k + 1)],
                               dtype=torch.float64) / math.prod(range(big_k + 1, big_k + 10))
        assert float(weights.sum()) == pytest.approx(1.0)
        assert torch.allclose(average.weights, weights @ values)
        # the floor: after 9 / (k + 9) drops below it, each step moves the average by it
        average.steps = 10**6
        before = average.weights.clone()
        flat.param.data.copy_(values[0])
        average.update()
        assert torch.allclose(average.weights, before + AVERAGE_FLOOR * (values[0] - before))
        # after a rollback the average starts over, schedule included
        flat.param.data.copy_(values[1])
        average.reset()
        flat.param.data.copy_(values[2])
        average.update()
        assert torch.allclose(average.weights, values[1] + 0.9 * (values[2] - values[1]))
    finally:
        flat.release()


def _mean_ll(x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mu) ** 2).sum(dim=1)


class _Mean(torch.nn.Module):
    """A unit Gaussian with a trained mean: its log-likelihood rewards the exact mean."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.mu = torch.nn.Parameter(torch.full((2,), start))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mean_ll(x, self.mu)


@pytest.mark.parametrize("case", ["noisy", "far"])
def test_an_epoch_keeps_the_better_of_the_trained_and_averaged_weights(case: str) -> None:
    """Steps of one row with a large learning rate bounce around the mean: their average is
    closer. Small steps from far away still make progress: the average lags behind. Either
    way the epoch's score is the better one's, and that one is kept."""
    x = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0)) + 1.0
    model = _Mean(1.0 if case == "noisy" else -30.0)
    config = TrainConfig(epochs=1, batch_size=1 if case == "noisy" else 100,
                         lr=0.3 if case == "noisy" else 0.2)
    result = train(model, x[:3000], x[3000:], config=config, start_val=-1e9,
                   generator=torch.Generator().manual_seed(1))
    state = result.average_state
    assert state is not None
    scores = {name: float(_mean_ll(x[3000:], state[name][0]).mean())
              for name in ("weights", "trained")}
    better, worse = ("weights", "trained") if case == "noisy" else ("trained", "weights")
    assert scores[better] > scores[worse]
    assert result.best_val_ll == pytest.approx(scores[better], abs=1e-5)
    assert torch.equal(model.mu.detach(), state[better][0])


def test_without_validation_rows_the_average_is_kept() -> None:
    torch.manual_seed(0)
    flow = maf(3, 2, 16)
    x = _rows()
    result = train(flow, x, x[:0], config=TrainConfig(epochs=2, batch_size=64))
    state = result.average_state
    assert state is not None and state["steps"] == 2 * 10
    assert _holds(flow, state["weights"]) and not _holds(flow, state["trained"])


def test_a_resumed_run_with_validation_rows_is_the_run_it_continues() -> None:
    """The model holds the best weights, which may be an average; the resume state holds
    the trained weights and the average as they were, so training carries on exactly."""

    def check(halves: torch.nn.Module, first: TrainResult) -> None:
        average = first.resume_state().average
        assert first.best_epoch == 2
        assert _holds(halves, average["weights"]) and not _holds(halves, average["trained"])

    x = _rows()  # noisy steps of 8 rows: the average wins at epoch 2
    whole, halves = _four_epochs_and_two_halves(x[:500], x[500:], check, batch_size=8,
                                                lr=1e-2)
    assert _same_weights(whole, halves)


@pytest.mark.parametrize("at", range(1, 40, 3))
def test_a_ctrl_c_anywhere_ends_on_the_best_weights(at: int) -> None:
    """Wherever Ctrl-C comes (a step, scoring the trained weights or the average, the first
    epoch or a later one), the model ends on the weights that scored the best validation
    log-likelihood, and the resume state holds no average: a resumed run starts over from
    those weights."""
    torch.manual_seed(0)
    flow = maf(3, 2, 16)
    x = _rows()
    wrapped = _Interrupting(flow, at=at)  # 1 start score + 16 steps + 2 scores an epoch
    result = train(wrapped, x[:500], x[500:], config=TrainConfig(epochs=3, batch_size=32,
                                                                 lr=1e-2),
                   generator=torch.Generator().manual_seed(1))
    assert result.interrupted
    if at > 1:  # the start was scored
        score = float(evaluate(flow, x[500:]).mean())
        assert score == pytest.approx(result.best_val_ll, abs=1e-5)
    assert result.resume_state().average is None
    assert "average" not in result.resume_state().to_dict()


def test_a_ctrl_c_right_after_an_average_became_the_best_ends_on_it() -> None:
    """The narrowest window: the average is in the model and was just taken as the best, and
    the trained weights are not back yet. Ctrl-C lands there (a line tracer raises it at
    that statement, in epoch 2, which the average wins)."""
    import inspect
    import sys

    from flowcli.training import Trainer

    code = Trainer._track.__code__
    lines, first_line = inspect.getsourcelines(Trainer._track)
    target = first_line + next(i for i, line in enumerate(lines)
                               if "if self.average is not None and self.average.holding:"
                               in line)
    hits = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not code:
            return None

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "line" and frame.f_lineno == target:
                hits.append(1)
                if len(hits) == 2:
                    raise KeyboardInterrupt
            return local
        return local

    torch.manual_seed(0)
    flow = maf(3, 2, 16)
    twin = copy.deepcopy(flow)
    x = _rows()
    config = TrainConfig(epochs=3, batch_size=8, lr=1e-2)
    calm = train(twin, x[:500], x[500:], config=replace(config, epochs=2),
                 generator=torch.Generator().manual_seed(1))
    assert calm.average_state is not None and calm.best_epoch == 2  # the average won
    assert _holds(twin, calm.average_state["weights"])
    sys.settrace(tracer)
    try:
        result = train(flow, x[:500], x[500:], config=config,
                       generator=torch.Generator().manual_seed(1))
    finally:
        sys.settrace(None)
    assert len(hits) == 2
    assert result.interrupted and result.epochs == 1  # epoch 2's report never came
    assert result.best_val_ll == pytest.approx(calm.best_val_ll)
    assert _holds(flow, calm.average_state["weights"])


def test_a_saved_average_for_other_parameters_is_refused() -> None:
    torch.manual_seed(0)
    x = _rows()
    state = train(maf(3, 2, 16), x, x[:0], config=TrainConfig(epochs=1, batch_size=64)
                  ).resume_state()
    other = maf(3, 2, 16)
    state.optimizer = None
    state.average["weights"] = state.average["weights"][:-1]
    with pytest.raises(ValueError, match="weight average does not match"):
        train(other, x, x[:0], config=TrainConfig(epochs=2, batch_size=64), resume=state)
    params = list(other.parameters())
    assert len({p.untyped_storage().data_ptr() for p in params}) == len(params)

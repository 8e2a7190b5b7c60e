"""The training loop: mini-batch maximum likelihood with early stopping on a validation split.

The loop is a plain loop over batches of a tensor already on the device, calling ``model(x)``
for the per-row log-likelihood, so ``torch.nn.parallel.DistributedDataParallel`` can wrap the
flow unchanged. It prints nothing: it reports each epoch through a callback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import torch
from torch import Tensor, nn

from .errors import FlowcliError

__all__ = ["EpochReport", "TrainConfig", "TrainResult", "evaluate", "fit_chain", "train"]


@dataclass
class TrainConfig:
    """Optimization settings; every field is plain data and goes into the model file."""

    epochs: int = 1000
    batch_size: int = 512
    lr: float = 1e-3
    patience: int = 20
    weight_decay: float = 0.0
    clip_norm: float = 5.0
    max_seconds: float | None = None
    min_delta: float = 1e-4  # nats per row: smaller validation gains do not reset patience
    plateau_decay: bool = True  # halve the learning rate halfway through a plateau
    average: bool = True  # also validate a running average of the weights (see ``train``)


@dataclass
class EpochReport:
    """What the callback sees after each epoch. Log-likelihoods are mean nats per row."""

    epoch: int
    epochs: int
    train_ll: float
    val_ll: float
    best_val_ll: float
    best_epoch: int
    rows_per_second: float
    seconds: float
    lr: float
    note: str = ""
    stage: str = ""  # which candidate is training, when fit tries several


@dataclass
class TrainResult:
    epochs: int
    best_epoch: int
    best_val_ll: float
    train_ll: float
    seconds: float
    stopped: str
    history: list[dict[str, float]] = field(default_factory=list)
    optimizer_state: dict[str, Any] | None = None
    interrupted: bool = False
    bad_epochs: int = 0
    average_state: dict[str, Any] | None = None

    def resume_state(self) -> dict[str, Any]:
        """What :func:`train` needs to carry on where this run stopped."""
        state = {"epoch": self.epochs, "best_val": self.best_val_ll,
                 "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                 "optimizer": self.optimizer_state}
        if self.average_state is not None:
            state["average"] = self.average_state
        return state


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, batch_size: int | None = None) -> Tensor:
    """Per-row log-likelihood of ``x`` under ``model`` in eval mode.

    Rows go through in batches of ``batch_size``, by default 4,096 on a CPU (a few thousand
    rows per pass keep the activations in cache and run about 2.5 times faster than tens of
    thousands) and 65,536 elsewhere.
    """
    batch_size = batch_size or (4096 if x.device.type == "cpu" else 65536)
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    model.train(was_training)
    return out


def _adam(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel per step where this torch build has it (10 % per epoch).

    Fused and plain Adam keep the same state, so model files resume with either.
    """
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without it
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


class _Flat:
    """The trained parameters as views of one buffer, and their gradients of another.

    Adam, clipping and zeroing then handle one tensor instead of one per weight and bias (30
    on a 5-layer MAF): fused Adam and ``clip_grad_norm_`` alone took 180 microseconds longer
    on the 30 than on one buffer, 3 % of a 6 ms training step on a CPU.
    Building it leaves the model alone; :meth:`attach` makes the parameters the views, after
    which ``autograd`` adds each new gradient into them in place, and :meth:`release` gives
    every parameter its own memory back and drops the gradients. Saved optimizer states keep
    one entry per parameter (:meth:`split_state`, :meth:`join_state`), so model files and
    resumed runs do not depend on this.
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        with torch.no_grad():
            data = torch.cat([p.detach().reshape(-1) for p in params]) if params else \
                torch.zeros(0)
        self.param = nn.Parameter(data)
        self.param.grad = torch.zeros_like(data)
        ends = list(accumulate(p.numel() for p in params))
        self.spans = list(zip([0, *ends], ends, strict=False))  # each parameter's slice
        self.grads = [self.param.grad[a:b].view_as(p)
                      for (a, b), p in zip(self.spans, params, strict=True)]

    def attach(self) -> None:
        """Make the parameters and their gradients the views (the buffers hold their values)."""
        for p, (a, b), grad in zip(self.params, self.spans, self.grads, strict=True):
            p.data = self.param.data[a:b].view_as(p)
            p.grad = grad

    def zero_grad(self) -> None:
        """Zero the gradient buffer, and point back at it any parameter whose gradient was
        replaced (``model.zero_grad()`` in a callback, or ``DistributedDataParallel`` with
        ``gradient_as_bucket_view=True``, which hands out its own buckets)."""
        self.param.grad.zero_()
        for p, view in zip(self.params, self.grads, strict=True):
            if p.grad is not view:
                p.grad = view

    def gather(self) -> None:
        """Copy into the buffer any gradient that ended up outside it."""
        for p, view in zip(self.params, self.grads, strict=True):
            if p.grad is not view and p.grad is not None:
                view.copy_(p.grad)

    def release(self) -> None:
        """Give every parameter its own memory again and drop the gradients."""
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None

    def split(self, values: Tensor) -> list[Tensor]:
        """A copy of a buffer laid out as :attr:`param`, one tensor per parameter."""
        return [values[a:b].view_as(p).clone() for (a, b), p in
                zip(self.spans, self.params, strict=True)]

    def join(self, parts: list[Tensor], what: str = "weight average") -> Tensor:
        """The inverse of :meth:`split`; parts of other sizes are refused, naming ``what``."""
        if len(parts) != len(self.params) or any(
                torch.as_tensor(part).numel() != p.numel()
                for part, p in zip(parts, self.params, strict=True)):
            raise ValueError(f"the saved {what} does not match the model's parameters")
        return torch.cat([torch.as_tensor(part).reshape(-1).to(self.param) for part in parts]) \
            if parts else torch.zeros(0).to(self.param)

    def split_state(self, flat_state: dict[str, Any]) -> dict[str, Any]:
        """Adam's state of the one buffer as the state of each parameter."""
        group = {**flat_state["param_groups"][0], "params": list(range(len(self.params)))}
        state: dict[int, dict[str, Any]] = {}
        values = flat_state["state"].get(0)
        if values:
            for i, ((a, b), p) in enumerate(zip(self.spans, self.params, strict=True)):
                state[i] = {k: v[a:b].view_as(p).clone() if v.dim() else v.clone()
                            for k, v in values.items()}
        return {"state": state, "param_groups": [group]}

    def join_state(self, state_dict: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`split_state`, for an optimizer whose one group is ``group``.

        Only the learning rate comes from the saved group (plateaus halve it); the other
        settings stay those of the optimizer at hand, so a state saved by fused Adam on one
        device loads into another build. A parameter without state starts from zeros; the
        step count is the largest saved one.
        """
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise ValueError("the saved optimizer state does not match the model's parameters")
        group = {**group, "lr": groups[0]["lr"], "params": [0]}
        ids = groups[0]["params"]
        per = {i: state_dict["state"][i] for i in ids if i in state_dict["state"]}
        if not per:
            return {"state": {}, "param_groups": [group]}
        values: dict[str, Any] = {}
        for key, value in next(iter(per.values())).items():
            if value.dim() == 0:
                values[key] = torch.stack([torch.as_tensor(v[key]).float() for v in
                                           per.values()]).max().to(value)
                continue
            values[key] = self.join([per[i][key] if i in per else torch.zeros_like(p)
                                     for i, p in zip(ids, self.params, strict=True)],
                                    "optimizer state")
        return {"state": {0: values}, "param_groups": [group]}


def _clip(grad: Tensor, max_norm: float) -> Tensor:
    """Scale ``grad`` in place to a 2-norm of at most ``max_norm``; returns the norm before.

    What ``torch.nn.utils.clip_grad_norm_`` computes, for the one gradient buffer: that
    function's grouping of tensors by device and type cost a CPU training step about
    30 microseconds, as long as the norm and scaling themselves.
    """
    norm = torch.linalg.vector_norm(grad)
    grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


AVERAGE_FLOOR = 1e-3  # the smallest weight a step gets in the average: ~1,000 steps' memory


class _Average:
    """A running average of the trained weights (the one buffer of :class:`_Flat`).

    After the ``k``-th step the average moves towards the weights by ``max(9 / (k + 9),
    0.001)``: early on it follows them closely, later it spans about the last tenth of the
    steps, at most about 1,000. Averaging smooths out the noise of the last steps, which
    validation would otherwise select on. Between the benchmark's full runs before and after
    it, ``FlowModel.fit``'s defaults gained 0.020 nats per test row on funnel10 (five seeds),
    0.09-0.10 on warped16 and kin40k, 2.2 on elevators and 0.85 on pol, and lost 0.01 on
    protein (benchmarks/README.md; most of those fits end at a time cap).
    :meth:`put_in` gives the model the average, keeping the trained weights aside, and
    :meth:`take_out` puts them back; a Ctrl-C at any point between leaves ``holding`` true
    until the trained weights are back in full.
    """

    def __init__(self, flat: _Flat, state: dict[str, Any] | None = None) -> None:
        self.flat = flat
        self.steps = 0
        self.weights = flat.param.detach().clone() if not state else flat.join(state["weights"])
        self.trained = torch.empty_like(self.weights)  # the trained weights, while put aside
        self.holding = False  # the model holds the average
        if state:
            self.steps = int(state["steps"])
            flat.param.data.copy_(flat.join(state["trained"]))

    def update(self) -> None:
        self.steps += 1
        self.weights.lerp_(self.flat.param.detach(), max(9.0 / (self.steps + 9), AVERAGE_FLOOR))

    def reset(self) -> None:
        """Restart the average, and its schedule, at the current weights (after a rollback)."""
        self.weights.copy_(self.flat.param.detach())
        self.steps = 0

    def put_in(self) -> None:
        self.trained.copy_(self.flat.param.detach())
        self.holding = True
        self.flat.param.data.copy_(self.weights)

    def take_out(self) -> None:
        if self.holding:
            self.flat.param.data.copy_(self.trained)  # repeating this does no harm
            self.holding = False

    def state(self) -> dict[str, Any]:
        """The average and the trained weights, one entry per parameter, and the step count
        (call with the trained weights in the model)."""
        return {"steps": self.steps, "weights": self.flat.split(self.weights),
                "trained": self.flat.split(self.flat.param.detach())}


def _device_generator(generator: torch.Generator | None, device: torch.device
                      ) -> torch.Generator | None:
    """A generator on ``device`` seeded from ``generator``, so runs stay reproducible."""
    if generator is None:
        return None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(
    model: nn.Module,
    x_train: Tensor,
    x_val: Tensor,
    widths: Tensor | None = None,
    config: TrainConfig | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[EpochReport], None] | None = None,
    resume: dict[str, Any] | None = None,
    stop: Callable[[EpochReport], bool] | None = None,
    start_val: float | None = None,
) -> TrainResult:
    """Fit ``model`` (``model(x)`` returns per-row log-likelihoods) by maximum likelihood.

    Arguments:
        model: a module whose ``model(x)`` is the per-row log-likelihood; parameters that
            do not require a gradient are left alone.
        x_train, x_val: encoded rows on the model's device; ``x_val`` may have no rows, and
            then the last epoch's weights (its average, with ``config.average``) are kept and
            no early stopping happens.
        widths: ``(D,)`` dequantization cell widths; each training batch gets fresh uniform
            noise ``u * widths`` (``x_train`` holds the lower corners of the cells).
        generator: drives shuffling and dequantization noise.
        callback: called after every epoch with an :class:`EpochReport`.
        resume: continue an earlier run: the ``resume_state()`` of its result (epoch count,
            best validation score, epochs without improvement, optimizer state, and the
            weight average with the trained weights, which then replace the model's; a run
            that Ctrl-C ended has none, and carries on from its best weights). The model
            must hold that run's best weights.
        stop: asked after every epoch; training ends (``stopped == "given up"``) when it
            returns true.
        start_val: the starting weights' mean log-likelihood on ``x_val``, when the caller
            has scored them already; otherwise ``train`` does.

    Early stopping: the best weights so far, the starting ones included (epoch 0), are kept;
    training stops after ``config.patience`` epochs without a validation gain above
    ``config.min_delta``, and the learning rate halves halfway through such a plateau.
    With ``config.average`` (the default) each epoch also scores a running average of the
    weights (:class:`_Average`); the better of the two counts as the epoch's, and the best
    may be an average, while training carries on from the trained weights. Without
    validation rows the average is kept.

    A non-finite loss or gradient rolls the weights back to the best so far and halves the
    learning rate (reported in the epoch's ``note``). Ctrl-C (KeyboardInterrupt) ends training
    with the best weights loaded and ``interrupted`` set.
    """
    config = config or TrainConfig()
    n = x_train.shape[0]
    has_val = x_val.shape[0] > 0
    flat = _Flat([p for p in model.parameters() if p.requires_grad])
    optimizer = _adam([flat.param], config.lr, config.weight_decay)
    resume = resume or {}
    if resume.get("optimizer"):
        current = optimizer.state_dict()["param_groups"][0]
        optimizer.load_state_dict(flat.join_state(resume["optimizer"], current))
    start_epoch = int(resume.get("epoch", 0))
    noisy = widths is not None and bool((widths > 0).any())
    # dequantization noise is drawn where the data lives, so no batch crosses from the host
    noise_generator = _device_generator(generator, x_train.device) if noisy else None
    best_state = _snapshot(model)
    at_best = True  # the model holds best_state: nothing to load back at the end
    best_val = float(resume.get("best_val", -math.inf))
    best_epoch = int(resume.get("best_epoch", start_epoch))
    history: list[dict[str, float]] = []
    bad_epochs = int(resume.get("bad_epochs", 0))
    failures = 0
    start = time.perf_counter()
    stopped = "epochs"
    interrupted = False
    epoch = start_epoch
    train_ll = math.nan
    flat.attach()
    average: _Average | None = None
    average_is_best = False  # the average, as it is now, is best_state
    try:  # from here on the parameters are views: they get their own memory back at the end
        if config.average:
            if resume.get("average"):
                at_best = False  # the model is about to hold the trained weights
            average = _Average(flat, resume.get("average"))
        if not resume and has_val:
            # the starting point counts: a model that starts good (on a fitted mixture base,
            # say) is never replaced by worse weights
            if start_val is None:
                start_val = float(evaluate(model, x_val).mean())
            best_val = start_val if math.isfinite(start_val) else best_val
        for epoch in range(start_epoch + 1, config.epochs + 1):
            tick = time.perf_counter()
            model.train()
            at_best = average_is_best = False
            order = torch.randperm(n, generator=generator, device="cpu").to(x_train.device)
            total = torch.zeros((), device=x_train.device)
            note = ""
            for i in range(0, n, config.batch_size):
                xb = x_train.index_select(0, order[i : i + config.batch_size])
                if noisy:
                    u = torch.rand(xb.shape, generator=noise_generator, device=xb.device,
                                   dtype=xb.dtype)
                    xb = xb + u * widths
                loss = -model(xb).mean()
                flat.zero_grad()
                loss.backward()
                flat.gather()
                norm = _clip(flat.param.grad, config.clip_norm)
                if not math.isfinite(float(loss.detach() + norm)):  # one host sync a step
                    failures += 1
                    if failures > 8:
                        raise FlowcliError(
                            "training diverged: the loss stayed non-finite after 8 restarts "
                            "with a lower learning rate; check the data for extreme values"
                        )
                    model.load_state_dict(best_state)
                    if average is not None:
                        average.reset()
                    for group in optimizer.param_groups:
                        group["lr"] *= 0.5
                    optimizer.state.clear()
                    lr = optimizer.param_groups[0]["lr"]
                    note = f"non-finite loss or gradient: rolled back, lr {lr:.2g}"
                    continue
                optimizer.step()
                if average is not None:
                    average.update()
                total += loss.detach() * xb.shape[0]
            train_ll = -float(total) / n
            val_ll = float(evaluate(model, x_val).mean()) if has_val else train_ll
            if average is not None:
                average.put_in()
                # without validation rows the average is what training keeps
                averaged = float(evaluate(model, x_val).mean()) if has_val else val_ll
                if averaged >= val_ll or math.isnan(val_ll):
                    val_ll = averaged
                else:
                    average.take_out()
            seconds = time.perf_counter() - tick
            # the best weights are kept on any gain; patience resets only on a real one
            if val_ll > best_val + config.min_delta or not has_val:
                bad_epochs = 0
            else:
                bad_epochs += 1
            if val_ll > best_val or not has_val:
                state = _snapshot(model)  # first: a Ctrl-C here leaves the old best whole
                best_val, best_epoch, best_state = val_ll, epoch, state
                at_best = True
            if average is not None and average.holding:
                # training carries on from the trained weights
                average_is_best, at_best = at_best, False
                average.take_out()
            if config.plateau_decay and bad_epochs == max(config.patience // 2, 1):
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
            history.append({"epoch": epoch, "train_ll": train_ll, "val_ll": val_ll,
                            "seconds": seconds})
            report = EpochReport(epoch, config.epochs, train_ll, val_ll, best_val, best_epoch,
                                 n / max(seconds, 1e-9), seconds,
                                 optimizer.param_groups[0]["lr"], note)
            if callback is not None:
                callback(report)
            if stop is not None and stop(report):
                stopped = "given up"
                break
            if has_val and bad_epochs >= config.patience:
                stopped = "patience"
                break
            if (config.max_seconds is not None
                    and time.perf_counter() - start > config.max_seconds):
                stopped = "time"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
        interrupted = True
    finally:
        average_state = None
        if average is not None:
            average.take_out()
            if not interrupted:  # else a resumed run starts over from the best weights
                average_state = average.state()
            if average_is_best and not interrupted:
                average.put_in()  # cheaper than loading best_state back
                at_best = True
        flat.release()
    if interrupted or not at_best:  # wherever Ctrl-C came, best_state is whole
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        epochs=start_epoch + len(history),
        best_epoch=best_epoch,
        best_val_ll=best_val,
        train_ll=train_ll,
        seconds=time.perf_counter() - start,
        stopped=stopped,
        history=history,
        optimizer_state=flat.split_state(optimizer.state_dict()),
        interrupted=interrupted,
        bad_epochs=bad_epochs,
        average_state=average_state,
    )


def fit_chain(
    chain: nn.Module,
    c_train: Tensor,
    c_val: Tensor,
    generator: torch.Generator | None = None,
    lr: float = 1e-2,
    steps: int = 3000,
    patience: int = 100,
    batch_size: int = 65536,
) -> None:
    """Fit a categorical model (``chain.log_prob(c)``) to convergence.

    The categories' likelihood does not depend on the flow's parameters, so this part is
    fitted on its own: large batches (the whole table when it fits), Adam, and early stopping
    on the validation rows, keeping the best weights. Afterwards the caller freezes it.
    """
    optimizer = _adam(list(chain.parameters()), lr, 0.0)
    sampler = _device_generator(generator, c_train.device)
    held_out = c_val if c_val.shape[0] else c_train
    best, best_state, bad = -math.inf, _snapshot(chain), 0
    n = c_train.shape[0]
    for _ in range(steps):
        if n > batch_size:
            idx = torch.randint(0, n, (batch_size,), generator=sampler, device=c_train.device)
            batch = c_train[idx]
        else:
            batch = c_train
        loss = -chain.log_prob(batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            score = float(chain.log_prob(held_out[:batch_size]).mean())
        if score > best + 1e-6:
            best, best_state, bad = score, _snapshot(chain), 0
        else:
            bad += 1
            if bad >= patience:
                break
    chain.load_state_dict(best_state)

"""The trained parameters: one buffer for them all, Adam and clipping on it, their running
average, and copies of a model's weights."""

from __future__ import annotations

from itertools import accumulate
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["AVERAGE_FLOOR", "ParameterBuffer", "WeightAverage", "adam", "clip_", "snapshot"]

AVERAGE_FLOOR = 1e-3  # the smallest weight a step gets in the average: ~1,000 steps' memory


def adam(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, fused into one kernel per step where this torch build has it.

    Fused and plain Adam keep the same state, so model files resume with either.
    """
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without it
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def clip_(grad: Tensor, max_norm: float) -> Tensor:
    """Scale ``grad`` in place to a 2-norm of at most ``max_norm``; returns the norm before.

    What ``torch.nn.utils.clip_grad_norm_`` computes, for one buffer, without its grouping of
    tensors by device and type, which costs as much as the norm itself on a CPU step.
    """
    norm = torch.linalg.vector_norm(grad)
    grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A copy of ``model``'s state that later steps cannot change."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class ParameterBuffer:
    """The trained parameters as views of one buffer, and their gradients of another.

    Adam, clipping and zeroing then handle one tensor instead of one per weight and bias
    (the per-tensor overhead is a few percent of a CPU step; benchmarks/README.md).
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


class WeightAverage:
    """A running average of the trained weights (the one buffer of :class:`ParameterBuffer`).

    After the ``k``-th step the average moves towards the weights by ``max(9 / (k + 9),
    AVERAGE_FLOOR)``: early on it follows them closely, later it spans about the last tenth
    of the steps, at most about 1,000. Averaging smooths out the noise of the last steps,
    which validation would otherwise select on (benchmarks/README.md gives its effect).
    :meth:`put_in` gives the model the average, keeping the trained weights aside, and
    :meth:`take_out` puts them back; both are whole copies, and ``holding`` stays true until
    the trained weights are back in full, so a Ctrl-C between them loses nothing.
    """

    def __init__(self, buffer: ParameterBuffer, state: dict[str, Any] | None = None) -> None:
        self.buffer = buffer
        self.steps = 0
        self.weights = buffer.param.detach().clone() if not state else \
            buffer.join(state["weights"])
        self.trained = torch.empty_like(self.weights)  # the trained weights, while put aside
        self.holding = False  # the model holds the average
        if state:
            self.steps = int(state["steps"])
            buffer.param.data.copy_(buffer.join(state["trained"]))

    def update(self) -> None:
        self.steps += 1
        self.weights.lerp_(self.buffer.param.detach(),
                           max(9.0 / (self.steps + 9), AVERAGE_FLOOR))

    def reset(self) -> None:
        """Restart the average, and its schedule, at the current weights (after a rollback)."""
        self.weights.copy_(self.buffer.param.detach())
        self.steps = 0

    def put_in(self) -> None:
        self.trained.copy_(self.buffer.param.detach())
        self.holding = True
        self.buffer.param.data.copy_(self.weights)

    def take_out(self) -> None:
        if self.holding:
            self.buffer.param.data.copy_(self.trained)  # repeating this does no harm
            self.holding = False

    def state(self) -> dict[str, Any]:
        """The average and the trained weights, one entry per parameter, and the step count
        (call with the trained weights in the model)."""
        return {"steps": self.steps, "weights": self.buffer.split(self.weights),
                "trained": self.buffer.split(self.buffer.param.detach())}

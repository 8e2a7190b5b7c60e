"""Training on several processes with PyTorch's own DistributedDataParallel, under torchrun.

``torchrun --nproc-per-node N -m flowcli fit ...`` starts N processes (ranks) that each hold
the same table, preprocessing and starting weights. Every training step takes one global
batch, the same rows one process would take, and each rank computes the gradient of its
share of those rows; DDP averages the gradients, so every rank takes the same Adam step and
the weights stay identical. Validation rows are shared out and their scores summed over the
ranks, and each epoch's stop decision is rank 0's, sent to all: every rank sees the same
numbers and stops at the same epoch. Only rank 0 writes the model file.

In one process (no torchrun) every helper here is the identity.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import RankLostError

__all__ = ["agree", "batch_share", "gather", "is_leader", "join", "leave", "peers",
           "rank", "request_stop", "shard", "size", "stop_requested", "sum_over_ranks", "wrap"]

_STOP = threading.Event()  # a signal asked this rank to stop
_JOINED = False  # whether join() made this process one of several ranks


def join(device: torch.device) -> bool:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); whether there
    is more than one rank."""
    global _JOINED
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    _JOINED = dist.get_world_size() > 1
    return _JOINED


def leave() -> None:
    """Leave the process group :func:`join` joined (at the end of the command)."""
    global _JOINED
    if _JOINED and dist.is_initialized():
        dist.destroy_process_group()
    _JOINED = False


def size() -> int:
    """The number of ranks training together: 1 unless :func:`join` found several (a
    process group of the caller's own does not make fitting distributed)."""
    return dist.get_world_size() if _JOINED else 1


def rank() -> int:
    return dist.get_rank() if size() > 1 else 0


def is_leader() -> bool:
    """Whether this process writes files and prints: rank 0, or the only process."""
    return rank() == 0


def wrap(model: nn.Module) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several ranks (its weights and
    buffers sent from rank 0 to all), else ``model``."""
    if size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    with peers():
        return DistributedDataParallel(model, device_ids=ids)


def shard(x: Tensor) -> Tensor:
    """This rank's share of rows: every ``size()``-th row from its rank on."""
    return x if size() == 1 else x[rank()::size()]


def batch_share(rows: int) -> int:
    """This rank's part of a global batch of ``rows`` rows when each rank holds its own
    rows: as even as can be, the lower ranks taking one more."""
    return rows // size() + (rank() < rows % size())


def sum_over_ranks(*values: Tensor | float) -> list[float]:
    """Each value summed over the ranks (one collective for all)."""
    return _reduced(values, dist.ReduceOp.SUM) if size() > 1 else [float(v) for v in values]


def _reduced(values: Any, op: Any) -> list[float]:
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    with peers():
        dist.all_reduce(t, op=op)
    return [float(v) for v in t.cpu()]


def gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
    if size() == 1:
        return [value]
    box: list[Any] = [None] * size()
    with peers():
        dist.all_gather_object(box, value)
    return box


def agree(value: Any) -> Any:
    """Rank 0's ``value``, on every rank."""
    if size() == 1:
        return value
    box = [value]
    with peers():
        dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def peers() -> Iterator[None]:
    """Around collectives: a peer process that has gone is one clear error, not a traceback
    (in one process, nothing changes)."""
    try:
        yield
    except RuntimeError as exc:  # torch.distributed's own errors, and gloo's plain ones
        if size() == 1 or not _from_peers(exc):
            raise
        raise RankLostError("another training process (rank) stopped, so this one cannot "
                            "go on; no model file was written") from None


def _from_peers(exc: RuntimeError) -> bool:
    """Whether ``exc`` is a collective that lost a peer, not a local failure (out of memory,
    a bug) whose own message should stand."""
    if isinstance(exc, torch.OutOfMemoryError):
        return False
    text = str(exc).lower()
    return isinstance(exc, dist.DistError) or any(
        word in text for word in ("gloo", "nccl", "connection reset", "connection closed"))


def request_stop() -> None:
    """Ask the ranks to stop at the next step (a signal handler calls this: raising there
    would leave the other ranks waiting in a collective)."""
    _STOP.set()


def stop_requested() -> float:
    """1.0 once :func:`request_stop` was called in this process, else 0.0 (summed over the
    ranks at every step)."""
    return 1.0 if _STOP.is_set() else 0.0

"""Score, invert and sample on Dask: each partition runs on a worker, as in one process.

The model travels to the workers as the bytes of its file (a remote cluster needs no shared
disk for it), sent once per worker as one graph key, and each worker process loads it once
(:func:`worker_model`). Partitions are independent tasks, so Dask runs them again on another
worker when one dies. Dask is an optional extra: without it, :func:`require` says what to
install.

Python::

    import dask.dataframe as dd
    import flowcli.dask
    scored = flowcli.dask.score(dd.read_parquet("s3://lake/claims/"), "claims.flow")
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from .config import CHUNK_ROWS, DEFAULT_UNSEEN
from .errors import FlowcliError, require_extra
from .jobs import InvertJob, SampleJob, ScoreJob

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

    from .model import FlowModel

__all__ = ["connect", "invert", "model_content", "require", "sample", "score",
           "worker_model"]

KEPT_MODELS = 4  # models a worker process keeps loaded, the oldest dropped first

_MODELS: dict[tuple[str, str], FlowModel] = {}
_LOADING = threading.Lock()


def require() -> None:
    """Refuse, in one line naming the extra, when Dask is not installed."""
    require_extra(("dask.dataframe", "distributed"), "running on Dask needs the dask extra",
                  "dask")


def worker_model(content: bytes, name: str, device: str = "cpu") -> FlowModel:
    """The model whose file bytes are ``content``, loaded once per process and kept."""
    from .model import load_content

    key = (hashlib.sha256(content).hexdigest(), device)
    with _LOADING:
        if key not in _MODELS:
            while len(_MODELS) >= KEPT_MODELS:  # a long-lived worker serves many runs
                del _MODELS[next(iter(_MODELS))]
            _MODELS[key] = load_content(content, name, device)
        return _MODELS[key]


def model_content(model: str | os.PathLike[str]) -> tuple[bytes, str, FlowModel]:
    """The bytes of the model file at ``model``, its name, and the model they hold, loaded
    here (on the CPU) so that a bad file is refused in one line before any worker starts."""
    from .model import load_content
    from .modelfile import read_content

    name = str(model)
    content = read_content(name)
    return content, name, load_content(content, name)


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A Dask client: on a local cluster of ``workers`` processes, or on the cluster whose
    scheduler is at ``scheduler``.

    A local worker runs one task at a time on its share of the cores. Its process starts
    without Dask's default ``MALLOC_TRIM_THRESHOLD_``, which hands freed memory back to the
    system at once and so makes torch's large, short-lived buffers cost page faults: it
    halved scoring speed (benchmarks/README.md, "Dask").
    """
    require()
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise FlowcliError(f"cannot reach the Dask scheduler at {scheduler} "
                               f"({type(exc).__name__})") from None
        with client:
            yield client
        return
    threads = str(max(1, (os.cpu_count() or 1) // (workers or 1)))
    environment = {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                              "OPENBLAS_NUM_THREADS")}
    # only Dask's critical lines: flowcli reports each failed task itself, in one line, and
    # a worker's heartbeat racing the cluster's close logs an ERROR with a traceback
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environment}), \
            LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True,
                         dashboard_address="127.0.0.1:0",
                         silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        yield client


def score(data: dd.DataFrame, model: str | os.PathLike[str], *, percentile: bool = False,
          threshold: float | None = None, only_score: bool = False,
          unseen: str = DEFAULT_UNSEEN, device: str = "cpu") -> dd.DataFrame:
    """``data`` with each row's ``log_prob`` (and ``percentile``, ``anomaly``), as
    :meth:`~flowcli.model.FlowModel.scored_table` gives them, computed partition by partition."""
    return _mapped(data, model, ScoreJob(percentile, threshold, only_score, False, unseen),
                   device)


def invert(data: dd.DataFrame, model: str | os.PathLike[str], *, to_data: bool = False,
           device: str = "cpu") -> dd.DataFrame:
    """``data`` mapped to latent coordinates (or back to table rows, ``to_data``)."""
    return _mapped(data, model, InvertJob(to_data), device)


def sample(model: str | os.PathLike[str], n: int, *, seed: int | None = None,
           partition_rows: int = CHUNK_ROWS, given: dict[str, Any] | None = None,
           unseen: str = DEFAULT_UNSEEN, device: str = "cpu") -> dd.DataFrame:
    """``n`` new rows in partitions of ``partition_rows``; partition ``i`` is drawn from a
    seed derived from ``seed`` and ``i``, so the rows do not depend on the cluster. For a
    conditional model, ``given`` holds the condition (column -> value) of every row."""
    require()
    import dask
    import dask.dataframe as dd

    content, name, loaded = model_content(model)
    job = SampleJob(n, secrets.randbelow(2**63) if seed is None else seed, partition_rows,
                    tuple((given or {}).items()), unseen)
    meta = replace(job, rows=0).table(loaded, 0)  # also checks the condition, here
    shared = dask.delayed(content, pure=True)
    parts = [dask.delayed(_sample_partition, pure=True)(shared, name, job, i, device)
             for i in range(job.partitions)]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _mapped(data: dd.DataFrame, model: str | os.PathLike[str], job: Any,
            device: str) -> dd.DataFrame:
    require()
    import dask

    content, name, loaded = model_content(model)
    meta = next(iter(job.tables(loaded, [data._meta], name)))
    return data.map_partitions(_run_partition, dask.delayed(content, pure=True), name, job,
                               device, meta=meta, align_dataframes=False)


def _run_partition(frame: pd.DataFrame, content: bytes, name: str, job: Any, device: str,
                   partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    number = (partition_info or {}).get("number", 0)
    return next(iter(job.tables(worker_model(content, name, device), [frame],
                                f"partition {number}")))  # one chunk in, one table out


def _sample_partition(content: bytes, name: str, job: SampleJob, index: int,
                      device: str) -> pd.DataFrame:
    return job.table(worker_model(content, name, device), index)

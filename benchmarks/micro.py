"""Pure speed at equal architecture: flowcli MAF vs zuko MAF vs nflows MAF.

Every flow has 5 MADE layers with 2 hidden layers of 128 units. Measured on random standard
normal rows: seconds per training epoch (30,000 x 8, batch 512, no validation), ``log_prob``
rows per second (30,000 x 8 in 4,096-row batches, no gradients), and sampling rows per second
in 16 dimensions (10,000 rows per call). Models are untrained: speed does not depend on the
weights.

The systems take turns: each round times one epoch (or one ``log_prob`` pass, or one sampling
call) of every system in a row, and each figure is the median over the rounds after a warm-up
round. Timing one system after another instead let slow drifts of the machine (other
processes, frequency, memory layout after training) land on one system, which moved ratios by
20 % from run to run.

Two flowcli rows: ``flowcli-maf`` is flowcli's engine in the same plain Adam loop as the
peers (the engine against the engines), ``flowcli-train`` is the same flow trained by
``flowcli.training.train``, the loop behind ``flowcli fit`` (fused Adam, gradient clipping and
the non-finite checks included). Its ``log_prob`` and sampling are the engine's, so they are
not repeated.

Two last rows time the matrix products of the same epoch alone (forward and backward of every
MADE layer, dense): ``matmul-floor`` as autograd computes them, which is how zuko and nflows
run, and ``matmul-oriented`` as flowcli's engine computes them, with the narrow products (a
handful of features wide) transposed, which x86 BLAS runs 3 to 4 times faster. ``s/epoch``
minus the system's own row is its overhead outside the products.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

from systems import DEPTH, HIDDEN, LAYERS, build_flow
from training import batched_log_prob

__all__ = ["MICRO_SYSTEMS", "SPLINE_SYSTEMS", "SPLINE_TRAINING_SYSTEMS", "run_micro",
           "run_sampling_micro", "run_spline_micro", "run_spline_training_micro"]

MICRO_SYSTEMS = ("flowcli-maf", "flowcli-train", "zuko-maf", "nflows-maf")
SPLINE_SYSTEMS = ("flowcli-maf", "flowcli-spline", "zuko-maf", "zuko-nsf")
SPLINE_TRAINING_SYSTEMS = ("flowcli-maf", "flowcli-spline", "flowcli-unmix", "zuko-nsf")


def _plain_epoch(kind: str, x: Any) -> Callable[[], None]:
    """One epoch of the canonical loop: shuffle, batches of 512, Adam, nothing else."""
    import torch

    torch.manual_seed(0)
    module, log_prob, _ = build_flow(kind, x.shape[1])
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def epoch() -> None:
        order = torch.randperm(x.shape[0], generator=generator)
        for i in range(0, x.shape[0], 512):
            loss = -log_prob(x[order[i:i + 512]]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


def _flowcli_epoch(x: Any) -> Callable[[], None]:
    """One epoch of ``flowcli.training.train``, carried on from the previous one."""
    import torch

    from flowcli.training import TrainConfig, train

    torch.manual_seed(0)
    module, _, _ = build_flow("flowcli-maf", x.shape[1])
    generator = torch.Generator().manual_seed(0)
    state: dict[str, Any] = {}

    def epoch() -> None:
        config = TrainConfig(epochs=int(state.get("epoch", 0)) + 1, batch_size=512)
        result = train(module, x, x[:0], config=config, generator=generator, resume=state)
        state.update(result.resume_state())

    return epoch


def _matmul_floor(x: Any, oriented: bool = False) -> Callable[[], None]:
    """The matrix products of one epoch of the shared MAF architecture, and nothing else.

    ``oriented``: narrow products run in their fast orientation, as flowcli's engine runs them
    (``flowcli.engine.nn``), instead of as autograd runs them.
    """
    import torch

    from flowcli.engine.nn import _input_grad, _weight_grad

    def weight_grad(grad: Any, inputs: Any) -> Any:
        return _weight_grad(grad, inputs) if oriented else grad.t().mm(inputs)

    def input_grad(grad: Any, weight: Any) -> Any:
        return _input_grad(grad, weight) if oriented else grad.mm(weight)

    g = torch.Generator().manual_seed(0)
    d = x.shape[1]
    sizes = [(d, HIDDEN)] + [(HIDDEN, HIDDEN)] * (DEPTH - 1) + [(HIDDEN, 2 * d)]
    weights = [torch.randn(o, i, generator=g) for i, o in sizes]
    biases = [torch.randn(o, generator=g) for _, o in sizes]

    def epoch() -> None:
        for start in range(0, x.shape[0], 512):
            rows = x[start:start + 512]
            for layer in range(LAYERS):
                acts = [rows]
                for w, b in zip(weights, biases, strict=True):
                    acts.append(torch.addmm(b, acts[-1], w.t()))
                grad = acts[-1]
                for k in reversed(range(len(weights))):
                    weight_grad(grad, acts[k])
                    if k or layer:  # the flow's own input needs no gradient
                        grad = input_grad(grad, weights[k])

    return epoch


def _timed(fn: Callable[[], Any]) -> float:
    tick = time.perf_counter()
    fn()
    return time.perf_counter() - tick


def _rounds(jobs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each job, the jobs taking turns; the first round is a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for r in range(rounds + 1):
        for name, job in jobs.items():
            seconds = _timed(job)
            if r:
                times[name].append(seconds)
    return times


def _medians_per_dimension(dims: tuple[int, ...], threads: int, rounds: int,
                           jobs_at: Callable[[int], dict[str, Callable[[], Any]]],
                           grad: bool = False) -> dict[str, dict[str, float]]:
    """``{"8-D": {job: median seconds}, ...}``: the jobs ``jobs_at(dim)`` builds, taking
    turns ``rounds`` times (:func:`_rounds`) on ``threads`` threads, with gradients only
    when ``grad``."""
    import torch

    torch.set_num_threads(threads)
    results: dict[str, dict[str, float]] = {}
    for dim in dims:
        jobs = jobs_at(dim)
        with torch.set_grad_enabled(grad):
            times = _rounds(jobs, rounds)
        results[f"{dim}-D"] = {k: statistics.median(t) for k, t in times.items()}
    return results


def _rates(seconds: dict[str, dict[str, float]], rows: int) -> dict[str, dict[str, float]]:
    """Rows per second from seconds per call of ``rows`` rows."""
    return {dims: {k: rows / t for k, t in r.items()} for dims, r in seconds.items()}


def run_micro(rows: int = 30_000, epochs: int = 9, repeats: int = 9,
              sample_rows: int = 10_000, threads: int = 1) -> dict[str, dict[str, Any]]:
    """``{system: {"sec_per_epoch", "log_prob_rows_per_s", "sample16_rows_per_s"}}``.

    ``epochs`` and ``repeats`` are the numbers of timed rounds (medians are reported).
    """
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x8 = torch.randn(rows, 8, generator=gen)
    results: dict[str, dict[str, Any]] = {}
    train_jobs: dict[str, Callable[[], Any]] = {}
    score_jobs: dict[str, Callable[[], Any]] = {}
    sample_jobs: dict[str, Callable[[], Any]] = {}
    for kind in MICRO_SYSTEMS:
        try:
            if kind == "flowcli-train":
                train_jobs[kind] = _flowcli_epoch(x8)
                continue
            train_jobs[kind] = _plain_epoch(kind, x8)
            torch.manual_seed(0)
            module, log_prob, _ = build_flow(kind, 8)
            module.eval()
            score_jobs[kind] = (lambda lp: lambda: batched_log_prob(lp, x8))(log_prob)
            torch.manual_seed(0)
            module16, _, sample16 = build_flow(kind, 16)
            module16.eval()
            sample_jobs[kind] = (lambda s: lambda: s(sample_rows))(sample16)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other systems
            results[kind] = {"error": f"{type(exc).__name__}: {exc}"}
            for jobs in (train_jobs, score_jobs, sample_jobs):
                jobs.pop(kind, None)
    train_jobs["matmul-floor"] = _matmul_floor(x8)
    train_jobs["matmul-oriented"] = _matmul_floor(x8, oriented=True)
    for name, times in _rounds(train_jobs, epochs).items():
        results.setdefault(name, {})["sec_per_epoch"] = statistics.median(times)
    with torch.no_grad():
        for name, times in _rounds(score_jobs, repeats).items():
            results[name]["log_prob_rows_per_s"] = rows / statistics.median(times)
        for name, times in _rounds(sample_jobs, repeats).items():
            results[name]["sample16_rows_per_s"] = sample_rows / statistics.median(times)
    return {name: {k: float(v) for k, v in r.items()} if "error" not in r else r
            for name, r in results.items()}


def _flowcli_passes(dim: int) -> dict[str, int]:
    """Rows per pass flowcli's scoring gives each system's kind of flow at ``dim`` columns on
    this CPU with torch's current threads: the MAF's for the MAFs, the spline flow's for the
    spline flows."""
    import torch

    from flowcli.engine.passes import rows_per_pass

    cpu = torch.device("cpu")
    maf_rows = rows_per_pass(build_flow("flowcli-maf", dim)[0], cpu)
    spline_rows = rows_per_pass(build_flow("flowcli-spline", dim)[0], cpu)
    return {"flowcli-maf": maf_rows, "zuko-maf": maf_rows,
            "flowcli-spline": spline_rows, "zuko-nsf": spline_rows}


def run_spline_micro(rows: int = 30_000, repeats: int = 9, threads: int = 1,
                     dims: tuple[int, ...] = (8, 16), flowcli_passes: bool = False,
                     compiled: bool = False) -> dict[str, dict[str, float]]:
    """``{"8-D": {system: log_prob rows/s}, ...}``: what a spline flow costs to score
    against the MAF of the same size (5 layers, 2 x 128, 8 bins) on untrained flows, the
    systems taking turns as in :func:`run_micro`; in 4,096-row batches, or with
    ``flowcli_passes`` in the passes ``flowcli score`` makes (:func:`_flowcli_passes`).
    ``compiled`` adds the spline flow's ``log_prob`` through ``torch.compile``, as a long
    ``flowcli score`` job runs it, compiled before the timing starts."""
    import torch

    def jobs_at(dim: int) -> dict[str, Callable[[], Any]]:
        x = torch.randn(rows, dim, generator=torch.Generator().manual_seed(0))
        passes = _flowcli_passes(dim) if flowcli_passes else {}
        jobs: dict[str, Callable[[], Any]] = {}
        for kind in SPLINE_SYSTEMS:
            torch.manual_seed(0)
            module, log_prob, _ = build_flow(kind, dim)
            module.eval()
            jobs[kind] = functools.partial(batched_log_prob, log_prob, x,
                                           passes.get(kind, 4096))
            if compiled and kind == "flowcli-spline":
                jobs["flowcli-spline-compiled"] = _compiled_job(module, x,
                                                                passes.get(kind, 4096))
        return jobs

    return _rates(_medians_per_dimension(dims, threads, repeats, jobs_at), rows)


def _compiled_job(module: Any, x: Any, batch: int) -> Callable[[], Any]:
    """Scoring as a long ``flowcli score`` job runs it (:class:`flowcli.engine.compiled.Scorer`
    told to compile from the start): compiled, then kept only if its trial passes were
    faster. One call before the timing compiles and runs the trials."""
    import torch

    from flowcli.engine.compiled import Scorer

    scorer = Scorer(module, compile_after=0)
    job = functools.partial(batched_log_prob, lambda rows: scorer(rows, batch), x, batch)
    with torch.no_grad():
        job()
    return job


def run_spline_training_micro(rows: int = 30_000, epochs: int = 5, threads: int = 1,
                              dims: tuple[int, ...] = (8, 16)) -> dict[str, dict[str, float]]:
    """``{"8-D": {system: seconds per epoch}, ...}``: one epoch of the plain loop (batches
    of 512, Adam) of flowcli's MAF, spline flow and unmix flow and zuko's NSF, all of 5
    layers (MADE: 2 x 128; 8 bins), on standard normal rows, the systems taking turns as in
    :func:`run_micro`."""
    import torch

    def jobs_at(dim: int) -> dict[str, Callable[[], Any]]:
        x = torch.randn(rows, dim, generator=torch.Generator().manual_seed(0))
        return {kind: _plain_epoch(kind, x) for kind in SPLINE_TRAINING_SYSTEMS}

    return _medians_per_dimension(dims, threads, epochs, jobs_at, grad=True)


def run_sampling_micro(rows: int = 10_000, repeats: int = 9, threads: int = 1,
                       dims: tuple[int, ...] = (8, 16)) -> dict[str, dict[str, float]]:
    """``{"16-D": {system: sample rows/s}, ...}``: sampling of untrained 5-layer, 2 x 128
    flows (flowcli's MAF and spline flow, zuko's MAF and NSF), ``rows`` rows a call, the
    systems taking turns as in :func:`run_micro`, without gradients (as ``flowcli sample``
    runs)."""
    import torch

    def jobs_at(dim: int) -> dict[str, Callable[[], Any]]:
        jobs: dict[str, Callable[[], Any]] = {}
        for kind in SPLINE_SYSTEMS:
            torch.manual_seed(0)
            module, _, sample = build_flow(kind, dim)
            module.eval()
            jobs[kind] = functools.partial(sample, rows)
        return jobs

    return _rates(_medians_per_dimension(dims, threads, repeats, jobs_at), rows)


if __name__ == "__main__":
    import argparse

    from report import micro_table, sampling_table, spline_table, spline_training_table

    parser = argparse.ArgumentParser(description="the speed micro-benchmark alone")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--spline", action="store_true",
                        help="only the spline flow's scoring against the MAF's")
    parser.add_argument("--flowcli-passes", action="store_true",
                        help="with --spline: score in the passes flowcli makes, not 4,096 rows")
    parser.add_argument("--compiled", action="store_true",
                        help="with --spline: add the spline flow through torch.compile")
    parser.add_argument("--spline-training", action="store_true",
                        help="only training epochs: flowcli's spline and unmix flows against "
                             "its MAF and zuko's NSF")
    parser.add_argument("--sampling", action="store_true",
                        help="only sampling: flowcli's MAF and spline flow against zuko's")
    args = parser.parse_args()
    if args.spline_training:
        print(spline_training_table(run_spline_training_micro(threads=args.threads)))
    elif args.sampling:
        print(sampling_table(run_sampling_micro(threads=args.threads)))
    elif args.spline:
        print(spline_table(run_spline_micro(threads=args.threads,
                                            flowcli_passes=args.flowcli_passes,
                                            compiled=args.compiled)))
    else:
        print(micro_table(run_micro(threads=args.threads)))

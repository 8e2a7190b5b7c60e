"""Pass sizes: spline flows get passes wide enough for torch's threads; results do not depend
on the pass size; sampling passes do not depend on the thread count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from flowcli.config import (
    CPU_MAX_PASS_ROWS,
    CPU_PASS_ROWS,
    CPU_SPLINE_SAMPLE_ROWS,
    GPU_PASS_ROWS,
    pass_rows,
)
from flowcli.engine import maf, nsf, unmix
from flowcli.engine.passes import in_passes, rows_per_pass, sample_rows_per_pass

CPU = torch.device("cpu")


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("device", "threads_", "width", "rows"), [
    ("cpu", 1, 8, CPU_PASS_ROWS),       # one thread: nothing to split
    ("cpu", 2, 0, CPU_PASS_ROWS),       # no spline: products split at any size
    ("cpu", 2, 8, 8192),                # 8,192 x 8 numbers: 32,768 per thread
    ("cpu", 2, 16, 4096),
    ("cpu", 4, 8, CPU_MAX_PASS_ROWS),   # capped
    ("cpu", 2, 1000, CPU_PASS_ROWS),    # never below the cache-sized pass
    ("cuda", 1, 8, GPU_PASS_ROWS),
])
def test_pass_rows_follow_threads_and_spline_width(device: str, threads_: int, width: int,
                                                   rows: int) -> None:
    assert pass_rows(device, threads_, width) == rows


def test_only_spline_flows_get_wider_passes(threads: None) -> None:
    torch.set_num_threads(2)
    assert rows_per_pass(maf(8, layers=2, hidden=16), CPU) == CPU_PASS_ROWS
    assert rows_per_pass(nsf(8, layers=2, hidden=16), CPU) == 8192
    assert rows_per_pass(unmix(16, layers=2), CPU) == 4096
    torch.set_num_threads(1)
    assert rows_per_pass(nsf(8, layers=2, hidden=16), CPU) == CPU_PASS_ROWS


def test_sampling_passes_do_not_follow_threads(threads: None) -> None:
    spline, affine = nsf(8, layers=2, hidden=16), maf(8, layers=2, hidden=16)
    sizes = []
    for count in (1, 2):
        torch.set_num_threads(count)
        sizes.append((sample_rows_per_pass(spline, CPU), sample_rows_per_pass(affine, CPU)))
    assert sizes == [(CPU_SPLINE_SAMPLE_ROWS, CPU_PASS_ROWS)] * 2


def test_scores_do_not_depend_on_the_pass_size() -> None:
    torch.manual_seed(0)
    flow = nsf(3, layers=2, hidden=16).eval()
    x = torch.randn(1000, 3)
    whole = in_passes(flow.log_prob, x, CPU, step=1000)
    assert torch.allclose(torch.as_tensor(in_passes(flow.log_prob, x, CPU, step=7)),
                          torch.as_tensor(whole), atol=1e-5)
    assert in_passes(flow.log_prob, x[:0], CPU, step=7).shape == (0,)

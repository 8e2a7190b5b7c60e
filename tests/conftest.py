from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="device for engine tests (cpu or cuda)")


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.config.getoption("--device")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return torch.device(name)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global seed; library code never sets one itself."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


@pytest.fixture
def gaussian_table() -> pd.DataFrame:
    """2,000 rows: two correlated floats and an integer count."""
    rng = np.random.default_rng(0)
    a = rng.normal(10.0, 2.0, 2000)
    b = 0.5 * a + rng.normal(0.0, 1.0, 2000)
    n = rng.poisson(4.0, 2000)
    return pd.DataFrame({"a": a, "b": b, "n": n.astype("int64")})

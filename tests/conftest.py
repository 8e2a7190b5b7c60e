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


FAST = dict(layers=2, hidden=16, epochs=15, patience=5)


@pytest.fixture
def fast() -> dict:
    """Fit options that train a small model in a second or two."""
    return dict(FAST)


@pytest.fixture(scope="session")
def fitted_model(tmp_path_factory: pytest.TempPathFactory):
    """A small MAF fitted on a mixed numeric table, and the path it is saved at."""
    from flowcli import FlowModel

    rng = np.random.default_rng(1)
    a = rng.normal(10.0, 2.0, 1500)
    df = pd.DataFrame({
        "a": a,
        "b": 0.5 * a + rng.normal(0.0, 1.0, 1500),
        "n": rng.poisson(4.0, 1500).astype("int64"),
    })
    # a and b are positive here, but the model is of the whole line: without inferred
    # supports, so that scores far out on either side can be tested
    model = FlowModel.fit(df, seed=0, device="cpu", model="maf", unbounded=["a", "b"], **FAST)
    folder = tmp_path_factory.mktemp("model")
    path = folder / "m.flow"
    model.save(str(path))
    df.to_csv(folder / "train.csv", index=False)
    return model, path, df

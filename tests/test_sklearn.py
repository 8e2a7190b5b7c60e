"""flowcli.sklearn.FlowDensity: the scikit-learn estimator contract, pipelines, model selection."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from flowcli import FitConfig  # noqa: E402
from flowcli.sklearn import FlowDensity  # noqa: E402

# Small, seeded fits that take well under a second each.
SMALL = dict(model="maf", layers=2, hidden=16, epochs=10, patience=5, device="cpu",
             random_state=0)


def moons(n: int, seed: int) -> np.ndarray:
    """Two interleaved noisy half-circles: far from Gaussian, so training pays off."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, n)
    upper = rng.integers(0, 2, n).astype(bool)
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.c_[x, y] + rng.normal(scale=0.1, size=(n, 2))


@pytest.fixture(scope="module")
def array() -> np.ndarray:
    return moons(300, seed=0)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    a = rng.normal(10.0, 2.0, 300)
    return pd.DataFrame({"a": a, "b": 0.5 * a + rng.normal(0.0, 1.0, 300),
                         "n": rng.poisson(4.0, 300).astype("int64")})


@pytest.fixture(scope="module")
def on_array(array: np.ndarray) -> FlowDensity:
    return FlowDensity(**SMALL).fit(array)


@pytest.fixture(scope="module")
def on_frame(frame: pd.DataFrame) -> FlowDensity:
    return FlowDensity(**SMALL).fit(frame)


def test_defaults_are_the_fit_config_defaults() -> None:
    params = FlowDensity().get_params()
    for f in fields(FitConfig):
        assert params[f.name] == getattr(FitConfig(), f.name), f.name
    assert params["device"] == "cpu" and params["random_state"] is None


def test_fit_returns_self_and_sets_trailing_underscore_attributes(array: np.ndarray) -> None:
    estimator = FlowDensity(**SMALL)
    before = set(vars(estimator))
    assert estimator.fit(array) is estimator
    public = {name for name in set(vars(estimator)) - before if not name.startswith("_")}
    assert public == {"model_", "n_features_in_", "columns_"}
    assert estimator.n_features_in_ == 2 and estimator.columns_ == ["x0", "x1"]
    assert not hasattr(estimator, "feature_names_in_")


def test_clone_and_params_round_trip() -> None:
    estimator = FlowDensity(**SMALL)
    params = estimator.get_params()
    copy = clone(estimator)
    assert copy is not estimator and copy.get_params() == params
    assert FlowDensity().set_params(**params).get_params() == params
    assert estimator.set_params(hidden=8) is estimator and estimator.hidden == 8


def test_clone_of_a_fitted_estimator_is_unfitted(on_array: FlowDensity) -> None:
    copy = clone(on_array)
    assert copy.get_params() == on_array.get_params()
    assert not hasattr(copy, "model_")


def test_array_scores(on_array: FlowDensity, array: np.ndarray) -> None:
    scores = on_array.score_samples(array)
    assert isinstance(scores, np.ndarray) and scores.shape == (len(array),)
    assert np.isfinite(scores).all()
    assert on_array.score(array) == pytest.approx(scores.mean())
    assert on_array.score_samples(array[:5].tolist()) == pytest.approx(scores[:5])


def test_frame_scores_by_name(on_frame: FlowDensity, frame: pd.DataFrame) -> None:
    assert list(on_frame.feature_names_in_) == ["a", "b", "n"]
    assert on_frame.columns_ == ["a", "b", "n"] and on_frame.n_features_in_ == 3
    scores = on_frame.score_samples(frame)
    assert scores.shape == (len(frame),) and np.isfinite(scores).all()
    assert on_frame.score(frame) == pytest.approx(scores.mean())
    shuffled = frame[["n", "a", "b"]].assign(extra=1.0)
    assert on_frame.score_samples(shuffled) == pytest.approx(scores)
    assert on_frame.score_samples(frame.to_numpy()) == pytest.approx(scores)


def test_wrong_columns_are_a_value_error(on_array: FlowDensity, on_frame: FlowDensity,
                                         array: np.ndarray, frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="X has 3 features, but FlowDensity is expecting 2"):
        on_array.score_samples(np.c_[array, array[:, 0]])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['b'\]"):
        on_frame.score_samples(frame.drop(columns="b"))
    with pytest.raises(ValueError, match="2-D"):
        on_array.score_samples(array[:, 0])
    with pytest.raises(ValueError, match="complex"):
        on_array.score_samples(array + 1j)


def test_sample_kinds(on_array: FlowDensity, on_frame: FlowDensity,
                      frame: pd.DataFrame) -> None:
    rows = on_array.sample(7, random_state=1)
    assert isinstance(rows, np.ndarray) and rows.shape == (7, 2)
    assert np.array_equal(rows, on_array.sample(7, random_state=1))
    assert on_array.sample().shape == (1, 2)
    table = on_frame.sample(5, random_state=1)
    assert isinstance(table, pd.DataFrame) and table.shape == (5, 3)
    assert list(table.columns) == ["a", "b", "n"]
    assert table.dtypes.equals(frame.dtypes)


def test_frame_with_non_string_names_is_taken_as_an_array(array: np.ndarray) -> None:
    estimator = FlowDensity(**SMALL).fit(pd.DataFrame(array))
    assert not hasattr(estimator, "feature_names_in_") and estimator.columns_ == ["x0", "x1"]
    assert estimator.score_samples(array).shape == (len(array),)
    assert list(estimator.sample(3, random_state=0).columns) == [0, 1]


def test_refit_on_an_array_forgets_feature_names(frame: pd.DataFrame) -> None:
    estimator = FlowDensity(**SMALL).fit(frame)
    assert hasattr(estimator, "feature_names_in_")
    estimator.fit(frame.to_numpy())
    assert not hasattr(estimator, "feature_names_in_") and estimator.columns_ == ["x0", "x1", "x2"]


def test_random_state_makes_fits_reproducible(array: np.ndarray) -> None:
    first = FlowDensity(**SMALL).fit(array).score_samples(array)
    assert np.array_equal(first, FlowDensity(**SMALL).fit(array).score_samples(array))


def test_unfitted_use_raises_not_fitted(array: np.ndarray) -> None:
    estimator = FlowDensity(**SMALL)
    for call in (estimator.score_samples, estimator.score):
        with pytest.raises(NotFittedError):
            call(array)
    with pytest.raises(NotFittedError):
        estimator.sample(3)


def test_pipeline_after_standard_scaler(array: np.ndarray) -> None:
    pipe = make_pipeline(StandardScaler(), FlowDensity(**SMALL)).fit(array * 100.0 + 5.0)
    scores = pipe.score_samples(array * 100.0 + 5.0)
    assert scores.shape == (len(array),) and np.isfinite(scores).all()
    assert pipe.score(array * 100.0 + 5.0) == pytest.approx(scores.mean())


def test_cross_val_score(array: np.ndarray) -> None:
    scores = cross_val_score(FlowDensity(**SMALL), array, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_grid_search_picks_the_setting_that_wins_on_held_out_rows() -> None:
    # On two moons a trained spline flow beats one epoch by about 0.5 nats per row.
    data = moons(900, seed=0)
    train, held_out = data[:600], data[600:]
    base = FlowDensity(model="nsf", layers=2, hidden=16, patience=5, batch_size=64, lr=1e-2,
                       random_state=0)
    search = GridSearchCV(base, {"epochs": [1, 30]}, cv=3).fit(train)
    held = {e: clone(base).set_params(epochs=e).fit(train).score(held_out) for e in (1, 30)}
    assert search.best_params_ == {"epochs": max(held, key=held.get)}
    assert search.best_params_ == {"epochs": 30}
    assert search.best_estimator_.score(held_out) == pytest.approx(held[30])


def test_import_flowcli_does_not_load_sklearn() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys, flowcli; "
                          "print('sklearn' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_sklearn_is_a_one_line_import_error() -> None:
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "try:\n    import flowcli.sklearn\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout == "FlowDensity needs scikit-learn: pip install 'flowcli[sklearn]'\n"

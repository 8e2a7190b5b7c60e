"""The detection test of flowcli report: shifted rows are found, honest ones are not."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from flowcli.detection import CLASSIFIERS, detection_auc, require
from flowcli.errors import UsageError

pytest.importorskip("sklearn")


def _rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = a + rng.normal(size=n) + shift * (a > 0)  # the shift only shows jointly
    b[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"a": a, "b": b, "k": rng.choice(["x", "y"], n)})


def test_rows_from_the_same_distribution_cannot_be_told_apart() -> None:
    aucs = detection_auc(_rows(1500, 1), _rows(1500, 2), numeric=["a", "b"])
    assert set(aucs) == set(CLASSIFIERS)
    assert all(abs(auc - 0.5) < 0.06 for auc in aucs.values()), aucs


def test_shifted_rows_are_told_apart() -> None:
    aucs = detection_auc(_rows(1500, 1), _rows(1500, 2, shift=1.5), numeric=["a", "b"])
    assert aucs["gradient_boosting"] > 0.65, aucs


def test_without_scikit_learn_the_extra_is_named(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(UsageError, match=r"pip install 'flowcli\[report\]'"):
        require()

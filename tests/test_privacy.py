"""The privacy figures of flowcli report: copies are caught, honest rows are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowcli.privacy import (
    RowSpace,
    closer_to_training_share,
    exact_copies,
    membership_auc,
    nearest_distances,
)


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": a + rng.normal(size=n),
                         "k": rng.choice(["x", "y", "z"], n)})


def test_distances_are_gowers() -> None:
    reference = pd.DataFrame({"a": [0.0, 10.0], "k": ["x", "y"]})
    space = RowSpace(reference, numeric=["a"])
    rows = pd.DataFrame({"a": [5.0, 0.0, np.nan, 50.0], "k": ["x", "y", "x", "x"]})
    pool = pd.DataFrame({"a": [0.0], "k": ["x"]})
    # (0.5 + 0) / 2, (0 + 1) / 2, (1 + 0) / 2 for a gap against 0, range end (1 + 0) / 2
    np.testing.assert_allclose(nearest_distances(space, rows, pool), [0.25, 0.5, 0.5, 0.5])


def test_copies_of_training_rows_are_caught() -> None:
    training, holdout = _rows(1000, 1), _rows(1000, 2)
    space = RowSpace(training, numeric=["a", "b"])
    copies = training.sample(500, random_state=0)
    assert closer_to_training_share(space, copies, training, holdout) > 0.99
    assert closer_to_training_share(space, copies, pd.concat([training, _rows(3000, 4)]),
                                    holdout) > 0.99  # a training table larger than holdout
    assert exact_copies(copies, training) == 500


def test_honest_rows_are_as_close_to_holdout_rows_as_to_training_rows() -> None:
    training, holdout, synthetic = _rows(4000, 1), _rows(1000, 2), _rows(1000, 3)
    space = RowSpace(training, numeric=["a", "b"])
    # 4 of 5 honest rows are nearer one of the 4,000 training rows: rescaled to 0.5
    assert closer_to_training_share(space, synthetic, training, holdout) == \
        pytest.approx(0.5, abs=0.05)
    assert exact_copies(synthetic, training) == 0


def test_membership_auc_is_the_chance_a_training_row_scores_higher() -> None:
    assert membership_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert membership_auc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    rng = np.random.default_rng(0)
    assert membership_auc(rng.normal(size=3000), rng.normal(size=3000)) == \
        pytest.approx(0.5, abs=0.03)

"""Whether synthetic rows copy the training rows: distance to the closest record, exact copies,
and a likelihood membership test.

Distances between rows are Gower's: the mean over the columns of each column's difference, a
number's as a share of the real values' range (values beyond it taken at its ends, so at most
1), a label's 0 or 1 (labels the reference lacks count as one label); two gaps differ by 0, a
gap and a number by 1 plus the number's share of the range above its low end. They are
computed in chunks with torch, as L1 distances between encoded rows: a number column scaled
to its range, its gaps as a flag column, a label column one-hot at 1/2 (a mismatch costs 1).

``closer_to_training_share`` compares each synthetic row's distance to the closest training
row with that to the closest holdout row (ties count half). Rows drawn from the data's
distribution are nearer a training row with the chance ``p`` = training rows / (training +
holdout rows), so the share is rescaled to put ``p`` at 0.5 (linearly below and above, 0
and 1 kept): about 0.5 means no memorization, whatever the two tables' sizes, and a model
that copies training rows scores near 1. (Sampling the training rows down to the holdout's
count would give 0.5 too, but would hide most copies.)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

__all__ = ["RowSpace", "closer_to_training_share", "exact_copies", "membership_auc",
           "nearest_distances"]

CHUNK = 2048  # synthetic rows per block of distances


class RowSpace:
    """Encodes rows so that L1 distance over the column count is Gower's distance, with the
    ranges and labels of ``reference``. ``clip=False`` keeps numbers beyond the range as
    they are (for classifiers, which should see them)."""

    def __init__(self, reference: pd.DataFrame, numeric: Iterable[str],
                 clip: bool = True) -> None:
        self.columns = list(reference.columns)
        self.clip = clip
        numeric = set(numeric)
        self.numeric = [c for c in self.columns if c in numeric]
        self.labels = {c: pd.Index(reference[c].dropna().unique())
                       for c in self.columns if c not in numeric}
        values = reference[self.numeric].apply(pd.to_numeric).astype(float)
        span = (values.max() - values.min()).to_numpy(dtype=np.float64)
        self.low = values.min().to_numpy(dtype=np.float64)
        self.span = np.where(np.isfinite(span) & (span > 0), span, 1.0)

    def encode(self, rows: pd.DataFrame) -> torch.Tensor:
        """``rows`` as a float64 tensor (one row per row)."""
        parts = []
        numbers = rows[self.numeric].apply(pd.to_numeric).astype(float).to_numpy()
        scaled = (numbers - self.low) / self.span
        if self.clip:
            scaled = np.clip(scaled, 0.0, 1.0)
        gaps = np.isnan(scaled)
        parts += [np.where(gaps, 0.0, scaled), gaps.astype(float)]
        for column, labels in self.labels.items():
            codes = labels.get_indexer(rows[column])
            hot = np.zeros((len(rows), len(labels) + 2))  # a label seen, unseen, or a gap
            unseen = np.where(rows[column].isna().to_numpy(), len(labels) + 1, len(labels))
            hot[np.arange(len(rows)), np.where(codes >= 0, codes, unseen)] = 0.5
            parts.append(hot)
        return torch.from_numpy(np.concatenate(parts, axis=1))


def nearest_distances(space: RowSpace, rows: pd.DataFrame, pool: pd.DataFrame) -> np.ndarray:
    """Each of ``rows``' Gower distance to its closest row of ``pool``."""
    return _nearest(space, space.encode(rows), space.encode(pool))


def _nearest(space: RowSpace, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """:func:`nearest_distances` of rows already encoded in ``space``."""
    out = [torch.cdist(x[i:i + CHUNK], y, p=1).min(dim=1).values
           for i in range(0, len(x), CHUNK)]
    capped = torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)
    return (capped / max(len(space.columns), 1)).numpy()


def closer_to_training_share(space: RowSpace, synthetic: pd.DataFrame, training: pd.DataFrame,
                             holdout: pd.DataFrame) -> float:
    """The share of synthetic rows closer to a training row than to a holdout row (ties
    half), rescaled so that rows of the data's own distribution score 0.5 (module
    docstring)."""
    x = space.encode(synthetic)
    to_training = _nearest(space, x, space.encode(training))
    to_holdout = _nearest(space, x, space.encode(holdout))
    share = float(np.mean((to_training < to_holdout) + 0.5 * (to_training == to_holdout)))
    chance = len(training) / (len(training) + len(holdout))
    if share <= chance:
        return share / (2 * chance)
    return 0.5 + (share - chance) / (2 * (1 - chance))


def exact_copies(synthetic: pd.DataFrame, training: pd.DataFrame) -> int:
    """How many synthetic rows equal some training row in every column."""
    seen = set(pd.util.hash_pandas_object(training, index=False).to_numpy())
    hashes = pd.util.hash_pandas_object(synthetic[training.columns], index=False).to_numpy()
    return int(sum(h in seen for h in hashes))


def membership_auc(training_scores: np.ndarray, holdout_scores: np.ndarray) -> float:
    """The chance that a training row scores above a holdout row (ties half): 0.5 when the
    model likes the rows it saw no more than new ones; near 1 when it memorized them."""
    a, b = np.asarray(training_scores, float), np.asarray(holdout_scores, float)
    if not len(a) or not len(b):
        return float("nan")
    both = np.concatenate([a, b])
    ranks = pd.Series(both).rank().to_numpy()[: len(a)]  # ties share their mean rank
    return float((ranks.sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))

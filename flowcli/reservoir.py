"""A uniform sample of a table's rows drawn while it streams: ``fit --max-rows``.

Every row gets a uniform random key and the rows with the ``rows`` smallest keys are kept:
each set of that many rows is equally likely, whatever the table's size, and memory holds
at most twice the sample (plus a chunk), never the table. Kept rows come back in the table's
order; the same seed gives the same sample.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["uniform_sample"]


def uniform_sample(chunks: Iterable[pd.DataFrame], rows: int, seed: int
                   ) -> tuple[pd.DataFrame, int]:
    """At most ``rows`` rows drawn uniformly without replacement from ``chunks``, in their
    order, and the number of rows seen."""
    rng = np.random.default_rng(seed)
    frames: list[pd.DataFrame] = []
    keys: list[np.ndarray] = []
    places: list[np.ndarray] = []
    cutoff, held, seen = np.inf, 0, 0
    for chunk in chunks:
        key = rng.random(len(chunk))
        take = key < cutoff
        if take.any() or not frames:  # the first chunk's columns even when it has no rows
            frames.append(chunk[take])
            keys.append(key[take])
            places.append(np.arange(seen, seen + len(chunk))[take])
            held += int(take.sum())
        seen += len(chunk)
        if held >= 2 * rows:
            frames, keys, places, cutoff = _smallest(frames, keys, places, rows)
            held = rows
    frames, keys, places, _ = _smallest(frames, keys, places, rows)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return table.iloc[np.argsort(places[0], kind="stable")].reset_index(drop=True) \
        if len(table) else table, seen


def _smallest(frames: list[pd.DataFrame], keys: list[np.ndarray], places: list[np.ndarray],
              rows: int) -> tuple[list[pd.DataFrame], list[np.ndarray], list[np.ndarray], float]:
    """The ``rows`` held rows of smallest key, as one frame, and the key a new row must beat."""
    if not frames:
        return frames, keys, places, np.inf
    table = pd.concat(frames, ignore_index=True)
    key, place = np.concatenate(keys), np.concatenate(places)
    if len(key) > rows:
        keep = np.sort(np.argpartition(key, rows - 1)[:rows])
        table, key, place = table.iloc[keep].reset_index(drop=True), key[keep], place[keep]
    cutoff = float(key.max()) if len(key) >= rows and rows > 0 else np.inf
    return [table], [key], [place], cutoff

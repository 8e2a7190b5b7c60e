"""A scikit-learn estimator face of flowcli: :class:`FlowDensity` fits, scores and samples.

Example::

    from sklearn.model_selection import GridSearchCV
    from flowcli.sklearn import FlowDensity

    search = GridSearchCV(FlowDensity(random_state=0), {"model": ["maf", "nsf"]}, cv=3)
    search.fit(X)                                # keeps the best held-out mean log-likelihood
    log_p = search.best_estimator_.score_samples(X)
    synth = search.best_estimator_.sample(100, random_state=1)

scikit-learn is optional: only this module imports it (``pip install 'flowcli[sklearn]'``).
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

try:
    from sklearn.base import BaseEstimator, DensityMixin
    from sklearn.utils.validation import check_is_fitted, check_random_state
except ImportError:
    raise ImportError(
        "FlowDensity needs scikit-learn: pip install 'flowcli[sklearn]'") from None

from .config import FIT_DEFAULTS, default

if TYPE_CHECKING:
    from .model import FlowModel

__all__ = ["FlowDensity"]

# Fit settings handed to FlowModel.fit under their own names; the others are device and seed.
_FIT_OPTIONS = tuple(FIT_DEFAULTS)


class FlowDensity(DensityMixin, BaseEstimator):
    """A normalizing-flow density of a table, as a scikit-learn estimator.

    The hyperparameters are :meth:`flowcli.FlowModel.fit`'s settings, with the same defaults
    (``None`` means the library's choice for the table), plus ``device`` and ``random_state``:
    an int makes the fit reproducible, ``None`` draws a fresh seed.

    ``X`` is a DataFrame or a 2-D array-like. An array's columns are named ``x0, x1, ...``; a
    DataFrame whose column names are all strings keeps them, and is later matched by name
    (extra columns are ignored); any other DataFrame is taken as an array. ``score`` is the mean
    per-row log-likelihood in nats, so model selection maximizes held-out likelihood.

    Attributes:
        model_: the fitted :class:`flowcli.FlowModel`.
        n_features_in_: the number of columns of ``X`` in ``fit``.
        feature_names_in_: ``X``'s column names, set only when ``X`` was a DataFrame whose
            column names are all strings.
        columns_: the model's column names, in order.
    """

    model_: FlowModel
    n_features_in_: int
    feature_names_in_: np.ndarray
    columns_: list[str]

    def __init__(
        self,
        *,
        model: str = default("model"),
        layers: int | None = default("layers"),
        hidden: int | None = default("hidden"),
        depth: int = default("depth"),
        scale_bound: float = default("scale_bound"),
        epochs: int = default("epochs"),
        batch_size: int = default("batch_size"),
        lr: float | None = default("lr"),
        patience: int = default("patience"),
        weight_decay: float = default("weight_decay"),
        val_fraction: float = default("val_fraction"),
        max_seconds: float | None = default("max_seconds"),
        missing: str = default("missing"),
        whiten: bool | None = default("whiten"),
        mixture: bool | None = default("mixture"),
        tails: bool | None = default("tails"),
        min_gain: float = default("min_gain"),
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.model = model
        self.layers = layers
        self.hidden = hidden
        self.depth = depth
        self.scale_bound = scale_bound
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.max_seconds = max_seconds
        self.missing = missing
        self.whiten = whiten
        self.mixture = mixture
        self.tails = tails
        self.min_gain = min_gain
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> FlowDensity:
        """Fit the density of ``X``'s rows; ``y`` is ignored.

        Raises:
            ValueError: ``X`` is not 2-D.
            flowcli.errors.FlowcliError: a setting is out of range or the table cannot be
                modelled.
        """
        from . import FlowModel

        frame, named = _frame(X)
        options = {name: getattr(self, name) for name in _FIT_OPTIONS}
        self.model_ = FlowModel.fit(frame, seed=_seed(self.random_state), device=self.device,
                                    **options)
        self.n_features_in_ = frame.shape[1]
        if named:
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.columns_ = list(self.model_.columns)
        self._labels = list(X.columns) if isinstance(X, pd.DataFrame) else None
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each row of ``X`` in nats, as a float array.

        Raises:
            sklearn.exceptions.NotFittedError: before ``fit``.
            ValueError: ``X`` lacks a fitted column or has the wrong number of columns.
        """
        check_is_fitted(self)
        return self.model_.score(self._matched(X)).to_numpy(dtype=np.float64)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of ``X``'s rows in nats (higher is better); ``y`` is ignored."""
        return float(np.mean(self.score_samples(X)))

    def sample(
        self, n_samples: int = 1, random_state: int | np.random.RandomState | None = None
    ) -> np.ndarray | pd.DataFrame:
        """Draw ``n_samples`` new rows: a DataFrame with the fitted columns and dtypes when
        ``fit`` saw a DataFrame, otherwise an array. An int ``random_state`` makes it
        reproducible."""
        check_is_fitted(self)
        rows = self.model_.sample(n_samples, seed=_seed(random_state))
        if self._labels is None:
            return rows.to_numpy()
        return rows.set_axis(self._labels, axis=1)

    def _matched(self, X: Any) -> pd.DataFrame:
        """``X`` as a table with the fitted column names: by name when both ``fit`` and ``X``
        have string column names, otherwise by position."""
        frame, named = _frame(X)
        if named and hasattr(self, "feature_names_in_"):
            absent = [c for c in self.columns_ if c not in frame.columns]
            if absent:
                raise ValueError(f"X lacks column(s) {absent} seen in fit")
            return frame
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {frame.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        return frame.set_axis(self.columns_, axis=1)


def _frame(X: Any) -> tuple[pd.DataFrame, bool]:
    """``X`` as a DataFrame, and whether its column names are its own (all strings); other
    tables and arrays get the names ``x0, x1, ...``."""
    if isinstance(X, pd.DataFrame):
        if all(isinstance(c, str) for c in X.columns):
            return X, True
        return X.set_axis([f"x{i}" for i in range(X.shape[1])], axis=1), False
    if hasattr(X, "toarray"):
        raise TypeError("FlowDensity takes dense data; convert a sparse matrix with .toarray()")
    values = np.asarray(X)
    if values.dtype.kind == "c":
        raise ValueError("X holds complex numbers; FlowDensity takes real ones")
    if values.ndim != 2:
        raise ValueError(f"X must be 2-D (rows by columns), not {values.ndim}-D; reshape one "
                         f"column with X.reshape(-1, 1)")
    return pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])]), False


def _seed(random_state: int | np.random.RandomState | None) -> int | None:
    """A seed for FlowModel: an int as is, ``None`` for a fresh one, a ``RandomState``'s next
    draw."""
    if random_state is None or isinstance(random_state, numbers.Integral):
        return None if random_state is None else int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))

"""Can a classifier tell synthetic rows from real ones? The report's detection test.

Real and synthetic rows (as many of each), encoded as the privacy figures encode them
(:class:`~flowcli.privacy.RowSpace`, numbers beyond the real range kept), are labelled 0
and 1 and scored by cross-validated classifiers from scikit-learn (a logistic regression on
standardized features, and a gradient-boosted tree ensemble, which finds what a linear
model cannot); each figure is the mean ROC AUC over the folds. 0.5 means the classifier
cannot tell them apart; 1 means every row gives itself away. scikit-learn is an optional
extra: :func:`require` names it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .errors import require_extra
from .privacy import RowSpace

__all__ = ["CLASSIFIERS", "detection_auc", "require"]

CLASSIFIERS = ("logistic_regression", "gradient_boosting")
FOLDS = 5


def require() -> None:
    """Refuse, in one line naming the extra, when scikit-learn is not installed."""
    require_extra(("sklearn",), "the detection test needs scikit-learn", "report")


def detection_auc(real: pd.DataFrame, synthetic: pd.DataFrame, numeric: Iterable[str],
                  seed: int = 0) -> dict[str, float]:
    """Each classifier's mean cross-validated ROC AUC at telling ``synthetic`` rows from
    ``real`` ones (the larger side sampled down to the smaller)."""
    require()
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    size = min(len(real), len(synthetic))
    both = pd.concat([real.sample(size, random_state=seed),
                      synthetic[real.columns].sample(size, random_state=seed)],
                     ignore_index=True)
    # numbers scaled to the real range (beyond it kept), gap flags, one-hot labels
    x = RowSpace(real, numeric, clip=False).encode(both).numpy()
    y = np.repeat([0, 1], size)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    models = {
        "logistic_regression": make_pipeline(StandardScaler(),
                                             LogisticRegression(max_iter=1000)),
        "gradient_boosting": HistGradientBoostingClassifier(random_state=seed),
    }
    return {name: float(np.mean(cross_val_score(model, x, y, cv=folds, scoring="roc_auc")))
            for name, model in models.items()}

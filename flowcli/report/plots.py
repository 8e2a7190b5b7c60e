"""The report's plots, drawn with matplotlib (the ``report`` extra) and kept as PNG data that
the page embeds, so it opens offline and makes no request.

Each function takes plain tables and numbers and returns ``data:image/png;base64,...``.
Real rows are drawn in one colour and synthetic rows in another throughout the page.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from ..errors import require_extra

__all__ = ["REAL", "SYNTHETIC", "bars", "box_plot", "curves", "heatmap", "pair_plot",
           "require", "score_histogram", "shape_plot"]

REAL, SYNTHETIC = "#1f6fb4", "#e4761b"


def require() -> None:
    """Refuse, in one line naming the extra, when matplotlib is not installed."""
    require_extra(("matplotlib",), "the report's plots need matplotlib", "report")


@contextmanager
def _figure(width: float = 4.2, height: float = 2.6) -> Iterator[tuple[Any, list[str]]]:
    """A figure and axes; the PNG data URI lands in the list given back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=80)
    out: list[str] = []
    try:
        yield ax, out
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        out.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    finally:
        plt.close(fig)


def shape_plot(real: pd.Series, synthetic: pd.Series, numeric: bool) -> str:
    """Overlaid histograms of a number column, or side-by-side label shares."""
    with _figure() as (ax, out):
        if numeric:
            values = pd.to_numeric(real.dropna()).to_numpy(dtype=float)
            # the middle 99 % of the real values: one far value must not squash the rest
            span = np.quantile(values, [0.005, 0.995]) if len(values) else None
            edges = np.histogram_bin_edges(values, bins=30, range=span) if len(values) else 10
            for column, colour, name in ((real, REAL, "real"), (synthetic, SYNTHETIC,
                                                                 "synthetic")):
                ax.hist(pd.to_numeric(column.dropna()), bins=edges, density=True, alpha=0.5,
                        color=colour, label=name)
        else:
            shares = pd.DataFrame({"real": real.astype(str).value_counts(normalize=True),
                                   "synthetic": synthetic.astype(str)
                                   .value_counts(normalize=True)}).fillna(0.0).head(20)
            shares.plot.bar(ax=ax, color=[REAL, SYNTHETIC], width=0.8)
        ax.legend(fontsize=7)
        ax.set_title(str(real.name), fontsize=9)
    return out[0]


def bars(scores: dict[str, float], title: str) -> str:
    """One bar per name, 0 to 1."""
    with _figure(4.2, max(1.6, 0.25 * len(scores) + 0.8)) as (ax, out):
        ax.barh(list(scores), list(scores.values()), color=REAL)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
    return out[0]


def heatmap(matrix: pd.DataFrame, title: str, low: float = -1.0) -> str:
    """A square matrix of associations (or their differences)."""
    size = 1.2 + 0.35 * len(matrix)
    with _figure(size + 1.0, size) as (ax, out):
        image = ax.imshow(matrix.to_numpy(dtype=float), vmin=low, vmax=1.0, cmap="coolwarm")
        ax.set_xticks(range(len(matrix)), matrix.columns, rotation=90, fontsize=7)
        ax.set_yticks(range(len(matrix)), matrix.index, fontsize=7)
        ax.figure.colorbar(image, ax=ax)
        ax.set_title(title, fontsize=9)
    return out[0]


def pair_plot(real: pd.DataFrame, synthetic: pd.DataFrame, a: str, b: str) -> str:
    """Two number columns as one scatter of real and synthetic rows (at most 2,000 of each)."""
    with _figure() as (ax, out):
        for table, colour, name in ((real, REAL, "real"), (synthetic, SYNTHETIC, "synthetic")):
            rows = table[[a, b]].dropna()
            rows = rows.sample(min(len(rows), 2000), random_state=0)
            ax.scatter(rows[a], rows[b], s=3, alpha=0.3, color=colour, label=name)
        ax.set_xlabel(a, fontsize=8)
        ax.set_ylabel(b, fontsize=8)
        ax.legend(fontsize=7)
    return out[0]


def box_plot(real: pd.DataFrame, synthetic: pd.DataFrame, label: str, number: str) -> str:
    """A number column per label (the 8 commonest), real and synthetic boxes side by side."""
    labels = real[label].value_counts().index[:8]
    with _figure(5.0, 2.8) as (ax, out):
        for shift, (table, colour) in ((-0.2, (real, REAL)), (0.2, (synthetic, SYNTHETIC))):
            groups = [pd.to_numeric(table.loc[table[label] == k, number]).dropna()
                      for k in labels]
            ax.boxplot(groups, positions=np.arange(len(labels)) + shift, widths=0.35,
                       showfliers=False, patch_artist=True,
                       boxprops={"facecolor": colour, "alpha": 0.5})
        ax.set_xticks(range(len(labels)), [str(k) for k in labels], rotation=45, fontsize=7)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel(number, fontsize=8)
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=REAL, alpha=0.5, label="real"),
                           Patch(color=SYNTHETIC, alpha=0.5, label="synthetic")], fontsize=7)
    return out[0]


def curves(histories: dict[str, list[dict[str, float]]]) -> str:
    """Training and validation log-likelihood per epoch, one pair of lines per candidate."""
    with _figure(5.0, 3.0) as (ax, out):
        for name, history in histories.items():
            epochs = [e["epoch"] for e in history]
            line = ax.plot(epochs, [e["val_ll"] for e in history], label=f"{name} validation")
            ax.plot(epochs, [e["train_ll"] for e in history], linestyle=":",
                    color=line[0].get_color(), label=f"{name} training")
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("log-likelihood, nats/row", fontsize=8)
        ax.legend(fontsize=6)
    return out[0]


def score_histogram(scores: np.ndarray, thresholds: dict[str, float]) -> str:
    """Real rows' log-likelihoods with the anomaly thresholds marked."""
    with _figure(5.0, 2.6) as (ax, out):
        finite = scores[np.isfinite(scores)]
        ax.hist(finite, bins=60, color=REAL, alpha=0.7)
        for name, level in thresholds.items():
            ax.axvline(level, color="black", linestyle="--", linewidth=0.8)
            ax.text(level, ax.get_ylim()[1] * 0.9, name, fontsize=7, rotation=90)
        ax.set_xlabel("log_prob, nats", fontsize=8)
    return out[0]

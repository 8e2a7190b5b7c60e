"""The report as one self-contained HTML page: text, tables and PNG plots inline, no script,
no link: it opens offline in any browser and makes no request."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..model import Tried
from ..quality import association_matrix
from . import plots
from .figures import numeric_columns

if TYPE_CHECKING:
    from ..model import FlowModel

__all__ = ["SECTIONS", "render"]

# the page's parts, in order, by their element ids
SECTIONS = ("summary", "model", "shapes", "pairs", "detection", "privacy", "scores")

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .6em;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:.5em;align-items:flex-start}.note{color:#555;font-size:.9em}
.big{font-size:1.4em;font-weight:bold}
"""


def _table(rows: list[list[Any]], head: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return html.escape(str(value))

    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _section(name: str, content: str) -> str:
    """One part of the page, with an id so a link or a test can reach it."""
    return f'<section id="{name}">{content}</section>'


def _summary(found: dict[str, Any]) -> str:
    privacy = found["privacy"]
    rows = [["column shapes (mean KS / TV complement; 1 is a match)", found["shapes"]],
            ["column pairs (mean similarity; 1 is a match)", found["pairs"]],
            ["detection (highest classifier AUC; 0.5 is indistinguishable)", found["detection"]],
            ["synthetic rows that copy a training row", privacy["exact_copies"]],
            ["share of synthetic rows nearer training than holdout rows (about 0.5: no "
             "memorization)", privacy["dcr_closer_to_training_share"] or float("nan")]]
    return _section("summary", "<h2>Summary</h2>" + _table(rows, ["figure", "value"]))


def _model_card(model: FlowModel) -> str:
    t = model.training
    columns = [[c.name, c.kind, c.dtype] for c in model.schema.columns]
    tried = [[c.label, c.val_log_likelihood, c.epochs, c.stopped, c.seconds,
              "kept" if c.kept else ""]
             for c in model.tried]
    histories = {Tried.of(c).label: c.get("history", [])
                 for c in t.get("candidates", [])} or {"model": t.get("history", [])}
    histories = {k: v for k, v in histories.items() if v}
    out = ["<h2>Model</h2>", _table(columns, ["column", "kind", "dtype"]),
           f"<p>{t['rows']:,} training rows, {t['epochs']} epochs, {t['seconds']:.1f} s on "
           f"{html.escape(str(t['device']))}; validation log-likelihood "
           f"{t['val_log_likelihood']:.4f} nats/row.</p>"]
    if tried:
        out.append(_table(tried, ["candidate", "validation LL", "epochs", "stopped",
                                  "seconds", ""]))
    if histories:
        out.append(_img(plots.curves(histories), "training curves"))
    else:
        out.append('<p class="note">This model file keeps no training curve (written '
                   "before curves were kept).</p>")
    return _section("model", "\n".join(out))


def _shapes(found: dict[str, Any], real: pd.DataFrame, synthetic: pd.DataFrame,
            numeric: list[str]) -> str:
    scores = {name: next(v for k, v in f.items() if k.endswith("_complement"))
              for name, f in found["columns"].items()}
    rows = [[name, *(f.get(k, float("nan")) for k in ("ks_complement", "tv_complement",
                                                      "missing_real", "missing_synthetic"))]
            for name, f in found["columns"].items()]
    plots_html = "".join(_img(plots.shape_plot(real[c], synthetic[c], c in numeric), c)
                         for c in real.columns)
    return _section("shapes", "<h2>Column shapes</h2>"
                    + _img(plots.bars(scores, "shape score per column"), "shape scores")
                    + _table(rows, ["column", "ks_complement", "tv_complement",
                                    "missing (real)", "missing (synthetic)"])
                    + f'<div class="grid">{plots_html}</div>')


def _pairs(found: dict[str, Any], real: pd.DataFrame, synthetic: pd.DataFrame,
           numeric: list[str]) -> str:
    a_real = association_matrix(real, numeric)
    a_syn = association_matrix(synthetic, numeric)
    maps = (_img(plots.heatmap(a_real, "real"), "real associations")
            + _img(plots.heatmap(a_syn, "synthetic"), "synthetic associations")
            + _img(plots.heatmap(a_syn - a_real, "synthetic minus real"), "differences"))
    if len(numeric) > 1:  # rank correlations: monotone dependence, robust to tails
        r_real = association_matrix(real[numeric], numeric, "spearman")
        r_syn = association_matrix(synthetic[numeric], numeric, "spearman")
        maps += (_img(plots.heatmap(r_real, "real, Spearman"), "real Spearman")
                 + _img(plots.heatmap(r_syn, "synthetic, Spearman"), "synthetic Spearman")
                 + _img(plots.heatmap(r_syn - r_real, "Spearman difference"),
                        "Spearman differences"))
    scatters = "".join(_pair_plot(real, synthetic, a, b, numeric)
                       for a, b in _most_dependent(a_real, numeric))
    rows = [[pair, *f.keys(), *f.values()] for pair, f in found["column_pairs"].items()]
    return _section("pairs", "<h2>Column pairs</h2><p class=note>Pearson's r for two numbers, "
                    "Cramér's V for two label columns, the correlation ratio for a label and "
                    "a number; then Spearman's rank correlation for the numbers.</p>"
                    f'<div class="grid">{maps}</div><h3>Most dependent pairs</h3>'
                    f'<div class="grid">{scatters}</div>'
                    + _table(rows, ["pair", "metric", "score"]))


def _most_dependent(associations: pd.DataFrame, numeric: list[str]) -> list[tuple[str, str]]:
    """The 4 pairs with a number column whose real association is strongest."""
    names = list(associations.columns)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
             if a in numeric or b in numeric]
    strength = {p: abs(associations.loc[p]) for p in pairs
                if not math.isnan(associations.loc[p])}
    return sorted(strength, key=strength.__getitem__, reverse=True)[:4]


def _pair_plot(real: pd.DataFrame, synthetic: pd.DataFrame, a: str, b: str,
               numeric: list[str]) -> str:
    if a in numeric and b in numeric:
        return _img(plots.pair_plot(real, synthetic, a, b), f"{a} and {b}")
    label, number = (a, b) if b in numeric else (b, a)
    return _img(plots.box_plot(real, synthetic, label, number), f"{number} by {label}")


def _detection_and_privacy(found: dict[str, Any]) -> str:
    rows = [[name, auc] for name, auc in found["detection_auc"].items()]
    p = found["privacy"]
    private = [["exact_copies", p["exact_copies"]],
               ["dcr_closer_to_training_share", p["dcr_closer_to_training_share"]],
               ["membership_auc", p["membership_auc"]]]
    private = [[k, float("nan") if v is None else v] for k, v in private]
    sampled = found["rows"]
    note = (f"At most {sampled['most_compared']:,} rows of each table are compared "
            "(a uniform sample when there are more). Without --holdout the distance and "
            "membership figures are not computed.")
    return (_section("detection", "<h2>Detection</h2><p class=note>Cross-validated ROC AUC of "
                     "telling synthetic rows from real ones; 0.5 means indistinguishable.</p>"
                     + _table(rows, ["classifier", "detection_auc"]))
            + _section("privacy", "<h2>Privacy</h2>" + _table(private, ["figure", "value"])
                       + f"<p class=note>{html.escape(note)}</p>"))


def _scores(model: FlowModel, real: pd.DataFrame, scores: np.ndarray) -> str:
    thresholds = {f"q {q:g}": model.threshold(q) for q in (0.01, 0.001)}
    least = real.assign(log_prob=scores).nsmallest(10, "log_prob")
    rows = least.astype(object).where(least.notna(), "").to_numpy().tolist()
    return _section("scores", "<h2>Scores</h2>"
                    + _img(plots.score_histogram(scores, thresholds), "scores")
                    + "<h3>Least likely real rows</h3>" + _table(rows, list(least.columns)))


def render(model: FlowModel, found: dict[str, Any], real: pd.DataFrame,
           synthetic: pd.DataFrame, title: str, rows: pd.DataFrame, scores: pd.Series) -> str:
    """The whole page: ``real`` and ``synthetic`` with datetimes as numbers
    (:func:`~.figures.as_numbers`) for the plots, the real ``rows`` as they were read and
    the model's ``scores`` of them for the score section."""
    names, numeric = model.columns, numeric_columns(model)
    real, synthetic = real[names], synthetic[names]
    body = [f"<h1>{html.escape(title)}</h1>", _summary(found), _model_card(model),
            _shapes(found, real, synthetic, numeric), _pairs(found, real, synthetic, numeric),
            _detection_and_privacy(found), _scores(model, rows[names], scores.to_numpy())]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")

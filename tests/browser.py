"""Opens a report page in headless Chromium, screenshots each section and measures its plots.

Run as a script to look at a page: `python tests/browser.py report.html shots/` writes one
PNG per section and prints what was found. tests/test_report_browser.py uses `inspect`.
Chromium comes from the system (`/usr/bin/chromium`, or the path in FLOWCLI_CHROMIUM);
Playwright only drives it, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from flowcli.report.page import SECTIONS

# Chromium's own background traffic (updates, sync, lookups) is switched off, so any request
# the page makes is the page's
QUIET = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    """The system Chromium's path, or None when there is none."""
    return os.environ.get("FLOWCLI_CHROMIUM") or shutil.which("chromium")


def inspect(page_path: Path, shots: Path) -> dict:
    """Every request the page made, the ids of its sections in page order, and per section
    its screenshot and its images' sizes."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    found: dict = {"requests": [], "ids": [], "sections": {}}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=QUIET)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: found["requests"].append(r.url))
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        found["ids"] = page.locator("section").evaluate_all("s => s.map(x => x.id)")
        for name in SECTIONS:
            section = page.locator(f"section#{name}")
            shot = shots / f"{name}.png"
            section.screenshot(path=str(shot))
            found["sections"][name] = {
                "screenshot": str(shot), "box": section.bounding_box(),
                "images": section.locator("img").evaluate_all(
                    "imgs => imgs.map(i => ({alt: i.alt, complete: i.complete, "
                    "natural: [i.naturalWidth, i.naturalHeight], "
                    "shown: [i.clientWidth, i.clientHeight]}))")}
        browser.close()
    return found


if __name__ == "__main__":
    print(json.dumps(inspect(Path(sys.argv[1]), Path(sys.argv[2])), indent=1))

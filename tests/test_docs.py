"""The README documents every command and shows the set-up and test commands; the links of the
README and of docs/ lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from flowcli.cli import app

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = sorted(c.name for c in typer.main.get_command(app).commands.values())

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks, where brackets are not links."""
    return FENCE.sub("", text)


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    seen: dict[str, int] = {}
    anchors = set()
    for title in HEADING.findall(_prose(path.read_text())):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(page: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(page.read_text()))
            if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto:


def test_all_eight_commands_exist() -> None:
    assert COMMANDS == ["explain", "fit", "impute", "info", "invert", "report", "sample",
                        "score"]


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_shows_each_command(command: str) -> None:
    assert f"flowcli {command} " in README


def test_readme_opens_with_the_two_setup_commands() -> None:
    head = README[: README.index("## ", README.index("make test"))]
    assert "make demo" in head and "make test" in head


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files_and_headings(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert PAGES[1:] and not unlinked, f"docs pages the README does not link: {unlinked}"


def _example(section: str) -> list[tuple[str, list[str]]]:
    """The commands of the README section ``section``'s first code block, each with the
    lines it prints."""
    text = README[README.index(f"## {section}\n"):]
    block = FENCE.search(text).group(0).splitlines()[1:-1]
    steps: list[tuple[str, list[str]]] = []
    for line in block:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and steps[-1][0].endswith("\\"):
            steps[-1] = (steps[-1][0][:-1] + line.strip(), steps[-1][1])
        elif steps:
            steps[-1][1].append(line)
    return steps


def _numbers_masked(text: str) -> str:
    """``text`` with the numbers that depend on the machine masked: a time, and a count of
    flagged rows with its threshold (sampling differs between CPUs in the last digits)."""
    if text.startswith("time ") or "flagged as anomalies" in text:
        text = re.sub(r"-?\d[\d,.]*(?= s on| of |\))", "#", text)
        text = re.sub(r"below -?\d[\d.]*", "below #", text)
    return text.rstrip()


def test_the_past_one_machine_example_runs_as_shown(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    import os
    import subprocess
    import sys

    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    steps = _example("Past one machine")
    assert [c.split()[0] for c, _ in steps][:3] == ["torchrun", "flowcli", "flowcli"]
    for command, shown in steps:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{command}: {done.stderr[-1000:]}"
        printed = [line for line in (done.stdout + done.stderr).splitlines()
                   if not re.match(r"[WIE]\d{4} \d", line)]  # torchrun's own log lines
        assert [_numbers_masked(x) for x in printed] == [_numbers_masked(x) for x in shown], \
            command

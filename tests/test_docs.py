"""The README documents every command, and shows the set-up and test commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from flowcli.cli import app

README = (Path(__file__).parent.parent / "README.md").read_text()
COMMANDS = sorted(c.name for c in typer.main.get_command(app).commands.values())


def test_all_five_commands_exist() -> None:
    assert COMMANDS == ["fit", "info", "invert", "sample", "score"]


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_shows_each_command(command: str) -> None:
    assert f"flowcli {command} " in README


def test_readme_opens_with_the_two_setup_commands() -> None:
    head = README[: README.index("## ", README.index("make test"))]
    assert "make demo" in head and "make test" in head

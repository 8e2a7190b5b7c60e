"""The import rules: each layer loads only what it needs (checked in fresh interpreters)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("flowcli", {"torch", "pandas", "typer", "rich"}),
        ("flowcli.cli", {"torch", "pandas", "numpy", "pyarrow"}),
        ("flowcli.engine", {"pandas", "typer", "rich", "pyarrow"}),
        ("flowcli.io", {"torch", "typer", "rich"}),
        ("flowcli.tabular", {"torch", "typer", "rich", "flowcli.engine"}),
        ("flowcli.checkpoint", {"pandas", "typer", "rich", "flowcli.engine"}),
        ("flowcli.train", {"pandas", "typer", "rich"}),
        ("flowcli.api", {"typer", "rich"}),
    ],
)
def test_module_does_not_import(module: str, forbidden: set[str]) -> None:
    assert not (loaded_after(module) & forbidden)

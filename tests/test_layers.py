"""The house rules: imports point down the layers, and every module is short and says its job.

Import rules are checked in fresh interpreters, so one test's imports cannot hide another's.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "flowcli"
MODULES = sorted(
    ".".join(("flowcli", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py"))


def loaded_after(*modules: str) -> set[str]:
    code = f"import sys, {', '.join(modules)}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("flowcli", {"torch", "pandas", "typer", "rich"}),
        ("flowcli.cli", {"torch", "pandas", "numpy", "pyarrow"}),
        ("flowcli.config", {"torch", "pandas", "numpy", "typer", "rich"}),
        ("flowcli.files", {"torch", "pandas", "numpy", "typer", "rich"}),
        ("flowcli.engine", {"pandas", "pyarrow", "flowcli.tabular", "flowcli.training"}),
        ("flowcli.tabular", {"torch", "flowcli.engine"}),
        ("flowcli.io", {"torch"}),
        ("flowcli.modelfile", {"pandas", "flowcli.engine", "flowcli.tabular"}),
        ("flowcli.training", {"pandas", "pyarrow", "flowcli.tabular", "flowcli.fitting",
                              "flowcli.model"}),
        ("flowcli.fitting", {"flowcli.model", "flowcli.cli"}),
        ("flowcli.model", {"flowcli.cli", "sklearn"}),
    ],
)
def test_module_does_not_import(module: str, forbidden: set[str]) -> None:
    assert not (loaded_after(module) & forbidden)


def test_nothing_below_the_command_line_imports_typer_or_rich() -> None:
    library = [m for m in MODULES if not m.startswith("flowcli.cli")
               and m not in ("flowcli.__main__", "flowcli.sklearn")]
    assert not (loaded_after(*library) & {"typer", "rich"})


def _tree(module: str) -> ast.Module:
    parts = module.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return ast.parse(path.read_text())


@pytest.mark.parametrize("module", MODULES)
def test_each_module_states_its_job(module: str) -> None:
    doc = ast.get_docstring(_tree(module))
    assert doc and doc.splitlines()[0].strip(), f"{module} has no docstring"


def _is_command(node: ast.AST) -> bool:
    """A Typer command: its length is its option declarations."""
    return isinstance(node, ast.FunctionDef) and any(
        "typer" in ast.unparse(a.annotation or ast.Constant(None)) or
        "Opt" in ast.unparse(a.annotation or ast.Constant(None))
        for a in node.args.args)


@pytest.mark.parametrize("module", MODULES)
def test_functions_and_classes_are_short(module: str) -> None:
    for node in ast.walk(_tree(module)):
        length = (getattr(node, "end_lineno", 0) or 0) - getattr(node, "lineno", 0) + 1
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                not _is_command(node):
            assert length <= 60, f"{module}.{node.name} is {length} lines"
        elif isinstance(node, ast.ClassDef):
            assert length <= 300, f"{module}.{node.name} is {length} lines"

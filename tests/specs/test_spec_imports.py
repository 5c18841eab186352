"""The spec modules share only public names: no import of another module's `_private` name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nectarloss

PACKAGE = Path(nectarloss.__file__).resolve().parent
SPEC_MODULES = sorted((PACKAGE / "specs").glob("*.py"))


@pytest.mark.parametrize("path", SPEC_MODULES, ids=lambda p: p.name)
def test_no_private_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nectarloss")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []

"""docs/ARCHITECTURE.md stays true: every module it names exists, every module is named."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def named_paths() -> set[str]:
    """``nectarloss/...`` paths in the layout table, expanding ``a.py, b.py`` lists."""
    out: set[str] = set()
    for line in PAGE.splitlines():
        if not line.startswith("| `nectarloss/"):
            continue
        cell = line.split("|")[1]
        names = re.findall(r"`([^`]+)`", cell)
        base = names[0].rsplit("/", 1)[0] if "/" in names[0].rstrip("/") else ""
        for name in names:
            out.add(name if name.startswith("nectarloss/") else f"{base}/{name}")
    return out


def test_every_named_module_exists() -> None:
    missing = sorted(p for p in named_paths() if not (ROOT / p).exists())
    assert missing == []


def test_every_module_is_named() -> None:
    named = named_paths()
    dirs = {p.rstrip("/") for p in named if p.endswith("/")}
    unnamed = []
    for path in sorted((ROOT / "nectarloss").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in named or any(rel.startswith(d + "/") for d in dirs):
            continue
        if path.name == "__init__.py" and rel != "nectarloss/__init__.py":
            continue  # package re-exports
        unnamed.append(rel)
    assert unnamed == []

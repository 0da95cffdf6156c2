"""The package layers of docs/architecture.md hold: lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rdstd"

#: package -> the rdstd packages it must never import (directly or in a function body).
FORBIDDEN = {
    "io": ("rdstd.media", "rdstd.store", "rdstd.formats", "rdstd.convert", "rdstd.export"),
    "media": ("rdstd.store", "rdstd.formats", "rdstd.convert", "rdstd.export"),
    "streams": ("rdstd.store", "rdstd.formats", "rdstd.convert", "rdstd.export"),
    "formats": ("rdstd.store", "rdstd.convert", "rdstd.export"),
    "store": ("rdstd.formats", "rdstd.convert", "rdstd.export"),
    "schema": ("rdstd.store", "rdstd.formats", "rdstd.convert", "rdstd.export", "rdstd.media", "rdstd.io"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_lower_layer_never_imports_a_higher_one(package: str) -> None:
    bad = [
        f"{path.relative_to(ROOT.parent)}:{line}: imports {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, module in _imports(path)
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[package])
    ]
    assert bad == []

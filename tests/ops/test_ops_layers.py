"""rdstd/ops is a library layer: it never imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

OPS = Path(__file__).resolve().parents[2] / "rdstd" / "ops"


def test_ops_never_imports_the_cli() -> None:
    bad = []
    for path in sorted(OPS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            bad += [f"{path.name}:{node.lineno} {n}" for n in names if n.startswith("rdstd.cli")]
    assert bad == []

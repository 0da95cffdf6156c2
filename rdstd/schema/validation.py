"""Turning a pydantic ValidationError into the one line rdstd's errors print."""

from __future__ import annotations

from pydantic import ValidationError


def first_problem(exc: ValidationError) -> tuple[str, str]:
    """Where the first problem is (dotted field path, ``(root)`` for the whole document) and what it is."""
    first = exc.errors()[0]
    return ".".join(str(p) for p in first["loc"]) or "(root)", str(first["msg"])

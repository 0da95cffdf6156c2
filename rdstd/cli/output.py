"""Options shared by every command, defined once, and the helpers that print."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

import typer


class OutputFormat(StrEnum):
    """How a command prints its result."""

    TEXT = "text"
    JSON = "json"


FORMAT_OPTION = typer.Option(OutputFormat.TEXT, "--format", help="Output format: text for people, json for tools.")


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def emit(text: str) -> None:
    """Print text on stdout."""
    sys.stdout.write(text.rstrip("\n") + "\n")


def note(text: str) -> None:
    """Print a side message on stderr (progress, warnings), leaving stdout for the result."""
    sys.stderr.write(text.rstrip("\n") + "\n")

"""``rdstd schema``: the JSON Schema of the canonical manifest, episode metadata or converter spec."""

from __future__ import annotations

from enum import StrEnum

import typer

from rdstd.cli.output import emit
from rdstd.schema.jsonschema import SCHEMA_FILES, render

EXAMPLES = """
Examples:

\b
  rdstd schema
  rdstd schema converter-spec > converter-spec.schema.json
"""


class Which(StrEnum):
    """Which schema to print."""

    MANIFEST = "manifest"
    EPISODE_META = "episode-meta"
    CONVERTER_SPEC = "converter-spec"


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="schema", epilog=EXAMPLES)(schema_command)


def schema_command(
    which: Which = typer.Argument(Which.MANIFEST, help="manifest, episode-meta or converter-spec."),
) -> None:
    """Print a JSON Schema of the canonical format (always JSON)."""
    emit(render(SCHEMA_FILES[f"{which.value}.schema.json"]))

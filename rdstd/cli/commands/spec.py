"""``rdstd spec SRC``: draft a converter spec from what a source holds, for the user to edit."""

from __future__ import annotations

from pathlib import Path

import typer

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json, note
from rdstd.convert.pipeline import open_source
from rdstd.convert.specs import draft_spec, spec_to_yaml

EXAMPLES = """
Examples:

\b
  rdstd spec my_store.zarr > my_robot.yaml
  rdstd convert my_store.zarr out --spec my_robot.yaml     # after filling in units, frames, rate_hz
  rdstd spec my_store.zarr --name zarr/my_robot --format json
"""


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="spec", epilog=EXAMPLES)(spec_command)


def spec_command(
    src: Path = typer.Argument(..., help="Source dataset."),
    source_format: str | None = typer.Option(
        None, "--source-format", "-f", help="Source format (see `rdstd formats`); detected if omitted."
    ),
    name: str = typer.Option("draft", "--name", help="Name to give the spec."),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Print a converter spec drafted from the source: names, shapes, rates it can see, unknown elsewhere."""
    with open_source(src, source_format) as source:
        spec = draft_spec(source.info(), name=name)
    if spec.rate_hz is None and spec.timestamps is None:
        note(
            "rdstd: note: the source states no rate and has no timestamps key; if its episodes carry no "
            "timestamps, set rate_hz: in this spec (or pass --rate HZ to rdstd convert)"
        )
    if output_format == OutputFormat.JSON:
        emit_json(spec.model_dump(mode="json", exclude_defaults=True))
    else:
        emit(spec_to_yaml(spec))

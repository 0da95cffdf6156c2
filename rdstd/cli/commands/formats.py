"""``rdstd formats``: the source formats this install reads (built-ins and plugins), and plugins that failed."""

from __future__ import annotations

from typing import Any

import typer

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json
from rdstd.formats.registry import ENTRY_POINT_GROUP, entries

EXAMPLES = """
Examples:

\b
  rdstd formats
  rdstd formats --format json
"""

#: Formats rdstd recognises on sight but does not read yet (what ``rdstd convert`` says about them).
NOT_YET: list[str] = []  # HDF5, the last one listed here, is read since the hdf5 backend landed


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="formats", epilog=EXAMPLES)(formats_command)


def formats_command(output_format: OutputFormat = FORMAT_OPTION) -> None:
    """List the source formats rdstd reads here, in detection order, with the plugins that provide them."""
    data = formats_summary()
    if output_format == OutputFormat.JSON:
        emit_json(data)
        return
    lines = ["source formats, in detection order:"]
    for f in data["formats"]:
        extra = f" (pip install 'rdstd[{f['extra']}]')" if f["extra"] else ""
        lines.append(f"  {f['name']:<10} {f['origin']}{extra}")
    for f in data["unusable"]:
        lines.append(f"  {f['name']:<10} {f['origin']}: NOT USABLE: {f['problem']}")
    if data["not_yet"]:
        lines.append(f"recognised but not read yet: {', '.join(data['not_yet'])}")
    lines.append(f"plugins add formats through the {ENTRY_POINT_GROUP!r} entry-point group")
    emit("\n".join(lines))


def formats_summary() -> dict[str, Any]:
    """Usable formats, unusable plugins and the formats recognised but not read yet, as JSON-ready data."""
    usable, unusable = [], []
    for entry in entries():
        if entry.backend is not None:
            usable.append({"name": entry.name, "origin": entry.origin, "extra": entry.backend.extra})
        else:
            unusable.append({"name": entry.name, "origin": entry.origin, "problem": entry.problem})
    return {"formats": usable, "unusable": unusable, "not_yet": NOT_YET}

"""``rdstd filter DATASET OUT --where EXPR``: keep the episodes an expression (and validation) selects."""

from __future__ import annotations

from pathlib import Path

import typer

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json

EXAMPLES = """
Examples:

  rdstd filter ds long-only --where "length >= 100"

  rdstd filter ds clean --exclude-findings error                 (runs the default validation)

  rdstd filter ds clean --exclude-findings error --findings findings.json --where "rate_hz > 9"
"""


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="filter", epilog=EXAMPLES)(filter_command)


def filter_command(
    dataset: Path = typer.Argument(..., help="Canonical rdstd dataset."),
    out: Path = typer.Argument(..., help="Output dataset."),
    where: str | None = typer.Option(
        None, "--where", help="SQL expression over the episode table (+ rate_hz, findings_error, findings_warning)."
    ),
    exclude_findings: str | None = typer.Option(
        None, "--exclude-findings", help="error or warning: drop episodes with findings at or above it."
    ),
    findings: Path | None = typer.Option(None, "--findings", help="A rdstd validate --format json report to use."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it is a canonical dataset."),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Write the episodes that pass the filter as a new dataset (renumbered; the manifest records the filter)."""
    from rdstd.ops.filter import filter_episodes

    report = filter_episodes(
        dataset, out, where=where, exclude_findings=exclude_findings, findings=findings, overwrite=overwrite
    )
    if output_format == OutputFormat.JSON:
        emit_json(report.as_dict())
        return
    emit(
        f"filtered {dataset} -> {report.output}: kept {report.kept}, dropped {report.dropped} "
        f"({report.dropped_by_findings} for findings)"
    )
    emit(f"next: rdstd info {report.output}")

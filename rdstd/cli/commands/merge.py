"""``rdstd merge A B … OUT``: one canonical dataset from several."""

from __future__ import annotations

from pathlib import Path

import typer

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json, note, write_json

EXAMPLES = """
Examples:

  rdstd merge bridge g1 pusht all-labs --prefix-ids

  rdstd merge lab-a lab-b merged --dry-run          (only the compatibility report)

  rdstd merge lab-a lab-b merged --convert lab-b:observation.state

  rdstd merge lab-a lab-b merged --rename lab-b:observation.images.front=observation.images.primary
"""


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="merge", epilog=EXAMPLES)(merge_command)


def merge_command(
    paths: list[Path] = typer.Argument(
        ..., metavar="DATASET... OUT", help="The canonical datasets to merge, then OUT (the new dataset)."
    ),
    label: list[str] = typer.Option([], "--label", help="A label per input, in order (default: folder names)."),
    rename: list[str] = typer.Option([], "--rename", help="[LABEL:]OLD=NEW: rename a feature (repeatable)."),
    mapping: Path | None = typer.Option(None, "--mapping", help="YAML file of renames: OLD: NEW or LABEL: {OLD: NEW}."),
    convert: list[str] = typer.Option(
        [], "--convert", help="LABEL:FEATURE: convert that input's units of FEATURE to the first input's (repeatable)."
    ),
    separate: list[str] = typer.Option(
        [], "--separate", help="FEATURE: keep differing meanings of FEATURE as separate features (repeatable)."
    ),
    prefix_ids: bool = typer.Option(False, "--prefix-ids", help="Prefix every episode id with its input's label."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the compatibility report; write nothing."),
    rate: float | None = typer.Option(None, "--rate", help="Impose one rate (Hz): each input is resampled first."),
    report_file: Path | None = typer.Option(None, "--report", help="Also write the report as JSON to this file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it is a canonical dataset."),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Merge canonical datasets (any source format, embodiment, rate or cameras) into one; nothing is re-encoded."""
    from rdstd.errors import MergeConflictError, UsageError
    from rdstd.ops.merge import MergeReport, merge

    if len(paths) < 3:
        raise UsageError(
            "give at least two datasets and OUT", hint="rdstd merge A B OUT", situation="merge-needs-two-datasets"
        )
    *inputs, out = paths
    try:
        report = merge(
            inputs,
            out,
            labels=label,
            rename=rename,
            mapping=mapping,
            convert=convert,
            separate=separate,
            prefix_ids=prefix_ids,
            overwrite=overwrite,
            dry_run=dry_run,
            rate_hz=rate,
        )
    except MergeConflictError as exc:
        if isinstance(exc.report, MergeReport):
            if report_file is not None:
                write_json(report_file, exc.report.as_dict())
            if output_format == OutputFormat.JSON:
                emit_json(exc.report.as_dict())
            else:
                for conflict in exc.report.conflicts:
                    note(conflict.describe())
        raise
    if report_file is not None:
        write_json(report_file, report.as_dict())
    if output_format == OutputFormat.JSON:
        emit_json(report.as_dict())
        return
    for conflict in report.conflicts:
        emit(conflict.describe())
    if dry_run:
        emit(f"dry run: the inputs merge into {len(report.features)} features; nothing written")
        return
    emit(
        f"merged {len(inputs)} datasets -> {report.output}: {report.episodes} episodes, {report.frames} frames "
        f"({report.seconds:.1f} s)"
    )
    emit(f"next: rdstd info {report.output}")

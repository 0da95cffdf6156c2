"""``rdstd resample DATASET OUT --rate HZ``: every episode on one fixed-rate grid."""

from __future__ import annotations

from pathlib import Path

import typer

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json, write_json

EXAMPLES = """
Examples:

  rdstd resample g1-canonical g1-10hz --rate 10

  rdstd resample ds ds-15hz --rate 15 --method action=hold --report resample.json
"""


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="resample", epilog=EXAMPLES)(resample_command)


def resample_command(
    dataset: Path = typer.Argument(..., help="Canonical rdstd dataset."),
    out: Path = typer.Argument(..., help="Output dataset."),
    rate: float = typer.Option(..., "--rate", help="The new frame rate (Hz)."),
    method: list[str] = typer.Option([], "--method", help="FEATURE=interpolate|hold|nearest (repeatable)."),
    report_file: Path | None = typer.Option(None, "--report", help="Write the per-episode report as JSON here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it is a canonical dataset."),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Resample every episode to one rate: interpolate (slerp for quaternions), hold, or nearest per feature."""
    from rdstd.errors import UsageError
    from rdstd.ops.resample import resample

    methods = {}
    for item in method:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(
                f"--method {item!r}: expected FEATURE=METHOD",
                hint="e.g. --method action=hold",
                situation="method-option-invalid",
            )
        methods[key] = value
    report = resample(dataset, out, rate_hz=rate, methods=methods, overwrite=overwrite)
    if report_file is not None:
        write_json(report_file, report.as_dict())
    if output_format == OutputFormat.JSON:
        emit_json(report.as_dict())
        return
    before = sum(e["frames_before"] for e in report.episodes)
    after = sum(e["frames_after"] for e in report.episodes)
    emit(
        f"resampled {dataset} -> {report.output} at {rate:g} Hz: {len(report.episodes)} episodes, "
        f"{before} -> {after} frames"
    )
    for key, how in sorted(report.methods.items()):
        emit(f"  {key}: {how}")
    emit(f"next: rdstd info {report.output}")

"""``rdstd convert SRC OUT``: a source dataset into a canonical one."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from tqdm import tqdm

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json, note
from rdstd.convert.pipeline import ConvertReport, convert
from rdstd.schema.vocabulary import ImageCodec

EXAMPLES = """
Examples:

  rdstd convert pusht_cchi_v7_replay.zarr pusht-canonical

  rdstd convert my_store.zarr out --spec converters/zarr/pusht.yaml --on-error skip

  rdstd convert bridge_dataset/1.0.0 bridge --spec rlds/bridge --images jpeg --format json
"""


class OnErrorChoice(StrEnum):
    """What a bad episode does."""

    FAIL = "fail"
    SKIP = "skip"


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="convert", epilog=EXAMPLES)(convert_command)


def convert_command(
    src: Path = typer.Argument(..., help="Source dataset (folder or file)."),
    out: Path = typer.Argument(..., help="Output folder for the canonical dataset (must not exist, or be empty)."),
    source_format: str | None = typer.Option(None, "--source-format", "-f", help="Source format; detected if omitted."),
    spec: str | None = typer.Option(None, "--spec", help="Converter spec: a shipped name (zarr/pusht) or a YAML path."),
    on_error: OnErrorChoice = typer.Option(
        OnErrorChoice.FAIL, "--on-error", help="fail: stop, write nothing; skip: list bad episodes and go on."
    ),
    images: ImageCodec | None = typer.Option(
        None, "--images", help="Store cameras as jpeg, png or video (default: as the spec says)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it holds something."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Convert only the first N episodes."),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Convert a source dataset into a canonical rdstd dataset, one episode at a time."""
    bar = tqdm(total=0, unit="ep", desc="converting", disable=None, file=None, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        report = convert(
            src,
            out,
            format_name=source_format,
            spec=spec,
            on_error="skip" if on_error == OnErrorChoice.SKIP else "fail",
            images=images,
            overwrite=overwrite,
            limit=limit,
            progress=progress,
        )
    finally:
        bar.close()
    if output_format == OutputFormat.JSON:
        emit_json(report.as_dict())
    else:
        _print_summary(report)
    if report.skipped:
        raise typer.Exit(1)


def _print_summary(report: ConvertReport) -> None:
    for warning in report.warnings:
        note(f"rdstd: warning: {warning}")
    rate = report.frames_written / report.seconds if report.seconds else 0.0
    emit(
        f"converted {report.source} ({report.format}, spec {report.spec}) -> {report.output}\n"
        f"  episodes written: {report.episodes_written}\n"
        f"  frames written:   {report.frames_written} ({rate:,.0f} frames/s, {report.seconds:.1f} s)\n"
        f"  episodes skipped: {len(report.skipped)}"
    )
    if report.source_notes:
        emit("  notes on the source data (episodes showing each):")
        for text, count in sorted(report.source_notes.items(), key=lambda item: -item[1])[:10]:
            emit(f"    - {text} ({count})")
        if len(report.source_notes) > 10:
            emit(f"    - … {len(report.source_notes) - 10} more (see --format json)")
    for skipped in report.skipped:
        emit(f"    - #{skipped.index} {skipped.key}: {skipped.reason}")
    emit(f"next: rdstd info {report.output}")

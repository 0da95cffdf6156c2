"""``rdstd export DATASET --to lerobot OUT``: a canonical dataset written in another format."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from tqdm import tqdm

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json

EXAMPLES = """
Examples:

  rdstd export g1-canonical --to lerobot g1-lerobot-v30

  rdstd export g1-canonical --to lerobot --version 2.1 g1-lerobot-v21

  rdstd export pusht-canonical --to lerobot pusht-lerobot --codec libx264 --format json

  rdstd export rlds-canonical --to lerobot rlds-lerobot --exclude observation.images.depth
"""


class Target(StrEnum):
    """Formats rdstd writes."""

    LEROBOT = "lerobot"


class LeRobotVersion(StrEnum):
    """LeRobot dataset versions rdstd writes."""

    V30 = "3.0"
    V21 = "2.1"


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="export", epilog=EXAMPLES)(export_command)


def export_command(
    dataset: Path = typer.Argument(..., help="Canonical rdstd dataset (made by rdstd convert)."),
    out: Path = typer.Argument(..., help="Output folder (must not exist, or be empty)."),
    to: Target = typer.Option(..., "--to", help="Format to write."),
    version: LeRobotVersion = typer.Option(LeRobotVersion.V30, "--version", help="LeRobot version: 3.0 or 2.1."),
    codec: str = typer.Option(
        "copy-or-auto",
        "--codec",
        help="Video: copy-or-auto (stream-copy stored video, encode the rest with libsvtav1 or H.264), "
        "auto (always encode), or an FFmpeg encoder name.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it holds something."),
    exclude: list[str] = typer.Option(
        [], "--exclude", help="Leave this feature out (repeatable); listed in the report's warnings."
    ),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Write a canonical dataset as a LeRobot v3.0 (or v2.1) dataset that LeRobot's own loader reads."""
    from rdstd.export.lerobot import export_lerobot

    bar = tqdm(total=0, unit="ep", desc="exporting", disable=None, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        report = export_lerobot(
            dataset,
            out,
            version=version.value,
            codec=codec,
            overwrite=overwrite,
            exclude=tuple(exclude),
            progress=progress,
        )
    finally:
        bar.close()
    if output_format == OutputFormat.JSON:
        emit_json(report.as_dict())
        return
    rate = report.frames / report.seconds if report.seconds else 0.0
    emit(
        f"exported {dataset} -> {report.output} (LeRobot {report.version})\n"
        f"  episodes: {report.episodes}\n"
        f"  frames:   {report.frames} ({rate:,.0f} frames/s, {report.seconds:.1f} s)"
    )
    for camera, how in report.cameras.items():
        emit(f"  {camera}: {how}")
    if report.splits:
        emit("  splits:   " + ", ".join(f"{name} {span}" for name, span in report.splits.items()))
    for message, count in report.warnings.items():
        emit(f"  warning: {message} ({count} episode{'s' if count != 1 else ''})")
    emit(f"next: rdstd info {report.output}")

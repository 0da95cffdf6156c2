"""``rdstd export DATASET --to lerobot OUT``: a canonical dataset written in another format."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from tqdm import tqdm

from rdstd.cli.commands.convert import SHOWN_SKIPPED, OnErrorChoice
from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json

EXAMPLES = """
Examples:

  rdstd export g1-canonical --to lerobot g1-lerobot-v30

  rdstd export g1-canonical --to lerobot --version 2.1 g1-lerobot-v21

  rdstd export pusht-canonical --to lerobot pusht-lerobot --codec libx264 --format json

  rdstd export rlds-canonical --to lerobot rlds-lerobot --exclude observation.images.depth

  rdstd export droid-canonical --to lerobot droid-lerobot --workers 8 --on-error skip   # --resume after a crash
"""


class ExecutorChoice(StrEnum):
    """Where batch export runs its work units."""

    LOCAL = "local"
    RAY = "ray"


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
    on_error: OnErrorChoice = typer.Option(
        OnErrorChoice.FAIL,
        "--on-error",
        help="fail: stop, write nothing; skip: leave out episodes whose data cannot be read, list them and go on.",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Processes exporting ranges of episodes in parallel (default: the machine's cores; a dataset of one "
        "unit, or whose export is estimated under 10 s, exports in this process). The output is the same for any N.",
    ),
    executor: ExecutorChoice | None = typer.Option(
        None, "--executor", help="Where the units run: local (a process pool, the default) or ray (Ray core tasks)."
    ),
    ray_address: str | None = typer.Option(None, "--ray-address", help="The Ray cluster for --executor ray."),
    resume: bool = typer.Option(False, "--resume", help="Reuse the units a stopped export into OUT finished."),
    unit_episodes: int | None = typer.Option(
        None, "--unit-episodes", min=1, help="Episodes per work unit at most (default 50)."
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
            on_error="skip" if on_error == OnErrorChoice.SKIP else "fail",
            executor=(executor or ExecutorChoice.LOCAL).value,
            workers=workers,
            ray_address=ray_address,
            resume=resume,
            unit_episodes=unit_episodes,
        )
    finally:
        bar.close()
    if output_format == OutputFormat.JSON:
        emit_json(report.as_dict())
        if report.skipped:
            raise typer.Exit(1)
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
    if report.batch:
        emit(
            f"  work units: {report.batch['units']} on {report.batch['executor']} with {report.batch['workers']} "
            f"worker(s), {report.batch['resumed_units']} resumed"
        )
    for message, count in report.warnings.items():
        emit(f"  warning: {message} ({count} episode{'s' if count != 1 else ''})")
    if report.skipped:
        emit(f"  episodes left out: {len(report.skipped)}")
        for episode, reason in list(report.skipped.items())[:SHOWN_SKIPPED]:
            emit(f"    - {episode}: {reason}")
        if len(report.skipped) > SHOWN_SKIPPED:
            emit(f"    - … and {len(report.skipped) - SHOWN_SKIPPED} more (see --format json)")
    emit(f"next: rdstd info {report.output}")
    if report.skipped:
        raise typer.Exit(1)

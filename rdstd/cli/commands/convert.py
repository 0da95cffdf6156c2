"""``rdstd convert SRC OUT``: a source dataset into a canonical one."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from rdstd.cli.output import (
    FORMAT_OPTION,
    PROGRESS_OPTION,
    OutputFormat,
    ProgressMode,
    ProgressPrinter,
    emit,
    emit_json,
    note,
    write_json,
)
from rdstd.convert.pipeline import ConvertReport, convert
from rdstd.errors import UsageError
from rdstd.formats.base import UNIT_EPISODES
from rdstd.io.remote import is_url
from rdstd.paths import normalized
from rdstd.schema.vocabulary import ImageCodec

EXAMPLES = """
Examples:

\b
  rdstd convert pusht_cchi_v7_replay.zarr pusht-canonical
  rdstd convert my_store.zarr out --spec my_robot.yaml --on-error skip --report report.json
  rdstd convert bridge_dataset/1.0.0 bridge --spec rlds/bridge --images jpeg --format json
  rdstd spec my_store.zarr > my_robot.yaml     # draft a spec, fill in units and frames, then:
  rdstd convert my_store.zarr out --spec my_robot.yaml --rate 10
  rdstd convert bridge_dataset/1.0.0 bridge --workers 8 --on-error skip   # in parallel; --resume after a crash
  rdstd convert bridge_dataset/1.0.0 bridge --executor ray --ray-address auto
"""

#: Skipped episodes printed in the text summary; the rest are counted (all are in --report / --format json).
SHOWN_SKIPPED = 20
SHOWN_NOTES = 10


class ExecutorChoice(StrEnum):
    """Where batch conversion runs its work units."""

    LOCAL = "local"
    RAY = "ray"
    SLURM = "slurm"


class OnErrorChoice(StrEnum):
    """What a bad episode does."""

    FAIL = "fail"
    SKIP = "skip"


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="convert", epilog=EXAMPLES)(convert_command)


def convert_command(
    src: Path = typer.Argument(..., help="Source dataset (folder or file)."),
    out: str = typer.Argument(
        ...,
        help="Output folder for the canonical dataset (must not exist, or be empty), or an s3:// (fsspec) URL.",
    ),
    source_format: str | None = typer.Option(
        None, "--source-format", "-f", help="Source format (see `rdstd formats`); detected if omitted."
    ),
    spec: str | None = typer.Option(
        None, "--spec", help="Converter spec: a shipped name (zarr/pusht) or a YAML path (draft one: rdstd spec SRC)."
    ),
    rate: float | None = typer.Option(
        None, "--rate", help="Frames per second, for a source without timestamps (overrides the spec's rate_hz)."
    ),
    on_error: OnErrorChoice = typer.Option(
        OnErrorChoice.FAIL,
        "--on-error",
        help="fail: stop, write nothing; skip: leave out episodes with bad data, list them and go on.",
    ),
    images: ImageCodec | None = typer.Option(
        None, "--images", help="Store cameras as jpeg, png or video (default: as the spec says)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it holds something."),
    drop_unmapped: bool = typer.Option(
        False,
        "--drop-unmapped",
        help="Leave out source keys the spec does not map (default: keep them with unknown semantics). "
        "The manifest records what was left out.",
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Convert only the first N episodes."),
    exclude_findings: Path | None = typer.Option(
        None,
        "--exclude-findings",
        help="Leave out the episodes with findings in this `rdstd validate --format json` report "
        "(at or above --exclude-severity); the manifest records which and why.",
    ),
    exclude_severity: str = typer.Option("error", "--exclude-severity", help="error, warning or info."),
    salvage: bool = typer.Option(
        False,
        "--salvage",
        help="Recover the readable prefix of a truncated ROS 1 bag or MCAP file; the episode is marked partial.",
    ),
    report_file: Path | None = typer.Option(
        None, "--report", help="Also write the full report (every skipped episode) as JSON to this file."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Processes converting the work units in parallel (default: the machine's cores; a source of one unit, "
        "or of under ~2 s of estimated work, converts in this process). The output is the same for any N.",
    ),
    executor: ExecutorChoice | None = typer.Option(
        None,
        "--executor",
        help="Where the work units run: local (a process pool, the default), ray (Ray core tasks) or slurm (write "
        "an sbatch --array script). See docs/batch.md.",
    ),
    ray_address: str | None = typer.Option(None, "--ray-address", help="The Ray cluster for --executor ray."),
    resume: bool = typer.Option(
        False, "--resume", help="Batch conversion: reuse the work units a stopped run into OUT finished."
    ),
    unit_episodes: int = typer.Option(
        UNIT_EPISODES, "--unit-episodes", min=1, help="Batch conversion: episodes per work unit at most."
    ),
    run_unit: int | None = typer.Option(
        None, "--run-unit", hidden=True, help="Run one staged work unit (a SLURM array task)."
    ),
    progress: ProgressMode = PROGRESS_OPTION,
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Convert a source dataset into a canonical rdstd dataset: its work units in parallel on every core, one
    episode at a time per worker."""
    if run_unit is not None:
        _run_staged_unit(out, run_unit)
        return
    report_path = _report_path(report_file)
    options: dict[str, Any] = {
        "format_name": source_format,
        "spec": spec,
        "on_error": "skip" if on_error == OnErrorChoice.SKIP else "fail",
        "images": images,
        "overwrite": overwrite,
        "limit": limit,
        "rate_hz": rate,
        "drop_unmapped": drop_unmapped,
        "exclude_episodes": _exclusions(exclude_findings, exclude_severity),
        "on_plan": print_plan,
        "salvage": salvage,
    }
    from rdstd.batch.slurm import assemble_command

    with ProgressPrinter("converting", progress) as printer:
        report = convert(
            src,
            out,
            **options,
            progress=printer,
            executor=executor.value if executor is not None else None,
            workers=workers,
            auto_batch=True,
            ray_address=ray_address,
            resume=resume,
            unit_episodes=unit_episodes,
            slurm_assemble=assemble_command([sys.executable, "-m", "rdstd", *sys.argv[1:]]),
        )
    if "slurm_submit" in report.batch:
        note(
            f"rdstd: {report.batch['units']} work unit(s) staged; submit them with: bash {report.batch['slurm_submit']}"
        )
        return
    if report_path is not None:
        write_json(report_path, report.as_dict())
    if output_format == OutputFormat.JSON:
        emit_json(report.as_dict())
    else:
        emit(summary(report))
    if report.skipped:
        raise typer.Exit(1)


def _run_staged_unit(out: str, index: int) -> None:
    """One work unit of the batch job staged for ``out`` (what a SLURM array task runs); done units are skipped."""
    from rdstd.batch.job import load_job
    from rdstd.batch.worker import run_unit

    job = load_job(out if is_url(out) else str(normalized(out)))
    if not 0 <= index < len(job.units):
        raise UsageError(
            f"--run-unit {index}: the staged job for {out} has units 0-{len(job.units) - 1}",
            hint="give an index in that range (the --array range of the staged SLURM script)",
            situation="unit-index-out-of-range",
        )
    if job.staging.exists(job.journal_rel(index)):
        note(f"rdstd: unit {index} is already finished")
        return
    entry = run_unit(job, job.units[index])
    note(f"rdstd: unit {index}: {entry['episodes']} episode(s), {entry['frames']} frames, {entry['seconds']} s")


def _exclusions(findings: Path | None, severity: str) -> dict[str, list[str]] | None:
    """Episodes a validate report excludes (source key -> reasons), or None without ``--exclude-findings``."""
    if findings is None:
        return None
    from rdstd.validate.exclude import exclusions, read_report
    from rdstd.validate.model import Severity

    try:
        level = Severity(severity)
    except ValueError as exc:
        raise UsageError(
            f"--exclude-severity {severity!r} is not a severity",
            hint="choose error, warning or info",
            situation="severity-unknown",
        ) from exc
    return exclusions(read_report(findings), level)


def _report_path(report_file: Path | None) -> Path | None:
    """The report file, checked before the work so that a long run does not end failing to write it."""
    if report_file is None:
        return None
    path = normalized(report_file)
    problem = "is a folder" if path.is_dir() else "" if path.parent.is_dir() else f"{path.parent} does not exist"
    if problem:
        raise UsageError(
            f"--report {report_file}: {problem}",
            hint="give a file path in an existing folder, e.g. --report report.json",
            situation="report-path-invalid",
        )
    return path


def print_plan(report: ConvertReport) -> None:
    """Say on stderr, before the work, what will be converted with which spec, and the warnings."""
    how = {"given": "given", "matched": "shipped, matched to the source", "drafted": "drafted"}[report.spec_choice]
    rate = f", rate {report.rate_hz:g} Hz given" if report.rate_hz else ""
    note(
        f"rdstd: converting {report.episodes_planned} episode(s) of {report.source} ({report.format}) "
        f"with spec {report.spec} ({how}{rate}) -> {report.output}"
    )
    for warning in report.warnings:
        note(f"rdstd: warning: {warning}")


def summary(report: ConvertReport) -> str:
    """The text summary: counts, what was left out, notes, a bounded list of skipped episodes, the next command."""
    rate = report.frames_written / report.seconds if report.seconds else 0.0
    lines = [
        f"converted {report.source} ({report.format}, spec {report.spec}) -> {report.output}",
        f"  episodes written: {report.episodes_written}",
        f"  frames written:   {report.frames_written} ({rate:,.0f} frames/s, {report.seconds:.1f} s)",
        f"  episodes skipped: {len(report.skipped)}",
    ]
    if report.batch:
        rss = report.batch.get("peak_rss_mb_per_worker") or {}
        lines.append(
            f"  work units:       {report.batch['units']} on {report.batch['executor']} with "
            f"{report.batch['workers']} worker(s), {report.batch.get('resumed_units', 0)} resumed"
            + (f", peak RSS per worker {max(rss.values()):.0f} MB" if rss else "")
        )
    if report.kept_unmapped_keys:
        lines.append(f"  kept with unknown semantics: {', '.join(report.kept_unmapped_keys)}")
    if report.dropped_source_keys:
        lines.append(f"  source keys left out: {', '.join(report.dropped_source_keys)}")
    if report.non_finite:
        lines.append("  non-finite values written (NaN / inf, episodes):")
        for name, count in sorted(report.non_finite.items()):
            lines.append(f"    - {name}: {count.nan} NaN, {count.inf} inf in {count.episodes} episode(s)")
    if report.source_notes:
        lines.append("  notes on the source data (episodes showing each):")
        for text, n in sorted(report.source_notes.items(), key=lambda item: -item[1])[:SHOWN_NOTES]:
            lines.append(f"    - {text} ({n})")
        if len(report.source_notes) > SHOWN_NOTES:
            lines.append(f"    - … {len(report.source_notes) - SHOWN_NOTES} more (see --format json)")
    if report.skipped:
        base = Path(report.source) if Path(report.source).is_dir() else Path(report.source).parent
        lines.append(f"  skipped episodes (paths relative to {base}):")
        prefix = f"{base}/"
        for skipped in report.skipped[:SHOWN_SKIPPED]:
            lines.append(f"    - #{skipped.index} {skipped.key}: {skipped.reason.replace(prefix, '')}")
        if len(report.skipped) > SHOWN_SKIPPED:
            lines.append(
                f"    - … and {len(report.skipped) - SHOWN_SKIPPED} more "
                "(the full list: --report FILE or --format json)"
            )
    lines.append(f"next: rdstd info {report.output}")
    return "\n".join(lines)

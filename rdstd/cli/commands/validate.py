"""``rdstd validate PATH``: lint a canonical dataset or a source; findings in the format CI systems read."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from rdstd.cli.output import emit
from rdstd.errors import UsageError
from rdstd.paths import normalized
from rdstd.validate import configure, validate
from rdstd.validate.config import parse_fail_on, shipped_profiles
from rdstd.validate.reporters import RENDERERS, ReportFormat, render_github, render_junit, render_sarif

EXAMPLES = """
Examples:

\b
  rdstd validate pusht-canonical
  rdstd validate bridge_dataset/1.0.0 --profile oxe --fail-on warning
  rdstd validate my-dataset --select RDV3,RDV5 --ignore RDV951 --format sarif --output rdstd.sarif
  rdstd validate my-dataset --format github      (in a GitHub Actions step)
  rdstd validate --list
"""


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="validate", epilog=EXAMPLES)(validate_command)


def _ids(values: list[str]) -> list[str]:
    return [p.strip().upper() for v in values for p in v.split(",") if p.strip()]


def validate_command(
    path: Path | None = typer.Argument(None, help="A canonical rdstd dataset, or any source rdstd reads."),
    profile: str = typer.Option(
        "default", "--profile", "-p", help="Profile: default, strict, oxe, training, or a YAML file."
    ),
    select: list[str] = typer.Option([], "--select", help="Only these check ids or prefixes (comma-separated)."),
    ignore: list[str] = typer.Option([], "--ignore", help="Leave out these check ids or prefixes (comma-separated)."),
    fail_on: str | None = typer.Option(
        None, "--fail-on", help="Exit 1 on findings at or above: error, warning, info, never (default: the profile's)."
    ),
    output_format: ReportFormat = typer.Option(
        ReportFormat.TEXT, "--format", help="text, json, junit, sarif, github, markdown."
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to this file, not stdout."),
    source_format: str | None = typer.Option(
        None, "--source-format", "-f", help="Source format (see `rdstd formats`); detected if omitted."
    ),
    spec: str | None = typer.Option(None, "--spec", help="Converter spec for a source (as for rdstd convert)."),
    rate: float | None = typer.Option(
        None, "--rate", help="Frames per second of a source without timestamps (as for rdstd convert)."
    ),
    list_checks: bool = typer.Option(False, "--list", help="List the checks and profiles, then exit."),
) -> None:
    """Check a dataset's data against what it declares (units, frames, timing, rotations, grippers, actions).

    Exit codes: 0 nothing at or above --fail-on, 1 findings at or above it, 2 usage, 3 source or environment.
    """
    if list_checks:
        emit(_listing())
        return
    if path is None:
        raise UsageError(
            "give the dataset to validate",
            hint="rdstd validate PATH (or --list to see the checks)",
            situation="dataset-missing",
        )
    target = _output_path(output)
    root = normalized(path)
    config = configure(root, profile=profile, select=_ids(select) or None, ignore=_ids(ignore) or None)
    if fail_on is not None:
        config = config.model_copy(update={"fail_on": parse_fail_on(fail_on)})
    report = validate(root, format_name=source_format, spec=spec, rate_hz=rate, config=config)
    effective = config.fail_on
    artifact = _artifact(root)
    if output_format == ReportFormat.GITHUB:
        text, summary = render_github(report, artifact)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with Path(step_summary).open("a", encoding="utf-8") as handle:
                handle.write(summary)
    elif output_format == ReportFormat.JUNIT:
        text = render_junit(report, effective)
    elif output_format == ReportFormat.SARIF:
        text = render_sarif(report, artifact)
    else:
        text = RENDERERS[output_format](report)
    if target is None:
        emit(text)
    else:
        target.write_text(text, encoding="utf-8")
    if report.fails(effective):
        raise typer.Exit(1)


def _output_path(output: Path | None) -> Path | None:
    if output is None:
        return None
    path = normalized(output)
    if path.is_dir() or not path.parent.is_dir():
        raise UsageError(
            f"--output {output}: not a file in an existing folder",
            hint="e.g. --output report.sarif",
            situation="report-path-invalid",
        )
    return path


def _artifact(path: Path) -> str:
    """The file a SARIF/GitHub location points at: the manifest (or the source), relative to the cwd if inside."""
    target = path / "rdstd.json" if (path / "rdstd.json").is_file() else path
    try:
        return target.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return target.as_posix()


def _listing() -> str:
    from rdstd.validate.registry import registry  # the checks import polars: only when they are listed

    reg = registry()
    lines = ["checks:"]
    for ident, cls in sorted(reg.checks.items()):
        pixels = " (pixels)" if cls.pixels else ""
        lines.append(f"  {ident} {cls.name} [{cls.severity}, {cls.evidence}]{pixels}: {cls.description}")
    lines.append("profiles: " + ", ".join(shipped_profiles()))
    lines += [f"plugin problem: {p}" for p in reg.problems]
    return "\n".join(lines)

"""``rdstd view DATASET``: episodes in Rerun, laid out from the schema, with the findings at their frames."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from rdstd.cli.output import emit, note
from rdstd.errors import UsageError

if TYPE_CHECKING:
    from rdstd.validate.model import Finding
    from rdstd.view.episodes import ViewSource

EXAMPLES = """
Examples:

\b
  rdstd view pusht-canonical --episode 3 --save ep3.rrd
  rdstd view pusht-canonical --episode 0 --episode 1 --save recordings/
  rdstd view lerobot/aloha_sim --serve
  rdstd view bridge_rlds --compare bridge-canonical --save compare/
  rdstd view s3://bucket/ds --findings report.json --save ep.rrd
"""


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="view", epilog=EXAMPLES)(view_command)


def view_command(
    dataset: str = typer.Argument(..., help="A canonical dataset (folder or s3://… URL) or any source rdstd reads."),
    episode: list[int] = typer.Option(
        [], "--episode", "-e", help="Episode index to show (repeat); default: the first."
    ),
    save: Path | None = typer.Option(
        None, "--save", help="Write .rrd files: OUT.rrd for one episode, or a folder (one file per episode)."
    ),
    serve: bool = typer.Option(False, "--serve", help="Serve the web viewer on 127.0.0.1 (free ports) until Ctrl-C."),
    compare: str | None = typer.Option(
        None, "--compare", help="Another dataset or source: its episodes side by side, matched by episode id."
    ),
    findings: Path | None = typer.Option(
        None, "--findings", help="A report from `rdstd validate --format json` (instead of running the validator)."
    ),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Run the default validation profile."),
    source_format: str | None = typer.Option(
        None, "--source-format", "-f", help="Source format (see `rdstd formats`); detected if omitted."
    ),
    spec: str | None = typer.Option(None, "--spec", help="Converter spec for a source (name or YAML path)."),
    rate: float | None = typer.Option(None, "--rate", help="Rate (Hz) of a source without timestamps."),
    memory_limit: str = typer.Option("2GiB", "--memory-limit", help="Memory the viewer or the web server may use."),
) -> None:
    """Show episodes in Rerun: cameras, per-joint plots with units, gripper state, task, end-effector pose, and the
    validator's findings at their frames. Sources are converted on the fly; nothing is written unless --save."""
    from rdstd.view import require_rerun

    require_rerun()
    from rdstd.view import session
    from rdstd.view.episodes import open_view

    if save is None and not serve and not session.has_display():
        raise UsageError(
            "no display to open the Rerun viewer on",
            hint="write recordings with --save OUT.rrd (then: rerun OUT.rrd on a machine with a screen), "
            "or serve the web viewer with --serve",
            situation="no-display",
        )
    with ExitStack() as stack:
        view = stack.enter_context(open_view(dataset, format_name=source_format, spec=spec, rate_hz=rate))
        other = stack.enter_context(open_view(compare)) if compare else None
        indices = episode or view.indices()[:1]
        found = _findings(view, findings, validate)
        other_found = _findings(other, None, validate) if other is not None and findings is None else []
        if save is not None:
            written = session.save(
                view,
                indices,
                save,
                findings=found,
                compare=other,
                compare_findings=other_found,
                progress=lambda f: note(f"wrote {f}"),
            )
            for n in written.notes:
                note(n)
            emit(f"{len(written.files)} recording(s) in {save}; open with: rerun {save}")
            if not serve:
                return
            files = written.files
        else:
            tmp = stack.enter_context(session.scratch())
            files = session.save(view, indices, tmp, findings=found, compare=other, compare_findings=other_found).files
        if serve:
            served = session.serve(files, memory_limit=memory_limit)
            stack.callback(served.stop)
            emit(f"serving {len(files)} recording(s) on {served.url} (Ctrl-C to stop)")
            served.process.wait()
        else:
            viewer = session.spawn(files, memory_limit=memory_limit)
            stack.callback(session.stop, viewer)
            viewer.wait()


def _findings(view: ViewSource, file: Path | None, validate: bool) -> list[Finding]:
    """The findings to show: read from ``file``, or from the default profile run now, or none."""
    from rdstd.view.episodes import DatasetView
    from rdstd.view.findings import read_findings, run_validation

    if file is not None:
        return read_findings(file)
    if not validate:
        return []
    if isinstance(view, DatasetView) and not isinstance(view.dataset.location, Path):
        note("findings: the validator reads local datasets; pass --findings report.json for one in object storage")
        return []
    note(f"validating {view.facts.location} (default profile; --no-validate skips, --findings FILE reuses a report)")
    return run_validation(view)

"""``rdstd split DATASET OUT --fractions train=0.9,val=0.1``: deterministic splits, duplicates kept together."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json

EXAMPLES = """
Examples:

  rdstd split bridge-canonical bridge-split --fractions train=0.9,val=0.1 --seed 0

  rdstd split ds ds-split --fractions train=0.8,val=0.1,test=0.1 --by task

  rdstd split ds ds-split --assign lists.json        ({"val": ["episode-id", …], "train": […]})
"""


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="split", epilog=EXAMPLES)(split_command)


def split_command(
    dataset: Path = typer.Argument(..., help="Canonical rdstd dataset."),
    out: Path = typer.Argument(..., help="Output dataset (the same frames, hard-linked; new split column)."),
    fractions: str | None = typer.Option(None, "--fractions", help="NAME=FRACTION,… summing to 1."),
    assign: Path | None = typer.Option(None, "--assign", help="JSON file: split name -> list of episode ids."),
    by: str | None = typer.Option(None, "--by", help="'task': split each task by the fractions."),
    seed: int = typer.Option(0, "--seed", help="Seed of the deterministic shuffle."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it is a canonical dataset."),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Assign every episode a split; duplicate episodes (same content hash) always land in the same one."""
    from rdstd.errors import UsageError
    from rdstd.ops.split import parse_fractions, split

    if by not in (None, "task"):
        raise UsageError(
            f"--by {by!r}: only 'task' is supported",
            hint="leave --by out, or pass --by task",
            situation="split-by-unknown",
        )
    lists = None
    if assign is not None:
        try:
            lists = json.loads(assign.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"{assign}: cannot read the lists ({exc})",
                hint='--assign takes a JSON map of split name to episode ids, e.g. {"val": ["id", …]}',
                situation="assign-file-unreadable",
            ) from exc
    report = split(
        dataset,
        out,
        fractions=parse_fractions(fractions) if fractions else None,
        assign=lists,
        by_task=by == "task",
        seed=seed,
        overwrite=overwrite,
    )
    if output_format == OutputFormat.JSON:
        emit_json(report.as_dict())
        return
    emit(f"split {dataset} -> {report.output}: " + ", ".join(f"{k} {v}" for k, v in sorted(report.splits.items())))
    emit(f"  duplicates: {report.duplicate_groups} group(s), {report.duplicate_episodes} episodes, each in one split")
    emit(f"next: rdstd info {report.output}")

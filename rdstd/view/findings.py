"""The validator's findings on the timeline: each as a text-log entry at its first frame, on the entity of the
feature it concerns, and as a state lane that covers its whole frame range."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rerun as rr

from rdstd.schema.episode import EpisodeMeta
from rdstd.schema.features import VectorFeature
from rdstd.validate.model import Finding, Severity
from rdstd.view import paths
from rdstd.view.episodes import Feature, ViewSource
from rdstd.view.log import nanoseconds

LEVELS = {Severity.ERROR: "ERROR", Severity.WARNING: "WARN", Severity.INFO: "INFO"}


def read_findings(file: Path) -> list[Finding]:
    """The findings of a report written by ``rdstd validate --format json``."""
    from rdstd.validate.exclude import read_report

    return list(read_report(file).findings)


def run_validation(view: ViewSource) -> list[Finding]:
    """The findings of the default validation profile on the dataset or source being viewed."""
    from rdstd.validate import validate

    opts = view.options
    report = validate(
        view.facts.location,
        format_name=opts.get("format_name"),
        spec=opts.get("spec"),
        rate_hz=opts.get("rate_hz"),
    )
    return list(report.findings)


def for_episode(findings: Sequence[Finding], index: int, meta: EpisodeMeta) -> list[Finding]:
    """The findings about this episode (matched by stable id when the finding has one), and dataset-wide ones."""
    return [
        f
        for f in findings
        if (f.episode_index is None and f.episode_id is None)
        or (f.episode_id == meta.episode_id if f.episode_id is not None else f.episode_index == index)
    ]


def entity(finding: Finding, features: dict[str, Feature], prefix: str = "") -> str:
    """Where a finding goes: under the plot of the dimensions it names (``…/<role>/findings``), under the camera,
    or the episode-wide findings log."""
    f = features.get(finding.feature or "")
    if isinstance(f, VectorFeature):
        roles = paths.roles(f)
        dims = [d for d in finding.dims if 0 <= d < len(f.dims)]
        role = f.dims[dims[0]].role if dims else next(iter(roles))
        return paths.join(paths.vector(prefix, finding.feature or "", role), paths.FINDINGS)
    if f is not None:
        return paths.join(paths.camera(prefix, finding.feature or ""), paths.FINDINGS)
    return paths.join(prefix, paths.FINDINGS)


def text(finding: Finding) -> str:
    """One line: check, name, message, where, and what to do."""
    where = f" (frames {finding.frames[0]}–{finding.frames[1]})" if finding.frames else ""
    dims = f" [{', '.join(finding.dim_names)}]" if finding.dim_names else ""
    hint = f" — {finding.hint}" if finding.hint else ""
    return f"{finding.check} {finding.name}{dims}: {finding.message}{where}{hint}"


#: The lane's state where no finding covers the frame.
CLEAR = "no finding"


def lane_changes(rows: Sequence[tuple[int, Finding]], n: int) -> list[tuple[int, str]]:
    """(frame, state) where the set of findings covering a frame changes, for findings with a frame range among
    ``rows`` in an episode of ``n`` frames; the state names the checks and severities (``CLEAR`` when none)."""
    spans = [
        (max(f.frames[0], 0), min(max(f.frames[1], f.frames[0] + 1), n), f"{f.check} {f.severity.value}")
        for _, f in rows
        if f.frames
    ]
    changes: list[tuple[int, str]] = []
    for at in sorted({b for a, z, _ in spans for b in (a, z) if b < n}):
        state = ", ".join(sorted({label for a, z, label in spans if a <= at < z})) or CLEAR
        if not changes or changes[-1][1] != state:
            changes.append((at, state))
    if changes and changes[0][0] > 0:
        changes.insert(0, (0, CLEAR))
    return changes


def log_findings(
    rec: rr.RecordingStream,
    findings: Sequence[Finding],
    features: dict[str, Feature],
    timestamps: npt.NDArray[np.float64],
    prefix: str = "",
) -> int:
    """Log each finding as a text-log entry at its first frame (frame 0 for episode- or dataset-wide ones), on its
    entity, and the findings with a frame range as a state lane over those frames (``paths.finding_lane``); returns
    how many were logged."""
    if not len(timestamps):
        return 0
    groups: dict[str, list[tuple[int, Finding]]] = {}
    for f in findings:
        frame = min(max(f.frames[0] if f.frames else 0, 0), len(timestamps) - 1)
        groups.setdefault(entity(f, features, prefix), []).append((frame, f))
    for path, rows in groups.items():
        rows.sort(key=lambda r: r[0])
        at = np.array([r[0] for r in rows], dtype=np.int64)
        rec.send_columns(
            path,
            strict=True,
            indexes=[rr.TimeColumn("frame", sequence=at), rr.TimeColumn("time", duration=nanoseconds(timestamps[at]))],
            columns=rr.TextLog.columns(text=[text(f) for _, f in rows], level=[LEVELS[f.severity] for _, f in rows]),
        )
        changes = lane_changes(rows, len(timestamps))
        if changes:
            frames = np.array([c[0] for c in changes], dtype=np.int64)
            rec.send_columns(
                paths.finding_lane(prefix, path),
                strict=True,
                indexes=[
                    rr.TimeColumn("frame", sequence=frames),
                    rr.TimeColumn("time", duration=nanoseconds(timestamps[frames])),
                ],
                columns=rr.StateChange.columns(state=[c[1] for c in changes]),
            )
    return len(findings)

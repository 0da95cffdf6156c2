"""One recording per episode: properties for provenance, the schema's blueprint, columnar streams, findings."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

import rdstd
from rdstd.schema.features import VectorFeature
from rdstd.validate.model import Finding
from rdstd.view.blueprint import blueprint
from rdstd.view.episodes import DatasetFacts, ViewEpisode
from rdstd.view.findings import for_episode, log_findings
from rdstd.view.log import EpisodeLogger, unit_names
from rdstd.view.urdf import Robot, urdf_file

APPLICATION_ID = "rdstd"
#: What a recording is sent to: called with the stream and its blueprint before anything is logged.
Sink = Callable[[rr.RecordingStream, rrb.Blueprint], None]


@dataclass(frozen=True)
class Side:
    """One dataset's episode in a recording: under ``prefix`` (``""`` alone; ``a``/``b`` when comparing)."""

    prefix: str
    facts: DatasetFacts
    episode: ViewEpisode
    findings: Sequence[Finding] = ()


def recording_id(facts: DatasetFacts, index: int) -> str:
    """``<dataset name>/episode_NNNNNN``: stable, so a re-logged episode replaces the old one in a viewer."""
    return f"{facts.name or 'dataset'}/episode_{index:06d}"


def file_name(facts: DatasetFacts, index: int) -> str:
    """The .rrd file name of one episode."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", facts.name or "dataset").strip("._") or "dataset"
    return f"{safe}_episode_{index:06d}.rrd"


def dataset_properties(facts: DatasetFacts) -> rr.AnyValues:
    """Provenance as recording properties: source format, robot, rate, units per feature, rdstd version."""
    robots = [f"{e.name} ({e.robot_type.value})" for e in facts.embodiments] or ["unknown"]
    values: dict[str, Any] = {
        "name": facts.name,
        "location": facts.location,
        **facts.provenance,
        "robot": robots,
        "urdf": [e.urdf or "unknown" for e in facts.embodiments] or ["unknown"],
        "rate": f"{facts.rate_hz:g} Hz" if facts.rate_hz is not None else "unknown (varies)",
        "viewed_with_rdstd": rdstd.__version__,
    }
    if facts.rate_hz is not None:  # a property keeps one type: the number only when there is one
        values["rate_hz"] = facts.rate_hz
    return rr.AnyValues(**values)


def units_properties(facts: DatasetFacts) -> rr.AnyValues:
    """Per vector feature, the unit of each dimension (``unknown`` where the schema does not know it)."""
    units: dict[str, Any] = {k: unit_names(f) for k, f in facts.features.items() if isinstance(f, VectorFeature)}
    return rr.AnyValues(**units)


def episode_properties(side: Side) -> rr.AnyValues:
    """The episode's index, stable id, task, split, success and where it came from."""
    m = side.episode.meta
    return rr.AnyValues(
        episode_index=side.episode.index,
        episode_id=m.episode_id,
        task=m.task,
        split=m.split,
        success="unknown" if m.success is None else str(m.success).lower(),
        source_path=m.source_path or "unknown",
        source_key=m.source_key or "unknown",
    )


def record(sides: Sequence[Side], sink: Sink) -> rr.RecordingStream:
    """Log ``sides`` (one episode, or two compared) into one new recording sent to ``sink``; returns it flushed
    (the caller disconnects it)."""
    first = sides[0]
    rec = rr.RecordingStream(APPLICATION_ID, recording_id=recording_id(first.facts, first.episode.index))
    has_robot = any(urdf_file(s.facts) for s in sides)
    found = [for_episode(s.findings, s.episode.index, s.episode.meta) for s in sides]
    ranges = any(f.frames for fs in found for f in fs)
    layout = (
        blueprint(first.facts.features, robot=has_robot, ranges=ranges)
        if len(sides) == 1
        else blueprint([(s.prefix, s.facts.features) for s in sides], robot=has_robot, ranges=ranges)
    )
    sink(rec, layout)
    title = " vs ".join(f"{s.facts.name} episode {s.episode.index}" for s in sides)
    rec.send_recording_name(title)
    for s, episode_findings in zip(sides, found, strict=True):
        tag = f"{s.prefix}." if s.prefix else ""
        rec.send_property(f"{tag}dataset", dataset_properties(s.facts))
        if any(isinstance(f, VectorFeature) for f in s.facts.features.values()):
            rec.send_property(f"{tag}units", units_properties(s.facts))
        rec.send_property(f"{tag}episode", episode_properties(s))
        logger = EpisodeLogger(rec, s.facts.features, s.prefix)
        logger.begin(s.episode.meta)
        urdf = urdf_file(s.facts)
        robot = Robot.load(rec, urdf, s.facts.features, s.prefix) if urdf is not None else None
        for chunk in s.episode.chunks:
            logger.chunk(chunk)
            if robot is not None and chunk.length:
                robot.chunk(rec, chunk.vectors, logger.index(chunk.start, chunk.timestamps))
        logger.finish()
        stamps = np.concatenate(logger.timestamps) if logger.timestamps else np.zeros(0)
        log_findings(rec, episode_findings, s.facts.features, stamps, s.prefix)
    rec.flush()
    return rec

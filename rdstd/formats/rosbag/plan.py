"""The alignment plan of a bag: which topic fields become which per-step streams, and how each meets the master clock.

The generic converter spec (``rdstd.schema.spec.ConverterSpec``) says what source keys *mean*; it has no place for
"read field F of topic T on clock C, sample it by method M within A ms". That lives here, in a YAML file next to
the bag (``<bag>.rdstd.yaml``: ``run.bag.rdstd.yaml``, ``run_mcap.rdstd.yaml`` beside a rosbag2 folder) or passed in
code (:class:`~rdstd.formats.rosbag.reader.RosbagSource`). Its stream names are the source keys a converter spec
maps. Every choice is stated; there are no defaults for the clock, the method or the age limit::

    master: {topic: /camera/color/image_raw/compressed, clock: header}     # or {fps: 30}
    streams:
      joints: {topic: /joint_states, field: position, names: [j1, j2], clock: header,
               method: interpolate, max_age_ms: 20}
      wrist:  {topic: /camera/color/image_raw/compressed, clock: header, method: nearest, max_age_ms: 1}
      ee:     {tf: {target: world, source: tool0, max_extrapolation_ms: 20}}
    task: {topic: /task}                    # or {text: "pick the cube"} or {sidecar: task.txt}
    episodes: {split_on: {topic: /episode_start}}   # or {gap_s: 2.0}; without it one bag is one episode
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from rdstd.errors import MappingError
from rdstd.schema.features import StrictModel
from rdstd.schema.validation import first_problem

SIDECAR_SUFFIX = ".rdstd.yaml"


class MasterClock(StrictModel):
    """The times every stream is sampled at: one topic's messages (on a stated clock), or a fixed rate."""

    topic: str | None = None
    clock: Literal["header", "receive"] | None = None
    fps: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> MasterClock:
        if (self.topic is None) == (self.fps is None):
            raise ValueError("give either topic (with clock) or fps")
        if self.topic is not None and self.clock is None:
            raise ValueError("a master topic needs its clock: header or receive")
        return self


class TfLookup(StrictModel):
    """A pose feature from the TF tree: ``source`` frame in ``target`` frame, xyz + quaternion xyzw (7 values)."""

    target: str
    source: str
    max_extrapolation_ms: float = Field(ge=0)


class StreamPlan(StrictModel):
    """One per-step stream: a topic field sampled at the master times, or a TF lookup at them."""

    topic: str | None = None
    field: str | None = Field(default=None, description="field path, e.g. position[0:7] or pose.position")
    names: list[str] | None = Field(default=None, description="JointState: pick these joints by name, in order")
    clock: Literal["header", "receive"] | None = None
    method: Literal["interpolate", "hold", "nearest"] | None = None
    max_age_ms: float | None = Field(default=None, gt=0)
    quaternions: list[int] = Field(default_factory=list, description="start columns of xyzw groups (slerp)")
    tf: TfLookup | None = None

    @model_validator(mode="after")
    def _complete(self) -> StreamPlan:
        if (self.topic is None) == (self.tf is None):
            raise ValueError("a stream reads either a topic or a tf lookup")
        if self.topic is not None and (self.clock is None or self.method is None or self.max_age_ms is None):
            raise ValueError("a topic stream states clock, method and max_age_ms (no silent defaults)")
        return self


class TaskPlan(StrictModel):
    """Where the task text comes from: a topic's (first) String message, a fixed text, or a text file."""

    topic: str | None = None
    text: str | None = None
    sidecar: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TaskPlan:
        if sum(x is not None for x in (self.topic, self.text, self.sidecar)) != 1:
            raise ValueError("give exactly one of topic, text, sidecar")
        return self


class SplitOn(StrictModel):
    """An event topic: each of its messages (any type) starts a new episode at its receive time."""

    topic: str


class EpisodeRule(StrictModel):
    """How one recording (a bag, or a split set) is cut into episodes, besides its clock resets: at each message of
    an event topic (``split_on``), or wherever the master stream pauses for longer than ``gap_s`` seconds."""

    split_on: SplitOn | None = None
    gap_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> EpisodeRule:
        if (self.split_on is None) == (self.gap_s is None):
            raise ValueError("give either split_on: {topic: ...} or gap_s")
        return self


class RosbagPlan(StrictModel):
    """A bag's alignment plan (see the module docs)."""

    master: MasterClock
    streams: dict[str, StreamPlan]
    task: TaskPlan | None = None
    #: One bag (or one split set) is one episode unless ``episodes`` cuts it (clock resets always do).
    episode: Literal["bag"] = "bag"
    episodes: EpisodeRule | None = Field(default=None, description="cut the recording at event messages or gaps")
    types_dir: str | None = Field(default=None, description="folder of .msg/.idl files for types the bag lacks")

    @model_validator(mode="after")
    def _streams(self) -> RosbagPlan:
        if not self.streams:
            raise ValueError("map at least one stream")
        return self


def sidecar_path(bag: Path) -> Path:
    """Where a bag's plan is looked for: ``<bag path>.rdstd.yaml`` (beside a file or a rosbag2 folder)."""
    return bag.parent / (bag.name + SIDECAR_SUFFIX)


def parse_plan(data: Any, origin: str) -> RosbagPlan:
    """Validate a plan; errors name ``origin`` and the failing field."""
    if not isinstance(data, dict):
        raise MappingError(f"{origin}: an alignment plan must be a YAML mapping", situation="plan-not-a-mapping")
    try:
        return RosbagPlan.model_validate(data)
    except ValidationError as exc:
        where, problem = first_problem(exc)
        raise MappingError(
            f"{origin}: invalid alignment plan at {where}: {problem}",
            hint="see docs/formats/rosbag.md; `rdstd info BAG --format json` shows a draft under alignment_draft",
            situation="plan-invalid",
        ) from exc


def load_plan(path: Path) -> RosbagPlan:
    """Read and validate a plan YAML file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML ({' '.join(str(exc).split())})", situation="plan-not-yaml") from exc
    return parse_plan(data, str(path))

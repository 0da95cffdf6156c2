"""The episode table every LeRobot version reduces to: where each episode's rows and video segments are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class VideoSegment:
    """One camera of one episode: the file, and the episode's time range inside it (seconds)."""

    path: Path
    from_s: float
    to_s: float | None = None


@dataclass(frozen=True)
class EpisodeEntry:
    """One episode as the metadata describes it.

    ``rows`` is the half-open range of the global ``index`` column (v3.0 ``dataset_from/to_index``); None when
    the data file holds this episode only (v2.x).
    """

    episode_index: int
    length: int
    tasks: tuple[str, ...]
    data_file: Path
    rows: tuple[int, int] | None = None
    videos: dict[str, VideoSegment] = field(default_factory=dict)

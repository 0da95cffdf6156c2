"""LeRobot v2.0 / v2.1 metadata: ``episodes.jsonl``, ``tasks.jsonl``, one parquet and one mp4 per episode."""

from __future__ import annotations

from typing import Any

from rdstd.errors import CorruptSourceError
from rdstd.formats.lerobot.episodes import EpisodeEntry, VideoSegment
from rdstd.formats.lerobot.meta import LeRobotInfo, read_jsonl


def read_tasks(info: LeRobotInfo) -> dict[int, str]:
    """``meta/tasks.jsonl``: task index -> text (empty when the file is absent)."""
    file = info.root / "meta/tasks.jsonl"
    if not file.is_file():
        return {}
    tasks = {}
    for row in read_jsonl(file):
        try:
            tasks[int(row["task_index"])] = str(row["task"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptSourceError(
                f"{file}: a row lacks task_index/task ({row})", hint="fix the file", situation="episode-table-invalid"
            ) from exc
    return tasks


def read_episodes(info: LeRobotInfo) -> list[EpisodeEntry]:
    """``meta/episodes.jsonl`` with each episode's files from the path templates."""
    file = info.root / "meta/episodes.jsonl"
    entries = []
    videos = [f.key for f in info.of_kind("video")]
    for row in read_jsonl(file):
        try:
            index, length = int(row["episode_index"]), int(row["length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptSourceError(
                f"{file}: a row lacks episode_index/length ({row})",
                hint="fix the file",
                situation="episode-table-invalid",
            ) from exc
        fields: dict[str, Any] = {
            "episode_chunk": index // info.chunks_size,
            "chunk_index": index // info.chunks_size,
            "episode_index": index,
        }
        segments = {}
        for key in videos:
            assert info.video_path is not None
            path = info.path(info.video_path, "video_path", video_key=key, **fields)
            segments[key] = VideoSegment(path, 0.0, None)
        tasks = row.get("tasks") or []
        entries.append(
            EpisodeEntry(
                episode_index=index,
                length=length,
                tasks=tuple(str(t) for t in (tasks if isinstance(tasks, list) else [tasks])),
                data_file=info.path(info.data_path, "data_path", **fields),
                videos=segments,
            )
        )
    return entries

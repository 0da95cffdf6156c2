"""LeRobot v3.0 metadata: ``meta/episodes/*/*.parquet`` and ``meta/tasks.parquet``; files shared by episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rdstd.errors import CorruptSourceError, SourceNotFoundError
from rdstd.formats.lerobot.episodes import EpisodeEntry, VideoSegment
from rdstd.formats.lerobot.meta import LeRobotInfo
from rdstd.io.parquet import PARQUET_ERRORS
from rdstd.lfs import raise_if_pointer


def _read(file: Path, root: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        if columns is not None:
            have = set(pq.read_schema(file).names)
            columns = [c for c in columns if c in have]
        return pq.read_table(file, columns=columns)
    except PARQUET_ERRORS as exc:
        raise_if_pointer(file, root)
        raise CorruptSourceError(
            f"{file}: unreadable parquet ({exc})", hint="re-download the dataset", situation="parquet-unreadable"
        ) from exc


def read_tasks(info: LeRobotInfo) -> dict[int, str]:
    """``meta/tasks.parquet``: task index -> text; the text is the pandas index (``__index_level_0__``) or ``task``."""
    file = info.root / "meta/tasks.parquet"
    if not file.is_file():
        return {}
    table = _read(file, info.root)
    text_col = next((c for c in ("task", "__index_level_0__") if c in table.column_names), None)
    if "task_index" not in table.column_names or text_col is None:
        raise CorruptSourceError(
            f"{file}: expected a task_index column and the task text as index or 'task' (has {table.column_names})",
            hint="re-download the dataset",
            situation="episode-table-invalid",
        )
    return {int(i): str(t) for i, t in zip(table["task_index"].to_pylist(), table[text_col].to_pylist(), strict=True)}


def read_episodes(info: LeRobotInfo) -> list[EpisodeEntry]:
    """Every row of ``meta/episodes/*/*.parquet`` (stats columns not read), with files from the templates."""
    files = sorted((info.root / "meta/episodes").glob("*/*.parquet"))
    if not files:
        raise SourceNotFoundError(
            f"{info.root}: no meta/episodes/*/*.parquet (a LeRobot v3.0 dataset needs them)",
            hint="re-download the dataset, or check that this is its root folder",
            situation="metadata-file-missing",
        )
    videos = [f.key for f in info.of_kind("video")]
    columns = ["episode_index", "length", "tasks", "data/chunk_index", "data/file_index"]
    columns += ["dataset_from_index", "dataset_to_index"]
    for key in videos:
        columns += [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    entries: list[EpisodeEntry] = []
    for file in files:
        rows = _read(file, info.root, columns).to_pylist()
        for row in rows:
            entries.append(_entry(info, file, row, videos))
    return entries


def _entry(info: LeRobotInfo, file: Path, row: dict[str, Any], videos: list[str]) -> EpisodeEntry:
    try:
        index = int(row["episode_index"])
        data_file = info.path(
            info.data_path,
            "data_path",
            chunk_index=int(row["data/chunk_index"]),
            file_index=int(row["data/file_index"]),
            episode_index=index,
        )
        segments = {}
        for key in videos:
            assert info.video_path is not None
            prefix = f"videos/{key}/"
            path = info.path(
                info.video_path,
                "video_path",
                video_key=key,
                chunk_index=int(row[prefix + "chunk_index"]),
                file_index=int(row[prefix + "file_index"]),
                episode_index=index,
            )
            segments[key] = VideoSegment(
                path, float(row[prefix + "from_timestamp"]), float(row[prefix + "to_timestamp"])
            )
        tasks = row.get("tasks") or []
        lo, hi = row.get("dataset_from_index"), row.get("dataset_to_index")
        return EpisodeEntry(
            episode_index=index,
            length=int(row["length"]),
            tasks=tuple(str(t) for t in tasks),
            data_file=data_file,
            rows=(int(lo), int(hi)) if lo is not None and hi is not None else None,
            videos=segments,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptSourceError(
            f"{file}: episode row lacks or has an invalid {exc} ({ {k: v for k, v in row.items() if k != 'tasks'} })",
            hint="re-download the dataset",
            situation="episode-table-invalid",
        ) from exc

"""An opened LeRobot dataset (v2.0, v2.1 or v3.0): one API over every version.

Dataset-level problems (unsupported version, unreadable metadata, templates leaving the folder, totals that
disagree with the episode table) raise when the dataset is opened. Episode-level problems (a missing parquet
or mp4, a row count that is not ``length``, a video whose frames do not match the timestamps or whose codec
is not the declared one) raise :class:`EpisodeError` from :meth:`LeRobotSource.read_episode`, so
``--on-error skip`` can leave that episode out and list it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from rdstd.errors import CorruptSourceError, EpisodeError
from rdstd.formats.base import EpisodeRef, SourceDataset, SourceEpisode, SourceInfo, SourceKey
from rdstd.formats.lerobot import integrity, v2, v3
from rdstd.formats.lerobot.episodes import EpisodeEntry
from rdstd.formats.lerobot.inventory import UNKNOWN_SPLIT, Inventory, Splits, read_splits, take_inventory
from rdstd.formats.lerobot.meta import INDEX_KEYS, Feature, LeRobotInfo, read_info
from rdstd.formats.lerobot.modality import Modality, read_modality
from rdstd.formats.lerobot.video import VideoChecker
from rdstd.io.parquet import PARQUET_ERRORS
from rdstd.lfs import raise_if_pointer
from rdstd.media import images
from rdstd.schema.episode import EncodedFrames, ImageFrames
from rdstd.schema.vocabulary import ImageCodec

#: Data files whose row-group layout and episode column are kept open (v3.0 files hold many episodes).
_DATA_FILE_CACHE = 2


@dataclass(frozen=True)
class _Rows:
    """One episode's rows, and where they came from (for the footer statistics check)."""

    table: pa.Table
    file: Path
    metadata: pq.FileMetaData
    row_groups: list[int]
    #: The rows are exactly those row groups (nothing of another episode in them).
    whole: bool


#: A data file that cannot be read: damaged bytes, or no ``episode_index`` column (KeyError).
_DATA_FILE_ERRORS: tuple[type[Exception], ...] = (*PARQUET_ERRORS, KeyError)


class _DataFile:
    """A v3.0 data file: its ``episode_index`` column and row-group starts, to read one episode's rows."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        try:
            self.handle = pq.ParquetFile(path, page_checksum_verification=True)
            self.episodes = self.handle.read(columns=["episode_index"])["episode_index"].to_numpy()
        except _DATA_FILE_ERRORS as exc:
            raise_if_pointer(path, root)
            raise CorruptSourceError(
                f"{path}: unreadable data parquet ({exc})", hint="re-download the file", situation="parquet-unreadable"
            ) from exc
        meta = self.handle.metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def rows(self, episode_index: int, columns: list[str]) -> _Rows:
        """The rows of one episode (must be contiguous)."""
        found = np.flatnonzero(self.episodes == episode_index)
        if not found.size:
            raise EpisodeError(
                f"{self.path} holds no rows of episode {episode_index}",
                hint="the episode table points at the wrong data file; skip with --on-error skip",
                situation="episode-rows-missing",
            )
        first, last = int(found[0]), int(found[-1])
        if last - first + 1 != found.size:
            raise EpisodeError(
                f"{self.path}: the rows of episode {episode_index} are not contiguous",
                situation="episode-rows-not-contiguous",
            )
        g0 = int(np.searchsorted(self.starts, first, side="right")) - 1
        g1 = int(np.searchsorted(self.starts, last, side="right")) - 1
        groups = list(range(g0, g1 + 1))
        table = self.handle.read_row_groups(groups, columns=columns)
        whole = first == int(self.starts[g0]) and last + 1 == int(self.starts[g1 + 1])
        return _Rows(
            table.slice(first - int(self.starts[g0]), found.size), self.path, self.handle.metadata, groups, whole
        )


class LeRobotSource(SourceDataset):
    """A LeRobot dataset of any supported version, streamed episode by episode."""

    format = "lerobot"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.meta: LeRobotInfo = read_info(path)
        reader = v2 if self.meta.major == 2 else v3
        self.tasks: dict[int, str] = reader.read_tasks(self.meta)
        self.entries: list[EpisodeEntry] = reader.read_episodes(self.meta)
        sizes = {f.key: math.prod(f.shape) for f in self.meta.of_kind("vector")}
        self.modality: Modality | None = read_modality(path, sizes)
        self.problems: list[str] = []
        self._check_totals()
        self.splits: Splits = read_splits(self.meta.raw.get("splits"), [e.episode_index for e in self.entries])
        self.inventory: Inventory = take_inventory(path, self.entries)
        self.problems += self.splits.problems + self.inventory.problems()
        self._videos = VideoChecker(self.meta.fps)
        self._data_files: OrderedDict[Path, _DataFile] = OrderedDict()
        self._columns = [f.key for f in self.meta.features.values() if f.kind not in ("video",)]
        self._recorded: dict[int, dict[str, Any]] | None = None

    # -- dataset level -----------------------------------------------------------------------------------------

    def _check_totals(self) -> None:
        info, file = self.meta, self.path / "meta/info.json"
        indices = [e.episode_index for e in self.entries]
        if len(set(indices)) != len(indices):
            dupes = sorted({i for i in indices if indices.count(i) > 1})[:5]
            raise CorruptSourceError(
                f"{self.path}: episode indices listed twice: {dupes}",
                hint="fix the episode table",
                situation="episode-table-invalid",
            )
        frames = sum(e.length for e in self.entries)
        table = "meta/episodes.jsonl" if info.major == 2 else "meta/episodes/"
        if info.total_episodes >= 0 and info.total_episodes != len(self.entries):
            raise CorruptSourceError(
                f"{file}: total_episodes is {info.total_episodes} but {table} lists {len(self.entries)} episodes",
                hint=f"set total_episodes to {len(self.entries)} if the episode table is right",
                situation="totals-mismatch",
            )
        if info.total_frames >= 0 and info.total_frames != frames:
            raise CorruptSourceError(
                f"{file}: total_frames is {info.total_frames} but the episodes in {table} have {frames} frames",
                hint=f"set total_frames to {frames} if the episode table is right",
                situation="totals-mismatch",
            )
        if info.major == 2:
            chunks = -(-len(self.entries) // info.chunks_size)
            if info.raw.get("total_chunks") not in (None, chunks):
                self.problems.append(f"total_chunks is {info.raw['total_chunks']} for {chunks} chunk(s) of episodes")
            videos = len(self.entries) * sum(1 for _ in info.of_kind("video"))
            if info.raw.get("total_videos") not in (None, videos):
                self.problems.append(
                    f"total_videos is {info.raw['total_videos']}, the episodes and cameras make {videos}"
                )

    def _key(self, feature: Feature) -> SourceKey:
        note = ""
        if feature.kind == "video":
            info = feature.video_info
            note = f"video {info.get('video.codec', '?')} {info.get('video.pix_fmt', '')}".strip()
            if self.modality:
                renamed = [n for n, k in self.modality.videos.items() if k == feature.key]
                note += f"; GR00T name {renamed[0]}" if renamed else ""
            return SourceKey(feature.key, "image", feature.shape, "uint8", note=note, codec=ImageCodec.VIDEO)
        if feature.kind == "image":
            return SourceKey(feature.key, "image", feature.shape, "uint8", note="PNG in parquet", codec=ImageCodec.PNG)
        if feature.kind == "timestamp":
            return SourceKey(feature.key, "timestamp", (), feature.dtype, note="seconds from episode start")
        if feature.kind == "text" or self._is_annotation(feature):
            return SourceKey(
                feature.key, "text", (), "str", note="task text per frame" if feature.dtype != "str" else ""
            )
        names = feature.names
        if self.modality:
            names = self.modality.dim_names(feature.key, math.prod(feature.shape), names)
            groups = self.modality.groups_of(feature.key)
            if groups:
                note = "GR00T groups: " + ", ".join(f"{g.name}[{g.start}:{g.end}]" for g in groups)
        return SourceKey(feature.key, "vector", feature.shape, feature.dtype, names=names, note=note)

    def _is_annotation(self, feature: Feature) -> bool:
        return feature.key.startswith("annotation.") and feature.dtype.startswith("int")

    def info(self) -> SourceInfo:
        """Version, counts, keys (with joint names and GR00T groups) and the metadata rdstd does not map."""
        keys = [self._key(f) for f in self.meta.features.values() if f.kind != "index"]
        cameras = {f.key: f.video_info for f in self.meta.of_kind("video")}
        extra: dict[str, Any] = {
            "codebase_version": self.meta.version,
            "robot_type": self.meta.robot_type,
            "fps": self.meta.fps,
            "video_info": cameras,
            "tasks": len(self.tasks),
        }
        extra["splits"] = {name: f"{a}:{b}" for name, (a, b) in self.splits.ranges.items()}
        extra |= self.inventory.extra()
        if self.modality is not None:
            extra["modality"] = self.modality.raw
        if self.problems:
            extra["problems"] = list(self.problems)
        return SourceInfo(
            format="lerobot",
            version=self.meta.version,
            path=str(self.path),
            episodes=len(self.entries),
            frames=sum(e.length for e in self.entries),
            keys=keys,
            rate_hz=self.meta.fps,
            extra=extra,
        )

    def episode_refs(self) -> Sequence[EpisodeRef]:
        """One ref per episode of the episode table, keyed ``episode_NNNNNN`` by its LeRobot episode index."""
        return [
            EpisodeRef(i, f"episode_{e.episode_index:06d}", str(e.data_file.relative_to(self.path)), e.length)
            for i, e in enumerate(self.entries)
        ]

    # -- episodes ----------------------------------------------------------------------------------------------

    def _cross_check(self, entry: EpisodeEntry, rows: _Rows, vectors: dict[str, npt.NDArray[Any]]) -> None:
        """The values read against the footer's statistics and LeRobot's per-episode ones (see :mod:`.integrity`)."""
        numeric = dict(vectors)
        for key in INDEX_KEYS:
            if key in rows.table.column_names:
                numeric[key] = rows.table[key].to_numpy()
        integrity.check_footer_stats(
            rows.file, rows.metadata, rows.row_groups, rows.whole, numeric, entry.episode_index
        )
        if self._recorded is None:
            vector_keys = [f.key for f in self.meta.of_kind("vector")]
            self._recorded = (
                integrity.recorded_stats_v21(self.path)
                if self.meta.major == 2
                else integrity.recorded_stats_v3(self.path, vector_keys)
            )
        recorded = self._recorded.get(entry.episode_index)
        if recorded:
            where = "meta/episodes_stats.jsonl" if self.meta.major == 2 else "the episodes table's stats/*"
            vector_stats = {k: v for k, v in recorded.items() if k in vectors and k != "timestamp"}
            integrity.check_episode_stats(rows.file, vector_stats, vectors, entry.episode_index, where)

    def _camera_stats(self, episode_index: int) -> dict[str, Any]:
        """LeRobot's own statistics of this episode's video cameras (v2.1 ``episodes_stats.jsonl``), as recorded.

        They describe the very frames a camera kept as video holds, so an export can reuse them instead of
        decoding the video again. Empty for v3.0 sources (their stats columns are not read here) or when absent.
        """
        if self.meta.major != 2 or not self._recorded:
            return {}
        recorded = self._recorded.get(episode_index) or {}
        videos = {f.key for f in self.meta.features.values() if f.kind == "video"}
        return {k: v for k, v in recorded.items() if k in videos and isinstance(v, dict)}

    def _split_and_notes(self, ref: EpisodeRef, entry: EpisodeEntry) -> dict[str, Any]:
        """The episode's split and the notes the convert report counts (dataset-level ones on the first episode)."""
        split = self.splits.of(entry.episode_index)
        notes = list(self.problems) if ref.index == 0 else []
        if split == UNKNOWN_SPLIT:
            notes.append(
                "episode in no split of meta/info.json: split unknown"
                if self.splits.ranges or self.splits.problems
                else "meta/info.json has no splits: split unknown"
            )
        return {"split": split, "notes": notes} if notes else {"split": split}

    def _table(self, entry: EpisodeEntry, where: str) -> _Rows:
        file = entry.data_file
        if not file.is_file():
            raise EpisodeError(
                f"{where}: data file {file} is missing",
                hint="the dataset is incomplete or data_path does not match the files; skip with --on-error skip",
                situation="data-file-missing",
            )
        try:
            handle = pq.ParquetFile(file, page_checksum_verification=True) if self.meta.major == 2 else None
            data = self._data_files.get(file)  # v3.0: files shared by many episodes, kept open
            # (v2: one file per episode, its footer read once, here)
            schema = handle.schema_arrow if handle else data.handle.schema_arrow if data else pq.read_schema(file)
            missing = [c for c in self._columns if c not in schema.names]
            if missing:
                raise EpisodeError(
                    f"{where}: {file} lacks the columns {missing} that meta/info.json declares",
                    situation="columns-missing",
                )
            if handle is not None:
                groups = list(range(handle.metadata.num_row_groups))
                # one small file an episode: reading it on this thread costs less than Arrow's pool (measured 4.3
                # against 5.1 ms for G1's 20 files)
                rows = handle.read(columns=self._columns, use_threads=False)
                return _Rows(rows, file, handle.metadata, groups, True)
            if data is None:
                data = _DataFile(file, self.path)
                self._data_files[file] = data
                if len(self._data_files) > _DATA_FILE_CACHE:
                    self._data_files.popitem(last=False)
            return data.rows(entry.episode_index, self._columns)
        except PARQUET_ERRORS as exc:
            raise_if_pointer(file, self.path)
            raise EpisodeError(
                f"{where}: {file} is not readable parquet ({exc})", situation="parquet-unreadable"
            ) from exc

    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """Read one episode: vectors, the timestamp clock, cameras (video segments or PNG bytes), texts."""
        entry = self.entries[ref.index]
        where = f"{self.path} episode {entry.episode_index}"
        rows = self._table(entry, where)
        table = rows.table
        n = table.num_rows
        if n != entry.length:
            raise EpisodeError(
                f"{where}: {entry.data_file} has {n} rows for this episode, the metadata says {entry.length}",
                situation="episode-length-mismatch",
            )
        if n == 0:
            raise EpisodeError(f"{where}: the episode has no frames", situation="episode-empty")
        stamps = table["timestamp"].to_numpy().astype(np.float64)
        if n > 1 and not bool(np.all(np.diff(stamps) > 0)):
            raise EpisodeError(
                f"{where}: timestamps in {entry.data_file} are not strictly increasing",
                situation="timestamps-not-increasing",
            )
        if "frame_index" in table.column_names:
            frames_col = table["frame_index"].to_numpy()
            if not np.array_equal(frames_col, np.arange(n)):
                raise EpisodeError(
                    f"{where}: frame_index in {entry.data_file} is not 0..{n - 1}", situation="frame-index-invalid"
                )
        if entry.rows is not None and "index" in table.column_names:
            index = table["index"].to_numpy()
            if int(index[0]) != entry.rows[0] or int(index[-1]) + 1 != entry.rows[1]:
                raise EpisodeError(
                    f"{where}: rows in {entry.data_file} hold index {int(index[0])}..{int(index[-1])}, "
                    "the episode table says "
                    f"[{entry.rows[0]}, {entry.rows[1]})",
                    situation="episode-rows-mismatch",
                )
        vectors: dict[str, npt.NDArray[Any]] = {"timestamp": table["timestamp"].to_numpy()}
        texts: dict[str, list[str]] = {}
        cams: dict[str, ImageFrames] = {}
        for feature in self.meta.features.values():
            kind = feature.kind
            if kind == "video":
                seg = entry.videos[feature.key]
                cams[feature.key] = self._videos.segment(
                    feature, seg, stamps, whole_file=self.meta.major == 2, where=where, root=self.path
                )
            elif kind == "image":
                cams[feature.key] = _encoded_images(table[feature.key], f"{where} ({entry.data_file})", feature.key)
            elif self._is_annotation(feature):
                texts[feature.key] = [self.tasks.get(int(i), "") for i in table[feature.key].to_numpy()]
            elif kind == "text":
                texts[feature.key] = [str(v) for v in table[feature.key].to_pylist()]
            elif kind == "vector":
                vectors[feature.key] = _vector(table[feature.key], feature, n, f"{where} ({entry.data_file})")
        self._cross_check(entry, rows, vectors)
        task = entry.tasks[0] if entry.tasks else ""
        if "task_index" in table.column_names:
            task = self.tasks.get(int(table["task_index"][0].as_py()), task)
        meta: dict[str, Any] = {"lerobot_episode_index": entry.episode_index}
        if len(entry.tasks) > 1:
            meta["tasks"] = list(entry.tasks)
        meta |= self._split_and_notes(ref, entry)
        camera_stats = self._camera_stats(entry.episode_index)
        if camera_stats:
            meta["image_stats"] = camera_stats
        return SourceEpisode(
            ref=ref,
            length=n,
            vectors=vectors,
            images=cams,
            texts=texts,
            timestamps_s=stamps,
            task=task,
            meta=meta,
        )


def _vector(column: pa.ChunkedArray, feature: Feature, n: int, where: str) -> npt.NDArray[Any]:
    """A numeric column as (n, *shape): plain, fixed-size or variable lists, or nested lists (HF ArrayND)."""
    array: pa.Array = column.combine_chunks()
    if array.null_count:
        raise EpisodeError(f"{where}: {feature.key} has {array.null_count} missing values", situation="values-missing")
    while True:
        if isinstance(array.type, pa.ExtensionType):
            array = array.storage
        elif (
            pa.types.is_list(array.type)
            or pa.types.is_large_list(array.type)
            or pa.types.is_fixed_size_list(array.type)
        ):
            array = array.flatten()
        else:
            break
    values: npt.NDArray[Any] = array.to_numpy(zero_copy_only=False)
    size = math.prod(feature.shape)
    if values.size != n * size:
        raise EpisodeError(
            f"{where}: {feature.key} has {values.size} values for {n} frames, expected {size} per frame "
            f"(shape {list(feature.shape)})",
            situation="feature-shape-mismatch",
        )
    return values.reshape(n, *feature.shape)


def _encoded_images(column: pa.ChunkedArray, where: str, key: str) -> EncodedFrames:
    """An ``image`` column (struct of PNG ``bytes`` and ``path``) as encoded frames, bytes untouched."""
    array = column.combine_chunks()
    data = array.field("bytes") if pa.types.is_struct(array.type) else array
    frames = data.to_pylist()
    if any(b is None for b in frames):
        raise EpisodeError(
            f"{where}: {key} has frames without embedded bytes (only a path)", situation="image-bytes-missing"
        )
    codec = images.sniff_codec(frames[0]) if frames else ImageCodec.PNG
    if codec is None:
        raise EpisodeError(f"{where}: {key} holds bytes that are neither PNG nor JPEG", situation="image-codec-unknown")
    return EncodedFrames(codec, frames)

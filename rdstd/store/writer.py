"""The streaming writer of canonical datasets: one episode at a time, atomic shards, stats on the way.

Memory is bounded by one episode plus one row group. Shards are written under a temporary name and renamed
when complete; ``rdstd.json`` is written last, and the ``.rdstd-writing`` marker is removed after it, so a
reader can always tell a finished dataset from one whose writer died. :meth:`DatasetWriter.abort` (called on
any exception inside ``with``) removes everything the writer created.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rdstd.errors import EpisodeError, UsageError
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.episode import EncodedFrames, Episode, ImageFrames, VideoFrames
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.manifest import Counts, Manifest, Provenance, StorageLayout
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store import atomic, images, layout
from rdstd.store.stats import RunningStats

#: Frames per Parquet row group: the knob between random access and file overhead (chosen with bench/store_read.py).
DEFAULT_ROW_GROUP_FRAMES = 8
#: A shard is closed after the episode that takes it past this many bytes of encoded rows.
#: ... and at least this many bytes, so that small frames do not make thousands of tiny row groups.
ROW_GROUP_MIN_BYTES = 512 * 1024
DEFAULT_SHARD_BYTES = 512 * 1024 * 1024
#: ... or past this many frames (the reader keeps a shard's low-dimensional columns in memory).
DEFAULT_SHARD_FRAMES = 100_000


class DatasetWriter:
    """Write a canonical dataset to ``path``, one :class:`~rdstd.schema.Episode` at a time.

    ``path`` must not exist or be an empty folder, unless ``overwrite`` is set (then it is cleared first).
    Use as a context manager: a clean exit finalizes (``close``), an exception aborts (nothing is left).
    """

    def __init__(
        self,
        path: Path,
        features: dict[str, VectorFeature | ImageFeature],
        provenance: Provenance,
        *,
        name: str = "",
        description: str = "",
        rate_hz: float | None = None,
        embodiments: list[Embodiment] | None = None,
        extra: dict[str, Any] | None = None,
        overwrite: bool = False,
        row_group_frames: int = DEFAULT_ROW_GROUP_FRAMES,
        shard_bytes: int = DEFAULT_SHARD_BYTES,
    ) -> None:
        self.path = path
        self.features = features
        self._manifest_base: dict[str, Any] = {
            "name": name,
            "description": description,
            "rate_hz": rate_hz,
            "embodiments": embodiments or [],
            "provenance": provenance,
            "extra": extra or {},
        }
        self.row_group_frames = row_group_frames
        self.shard_bytes = shard_bytes
        self._schema = layout.frame_schema(features)
        self._prepare_directory(overwrite)
        self._episodes: list[dict[str, Any]] = []
        self._tasks: dict[str, int] = {}
        self._stats = {k: RunningStats(f.size) for k, f in features.items() if isinstance(f, VectorFeature)}
        self._shard_number = 0
        self._shard_rows = 0
        self._shard_size = 0
        self._parquet: pq.ParquetWriter | None = None
        self._parquet_tmp: Path | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._frames = 0
        self._closed = False
        self._videos: Any = None  # rdstd.store.video.VideoCopier, created for the first camera kept as video

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _prepare_directory(self, overwrite: bool) -> None:
        self._created_root = not self.path.exists()
        if self.path.exists():
            if not self.path.is_dir():
                raise UsageError(f"{self.path}: exists and is not a folder", hint="choose another output path")
            if any(self.path.iterdir()):
                if not overwrite:
                    raise UsageError(
                        f"{self.path}: output folder exists and is not empty",
                        hint="choose a new path, or pass --overwrite to replace it",
                    )
                for child in self.path.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        (self.path / layout.DATA_DIR).mkdir(parents=True, exist_ok=True)
        marker = {"pid": os.getpid(), "started_utc": _utc_now()}
        (self.path / layout.WRITING_MARKER).write_text(json.dumps(marker), encoding="utf-8")

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def abort(self) -> None:
        """Remove everything this writer created; the output is as if the write never started."""
        self._closed = True
        if self._videos is not None:
            self._videos.cancel()
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._created_root:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            for child in list(self.path.iterdir()):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)

    # -- writing episodes --------------------------------------------------------------------------------------

    @property
    def episodes_written(self) -> int:
        """How many episodes have been added."""
        return len(self._episodes)

    def add(self, episode: Episode) -> int:
        """Append one episode; returns its episode index. Raises :class:`EpisodeError` if it does not fit."""
        if self._closed:
            raise UsageError("the writer is closed")
        problems = episode.problems()
        problems += self._feature_problems(episode)
        if problems:
            raise EpisodeError(f"episode {episode.meta.episode_id!r}: {'; '.join(problems)}")
        index = len(self._episodes)
        batch = self._frame_batch(episode, index)
        if self._parquet is None:
            self._open_shard()
        shard_row = self._shard_rows
        self._buffer(batch)
        for key, stats in self._stats.items():
            stats.update(episode.vectors[key].reshape(episode.length, -1))
        self._episodes.append(self._episode_row(episode, index, shard_row))
        self._frames += episode.length
        if self._shard_size >= self.shard_bytes or self._shard_rows >= DEFAULT_SHARD_FRAMES:
            self._close_shard()
        return index

    def _feature_problems(self, episode: Episode) -> list[str]:
        found = []
        for key, feature in self.features.items():
            if isinstance(feature, VectorFeature):
                values = episode.vectors.get(key)
                if values is None:
                    found.append(f"missing vector {key}")
                elif values.shape[1:] != feature.shape:
                    found.append(f"{key} has shape {values.shape[1:]} per frame, the dataset has {feature.shape}")
            elif key not in episode.images:
                found.append(f"missing camera {key}")
        extra = (set(episode.vectors) | set(episode.images)) - set(self.features)
        if extra:
            found.append(f"features not in the dataset: {sorted(extra)}")
        return found

    def _frame_batch(self, episode: Episode, index: int) -> pa.RecordBatch:
        n = episode.length
        start = self._frames
        columns: list[pa.Array] = [
            pa.array(np.full(n, index, dtype=np.int64)),
            pa.array(np.arange(n, dtype=np.int64)),
            pa.array(np.arange(start, start + n, dtype=np.int64)),
            pa.array(episode.timestamps.astype(np.float64, copy=False)),
        ]
        for key, feature in self.features.items():
            if isinstance(feature, VectorFeature):
                flat = np.ascontiguousarray(episode.vectors[key], dtype=feature.dtype).reshape(-1)
                columns.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), feature.size))
            elif feature.codec == ImageCodec.VIDEO:
                columns.append(self._video_refs(key, feature, episode, index))
            else:
                columns.append(pa.array(self._encoded(key, feature, episode.images[key]), type=pa.binary()))
        return pa.RecordBatch.from_arrays(columns, schema=self._schema)

    @staticmethod
    def _encoded(key: str, feature: ImageFeature, frames: ImageFrames) -> list[bytes]:
        if isinstance(frames, EncodedFrames):
            return frames.frames
        if isinstance(frames, VideoFrames):
            from rdstd.store import video

            return [images.encode(p, feature.codec) for p in video.decode_frames(frames)]
        return [images.encode(np.asarray(f), feature.codec) for f in frames]

    def _video_refs(self, key: str, feature: ImageFeature, episode: Episode, index: int) -> pa.Array:
        """A camera kept as video: copy the source file (once) or encode the frames, then reference them."""
        from rdstd.store import video

        if self._videos is None:
            self._videos = video.VideoCopier(self.path, layout.VIDEOS_DIR)
        frames = episode.images[key]
        if isinstance(frames, VideoFrames):
            return self._videos.refs(key, frames)
        pixels = (images.decode(b) for b in frames.frames) if isinstance(frames, EncodedFrames) else frames
        rate = self._manifest_base["rate_hz"] or _rate_of(episode.timestamps)
        return self._videos.encode(
            key, index, pixels, episode.timestamps, width=feature.width, height=feature.height, rate_hz=rate
        )

    def _buffer(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self._shard_rows += batch.num_rows
        self._shard_size += batch.nbytes
        while self._pending_rows >= (rows := self._row_group_rows()):
            self._flush(rows)

    def _row_group_rows(self) -> int:
        """Rows in the next row group: at least ``row_group_frames``, and enough for ROW_GROUP_MIN_BYTES.

        Large frames (640×480 JPEG) give row groups of exactly ``row_group_frames``; small frames or low-dim
        only data give larger ones, so tiny row groups do not dominate the write and the file footer.
        """
        per_row = self._pending_bytes / max(self._pending_rows, 1)
        return max(self.row_group_frames, math.ceil(ROW_GROUP_MIN_BYTES / max(per_row, 1.0)))

    def _flush(self, rows: int) -> None:
        table = pa.Table.from_batches(self._pending, schema=self._schema)
        head, tail = table.slice(0, rows), table.slice(rows)
        assert self._parquet is not None
        self._parquet.write_table(head, row_group_size=rows)
        self._pending = tail.to_batches()
        self._pending_rows = tail.num_rows
        self._pending_bytes = tail.nbytes

    def _open_shard(self) -> None:
        final = self.path / layout.shard_name(self._shard_number)
        self._parquet_tmp = atomic.temp_name(final)
        image_cols = [
            k for k, f in self.features.items() if isinstance(f, ImageFeature) and f.codec != ImageCodec.VIDEO
        ]
        self._parquet = pq.ParquetWriter(
            self._parquet_tmp,
            self._schema,
            compression={c: ("none" if c in image_cols else "zstd") for c in self._schema.names},
            use_dictionary=[c for c in self._schema.names if c not in image_cols],
            write_statistics=[c for c in self._schema.names if c not in image_cols],
        )
        self._shard_rows = 0
        self._shard_size = 0

    def _close_shard(self) -> None:
        if self._pending_rows:
            self._flush(self._pending_rows)
        assert self._parquet is not None and self._parquet_tmp is not None
        self._parquet.close()
        self._parquet = None
        atomic.commit(self._parquet_tmp, self.path / layout.shard_name(self._shard_number))
        self._shard_number += 1

    def _episode_row(self, episode: Episode, index: int, shard_row: int) -> dict[str, Any]:
        meta = episode.meta
        task_index = self._tasks.setdefault(meta.task, len(self._tasks)) if meta.task else None
        return {
            "episode_index": index,
            "episode_id": meta.episode_id,
            "embodiment": meta.embodiment,
            "task_index": task_index,
            "task": meta.task,
            "split": meta.split,
            "length": episode.length,
            "duration_s": float(episode.timestamps[-1]) if episode.length else 0.0,
            "success": meta.success,
            "source_path": meta.source_path,
            "source_key": meta.source_key,
            "source_checksum": meta.source_checksum,
            "source_meta": json.dumps(meta.source_meta, sort_keys=True, default=_json_default),
            "shard": self._shard_number,
            "shard_row": shard_row,
            "frame_start": self._frames,
        }

    # -- finishing ---------------------------------------------------------------------------------------------

    def close(self) -> Manifest:
        """Finish the dataset: last shard, episode and task tables, stats, then the manifest. Returns it."""
        if self._closed:
            raise UsageError("the writer is already closed")
        if self._parquet is not None:
            self._close_shard()
        if self._videos is not None:
            try:
                self._videos.finish()  # video copies run in the background; wait for them before the manifest
            except BaseException:
                self.abort()
                raise
        self._closed = True
        ids = [e["episode_id"] for e in self._episodes]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
            self.abort()
            raise EpisodeError(f"episode ids are not unique: {dupes}", hint="the source key must be unique per episode")
        self._write_table(layout.EPISODES, pa.Table.from_pylist(self._episodes, schema=layout.EPISODES_SCHEMA))
        tasks = pa.table(
            {"task_index": pa.array(list(self._tasks.values()), pa.int64()), "task": list(self._tasks.keys())}
        )
        self._write_table(layout.TASKS, tasks)
        stats = {k: s.as_dict() for k, s in self._stats.items()}
        atomic.write_bytes(self.path / layout.STATS, json.dumps(stats, indent=1).encode())
        manifest = Manifest(
            features=self.features,
            counts=Counts(episodes=len(self._episodes), frames=self._frames, shards=self._shard_number),
            storage=StorageLayout(row_group_frames=self.row_group_frames),
            **self._manifest_base,
        )
        atomic.write_bytes(self.path / layout.MANIFEST, manifest.model_dump_json(indent=2).encode())
        (self.path / layout.WRITING_MARKER).unlink()
        atomic.fsync_dir(self.path)
        return manifest

    def _write_table(self, name: str, table: pa.Table) -> None:
        with atomic.atomic_path(self.path / name) as tmp:
            pq.write_table(table, tmp, compression="zstd")


def _rate_of(timestamps: np.ndarray[Any, Any]) -> float:
    """Nominal frame rate of an episode from its timestamps (30 when it has fewer than two frames)."""
    steps = np.diff(timestamps)
    return float(1.0 / np.median(steps)) if steps.size and np.median(steps) > 0 else 30.0


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    raise TypeError(f"cannot store {type(value).__name__} in source_meta")

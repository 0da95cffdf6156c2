"""The streaming writer of canonical datasets: episodes written whole or in chunks, stats on the way.

The whole dataset is built in a hidden temporary sibling of the output and renamed into place by
:meth:`DatasetWriter.close` (:mod:`rdstd.store.output`: locked, never destructive; a dataset being replaced
survives a failed write byte for byte). Memory is bounded by one chunk plus one row group: an episode may be
given whole (:meth:`~DatasetWriter.add`) or as :meth:`~DatasetWriter.begin_episode`,
:meth:`~DatasetWriter.append` (chunks of frames), :meth:`~DatasetWriter.end_episode`; an episode that fails
half-way is dropped with :meth:`~DatasetWriter.abort_episode` and leaves no trace (rows, stats, video files).
Chunked and whole writes of the same frames give byte-identical shards and tables. Shards carry Parquet page
checksums. :meth:`DatasetWriter.abort` (called on any exception inside ``with``) removes everything.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import itertools
import json
import os
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from rdstd.errors import CorruptSourceError, EpisodeError, OutputError, RdstdError, UsageError
from rdstd.io import atomic
from rdstd.io.threads import shared_pool
from rdstd.io.write_errors import output_error
from rdstd.media import images
from rdstd.schema.clock import Clock
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.episode import BinaryFrames, EncodedFrames, Episode, EpisodeMeta, ImageFrames, VideoFrames
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.manifest import Counts, Manifest, Provenance, StorageLayout
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store import layout
from rdstd.store.output import Output
from rdstd.store.shardfile import ShardFile
from rdstd.store.stats import EpisodeStats, RunningStats

#: Frames per Parquet row group: the knob between random access and file overhead (chosen with bench/store_read.py).
DEFAULT_ROW_GROUP_FRAMES = 8
#: ... and at least this many bytes, so that small frames do not make thousands of tiny row groups (each row group
#: costs a ``write_table`` call and its metadata in the footer). 1 MiB took 10–25% off the write CPU of ALOHA's four
#: 480×640 JPEG cameras (30 frames a group instead of 15) but no wall time on the quiet machine
#: (bench/hdf5_convert.py), and doubles what a random frame read decodes: kept at 512 KiB.
ROW_GROUP_MIN_BYTES = 512 * 1024
#: A long episode's row groups grow: once this many of its rows are in the shard's file, the frames per row group
#: double, and double again each time those rows double, up to :data:`MAX_ROW_GROUP_FRAMES`. Parquet keeps every
#: row group's metadata in memory until the shard closes (and builds the footer from it then); a shard of many
#: episodes is bounded by ``shard_bytes`` / ROW_GROUP_MIN_BYTES groups, but one episode cannot span shards, so a
#: 20-minute camera recording (36,000 frames) in 8-frame groups made peak RSS grow with its length. Episodes
#: shorter than this are written exactly as before.
ROW_GROUP_GROWTH_ROWS = 4096
#: ... up to this many frames per row group (big groups cost their bytes again while they are written).
MAX_ROW_GROUP_FRAMES = 32
#: A shard is closed after the episode that takes it past this many bytes of encoded rows.
DEFAULT_SHARD_BYTES = 512 * 1024 * 1024
#: ... or past this many frames (the reader keeps a shard's low-dimensional columns in memory).
DEFAULT_SHARD_FRAMES = 100_000
#: The helper thread shards are closed and synced on (one: at most one shard is in flight).
SHARD_CLOSE_POOL = "rdstd-shard-close"
#: The helper thread row groups are encoded and written on, in order, while the next rows are read and built ...
SHARD_WRITE_POOL = "rdstd-shard-write"
#: ... with at most this many bytes of row groups (Arrow's, as built) handed over and not yet written; a group is
#: always handed over when none is in flight. Bounding bytes, not groups, keeps the memory the same whatever the
#: group size: two 512 KiB groups or one 1 MiB group (two of those raised the Arrow peak of a long chunked episode).
#: A group that is a slice of one batch handed in (a chunk of frames cut into groups) copies nothing and counts
#: nothing here: all the groups of a chunk may be in flight at once, so the chunk is written while the next one is
#: read rather than one group at a time in step with it. When the next batch comes, every group in flight is waited
#: for first, so no more than that batch and the one before it are held (as with two groups in flight).
WRITE_BYTES_IN_FLIGHT = 1536 * 1024
#: Row groups larger than this are written on the calling thread: building the next group while a large one is
#: written keeps two or three of them in memory (a 20-minute recording's 32-frame groups of two 640×480 cameras,
#: ~6 MB each, raised its peak RSS from 217 to 260 MB); small groups, where the per-group work dominates, gain most.
BACKGROUND_GROUP_BYTES = 2 * 1024 * 1024
#: What :class:`~rdstd.store.output.Output` calls the folders this writer may replace.
KIND = "canonical rdstd dataset"


@dataclass
class _OpenEpisode:
    """The episode being written: where its rows start, what it has added so far."""

    index: int
    meta: EpisodeMeta
    shard_row: int
    frame_start: int
    stats: dict[str, EpisodeStats]
    video_mark: int
    length: int = 0
    last_t: float = -np.inf
    size: int = 0
    encoders: dict[str, tuple[str, Any]] = field(default_factory=dict)  # camera -> (file, VideoEncoder)


class DatasetWriter:
    """Write a canonical dataset to ``path``, one :class:`~rdstd.schema.Episode` (or chunk of one) at a time.

    ``path`` must not exist, be an empty folder, or (with ``overwrite``) be a canonical dataset, which is then
    replaced when the new one is complete. ``sources`` are the inputs ``path`` must not overlap. Use as a
    context manager: a clean exit finalizes (``close``), an exception aborts (nothing is left, ``path`` as before).
    With ``stats=False`` no statistics are gathered and no ``stats.json`` is written (a batch unit: its partial
    statistics are gathered by the pipeline and merged at assembly).
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
        sources: Sequence[Path] = (),
        page_checksums: bool = True,
        clock: Clock | None = None,
        first_episode: int = 0,
        first_frame: int = 0,
        stats: bool = True,
    ) -> None:
        self.path = Path(path)
        #: The dataset-wide number of this writer's first episode and first frame (0 for a dataset of its own; a
        #: batch unit written already numbered as in the final dataset is placed there without a rewrite).
        self.first_episode, self.first_frame = first_episode, first_frame
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
        self.page_checksums = page_checksums
        #: Where the timestamps came from: written into the manifest at close (the converter knows it best at the end).
        self.clock: Clock = clock or Clock()
        self._schema = layout.frame_schema(features)
        self._image_columns = [
            k for k, f in features.items() if isinstance(f, ImageFeature) and f.codec != ImageCodec.VIDEO
        ]
        self._episodes: list[dict[str, Any]] = []
        self._tasks: dict[str, int] = {}
        #: Whether the dataset's statistics are gathered and written (``stats.json``): a batch unit's are not, the
        #: assembly merges the partial statistics the pipeline gathers instead.
        self.keeps_stats = stats
        self._stats = (
            {k: RunningStats(f.size) for k, f in features.items() if isinstance(f, VectorFeature)} if stats else {}
        )
        self._shard_number = 0
        self._shard_rows = 0  # rows of the current shard, flushed or pending
        self._shard_size = 0
        self._flushed_rows = 0  # rows of the current shard already in its file
        self._parquet: ShardFile | None = None
        self._parquet_tmp: Path | None = None
        self._closing: Future[None] | None = None  # the previous shard, closed and synced in the background
        #: Row groups being encoded and written, with the bytes they copied (0 for a slice of one pending batch),
        #: and the sum of those (at most WRITE_BYTES_IN_FLIGHT).
        self._writing: collections.deque[tuple[Future[None], int]] = collections.deque()
        self._writing_bytes = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_sizes = np.zeros(0, dtype=np.int64)
        self._rewrites = 0
        self._frames = 0
        self._closed = False
        self._open: _OpenEpisode | None = None
        self._videos: Any = None  # rdstd.media.video.VideoCopier, created for the first camera kept as video
        self._output = Output.begin(
            self.path, is_kind=layout.is_dataset, kind=KIND, overwrite=overwrite, sources=sources
        )
        #: The folder being written (a hidden sibling of ``path``, renamed to ``path`` by :meth:`close`).
        self.root = self._output.tmp
        for running in self._stats.values():  # a long episode's reservoir undo log: on the output's disk
            running.spill_dir = self.root
        try:
            with self._output.guard():
                (self.root / layout.DATA_DIR).mkdir()
                marker = {"pid": os.getpid(), "output": str(self.path)}
                (self.root / layout.WRITING_MARKER).write_text(json.dumps(marker), encoding="utf-8")
        except BaseException:
            self.abort()
            raise

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def recovered(self) -> str | None:
        """When a dead run's leftovers at ``path`` were removed first: who that run was (for the report)."""
        return self._output.recovered.describe() if self._output.recovered else None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()  # aborts by itself when it fails

    def abort(self) -> None:
        """Remove everything this writer created; ``path`` is as it was before the write started."""
        self._closed = True
        self._open = None
        # Every helper thread still writing into the folder is waited for before it is removed. Their errors, and
        # any error closing the half-written shard, are not the one being raised: the files go with the folder.
        try:
            if self._videos is not None:
                self._videos.cancel()
            while self._writing:
                self._writing[0][0].exception()
                self._writing.popleft()
            self._writing_bytes = 0
            if self._closing is not None:
                self._closing.exception()
                self._closing = None
            if self._parquet is not None:
                parquet, self._parquet = self._parquet, None
                with contextlib.suppress(Exception):  # e.g. a footer cut short by the interrupt being raised
                    parquet.close()
        finally:
            self._output.abort()

    def _fail(self, exc: BaseException) -> NoReturn:
        """A failure to write the output (not an episode's fault): abort everything and raise it.

        Disk full, quota, permission and read-only errors become :class:`OutputError`; so does any other
        failure of the writing itself (never a skippable episode error); interrupts stay what they are.
        """
        self.abort()
        if not isinstance(exc, Exception) or isinstance(exc, RdstdError):
            raise exc
        error = output_error(exc, self.path) or OutputError(
            f"{self.path}: writing the output failed: {type(exc).__name__}: {exc} (nothing was left behind)",
            situation="write-failed",
        )
        raise error from exc

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the writer is closed", situation="writer-closed")

    # -- writing episodes --------------------------------------------------------------------------------------

    @property
    def episodes_written(self) -> int:
        """How many episodes have been added."""
        return len(self._episodes)

    def nonfinite_counts(self) -> dict[str, list[int]]:
        """Per vector feature, NaN and ±inf values seen so far per dimension (left out of the stats; none when the
        writer keeps no statistics)."""
        return {k: s.nonfinite.tolist() for k, s in self._stats.items()}

    def add(self, episode: Episode) -> int:
        """Append one whole episode; returns its episode index. Raises :class:`EpisodeError` if it does not fit.

        Same as :meth:`begin_episode`, :meth:`append`, :meth:`end_episode`; a failure leaves no trace.
        """
        self._check_open()
        problems = episode.problems() + self._feature_problems(episode)
        if problems:
            raise EpisodeError(
                f"episode {episode.meta.episode_id!r}: {'; '.join(problems)}", situation="episode-invalid"
            )
        index = self.begin_episode(episode.meta)
        try:
            assert self._open is not None
            self._append(episode, self._open)
            self.end_episode()
        except BaseException:
            if self._open is not None:
                self.abort_episode()
            raise
        return index

    def begin_episode(self, meta: EpisodeMeta) -> int:
        """Start an episode (frames follow with :meth:`append`); returns its episode index."""
        self._check_open()
        if self._open is not None:
            raise UsageError(
                f"episode {self._open.meta.episode_id!r} is still open: end or abort it first",
                situation="episode-still-open",
            )
        if self._parquet is None:
            try:
                self._open_shard()
            except BaseException as exc:
                self._fail(exc)
        self._open = _OpenEpisode(
            index=self.first_episode + len(self._episodes),
            meta=meta,
            shard_row=self._shard_rows,
            frame_start=self.first_frame + self._frames,
            stats={k: s.episode() for k, s in self._stats.items()},
            video_mark=self._videos.mark() if self._videos is not None else 0,
        )
        return self._open.index

    def append(self, chunk: Episode) -> None:
        """Add a chunk of frames to the open episode.

        ``chunk.timestamps`` continue the episode's (the first chunk starts at 0.0, strictly increasing across
        chunks); its vectors and images cover those frames; ``chunk.meta`` is ignored. Raises
        :class:`EpisodeError` when the chunk does not fit (then call :meth:`abort_episode`).
        """
        self._check_open()
        ep = self._open
        if ep is None:
            raise UsageError("no episode is open: call begin_episode first", situation="no-open-episode")
        problems = self._chunk_problems(chunk, ep) + self._feature_problems(chunk)
        if problems:
            raise EpisodeError(f"episode {ep.meta.episode_id!r}: {'; '.join(problems)}", situation="episode-invalid")
        self._append(chunk, ep)

    def _append(self, chunk: Episode, ep: _OpenEpisode) -> None:
        n = chunk.length
        if not n:
            return
        batch, sizes = self._frame_batch(chunk, ep)  # may raise EpisodeError (a frame that does not encode)
        for key, stats in ep.stats.items():
            stats.update(chunk.vectors[key].reshape(n, -1))
        try:
            self._buffer(batch, sizes)
        except BaseException as exc:
            self._fail(exc)
        ep.length += n
        ep.last_t = float(chunk.timestamps[-1])
        ep.size += int(sizes.sum())

    def end_episode(self) -> int:
        """Finish the open episode (its video files, stats, episode row); returns its episode index."""
        self._check_open()
        ep = self._open
        if ep is None:
            raise UsageError("no episode is open: call begin_episode first", situation="no-open-episode")
        for key in list(ep.encoders):
            _, encoder = ep.encoders.pop(key)
            try:
                encoder.close()
            except BaseException as exc:
                encoder.abort()
                if output_error(exc, self.path) is not None:
                    self._fail(exc)
                raise
        for key, stats in ep.stats.items():
            self._stats[key].merge(stats)
        self._episodes.append(self._episode_row(ep))
        self._frames += ep.length
        self._open = None
        if self._shard_size >= self.shard_bytes or self._shard_rows >= DEFAULT_SHARD_FRAMES:
            try:
                self._close_shard(background=True)
            except BaseException as exc:
                self._fail(exc)
        return ep.index

    def abort_episode(self) -> None:
        """Drop the open episode: no rows, no stats, no video files; as if it never came.

        A no-op when there is none, or when the writer has already been aborted (by a failure to write the
        output: that error is the one to report, so this call must not replace it).
        """
        if self._closed:
            return
        ep, self._open = self._open, None
        if ep is None:
            return
        for key, stats in ep.stats.items():
            self._stats[key].discard(stats)
        for _, encoder in ep.encoders.values():
            encoder.abort()
        if self._videos is not None:
            self._videos.rollback(ep.video_mark)
        try:
            self._drop_rows_from(ep.shard_row)
        except BaseException as exc:
            self._fail(exc)
        self._shard_size -= ep.size

    def _chunk_problems(self, chunk: Episode, ep: _OpenEpisode) -> list[str]:
        found = [p for p in chunk.problems() if not p.startswith("timestamps must start at 0.0")]
        t = chunk.timestamps
        if t.ndim == 1 and len(t):
            if ep.length == 0 and t[0] != 0.0:
                found.append(f"timestamps must start at 0.0, not {t[0]!r}")
            elif ep.length and not t[0] > ep.last_t:
                found.append(
                    f"the chunk starts at {t[0]!r} s, not after the previous chunk's last frame ({ep.last_t!r} s)"
                )
        return found

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

    def _frame_batch(self, chunk: Episode, ep: _OpenEpisode) -> tuple[pa.RecordBatch, npt.NDArray[np.int64]]:
        """The rows of a chunk, and each row's size in bytes (what row groups and shards are cut by)."""
        n = chunk.length
        start = ep.frame_start + ep.length
        columns: list[pa.Array] = [
            pa.array(np.full(n, ep.index, dtype=np.int64)),
            pa.array(np.arange(ep.length, ep.length + n, dtype=np.int64)),
            pa.array(np.arange(start, start + n, dtype=np.int64)),
            pa.array(chunk.timestamps.astype(np.float64, copy=False)),
        ]
        sizes = np.full(n, 32, dtype=np.int64)
        for key, feature in self.features.items():
            if isinstance(feature, VectorFeature):
                flat = np.ascontiguousarray(chunk.vectors[key], dtype=feature.dtype).reshape(-1)
                columns.append(pa.FixedSizeListArray.from_arrays(pa.array(flat), feature.size))
                sizes += flat.itemsize * feature.size
            elif feature.codec == ImageCodec.VIDEO:
                refs = self._video_refs(key, feature, chunk, ep)
                columns.append(refs)
                sizes += 8 + len(refs[0]["path"].as_py())
            else:
                column = self._image_column(key, feature, chunk.images[key], ep)
                columns.append(column)
                sizes += binary_sizes(column)
        return pa.RecordBatch.from_arrays(columns, schema=self._schema), sizes

    def _image_column(self, key: str, feature: ImageFeature, frames: ImageFrames, ep: _OpenEpisode) -> pa.BinaryArray:
        """A camera's column of encoded bytes: frames already in one Arrow buffer go in as they are (no copy, no
        object per frame), a list of bytes is copied into one, anything else is read or encoded first."""
        if isinstance(frames, EncodedFrames) and isinstance(frames.frames, BinaryFrames):
            array = frames.frames.array
            return array if array.type == pa.binary() else array.cast(pa.binary())
        encoded = (  # a list of encoded bytes goes into the column as it is (a backend's lazy one is read)
            frames.frames
            if isinstance(frames, EncodedFrames) and type(frames.frames) is list
            else list(self._encoded(key, feature, frames, ep))
        )
        column: pa.BinaryArray = pa.array(encoded, type=pa.binary())
        return column

    def _encoded(self, key: str, feature: ImageFeature, frames: ImageFrames, ep: _OpenEpisode) -> Iterator[bytes]:
        if isinstance(frames, EncodedFrames):
            yield from frames.frames
            return
        if isinstance(frames, VideoFrames):
            from rdstd.media import video

            pixels: Any = video.decode_frames(frames)
        else:
            pixels = frames
        encoded = images.encode_frames(pixels, feature.codec)  # on the encoder pool, in order
        for i in itertools.count():
            with _frame_context(ep, key, ep.length + i):
                frame = next(encoded, None)
            if frame is None:
                return
            yield frame

    def _video_refs(self, key: str, feature: ImageFeature, chunk: Episode, ep: _OpenEpisode) -> pa.Array:
        """A camera kept as video: copy the source file (once) or encode the frames, then reference them."""
        from rdstd.media import video

        if self._videos is None:
            self._videos = video.VideoCopier(self.root, layout.VIDEOS_DIR)
            ep.video_mark = self._videos.mark()
        frames = chunk.images[key]
        if isinstance(frames, VideoFrames):
            return self._videos.refs(key, frames)
        if key not in ep.encoders:
            rate = self._manifest_base["rate_hz"] or nominal_rate_hz(chunk.timestamps)
            ep.encoders[key] = self._videos.open_encoder(
                key, ep.index, width=feature.width, height=feature.height, rate_hz=rate
            )
        rel, encoder = ep.encoders[key]
        if isinstance(frames, EncodedFrames):
            pixels: Any = (images.decode(b) for b in frames.frames)
        else:
            pixels = frames
        for i, (frame, t) in enumerate(zip(pixels, chunk.timestamps, strict=True)):
            with _frame_context(ep, key, ep.length + i):
                try:
                    encoder.add(np.asarray(frame), float(t))
                except OSError as exc:
                    if output_error(exc, self.path) is None:
                        raise
                    self._fail(exc)
        return video.refs_column(rel, chunk.timestamps.astype(np.float64))

    # -- rows, row groups, shards ------------------------------------------------------------------------------

    def _buffer(self, batch: pa.RecordBatch, sizes: npt.NDArray[np.int64]) -> None:
        self._wait_writes()  # the last batch's groups were written while this one was read (WRITE_BYTES_IN_FLIGHT)
        self._pending.append(batch)
        self._pending_sizes = np.concatenate([self._pending_sizes, sizes])
        self._shard_rows += batch.num_rows
        self._shard_size += int(sizes.sum())
        # once for every group cut from these rows, as Python ints: numpy's search lets go of the GIL, and taking it
        # back behind the row-group writer's thread cost more than the search
        ends = np.cumsum(self._pending_sizes).tolist()
        cut = 0
        while (rows := self._next_group_rows(ends, cut)) is not None:
            self._flush(rows)
            cut += rows

    def _next_group_rows(self, ends: list[int], cut: int) -> int | None:
        """Rows in the next row group, once enough are pending: at least :meth:`_group_frames`, and enough
        for ROW_GROUP_MIN_BYTES (the first row that reaches both closes the group). ``ends`` is the running
        sum of the pending rows' sizes when ``cut`` of them were still pending before this one.

        Large frames (640×480 JPEG) give row groups of exactly ``row_group_frames`` (more in a long episode);
        small frames or low-dim only data give larger ones, so tiny row groups do not dominate the write and the
        file footer. The cut depends on the rows only, not on how they were handed in: chunked and whole writes
        match.
        """
        left = len(ends) - cut
        frames = self._group_frames()
        before = ends[cut - 1] if cut else 0
        if left < frames or ends[-1] - before < ROW_GROUP_MIN_BYTES:
            return None  # (the second: no row reaches the byte floor yet)
        enough = bisect.bisect_left(ends, before + ROW_GROUP_MIN_BYTES, lo=cut) - cut + 1
        rows = max(enough, frames)
        return rows if rows <= left else None

    def _group_frames(self) -> int:
        """The least frames of the next row group: ``row_group_frames``, doubled once the open episode has
        ROW_GROUP_GROWTH_ROWS rows in the shard's file and again at each doubling of them, up to
        MAX_ROW_GROUP_FRAMES (or ``row_group_frames`` if that is more). One long episode thus makes about
        rows / MAX_ROW_GROUP_FRAMES row groups, not rows / ``row_group_frames``."""
        done = self._flushed_rows - self._open.shard_row if self._open is not None else 0
        frames, threshold = self.row_group_frames, ROW_GROUP_GROWTH_ROWS
        while done >= threshold and frames * 2 <= MAX_ROW_GROUP_FRAMES:
            frames, threshold = frames * 2, threshold * 2
        return frames

    def _flush(self, rows: int) -> None:
        head, tail = _split_batches(self._pending, rows)  # slices of the pending batches: nothing copied
        # one piece per column: Parquet cuts pages where pieces meet, so this keeps the bytes independent of how
        # the rows were handed in (and one C++ copy costs less than handling the columns one by one in Python)
        group = pa.Table.from_batches(head, schema=self._schema).combine_chunks()  # (one slice: no copy)
        assert self._parquet is not None
        write = self._parquet.write_table
        size = int(group.nbytes)
        copied = size if len(head) > 1 else 0
        if size > BACKGROUND_GROUP_BYTES:  # a large group is written here, after those in flight
            self._wait_writes()
            _write_group(write, group, rows)
        else:
            self._wait_writes(room=copied)
            self._writing.append((shared_pool(SHARD_WRITE_POOL, 1).submit(_write_group, write, group, rows), copied))
            self._writing_bytes += copied
        self._pending = tail
        self._pending_sizes = self._pending_sizes[rows:]
        self._flushed_rows += rows

    def _parquet_writer(self, path: Path) -> ShardFile:
        """The shard's file: what a ``ParquetWriter`` writes, without holding every row group's metadata (a long
        episode's shard has thousands: :mod:`rdstd.store.shardfile`)."""
        return ShardFile(
            path, self._schema, parquet_write_options(self._schema.names, self._image_columns, self.page_checksums)
        )

    def _open_shard(self) -> None:
        if self._closing is not None and self._closing.done():
            self._wait_closing()  # the previous shard is closed: if that failed, say so before writing more
        final = self.root / layout.shard_name(self._shard_number)
        self._parquet_tmp = atomic.temp_name(final)
        self._parquet = self._parquet_writer(self._parquet_tmp)
        self._shard_rows = 0
        self._shard_size = 0
        self._flushed_rows = 0

    def _close_shard(self, *, background: bool = False) -> None:
        """Write the shard's last rows and footer, fsync it and rename it into place.

        With ``background`` the footer, fsync and rename run on a helper thread while the next episodes are read
        and written (the disk works while the CPU does): at most one shard is in flight, and its error is raised
        by the next shard close, the next shard opened, or :meth:`close` (through :meth:`_fail`, as if it had
        happened here). :meth:`abort` waits for it before removing everything.
        """
        self._wait_closing()
        if len(self._pending_sizes):
            self._flush(len(self._pending_sizes))
        self._wait_writes()
        assert self._parquet is not None and self._parquet_tmp is not None
        parquet, tmp, self._parquet, self._parquet_tmp = self._parquet, self._parquet_tmp, None, None
        final = self.root / layout.shard_name(self._shard_number)
        self._shard_number += 1
        if background:
            self._closing = shared_pool(SHARD_CLOSE_POOL, 1).submit(_finish_shard, parquet, tmp, final)
        else:
            _finish_shard(parquet, tmp, final)

    def _wait_writes(self, room: int | None = None) -> None:
        """Wait until every row group handed over is written or, with ``room``, until that many more copied bytes
        fit in WRITE_BYTES_IN_FLIGHT (or none is left in flight); the first error among those waited for is raised
        here (the writes run in order on one helper thread, so a later one never finishes first)."""
        while self._writing and (room is None or self._writing_bytes + room > WRITE_BYTES_IN_FLIGHT):
            future, copied = self._writing[0]
            future.result()  # an interrupt while waiting leaves the write listed: abort() waits for it
            self._writing.popleft()
            self._writing_bytes -= copied

    def _wait_closing(self) -> None:
        """Wait for the shard closing in the background, if any; its error is raised here."""
        if self._closing is not None:
            self._closing.result()  # an interrupt while waiting leaves it listed: abort() waits for it
            self._closing = None

    def _drop_rows_from(self, row: int) -> None:
        """Forget the current shard's rows from ``row`` on; rows already in the file are rewritten without them.

        The rewrite copies the whole row groups before ``row`` one at a time and puts the rows of a cut row group
        back in the pending buffer, so the shard ends up exactly as if those rows had never been added.
        """
        self._wait_writes()
        if row >= self._flushed_rows:
            table = pa.Table.from_batches(self._pending, schema=self._schema).slice(0, row - self._flushed_rows)
            self._pending = table.to_batches()
            self._pending_sizes = self._pending_sizes[: row - self._flushed_rows]
            self._shard_rows = row
            return
        assert self._parquet is not None and self._parquet_tmp is not None
        self._parquet.close()
        old = self._parquet_tmp
        self._rewrites += 1
        new = atomic.temp_name(self.root / layout.shard_name(self._shard_number)).with_suffix(f".{self._rewrites}")
        writer = self._parquet_writer(new)
        kept: list[pa.RecordBatch] = []
        kept_sizes = np.zeros(0, dtype=np.int64)
        done = 0
        try:
            source = pq.ParquetFile(old, page_checksum_verification=self.page_checksums)
            for group in range(source.metadata.num_row_groups):
                rows = source.metadata.row_group(group).num_rows
                if done + rows <= row:
                    writer.write_table(source.read_row_group(group), row_group_size=rows)
                else:
                    part = source.read_row_group(group).slice(0, row - done)
                    kept = part.to_batches()
                    kept_sizes = self._row_sizes(part)
                done += rows
                if done >= row:
                    break
        except BaseException:
            writer.close()
            raise
        old.unlink()
        self._parquet, self._parquet_tmp = writer, new  # the copy goes on as the shard's file
        self._pending = kept
        self._pending_sizes = kept_sizes
        self._flushed_rows = row - len(kept_sizes)
        self._shard_rows = row

    def _row_sizes(self, table: pa.Table) -> npt.NDArray[np.int64]:
        """Each row's size as :meth:`_frame_batch` counts it (for rows read back from a shard)."""
        sizes = np.full(table.num_rows, 32, dtype=np.int64)
        for key, feature in self.features.items():
            column = table.column(key)
            if isinstance(feature, VectorFeature):
                sizes += np.dtype(feature.dtype).itemsize * feature.size
            elif feature.codec == ImageCodec.VIDEO:
                sizes += np.fromiter((8 + len(r["path"].as_py()) for r in column), dtype=np.int64, count=len(sizes))
            else:
                sizes += np.fromiter((len(b.as_buffer()) for b in column), dtype=np.int64, count=len(sizes))
        return sizes

    # -- finishing ---------------------------------------------------------------------------------------------

    def _episode_row(self, ep: _OpenEpisode) -> dict[str, Any]:
        meta = ep.meta
        task_index = self._tasks.setdefault(meta.task, len(self._tasks)) if meta.task else None
        return {
            "episode_index": ep.index,
            "episode_id": meta.episode_id,
            "embodiment": meta.embodiment,
            "task_index": task_index,
            "task": meta.task,
            "split": meta.split,
            "length": ep.length,
            "duration_s": ep.last_t if ep.length else 0.0,
            "success": meta.success,
            "source_path": meta.source_path,
            "source_key": meta.source_key,
            "source_checksum": meta.source_checksum,
            "source_meta": json.dumps(meta.source_meta, sort_keys=True, default=_json_default),
            "instructions": list(meta.instructions),
            "language": json.dumps([s.model_dump(mode="json") for s in meta.language]),
            "cameras": json.dumps({k: c.model_dump(mode="json") for k, c in meta.cameras.items()}, sort_keys=True),
            "shard": self._shard_number,
            "shard_row": ep.shard_row,
            "frame_start": ep.frame_start,
        }

    def close(self) -> Manifest:
        """Finish the dataset (last shard, tables, stats, manifest) and move it into place. Returns the manifest.

        Any failure aborts: nothing is left and ``path`` is as it was.
        """
        self._check_open()
        if self._open is not None:
            open_id = self._open.meta.episode_id
            self.abort()
            raise UsageError(
                f"episode {open_id!r} is still open: end or abort it before closing", situation="episode-still-open"
            )
        try:
            manifest = self._finish()
        except EpisodeError:
            self.abort()
            raise
        except BaseException as exc:
            self._fail(exc)
        self._closed = True
        return manifest

    def _finish(self) -> Manifest:
        self._wait_closing()
        if self._parquet is not None:
            self._close_shard()
        if self._videos is not None:
            self._videos.finish()  # video copies run in the background; wait for them before the manifest
        require_unique_ids([e["episode_id"] for e in self._episodes])
        tasks = pa.table(
            {"task_index": pa.array(list(self._tasks.values()), pa.int64()), "task": list(self._tasks.keys())}
        )
        stats = {k: s.as_dict() for k, s in self._stats.items()}
        manifest = Manifest(
            features=self.features,
            clock=self.clock,
            counts=Counts(episodes=len(self._episodes), frames=self._frames, shards=self._shard_number),
            storage=StorageLayout(row_group_frames=self.row_group_frames),
            **self._manifest_base,
        )
        files = {
            layout.EPISODES: self._table_bytes(pa.Table.from_pylist(self._episodes, schema=layout.EPISODES_SCHEMA)),
            layout.TASKS: self._table_bytes(tasks),
            **({layout.STATS: json.dumps(stats, indent=1, allow_nan=False).encode()} if self.keeps_stats else {}),
            layout.MANIFEST: manifest.model_dump_json(indent=2).encode(),  # renamed last
        }
        atomic.write_files(self.root, files)  # fsynced together: one journal commit, not four
        (self.root / layout.WRITING_MARKER).unlink()
        self._output.commit()
        return manifest

    def _table_bytes(self, table: pa.Table) -> bytes:
        """A small table (episodes, tasks) as a Parquet file's bytes."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", write_page_checksum=self.page_checksums)
        data: bytes = sink.getvalue().to_pybytes()
        return data


def _split_batches(batches: list[pa.RecordBatch], rows: int) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch]]:
    """The first ``rows`` rows of ``batches`` and the rest, as batches (the one cut is sliced, not copied)."""
    taken = 0
    for i, batch in enumerate(batches):
        if taken + batch.num_rows > rows:
            cut = rows - taken
            head = [*batches[:i], batch.slice(0, cut)] if cut else batches[:i]
            return head, [batch.slice(cut), *batches[i + 1 :]]
        taken += batch.num_rows
    return list(batches), []


def _write_group(write: Any, group: pa.Table, rows: int) -> None:
    """Encode and write one row group (Parquet's C++ writer runs without the GIL)."""
    write(group, row_group_size=rows)


def _finish_shard(parquet: ShardFile, tmp: Path, final: Path) -> None:
    """Close a shard's Parquet file (its footer), fsync it and rename it to ``final``."""
    parquet.close()
    atomic.commit(tmp, final)


@contextlib.contextmanager
def _frame_context(ep: _OpenEpisode, camera: str, frame: int) -> Iterator[None]:
    """Name the episode, camera and frame in an error about one frame's pixels or bytes."""
    try:
        yield
    except (EpisodeError, CorruptSourceError) as exc:
        where = f"episode {ep.meta.episode_id!r}, camera {camera}, frame {frame}"
        raise type(exc)(f"{where}: {exc.message}", hint=exc.hint, situation=exc.situation) from exc


def require_unique_ids(ids: Sequence[str]) -> None:
    """Raise :class:`EpisodeError` naming (up to five of) the episode ids that occur more than once."""
    if len(set(ids)) == len(ids):
        return
    dupes = sorted(i for i, n in collections.Counter(ids).items() if n > 1)[:5]
    raise EpisodeError(
        f"episode ids are not unique: {dupes}",
        hint="the source key must be unique per episode",
        situation="episode-ids-not-unique",
    )


def binary_sizes(array: pa.BinaryArray) -> npt.NDArray[np.int64]:
    """Each value's size in bytes of a binary array, from its offsets (no object per value)."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=array.offset + len(array) + 1)
    return np.diff(offsets[array.offset :]).astype(np.int64)


def nominal_rate_hz(timestamps: npt.NDArray[np.float64]) -> float:
    """Nominal frame rate from timestamps (30 when there are fewer than two frames)."""
    steps = np.diff(timestamps)
    return float(1.0 / np.median(steps)) if steps.size and np.median(steps) > 0 else 30.0


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    raise TypeError(f"cannot store {type(value).__name__} in source_meta")


def parquet_write_options(
    columns: Sequence[str], image_columns: Collection[str], page_checksums: bool = True
) -> dict[str, Any]:
    """The :class:`pyarrow.parquet.ParquetWriter` options of a frame shard (for code that writes shards outside
    the writer, e.g. the batch and merge assembly): encoded image bytes uncompressed and without dictionary or
    statistics, zstd for the rest, page checksums."""
    return {
        "compression": {c: ("none" if c in image_columns else "zstd") for c in columns},
        "use_dictionary": [c for c in columns if c not in image_columns],
        "write_statistics": [c for c in columns if c not in image_columns],
        "write_page_checksum": page_checksums,
    }

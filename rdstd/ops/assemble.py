"""Writing a canonical dataset from selected episodes of existing ones, without decoding anything.

The common back end of merge, split and filter. Each input shard is read one row group at a time (page checksums
verified), the rows of the selected episodes are kept, renumbered (``episode_index``, ``index``) and written as
row groups of a new shard: image bytes pass through as Arrow buffers (never decoded, byte-identical), vectors are
copied (or scaled, for a unit conversion), video files are hard-linked (copied across file systems) and their frame
references re-pointed. Memory is bounded by one row group. An input that lacks a merged feature gets null rows
(float vectors: NaN underneath, so readers see NaN).

Statistics: count, mean, std, min and max are merged exactly from the inputs' ``stats.json`` where a whole input
is taken unchanged (:func:`rdstd.store.stats.merge_moments`, Chan's update), and computed from the rows as written
otherwise (episodes left out, or values converted: the stored values are rounded to the feature's dtype);
q01/q99 are always recomputed in the same streaming pass over the written low-dimensional columns (the store's
reservoir: exact up to 65,536 frames per feature, else an estimate with ±0.04 percentile-point rank error).

The output goes through :class:`~rdstd.store.output.Output`: built in a hidden sibling, renamed into place,
locked; any failure leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rdstd.errors import CorruptDatasetError
from rdstd.io import atomic
from rdstd.io.parquet import PARQUET_ERRORS
from rdstd.paths import inside
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.manifest import Counts, Manifest, StorageLayout
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store import layout
from rdstd.store.output import Output
from rdstd.store.reader import Dataset
from rdstd.store.stats import RunningStats, merge_moments
from rdstd.store.writer import KIND, parquet_write_options

Feature = VectorFeature | ImageFeature
#: Shards written at once (threads: Parquet reading and writing release the GIL).
WORKERS = 2
Progress = Callable[[int, int], None]


@dataclass
class Part:
    """Episodes taken from one input dataset, and how its columns become the output's.

    ``rows``: the input's episode rows to take, in order of their place in the shards, each already carrying its
    output values for ``episode_id``, ``task``, ``split``, ``embodiment``, ``source_meta`` (``episode_index``,
    ``task_index``, ``shard``, ``shard_row`` and ``frame_start`` are set here).
    """

    dataset: Dataset
    rows: list[dict[str, Any]]
    columns: dict[str, str]
    factors: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    video_prefix: str = ""  # inserted after "videos/" in frame references and file names
    whole: bool = False  # every episode of the input, unchanged: its stats.json moments can be merged as they are


@dataclass
class _ShardJob:
    """One input shard to copy into one output shard: its selected episodes' old and new numbering."""

    part: Part
    source: Path
    target: Path
    rows: list[dict[str, Any]]
    old: npt.NDArray[np.int64]
    new_index: npt.NDArray[np.int64]
    new_starts: npt.NDArray[np.int64]

    @property
    def episodes(self) -> int:
        """How many episodes it holds."""
        return len(self.rows)


def assemble(
    out: Path,
    parts: list[Part],
    manifest: Manifest,
    *,
    sources: list[Path],
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Manifest:
    """Write the episodes of ``parts`` as the dataset ``out`` with ``manifest``'s features and metadata.

    ``manifest.counts`` and ``storage`` are filled in here; returns the manifest written.
    """
    output = Output.begin(out, is_kind=layout.is_dataset, kind=KIND, overwrite=overwrite, sources=sources)
    try:
        with output.guard():
            written = _Assembly(output.tmp, parts, manifest, progress).run()
        output.commit()
    except BaseException:
        output.abort()
        raise
    return written


class _Assembly:
    def __init__(self, root: Path, parts: list[Part], manifest: Manifest, progress: Progress | None) -> None:
        self.root = root
        self.parts = parts
        self.manifest = manifest
        self.features = manifest.features
        self.schema = layout.frame_schema(self.features)
        self.images = [
            k for k, f in self.features.items() if isinstance(f, ImageFeature) and f.codec != ImageCodec.VIDEO
        ]
        self.stats = {k: RunningStats(f.size) for k, f in self.features.items() if isinstance(f, VectorFeature)}
        self.shard = 0
        self.frames = 0
        self.episodes: list[dict[str, Any]] = []
        self.tasks: dict[str, int] = {}
        self.linked: set[str] = set()
        self.link_lock = threading.Lock()
        self.progress = progress
        self.total = sum(len(p.rows) for p in parts)

    def run(self) -> Manifest:
        (self.root / layout.DATA_DIR).mkdir()
        marker = {"pid": os.getpid(), "output": str(self.root)}
        (self.root / layout.WRITING_MARKER).write_text(json.dumps(marker), encoding="utf-8")
        jobs = [job for part in self.parts for job in self._plan(part)]
        done = 0
        with ThreadPoolExecutor(WORKERS) as pool:
            pending: deque[tuple[_ShardJob, Future[dict[str, list[npt.NDArray[Any]]]]]] = deque()
            try:
                for job in [*jobs, None]:
                    if job is not None:
                        pending.append((job, pool.submit(self._write_shard, job)))
                    while pending and (job is None or len(pending) > WORKERS):
                        finished, future = pending.popleft()
                        for key, values in future.result().items():  # in shard order: stats do not depend on timing
                            self.stats[key].update(np.concatenate(values))
                        done += finished.episodes
                        if self.progress is not None:
                            self.progress(done, self.total)
            except BaseException:
                for _, future in pending:
                    future.cancel()
                raise
        return self._finish()

    # -- rows -----------------------------------------------------------------------------------------------------

    def _plan(self, part: Part) -> list[_ShardJob]:
        """One job per input shard: the output shard it becomes, and its episodes' new rows (in order)."""
        by_shard: dict[int, list[dict[str, Any]]] = {}
        for row in part.rows:
            by_shard.setdefault(int(row["shard"]), []).append(row)
        jobs = []
        for shard, unsorted in sorted(by_shard.items()):
            rows = sorted(unsorted, key=lambda r: int(r["shard_row"]))
            first_new = len(self.episodes)
            lengths = np.array([int(r["length"]) for r in rows], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            new_starts = self.frames + offsets
            for i, row in enumerate(rows):
                self.episodes.append(self._episode_row(row, first_new + i, int(new_starts[i]), int(offsets[i])))
            old = np.array([int(r["episode_index"]) for r in rows], dtype=np.int64)
            jobs.append(
                _ShardJob(
                    part=part,
                    source=part.dataset.path / layout.shard_name(shard),  # local inputs only (a URL: a clear error)
                    target=self.root / layout.shard_name(self.shard),
                    rows=rows,
                    old=old,
                    new_index=np.arange(first_new, first_new + len(rows), dtype=np.int64),
                    new_starts=new_starts,
                )
            )
            self.shard += 1
            self.frames += int(lengths.sum())
        return jobs

    def _write_shard(self, job: _ShardJob) -> dict[str, list[npt.NDArray[Any]]]:
        """Copy one input shard's selected rows into its output shard; returns the vectors written (for stats)."""
        handle = pq.ParquetFile(str(job.source), page_checksum_verification=True)
        order = np.argsort(job.old)
        sorted_old = job.old[order]
        written: dict[str, list[npt.NDArray[Any]]] = {}
        tmp = atomic.temp_name(job.target)
        writer = self._writer(tmp)
        try:
            for read in _prefetched(
                handle, job.source, _needed_groups(handle, job.rows), self._input_columns(job.part)
            ):
                table = read
                old_ep = table.column("episode_index").to_numpy()
                pos = np.clip(np.searchsorted(sorted_old, old_ep), 0, len(sorted_old) - 1)
                keep = sorted_old[pos] == old_ep
                if not keep.any():
                    continue
                if not keep.all():
                    table = table.filter(pa.array(keep))
                    pos = pos[keep]
                rows = self._rows(job.part, table, order[pos], job.new_index, job.new_starts, written)
                writer.write_table(rows, row_group_size=len(table))
        finally:
            writer.close()
        atomic.commit(tmp, job.target)
        return written

    def _input_columns(self, part: Part) -> list[str]:
        return [*layout.INDEX_COLUMNS, *dict.fromkeys(part.columns.values())]

    def _rows(
        self,
        part: Part,
        table: pa.Table,
        which: npt.NDArray[np.int64],
        new_index: npt.NDArray[np.int64],
        new_starts: npt.NDArray[np.int64],
        written: dict[str, list[npt.NDArray[Any]]],
    ) -> pa.Table:
        n = len(table)
        frame_index = table.column("frame_index").to_numpy()
        columns: list[pa.Array | pa.ChunkedArray] = [
            pa.array(new_index[which]),
            table.column("frame_index"),
            pa.array(new_starts[which] + frame_index),
            table.column("timestamp"),
        ]
        for key, feature in self.features.items():
            source = part.columns.get(key)
            if source is None:
                columns.append(_nulls(feature, n))
                continue
            column = table.column(source)
            if isinstance(feature, VectorFeature):
                column = self._vector(part, key, feature, column, written)
            elif feature.codec == ImageCodec.VIDEO:
                column = self._video(part, column)
            columns.append(column)
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _vector(
        self,
        part: Part,
        key: str,
        feature: VectorFeature,
        column: pa.ChunkedArray,
        written: dict[str, list[npt.NDArray[Any]]],
    ) -> pa.Array:
        combined = column.combine_chunks()
        values = combined.values.to_numpy(zero_copy_only=False).reshape(len(combined), feature.size)
        factor = part.factors.get(key)
        if factor is not None:
            values = values * factor
        values = np.ascontiguousarray(values, dtype=feature.dtype)
        valid = values if not combined.null_count else values[combined.is_valid().to_numpy(zero_copy_only=False)]
        written.setdefault(key, []).append(valid)  # null rows (an input without the feature) are not data
        if factor is None and combined.type == layout.arrow_type(feature):
            return combined
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), feature.size)

    def _video(self, part: Part, column: pa.ChunkedArray) -> pa.Array:
        refs = column.combine_chunks()
        paths = refs.field("path")
        for rel in pc.unique(paths).to_pylist():
            self._link(part, rel)
        if not part.video_prefix:
            return refs
        moved = pc.replace_substring_regex(paths, pattern=f"^{layout.VIDEOS_DIR}/", replacement=self._videos_dir(part))
        return pa.StructArray.from_arrays([moved, refs.field("timestamp_s")], fields=list(refs.type))

    def _videos_dir(self, part: Part) -> str:
        return f"{layout.VIDEOS_DIR}/{part.video_prefix}/" if part.video_prefix else f"{layout.VIDEOS_DIR}/"

    def _link(self, part: Part, rel: str) -> None:
        """Hard-link (or copy, across file systems) a referenced video file into the output, once."""
        new_rel = rel.replace(f"{layout.VIDEOS_DIR}/", self._videos_dir(part), 1)
        with self.link_lock:
            if new_rel in self.linked:
                return
            self.linked.add(new_rel)
        source = inside(part.dataset.path, rel, "a frame reference")
        target = inside(self.root, new_rel, "a frame reference")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            with atomic.atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)

    def _writer(self, path: Path) -> pq.ParquetWriter:
        """A shard writer with the store writer's options (uncompressed image bytes, zstd else, page checksums)."""
        return pq.ParquetWriter(path, self.schema, **parquet_write_options(self.schema.names, self.images))

    # -- tables -----------------------------------------------------------------------------------------------------

    def _episode_row(self, row: dict[str, Any], index: int, frame_start: int, shard_row: int) -> dict[str, Any]:
        task = row.get("task")
        task_index = self.tasks.setdefault(task, len(self.tasks)) if task else None
        out = {k: row.get(k) for k in layout.EPISODES_SCHEMA.names}
        out.update(
            episode_index=index,
            task_index=task_index,
            shard=self.shard,
            shard_row=shard_row,
            frame_start=frame_start,
        )
        return out

    def _finish(self) -> Manifest:
        table = pa.Table.from_pylist(self.episodes, schema=layout.EPISODES_SCHEMA)
        self._write_table(layout.EPISODES, table)
        tasks = pa.table(
            {"task_index": pa.array(list(self.tasks.values()), pa.int64()), "task": list(self.tasks.keys())}
        )
        self._write_table(layout.TASKS, tasks)
        stats = self._stats()
        atomic.write_bytes(self.root / layout.STATS, json.dumps(stats, indent=1, allow_nan=False).encode())
        row_group_frames = min((p.dataset.manifest.storage.row_group_frames for p in self.parts), default=8)
        manifest = self.manifest.model_copy(
            update={
                "counts": Counts(episodes=len(self.episodes), frames=self.frames, shards=self.shard),
                "storage": StorageLayout(row_group_frames=row_group_frames),
            }
        )
        atomic.write_bytes(self.root / layout.MANIFEST, manifest.model_dump_json(indent=2).encode())
        (self.root / layout.WRITING_MARKER).unlink()
        return manifest

    def _stats(self) -> dict[str, Any]:
        """Moments merged from whole inputs where every part is whole; quantiles from this pass's rows."""
        out: dict[str, Any] = {}
        for key, running in self.stats.items():
            fresh = running.as_dict()
            holders = [p for p in self.parts if key in p.columns and p.rows]
            if holders and all(p.whole and key not in p.factors for p in holders):
                fresh.update(merge_moments([p.dataset.stats[p.columns[key]] for p in holders]))
            out[key] = fresh
        return out

    def _write_table(self, name: str, table: pa.Table) -> None:
        with atomic.atomic_path(self.root / name) as tmp:
            pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)


def _needed_groups(handle: pq.ParquetFile, rows: list[dict[str, Any]]) -> list[int]:
    """The row groups of a shard that hold rows of the selected episodes (others are not read)."""
    sizes = [handle.metadata.row_group(g).num_rows for g in range(handle.metadata.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    needed: set[int] = set()
    for row in rows:
        first, length = int(row["shard_row"]), int(row["length"])
        if length:
            g0 = int(np.searchsorted(starts, first, side="right")) - 1
            g1 = int(np.searchsorted(starts, first + length - 1, side="right")) - 1
            needed.update(range(g0, g1 + 1))
    return sorted(needed)


def _prefetched(handle: pq.ParquetFile, file: Path, groups: list[int], columns: list[str]) -> Iterator[pa.Table]:
    """The row groups, each read (checksums verified) in a helper thread while the previous one is processed."""

    def read(group: int) -> pa.Table:
        try:
            return handle.read_row_group(group, columns=columns, use_threads=False)  # shards run in parallel
        except PARQUET_ERRORS as exc:
            raise CorruptDatasetError(
                f"{file}, row group {group}: cannot be read ({exc})",
                hint="the input dataset is damaged; rebuild it with rdstd convert",
                situation="shard-unreadable",
            ) from exc

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(read, groups[0]) if groups else None
        for i in range(len(groups)):
            assert pending is not None
            table = pending.result()
            pending = pool.submit(read, groups[i + 1]) if i + 1 < len(groups) else None
            yield table


def _nulls(feature: Feature, n: int) -> pa.Array:
    """``n`` null rows of a feature an input does not have (float vectors hold NaN under the nulls)."""
    if isinstance(feature, ImageFeature):
        return pa.nulls(n, layout.arrow_type(feature))
    dtype = np.dtype(feature.dtype)
    fill = np.full(n * feature.size, np.nan if dtype.kind == "f" else 0, dtype=dtype)
    mask = pa.array(np.ones(n, dtype=bool))
    return pa.FixedSizeListArray.from_arrays(pa.array(fill), feature.size, mask=mask)

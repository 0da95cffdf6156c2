"""The final step of a batch conversion: the units' datasets become one canonical dataset.

Each unit's shards are rewritten into the output with dataset-wide numbering (``episode_index`` and ``index``
shifted by the episodes and frames of the units before it; video references renamed to the unit's prefixed
files), row group by row group with the writer's Parquet settings, so memory is bounded by a row group and the
bytes depend only on the units, never on which worker made them. Then the episode index (tasks renumbered in
order of first appearance, as the writer does), ``tasks.parquet``, ``stats.json`` (the units' partial statistics
merged in unit order) and the manifest, last.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rdstd.batch.place import Place
from rdstd.io import atomic
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store import layout
from rdstd.store.writer import parquet_write_options, require_unique_ids


@dataclass(frozen=True)
class Placement:
    """Where a unit's rows go in the final dataset (``shards`` and ``videos``: its files, relative to its folder)."""

    unit: int
    folder: str
    shards: tuple[str, ...]
    videos: tuple[str, ...]
    shard_start: int
    episode_offset: int
    frame_offset: int
    #: The (episode, frame) numbers the unit's rows already start at (its planned place; (0, 0) if none): the
    #: offsets above are added less these, and a unit already numbered right is linked into place, not rewritten.
    numbered_from: tuple[int, int] = (0, 0)

    @property
    def shifts(self) -> tuple[int, int]:
        """What the unit's episode and frame numbers must be shifted by."""
        return self.episode_offset - self.numbered_from[0], self.frame_offset - self.numbered_from[1]


def video_name(unit: int, rel: str) -> str:
    """The final path of a unit's video file ``rel`` (``videos/<camera>/uNNNNN-<name>``)."""
    head, _, name = rel.rpartition("/")
    return f"{head}/u{unit:05d}-{name}"


def shard_writer(path: Path, schema: pa.Schema, image_columns: list[str]) -> pq.ParquetWriter:
    """A Parquet writer with the settings of :class:`~rdstd.store.writer.DatasetWriter`'s shards."""
    return pq.ParquetWriter(path, schema, **parquet_write_options(schema.names, image_columns))


def place_unit(
    placement: Placement, staging: Place, out: Place, features: dict[str, VectorFeature | ImageFeature]
) -> dict[str, Any]:
    """Put one unit's shards into ``out`` (the output being built) and copy its video files; returns counts.

    A unit already numbered as in the final dataset (:attr:`Placement.shifts` zero) without video is linked
    into place (a hard link locally, a server-side copy in one store): no byte is read or written again. Other
    units' shards are rewritten renumbered.

    Runs on the executor (one task per unit). A local shard is written to a temporary name, fsynced and renamed;
    a remote one is built in a local scratch folder and uploaded whole.
    """
    schema = layout.frame_schema(features)
    images = [k for k, f in features.items() if isinstance(f, ImageFeature) and f.codec != ImageCodec.VIDEO]
    videos = [k for k, f in features.items() if isinstance(f, ImageFeature) and f.codec == ImageCodec.VIDEO]
    if linked_as_is(placement, features):  # numbered right already: the shards go in as they are
        for number, shard in enumerate(placement.shards):
            staging.copy_to(f"{placement.folder}/{shard}", out, layout.shard_name(placement.shard_start + number))
        if placement.shards and not out.remote:
            atomic.fsync_dir(out.path(layout.shard_name(placement.shard_start)).parent)
        return {"unit": placement.unit, "shards": len(placement.shards)}
    # a scratch folder only for object storage (locally, a unit is placed between the driver's own units)
    remote = staging.remote or out.remote
    with tempfile.TemporaryDirectory(prefix="rdstd-assemble-") if remote else nullcontext("") as scratch_name:
        scratch = Path(scratch_name)
        for number, shard in enumerate(placement.shards):
            final = layout.shard_name(placement.shard_start + number)
            source = pq.ParquetFile(
                staging.fetch(f"{placement.folder}/{shard}", scratch), page_checksum_verification=True
            )
            if out.remote:
                built = scratch / f"shard-{number}.parquet"
                _rewrite(source, built, schema, images, videos, placement)
                out.put_file(built, final)
                built.unlink()
            else:
                out.path(final).parent.mkdir(parents=True, exist_ok=True)
                with atomic.atomic_path(out.path(final)) as tmp:
                    _rewrite(source, tmp, schema, images, videos, placement)
    for rel in placement.videos:  # the unit's copy stays until the output is in place (a failed assembly resumes)
        staging.copy_to(f"{placement.folder}/{rel}", out, video_name(placement.unit, rel))
    return {"unit": placement.unit, "shards": len(placement.shards)}


def linked_as_is(placement: Placement, features: dict[str, VectorFeature | ImageFeature]) -> bool:
    """Whether :func:`place_unit` links the unit's shards into place as they are (numbered right, no video to
    rename) rather than rewriting them."""
    no_video = not any(isinstance(f, ImageFeature) and f.codec == ImageCodec.VIDEO for f in features.values())
    return placement.shifts == (0, 0) and no_video


def _rewrite(
    source: pq.ParquetFile,
    target: Path,
    schema: pa.Schema,
    images: list[str],
    videos: list[str],
    placement: Placement,
) -> None:
    writer = shard_writer(target, schema, images)
    try:
        for group in range(source.metadata.num_row_groups):
            table = _renumber(source.read_row_group(group), placement, videos)
            writer.write_table(table, row_group_size=table.num_rows)
    finally:
        writer.close()


def _renumber(table: pa.Table, placement: Placement, videos: list[str]) -> pa.Table:
    episodes, frames = placement.shifts
    columns = {
        "episode_index": pc.add(table.column("episode_index"), episodes),
        "index": pc.add(table.column("index"), frames),
    }
    for key in videos:
        refs = table.column(key).combine_chunks()
        paths = [video_name(placement.unit, p) if p is not None else None for p in refs.field("path").to_pylist()]
        columns[key] = pa.StructArray.from_arrays([pa.array(paths, pa.string()), refs.field(1)], fields=list(refs.type))
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), column)
    return table


class EpisodeIndex:
    """The dataset's episode index and task table, built from the units' in unit order (each renumbered; tasks
    numbered by first appearance, as the writer does)."""

    def __init__(self) -> None:
        self._tasks: dict[str, int] = {}
        self._parts: list[pa.Table] = []

    def add(self, placement: Placement, staging: Place) -> None:
        """Add the episodes of the unit ``placement`` places (after those of every unit before it)."""
        raw = staging.read_bytes(f"{placement.folder}/{layout.EPISODES}")
        table = pq.read_table(pa.BufferReader(raw), schema=layout.EPISODES_SCHEMA)
        if not table.num_rows:
            return
        tasks = self._tasks
        task_index = [tasks.setdefault(t, len(tasks)) if t else None for t in table.column("task").to_pylist()]
        episodes, frames = placement.shifts
        updates = {
            "episode_index": pc.add(table.column("episode_index"), episodes),
            "task_index": pa.array(task_index, pa.int64()),
            "shard": pc.cast(pc.add(table.column("shard"), placement.shard_start), pa.int32()),
            "frame_start": pc.add(table.column("frame_start"), frames),
        }
        for name, column in updates.items():
            index = table.schema.get_field_index(name)
            table = table.set_column(index, layout.EPISODES_SCHEMA.field(name), column)
        self._parts.append(table)

    def tables(self) -> tuple[pa.Table, pa.Table]:
        """The episode index and the task table (episode ids must be unique)."""
        episodes = pa.concat_tables(self._parts) if self._parts else layout.EPISODES_SCHEMA.empty_table()
        require_unique_ids(episodes.column("episode_id").to_pylist())
        tasks = self._tasks
        task_table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": list(tasks.keys())})
        return episodes, task_table


def episode_table(placements: list[Placement], staging: Place) -> tuple[pa.Table, pa.Table]:
    """The dataset's episode index and task table from the units' (renumbered; tasks by first appearance)."""
    index = EpisodeIndex()
    for placement in placements:
        index.add(placement, staging)
    return index.tables()


def write_table(out: Place, rel: str, table: pa.Table) -> None:
    """A small table (episodes, tasks) as the writer writes it: zstd, page checksums, written whole."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_page_checksum=True)
    out.write_bytes(rel, sink.getvalue().to_pybytes())


def write_json(out: Place, rel: str, data: Any) -> None:
    """Strict JSON (``allow_nan=False``) written whole."""
    out.write_bytes(rel, json.dumps(data, indent=1, allow_nan=False).encode())

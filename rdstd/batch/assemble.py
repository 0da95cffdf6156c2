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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rdstd.errors import EpisodeError
from rdstd.io import atomic
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store import layout


@dataclass(frozen=True)
class Placement:
    """Where a unit's rows go in the final dataset."""

    unit: int
    folder: str
    shard_start: int
    episode_offset: int
    frame_offset: int


def unit_shards(folder: Path) -> list[Path]:
    """A unit dataset's shard files, in order."""
    return sorted((folder / layout.DATA_DIR).glob("shard-*.parquet"))


def video_name(unit: int, rel: str) -> str:
    """The final path of a unit's video file ``rel`` (``videos/<camera>/uNNNNN-<name>``)."""
    head, _, name = rel.rpartition("/")
    return f"{head}/u{unit:05d}-{name}"


def shard_writer(path: Path, schema: pa.Schema, image_columns: list[str]) -> pq.ParquetWriter:
    """A Parquet writer with the settings of :class:`~rdstd.store.writer.DatasetWriter`'s shards."""
    return pq.ParquetWriter(
        path,
        schema,
        compression={c: ("none" if c in image_columns else "zstd") for c in schema.names},
        use_dictionary=[c for c in schema.names if c not in image_columns],
        write_statistics=[c for c in schema.names if c not in image_columns],
        write_page_checksum=True,
    )


def place_unit(placement: Placement, root: str, features: dict[str, VectorFeature | ImageFeature]) -> dict[str, Any]:
    """Rewrite one unit's shards into ``root`` (the output being built) and link its video files; returns counts.

    Runs on the executor (one task per unit). Each shard is written to a temporary name, fsynced and renamed.
    """
    folder, out = Path(placement.folder), Path(root)
    schema = layout.frame_schema(features)
    images = [k for k, f in features.items() if isinstance(f, ImageFeature) and f.codec != ImageCodec.VIDEO]
    videos = [k for k, f in features.items() if isinstance(f, ImageFeature) and f.codec == ImageCodec.VIDEO]
    written = 0
    for number, shard in enumerate(unit_shards(folder)):
        final = out / layout.shard_name(placement.shard_start + number)
        final.parent.mkdir(parents=True, exist_ok=True)
        source = pq.ParquetFile(shard, page_checksum_verification=True)
        with atomic.atomic_path(final) as tmp:
            writer = shard_writer(tmp, schema, images)
            try:
                for group in range(source.metadata.num_row_groups):
                    table = source.read_row_group(group)
                    table = _renumber(table, placement, videos)
                    writer.write_table(table, row_group_size=table.num_rows)
            finally:
                writer.close()
        written += 1
    for file in sorted((folder / layout.VIDEOS_DIR).rglob("*")) if videos else []:
        if file.is_file():
            target = out / video_name(placement.unit, file.relative_to(folder).as_posix())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(file, target)  # the unit's copy stays until the output is committed (a failed assembly resumes)
    return {"unit": placement.unit, "shards": written}


def _renumber(table: pa.Table, placement: Placement, videos: list[str]) -> pa.Table:
    columns = {
        "episode_index": pc.add(table.column("episode_index"), placement.episode_offset),
        "index": pc.add(table.column("index"), placement.frame_offset),
    }
    for key in videos:
        refs = table.column(key).combine_chunks()
        paths = [video_name(placement.unit, p) if p is not None else None for p in refs.field("path").to_pylist()]
        columns[key] = pa.StructArray.from_arrays([pa.array(paths, pa.string()), refs.field(1)], fields=list(refs.type))
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), column)
    return table


def episode_table(placements: list[Placement]) -> tuple[pa.Table, pa.Table]:
    """The dataset's episode index and task table from the units' (renumbered; tasks by first appearance)."""
    tasks: dict[str, int] = {}
    parts: list[pa.Table] = []
    for placement in placements:
        table = pq.read_table(Path(placement.folder) / layout.EPISODES, schema=layout.EPISODES_SCHEMA)
        if not table.num_rows:
            continue
        task_index = [tasks.setdefault(t, len(tasks)) if t else None for t in table.column("task").to_pylist()]
        updates = {
            "episode_index": pc.add(table.column("episode_index"), placement.episode_offset),
            "task_index": pa.array(task_index, pa.int64()),
            "shard": pc.cast(pc.add(table.column("shard"), placement.shard_start), pa.int32()),
            "frame_start": pc.add(table.column("frame_start"), placement.frame_offset),
        }
        for name, column in updates.items():
            index = table.schema.get_field_index(name)
            table = table.set_column(index, layout.EPISODES_SCHEMA.field(name), column)
        parts.append(table)
    episodes = pa.concat_tables(parts) if parts else layout.EPISODES_SCHEMA.empty_table()
    ids = episodes.column("episode_id").to_pylist()
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise EpisodeError(f"episode ids are not unique: {dupes}", hint="the source key must be unique per episode")
    task_table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": list(tasks.keys())})
    return episodes, task_table


def write_table(path: Path, table: pa.Table) -> None:
    """A small table (episodes, tasks) as the writer writes it: zstd, page checksums, atomically."""
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)


def write_json(path: Path, data: Any) -> None:
    """JSON written atomically (``allow_nan=False``: the files are strict JSON)."""
    atomic.write_bytes(path, json.dumps(data, indent=1, allow_nan=False).encode())

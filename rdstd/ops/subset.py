"""Writing some episodes of one dataset (filter, split) as a new dataset: zero-copy when the frames do not change.

When every episode is kept in its place (only episode-table columns such as ``split`` change), the shards, videos,
tasks and stats are hard-linked (copied across file systems) and only the episode table and manifest are written.
Otherwise the kept episodes go through :func:`rdstd.ops.assemble.assemble` (renumbered; stats recomputed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rdstd.io import atomic
from rdstd.ops.assemble import Part, Progress, assemble
from rdstd.schema.manifest import Manifest
from rdstd.store import layout
from rdstd.store.output import Output
from rdstd.store.reader import Dataset
from rdstd.store.writer import KIND


def write_subset(
    ds: Dataset,
    rows: list[dict[str, Any]],
    out: Path,
    manifest: Manifest,
    *,
    overwrite: bool = False,
    whole: bool = False,
    progress: Progress | None = None,
) -> Manifest:
    """Write episode ``rows`` of ``ds`` (in shard order, with their new metadata) as ``out`` with ``manifest``.

    ``whole``: ``rows`` are all of ``ds``'s episodes in order, frames unchanged (links instead of copies).
    """
    if not whole:
        columns = {k: k for k in manifest.features}
        part = Part(ds, rows, columns)
        return assemble(out, [part], manifest, sources=[ds.path], overwrite=overwrite, progress=progress)
    output = Output.begin(out, is_kind=layout.is_dataset, kind=KIND, overwrite=overwrite, sources=[ds.path])
    try:
        with output.guard():
            _link_all(ds.path, output.tmp)
            marker = {"pid": os.getpid(), "output": str(out)}
            (output.tmp / layout.WRITING_MARKER).write_text(json.dumps(marker), encoding="utf-8")
            table = pa.Table.from_pylist(
                [{k: r.get(k) for k in layout.EPISODES_SCHEMA.names} for r in rows], schema=layout.EPISODES_SCHEMA
            )
            with atomic.atomic_path(output.tmp / layout.EPISODES) as tmp:
                pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
            atomic.write_bytes(output.tmp / layout.MANIFEST, manifest.model_dump_json(indent=2).encode())
            (output.tmp / layout.WRITING_MARKER).unlink()
        output.commit()
    except BaseException:
        output.abort()
        raise
    if progress is not None:
        progress(len(rows), len(rows))
    return manifest


def _link_all(src: Path, dst: Path) -> None:
    """Hard-link the shards, videos, tasks and stats of ``src`` into ``dst`` (copy where links fail)."""
    names = [layout.TASKS, layout.STATS]
    for folder in (layout.DATA_DIR, layout.VIDEOS_DIR):
        for base, _, files in os.walk(src / folder):
            names.extend(str(Path(base, f).relative_to(src)) for f in files)
    for rel in names:
        source, target = src / rel, dst / rel
        if not source.is_file() or source.is_symlink():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)

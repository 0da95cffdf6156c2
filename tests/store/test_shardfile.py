"""A shard written as segments (rdstd.store.shardfile) is byte for byte what one ParquetWriter writes, and keeps
only serialized metadata per row group: a long episode's shard no longer holds every row group's Thrift objects."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rdstd.errors import InternalError
from rdstd.store import shardfile
from rdstd.store.shardfile import SEGMENT_WRITES, ShardFile
from rdstd.store.writer import DatasetWriter, parquet_write_options
from tests.store.helpers import FEATURES, PROVENANCE, make_episode

SCHEMA = pa.schema(
    [
        ("episode_index", pa.int64(), False),
        ("timestamp", pa.float64(), False),
        ("state", pa.list_(pa.float32(), 7)),
        ("image", pa.binary()),
        ("label", pa.string()),
        ("flag", pa.bool_()),
    ]
)


def _table(rng: np.random.Generator, rows: int) -> pa.Table:
    return pa.table(
        {
            "episode_index": np.full(rows, int(rng.integers(0, 5)), dtype=np.int64),
            "timestamp": rng.normal(size=rows),
            "state": pa.FixedSizeListArray.from_arrays(rng.normal(size=rows * 7).astype(np.float32), 7),
            "image": pa.array([rng.bytes(int(rng.integers(0, 3000))) for _ in range(rows)]),
            "label": pa.array([None if rng.random() < 0.3 else "ab"[int(rng.integers(2))] * 3 for _ in range(rows)]),
            "flag": pa.array(rng.random(rows) < 0.5),
        },
        schema=SCHEMA,
    )


def _writes(seed: int, calls: int) -> list[tuple[pa.Table, int]]:
    rng = np.random.default_rng(seed)
    return [(_table(rng, int(rng.integers(1, 200))), int(rng.integers(1, 80))) for _ in range(calls)]


def _written_both_ways(tmp_path: Path, writes: list[tuple[pa.Table, int]], options: dict[str, Any]) -> Path:
    """``writes`` written by one ``ParquetWriter`` and by a :class:`ShardFile`; the latter's file, checked to hold
    the former's bytes."""
    expected, ours = tmp_path / "expected.parquet", tmp_path / "ours.parquet"
    with pq.ParquetWriter(expected, SCHEMA, **options) as writer:
        for table, group in writes:
            writer.write_table(table, row_group_size=group)
    shard = ShardFile(ours, SCHEMA, options)
    for table, group in writes:
        shard.write_table(table, row_group_size=group)
    shard.close()
    assert ours.read_bytes() == expected.read_bytes()
    return ours


@pytest.mark.parametrize("entries_in_memory", [shardfile.ENTRIES_IN_MEMORY, 1000])
@pytest.mark.parametrize("checksums", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_shard_file_is_byte_for_byte_what_one_parquet_writer_writes(
    tmp_path: Path, seed: int, checksums: bool, entries_in_memory: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also with the row groups' metadata past ``entries_in_memory`` kept in a temporary file (1000 bytes: the
    first two or so in memory, the rest on disk), which goes beside the shard, not to TMPDIR (here missing)."""
    monkeypatch.setattr(shardfile, "ENTRIES_IN_MEMORY", entries_in_memory)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-tmpdir"))
    options = parquet_write_options(SCHEMA.names, ["image"], checksums)
    writes = _writes(seed, SEGMENT_WRITES * 2 + 7)  # three segments, the last one short
    ours = _written_both_ways(tmp_path, writes, options)
    read = pq.ParquetFile(ours, page_checksum_verification=checksums)
    assert read.metadata.num_row_groups > SEGMENT_WRITES * 2
    assert read.read().equals(pa.concat_tables([t for t, _ in writes]))


def test_an_empty_shard_file_is_what_a_writer_given_no_rows_writes(tmp_path: Path) -> None:
    options = parquet_write_options(SCHEMA.names, ["image"])
    pq.ParquetWriter(tmp_path / "expected.parquet", SCHEMA, **options).close()
    ShardFile(tmp_path / "ours.parquet", SCHEMA, options).close()
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "expected.parquet").read_bytes()


def test_options_that_add_data_at_close_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InternalError, match="write_page_index"):
        ShardFile(tmp_path / "x.parquet", SCHEMA, {"write_page_index": True})


def test_a_failed_write_leaves_a_file_that_close_does_not_pass_off_as_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = ShardFile(tmp_path / "x.parquet", SCHEMA, parquet_write_options(SCHEMA.names, ["image"]))
    shard.write_table(_writes(0, 1)[0][0])

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    assert shard._segment is not None
    monkeypatch.setattr(shard._segment, "write_table", full)
    with pytest.raises(OSError, match="No space"):
        shard.write_table(_writes(1, 1)[0][0])
    with pytest.raises(OSError, match="incomplete"):
        shard.close()
    shard.close()  # closed: nothing more


def test_a_footer_write_that_makes_no_progress_fails_instead_of_looping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = ShardFile(tmp_path / "x.parquet", SCHEMA, parquet_write_options(SCHEMA.names, ["image"]))
    shard.write_table(_writes(0, 1)[0][0])
    monkeypatch.setattr(os, "pwrite", lambda fd, data, at: 0)
    with pytest.raises(OSError, match="wrote nothing"):
        shard.close()


def _heap_bytes() -> int:
    """Bytes glibc's malloc has handed out (all arenas)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))

    class Mallinfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    libc.mallinfo2.restype = Mallinfo2
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


@pytest.mark.skipif(
    not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"), reason="needs glibc's mallinfo2"
)
def test_memory_per_row_group_is_its_serialized_metadata_not_parquets_objects(tmp_path: Path) -> None:
    """ParquetWriter holds ~7 KB a row group of this schema until it closes (and copies it all to close); a
    ShardFile keeps one segment's objects, and the row groups' footer entries (~0.5 KB each here) only up to
    ENTRIES_IN_MEMORY bytes: past that, in a temporary file."""
    options = parquet_write_options(SCHEMA.names, ["image"])
    table = _table(np.random.default_rng(0), 4)
    groups = 2000
    held = {}
    for name in ("parquet", "shard"):
        path = tmp_path / f"{name}.parquet"
        writer = pq.ParquetWriter(path, SCHEMA, **options) if name == "parquet" else ShardFile(path, SCHEMA, options)
        writer.write_table(table)
        before = _heap_bytes()
        for _ in range(groups):
            writer.write_table(table)
        held[name] = (_heap_bytes() - before) / groups
        writer.close()
        assert pq.ParquetFile(path).metadata.num_row_groups == groups + 1
    assert held["shard"] < 200, held  # (the first ENTRIES_IN_MEMORY bytes: 2000 groups hold ~1 MB of entries)
    assert held["shard"] < held["parquet"] / 20, held


def test_the_writer_writes_its_shards_as_shard_files(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer:
        writer.add(make_episode(0, 20))
        assert isinstance(writer._parquet, ShardFile)


class _CountingFromItself:
    """A sink that writes at the end of the shard but counts positions from its own start (as a writer given a
    stream of its own would): the row groups' offsets come out relative to the segment."""

    closed = False

    def __init__(self, fd: int, base: int) -> None:
        self.fd, self.base, self.pos = fd, base, 0

    def write(self, data: bytes) -> int:
        os.pwrite(self.fd, data, self.base + self.pos)
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True


def test_offsets_a_segment_writer_counted_from_its_own_start_are_moved_to_the_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def open_segment(self: ShardFile, fd: int) -> None:
        base = self._end - 4 if self._end else 0
        self._kept = os.pread(fd, 4, base) if self._end else b""
        self._sink = pa.PythonFile(_CountingFromItself(fd, base), mode="w")
        self._segment = pq.ParquetWriter(self._sink, self.schema, **self._options)

    monkeypatch.setattr(ShardFile, "_open_segment", open_segment)
    options = parquet_write_options(SCHEMA.names, ["image"])
    writes = _writes(2, SEGMENT_WRITES + 5)
    _written_both_ways(tmp_path, writes, options)

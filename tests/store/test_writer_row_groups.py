"""The writer's row-group policy: groups of at least ROW_GROUP_MIN_BYTES, and row groups in flight bounded in bytes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rdstd.store.writer as writer_module
from rdstd.schema import Dimension, EncodedFrames, Episode, EpisodeMeta, ImageFeature, Provenance, VectorFeature
from rdstd.store import DatasetWriter

FEATURES: dict[str, VectorFeature | ImageFeature] = {
    "observation.state": VectorFeature(shape=(2,), dims=[Dimension(name="a"), Dimension(name="b")]),
    "observation.images.cam": ImageFeature(height=480, width=640),
}
PROVENANCE = Provenance(source_format="generated", rdstd_version="test")
FRAME_BYTES = 36_000  # about one ALOHA frame of four JPEG cameras


def episode(length: int, chunk: int) -> list[Episode]:
    """One episode of ``length`` frames of FRAME_BYTES each, in chunks of ``chunk`` frames."""
    meta = EpisodeMeta(episode_id="ep0")
    frames = [i.to_bytes(4, "little") * (FRAME_BYTES // 4) for i in range(length)]
    values = np.stack([np.arange(length), np.zeros(length)], axis=1).astype(np.float32)
    t = np.arange(length, dtype=np.float64) / 50.0
    return [
        Episode(
            meta,
            t[s : s + chunk],
            {"observation.state": values[s : s + chunk]},
            {"observation.images.cam": EncodedFrames("jpeg", frames[s : s + chunk])},
        )
        for s in range(0, length, chunk)
    ]


def test_row_groups_of_large_frames_hold_at_least_row_group_min_bytes(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE, rate_hz=50.0) as writer:
        writer.begin_episode(episode(1, 1)[0].meta)
        for part in episode(400, 120):
            writer.append(part)
        writer.end_episode()
    meta = pq.ParquetFile(next((tmp_path / "ds" / "data").glob("*.parquet"))).metadata
    rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    per_row = FRAME_BYTES + 32 + 8  # the image, the index columns and the 2-d float32 state (as the writer counts)
    enough = -(-writer_module.ROW_GROUP_MIN_BYTES // per_row)  # 15 rows at the 512 KiB floor
    assert rows == [enough] * (400 // enough) + [400 % enough]


class SlowDisk:
    """Row groups written slowly on the helper thread: counts of groups handed over and written, and the most in
    flight and the Arrow memory seen while a group is written."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.handed = self.done = self.peak = self.arrow = 0
        self.lock = threading.Lock()
        real_write, real_flush = writer_module._write_group, DatasetWriter._flush

        def slow_write(write: Any, group: Any, rows: int) -> None:
            time.sleep(0.02)
            with self.lock:
                self.arrow = max(self.arrow, pa.total_allocated_bytes())
            real_write(write, group, rows)
            with self.lock:
                self.done += 1

        def counted_flush(writer: DatasetWriter, rows: int) -> None:
            real_flush(writer, rows)
            with self.lock:
                self.handed += 1
                self.peak = max(self.peak, self.handed - self.done)

        monkeypatch.setattr(writer_module, "ROW_GROUP_MIN_BYTES", 1 << 20)
        monkeypatch.setattr(writer_module, "_write_group", slow_write)
        monkeypatch.setattr(DatasetWriter, "_flush", counted_flush)

    def write(self, out: Path, length: int, chunk: int) -> None:
        with DatasetWriter(out, FEATURES, PROVENANCE, rate_hz=50.0) as writer:
            writer.begin_episode(episode(1, 1)[0].meta)
            for part in episode(length, chunk):
                writer.append(part)
            writer.end_episode()
        assert rdstd_length(out) == length


GROUP_BYTES = 30 * (FRAME_BYTES + 40)  # a 1 MiB group of 30 frames
BOUND = 1536 * 1024


def test_copied_row_groups_in_flight_are_bounded_in_bytes_not_in_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 7 frames: every 30-frame group is copied from several of them. The builder may not run ahead of
    the writing thread by more than WRITE_BYTES_IN_FLIGHT of copies (or one group): two 1 MiB groups in flight
    doubled the Arrow memory of a long chunked episode."""
    disk = SlowDisk(monkeypatch)
    disk.write(tmp_path / "ds", 600, 7)
    assert getattr(writer_module, "WRITE_BYTES_IN_FLIGHT", BOUND) == BOUND
    assert disk.peak == 1 or disk.peak * GROUP_BYTES <= BOUND, disk.peak  # was 2 (two writes in flight)


def test_a_chunk_cut_into_row_groups_is_written_while_the_next_is_read_in_two_chunks_of_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 120 frames: each is cut into four 30-frame groups that are slices of it (no copy). All four are
    handed over at once (the next chunk is read while they are written, not one group at a time in step), and a
    new chunk waits for the last one's groups: Arrow holds two chunks and a group's pages, whatever the length
    (a third chunk when the groups of the one before were still in flight)."""
    disk = SlowDisk(monkeypatch)
    disk.write(tmp_path / "ds", 1200, 120)
    chunk = 120 * FRAME_BYTES
    assert disk.peak >= 4, disk.peak  # was 1: the builder waited for each group before handing over the next
    assert disk.arrow <= 2 * chunk + 2 * GROUP_BYTES, (disk.arrow, chunk)


def rdstd_length(root: Path) -> int:
    import rdstd

    return rdstd.open(root).episode(0).length

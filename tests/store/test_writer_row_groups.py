"""The writer's row-group policy: groups of at least ROW_GROUP_MIN_BYTES, and row groups in flight bounded in bytes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
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


def test_row_groups_of_large_frames_hold_at_least_a_mebibyte(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE, rate_hz=50.0) as writer:
        writer.begin_episode(episode(1, 1)[0].meta)
        for part in episode(400, 120):
            writer.append(part)
        writer.end_episode()
    meta = pq.ParquetFile(next((tmp_path / "ds" / "data").glob("*.parquet"))).metadata
    rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    per_row = FRAME_BYTES + 32 + 8  # the image, the index columns and the 2-d float32 state (as the writer counts)
    enough = -(-(1 << 20) // per_row)  # 30 rows (was 15 at the 512 KiB floor)
    assert rows == [enough] * (400 // enough) + [400 % enough]


def test_row_groups_in_flight_are_bounded_in_bytes_not_in_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow disk: the builder may not run ahead of the writing thread by more than WRITE_BYTES_IN_FLIGHT
    (or one group), whatever the group size: two 1 MiB groups in flight doubled the Arrow memory."""
    handed, done = [0], [0]
    lock = threading.Lock()
    real_write, real_flush = writer_module._write_group, DatasetWriter._flush
    peak = [0]

    def slow_write(write: Any, group: Any, rows: int) -> None:
        time.sleep(0.02)
        real_write(write, group, rows)
        with lock:
            done[0] += 1

    def counted_flush(self: DatasetWriter, rows: int) -> None:
        real_flush(self, rows)
        with lock:
            handed[0] += 1
            in_flight = handed[0] - done[0]
            peak[0] = max(peak[0], in_flight)

    monkeypatch.setattr(writer_module, "ROW_GROUP_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(writer_module, "_write_group", slow_write)
    monkeypatch.setattr(DatasetWriter, "_flush", counted_flush)
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE, rate_hz=50.0) as writer:
        writer.begin_episode(episode(1, 1)[0].meta)
        for part in episode(600, 120):
            writer.append(part)
        writer.end_episode()
    group_bytes = 30 * (FRAME_BYTES + 40)  # a 1 MiB group (its Arrow bytes are about what the writer counts)
    assert peak[0] >= 1
    bound = 1536 * 1024
    assert getattr(writer_module, "WRITE_BYTES_IN_FLIGHT", bound) == bound
    assert peak[0] == 1 or peak[0] * group_bytes <= bound, peak[0]  # was 2 (1 MiB groups, two writes in flight)
    assert rdstd_length(tmp_path / "ds") == 600


def rdstd_length(root: Path) -> int:
    import rdstd

    return rdstd.open(root).episode(0).length

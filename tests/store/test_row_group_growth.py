"""Row groups grow in a long episode: a bounded count for a long episode, read back exactly at every size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import rdstd.store.writer as writer_module
from rdstd.schema import Dimension, EncodedFrames, Episode, EpisodeMeta, ImageFeature, Provenance, VectorFeature
from rdstd.store import DatasetWriter
from rdstd.store.reader import Dataset

FEATURES: dict[str, VectorFeature | ImageFeature] = {
    "observation.state": VectorFeature(shape=(2,), dims=[Dimension(name="a"), Dimension(name="b")]),
    "observation.images.cam": ImageFeature(height=4, width=4),
}
PROVENANCE = Provenance(source_format="generated", rdstd_version="test")
LONG = 12_000  # frames of the long episode: 512 groups of 8, 256 of 16, then groups of 32


@pytest.fixture(autouse=True)
def _frames_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Row groups cut by frames alone, as 640×480 camera frames are (each frame is past the byte floor)."""
    monkeypatch.setattr(writer_module, "ROW_GROUP_MIN_BYTES", 1)


def episode(index: int, length: int) -> Episode:
    """``length`` frames whose bytes and values name the frame (distinct sizes, so a shifted read shows)."""
    frames = [f"ep{index}-frame{i}".encode() * (1 + i % 3) for i in range(length)]
    values = np.stack([np.arange(length), np.full(length, index)], axis=1).astype(np.float32)
    return Episode(
        EpisodeMeta(episode_id=f"ep{index}"),
        np.arange(length, dtype=np.float64) / 30.0,
        {"observation.state": values},
        {"observation.images.cam": EncodedFrames("jpeg", frames)},
    )


def chunks(ep: Episode, size: int) -> list[Episode]:
    frames = ep.images["observation.images.cam"]
    assert isinstance(frames, EncodedFrames)
    return [
        Episode(
            ep.meta,
            ep.timestamps[s : s + size],
            {k: v[s : s + size] for k, v in ep.vectors.items()},
            {"observation.images.cam": EncodedFrames("jpeg", list(frames.frames[s : s + size]))},
        )
        for s in range(0, ep.length, size)
    ]


def group_sizes(root: Path) -> list[int]:
    meta = pq.ParquetFile(next((root / "data").glob("*.parquet"))).metadata
    return [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]


def write(out: Path, episodes: list[Episode], chunk: int | None = None) -> Path:
    with DatasetWriter(out, FEATURES, PROVENANCE, rate_hz=30.0) as writer:
        for ep in episodes:
            if chunk is None:
                writer.add(ep)
                continue
            writer.begin_episode(ep.meta)
            for part in chunks(ep, chunk):
                writer.append(part)
            writer.end_episode()
    return out


def test_a_long_episode_writes_a_bounded_number_of_row_groups(tmp_path: Path) -> None:
    sizes = group_sizes(write(tmp_path / "ds", [episode(0, LONG)]))
    assert sizes == [8] * 512 + [16] * 256 + [32] * 119  # was 1,500 groups of 8
    assert sum(sizes) == LONG
    # past the growth the count grows by one per 32 frames: a 20-minute 30 Hz recording gets ~1,640, not 4,500
    assert writer_module.MAX_ROW_GROUP_FRAMES == 32


def test_short_episodes_keep_their_row_groups_as_before_in_a_long_shard(tmp_path: Path) -> None:
    sizes = group_sizes(write(tmp_path / "ds", [episode(i, 1000) for i in range(6)]))
    assert sizes == [8] * 750  # episodes under ROW_GROUP_GROWTH_ROWS are written as before (same bytes)


def test_growth_starts_again_with_each_long_episode(tmp_path: Path) -> None:
    sizes = group_sizes(write(tmp_path / "ds", [episode(0, 8192 + 320), episode(1, 4096 + 160)]))
    assert sizes == [8] * 512 + [16] * 256 + [32] * 10 + [8] * 512 + [16] * 10


def test_row_groups_of_varying_size_read_back_exactly(tmp_path: Path) -> None:
    episodes = [episode(0, LONG), episode(1, 700)]
    ds = Dataset.open(write(tmp_path / "ds", episodes))
    assert {8, 16, 32} <= set(group_sizes(tmp_path / "ds"))
    rng = np.random.default_rng(0)
    edges = [0, 4095, 4096, 4097, 8191, 8192, 8193, LONG - 1, LONG, LONG + 699]
    picks = sorted({*edges, *rng.integers(0, LONG + 700, 200).tolist()})
    expected_bytes = [
        f
        for ep in episodes
        for f in ep.images["observation.images.cam"].frames  # type: ignore[union-attr]
    ]
    expected_state = np.concatenate([ep.vectors["observation.state"] for ep in episodes])
    for i in picks:
        frame = ds.frame(i, decode_images=False)
        assert frame["observation.images.cam"] == expected_bytes[i], i
        np.testing.assert_array_equal(frame["observation.state"], expected_state[i])
    assert [bytes(b) for b in ds.stored("observation.images.cam", picks)] == [expected_bytes[i] for i in picks]
    for index, ep in enumerate(episodes):
        back = ds.episode(index)
        np.testing.assert_array_equal(back.vectors["observation.state"], ep.vectors["observation.state"])
        np.testing.assert_array_equal(back.timestamps, ep.timestamps)
        stored = back.images["observation.images.cam"].stored.to_pylist()
        assert stored == list(ep.images["observation.images.cam"].frames)  # type: ignore[union-attr]


def test_growing_row_groups_are_the_same_bytes_chunked_or_whole_and_after_an_aborted_episode(tmp_path: Path) -> None:
    long = episode(0, LONG)
    whole = write(tmp_path / "whole", [long])
    chunked = write(tmp_path / "chunked", [long], chunk=37)
    with DatasetWriter(tmp_path / "aborted", FEATURES, PROVENANCE, rate_hz=30.0) as writer:
        writer.add(long)
        writer.begin_episode(EpisodeMeta(episode_id="dropped"))
        for part in chunks(episode(1, 3000), 100):  # flushed in 32-frame groups, then rewritten away
            writer.append(part)
        writer.abort_episode()
    shard = "data/" + next((whole / "data").glob("*.parquet")).name
    assert (chunked / shard).read_bytes() == (whole / shard).read_bytes()
    assert (tmp_path / "aborted" / shard).read_bytes() == (whole / shard).read_bytes()

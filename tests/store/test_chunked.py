"""Episodes written in chunks: the same bytes as whole writes, no trace of an abandoned episode, bounded memory."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import rdstd
from rdstd.errors import EpisodeError, UsageError
from rdstd.schema import Dimension, EncodedFrames, Episode, ImageFeature, Provenance, VectorFeature
from rdstd.store import DatasetWriter
from tests.store.helpers import FEATURES, PROVENANCE, make_episode

LENGTHS = [37, 5, 64, 1, 23]
SMALL = {"row_group_frames": 4, "shard_bytes": 60_000}


def chunks(episode: Episode, size: int) -> list[Episode]:
    """``episode`` cut into chunks of ``size`` frames (the last one shorter)."""
    out = []
    for start in range(0, episode.length, size):
        stop = start + size
        images = {
            k: EncodedFrames(v.codec, v.frames[start:stop]) if isinstance(v, EncodedFrames) else v[start:stop]
            for k, v in episode.images.items()
        }
        vectors = {k: v[start:stop] for k, v in episode.vectors.items()}
        out.append(Episode(episode.meta, episode.timestamps[start:stop], vectors, images))  # type: ignore[arg-type]
    return out


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write_whole(out: Path, episodes: list[Episode]) -> dict[str, bytes]:
    with DatasetWriter(out, FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        for episode in episodes:
            writer.add(episode)
    return files(out)


@pytest.mark.parametrize("size", [1, 3, 7, 100])
def test_chunked_and_whole_writes_give_byte_identical_datasets(tmp_path: Path, size: int) -> None:
    episodes = [make_episode(i, n) for i, n in enumerate(LENGTHS)]
    whole = write_whole(tmp_path / "whole", episodes)
    with DatasetWriter(tmp_path / "chunked", FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        for episode in episodes:
            index = writer.begin_episode(episode.meta)
            for chunk in chunks(episode, size):
                writer.append(chunk)
            assert writer.end_episode() == index
    assert len([n for n in whole if n.startswith("data/")]) > 1, "the fixture spans several shards"
    assert files(tmp_path / "chunked") == whole


@pytest.mark.parametrize("fail_at", [2, 30], ids=["rows-still-pending", "rows-already-in-the-shard"])
def test_an_episode_abandoned_mid_way_leaves_the_dataset_as_if_it_never_came(tmp_path: Path, fail_at: int) -> None:
    episodes = [make_episode(i, n) for i, n in enumerate(LENGTHS)]
    expected = write_whole(tmp_path / "without", [e for i, e in enumerate(episodes) if i != 2])
    renamed = [make_episode(i if i < 2 else i - 1, n) for i, n in enumerate(LENGTHS)]  # ids follow positions
    with DatasetWriter(tmp_path / "with", FEATURES, PROVENANCE, **SMALL) as writer:  # type: ignore[arg-type]
        for i, episode in enumerate(episodes):
            writer.begin_episode(episode.meta)
            parts = chunks(episode, 3)
            for k, chunk in enumerate(parts):
                if i == 2 and k * 3 >= fail_at:
                    with pytest.raises(EpisodeError):
                        writer.append(chunks(make_episode(9, 3, seed=1), 3)[0])  # restarts at 0.0: refused
                    writer.abort_episode()
                    break
                writer.append(chunk)
            else:
                writer.end_episode()
    del renamed
    ds = rdstd.open(tmp_path / "with")
    assert ds.episodes["episode_id"].to_list() == ["ep000", "ep001", "ep003", "ep004"]
    got = files(tmp_path / "with")
    assert got.keys() == expected.keys()
    assert got == expected, "shards, tables and stats are byte for byte those of a write without the episode"


def test_a_frame_that_does_not_encode_names_episode_camera_and_frame_and_leaves_no_trace(tmp_path: Path) -> None:
    features = {
        "observation.state": VectorFeature(shape=(1,), dims=[Dimension(name="x")]),
        "observation.images.cam": ImageFeature(height=4, width=4),
    }
    good = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    bad = np.zeros((3, 4, 4, 3), dtype=np.float32)  # JPEG takes uint8
    meta = make_episode(0, 1).meta

    def ep(pixels: np.ndarray, start: float) -> Episode:
        t = start + np.arange(3, dtype=np.float64)
        return Episode(meta, t, {"observation.state": np.zeros((3, 1), np.float32)}, {"observation.images.cam": pixels})

    with DatasetWriter(tmp_path / "ds", features, PROVENANCE) as writer:  # type: ignore[arg-type]
        writer.begin_episode(meta)
        writer.append(ep(good, 0.0))
        with pytest.raises(EpisodeError, match=r"episode 'ep000', camera observation\.images\.cam, frame 3: JPEG"):
            writer.append(ep(bad, 3.0))
        writer.abort_episode()
    assert rdstd.open(tmp_path / "ds").num_episodes == 0


def test_chunks_must_continue_the_episodes_clock(tmp_path: Path) -> None:
    episode = make_episode(0, 6)
    first, second = chunks(episode, 3)
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer:
        with pytest.raises(UsageError, match="begin_episode"):
            writer.append(first)
        writer.begin_episode(episode.meta)
        with pytest.raises(EpisodeError, match=r"must start at 0\.0"):
            writer.append(second)
        writer.append(first)
        with pytest.raises(EpisodeError, match="not after the previous chunk"):
            writer.append(first)
        writer.append(second)
        writer.end_episode()
    assert rdstd.open(tmp_path / "ds").episode(0).length == 6


def test_closing_with_an_open_episode_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE)
    writer.begin_episode(make_episode(0, 1).meta)
    with pytest.raises(UsageError, match="still open"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


LONG_FEATURES: dict[str, VectorFeature | ImageFeature] = {
    "observation.state": VectorFeature(shape=(2,), dims=[Dimension(name="a"), Dimension(name="b")]),
    "observation.images.cam": ImageFeature(height=96, width=96),
}


def peak_memory_of_a_long_episode(out: Path, n_chunks: int, chunk: int = 50) -> tuple[int, int]:
    """(Python peak, Arrow peak) in bytes while writing one episode of ``n_chunks`` chunks of pixel frames."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (chunk, 96, 96, 3), dtype=np.uint8)
    arrow_peak = 0
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with DatasetWriter(out, LONG_FEATURES, Provenance(source_format="t", rdstd_version="0")) as writer:
            writer.begin_episode(make_episode(0, 1).meta)
            for k in range(n_chunks):
                t = (k * chunk + np.arange(chunk)) / 30.0
                state = np.full((chunk, 2), float(k), dtype=np.float32)
                piece = Episode(
                    make_episode(0, 1).meta, t, {"observation.state": state}, {"observation.images.cam": pixels}
                )
                writer.append(piece)
                arrow_peak = max(arrow_peak, pa.total_allocated_bytes())
            writer.end_episode()
        python_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return python_peak, arrow_peak


def test_memory_of_a_chunked_episode_does_not_grow_with_its_length(tmp_path: Path) -> None:
    short_py, short_arrow = peak_memory_of_a_long_episode(tmp_path / "short", 10)
    long_py, long_arrow = peak_memory_of_a_long_episode(tmp_path / "long", 80)  # 4,000 frames of 96×96×3
    assert rdstd.open(tmp_path / "long").episode(0).length == 4000
    assert long_py < 1.25 * short_py + 1_000_000, (short_py, long_py)
    assert long_arrow < 1.25 * short_arrow + 1_000_000, (short_arrow, long_arrow)

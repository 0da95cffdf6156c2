"""Write -> open gives identical arrays and byte-identical image payloads; random access agrees with episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import rdstd
from rdstd.errors import EpisodeError, UsageError
from rdstd.media.images import decode
from rdstd.schema import EncodedFrames
from rdstd.store import DatasetWriter
from tests.store.helpers import FEATURES, PROVENANCE, make_episode

LENGTHS = [5, 40, 1, 33, 64]


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, list]:
    episodes = [make_episode(i, n) for i, n in enumerate(LENGTHS)]
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE, row_group_frames=16, shard_bytes=60_000) as writer:
        for episode in episodes:
            writer.add(episode)
    return tmp_path / "ds", episodes


def test_every_array_and_image_byte_reads_back_identically(written: tuple[Path, list]) -> None:
    path, episodes = written
    ds = rdstd.open(path)
    assert ds.manifest.counts.shards > 1, "the fixture should span several shards"
    assert (ds.num_episodes, len(ds)) == (len(LENGTHS), sum(LENGTHS))
    for i, original in enumerate(episodes):
        got = ds.episode(i)
        assert got.meta.episode_id == original.meta.episode_id
        assert got.meta.source_meta == {"n": i, "big": 2**63 + 5}
        np.testing.assert_array_equal(got.timestamps, original.timestamps)
        for key, values in original.vectors.items():
            assert got.vectors[key].dtype == values.dtype
            np.testing.assert_array_equal(got.vectors[key], values)
        for key, frames in original.images.items():
            assert isinstance(frames, EncodedFrames)
            assert got.images[key].encoded == frames.frames


def test_random_frames_equal_the_same_frames_read_by_episode(written: tuple[Path, list]) -> None:
    path, episodes = written
    ds = rdstd.open(path)
    rng = np.random.default_rng(3)
    starts = np.concatenate([[0], np.cumsum(LENGTHS)])
    for i in [*rng.integers(0, len(ds), 40), 0, len(ds) - 1, -1]:
        frame = ds.frame(int(i))
        g = int(i) % len(ds)
        e = int(np.searchsorted(starts, g, side="right")) - 1
        f = g - int(starts[e])
        assert (frame["episode_index"], frame["frame_index"], frame["index"]) == (e, f, g)
        np.testing.assert_array_equal(frame["observation.state"], episodes[e].vectors["observation.state"][f])
        np.testing.assert_array_equal(frame["action"], episodes[e].vectors["action"][f])
        depth = episodes[e].images["observation.images.depth"]
        assert isinstance(depth, EncodedFrames)
        np.testing.assert_array_equal(frame["observation.images.depth"], decode(depth.frames[f]))
        assert frame["observation.images.depth"].dtype == np.uint16
        assert frame["observation.images.cam"].shape == (24, 32, 3)


def test_out_of_range_frames_and_episodes_raise_index_error(written: tuple[Path, list]) -> None:
    ds = rdstd.open(written[0])
    with pytest.raises(IndexError):
        ds.frame(len(ds))
    with pytest.raises(IndexError):
        ds.episode(len(LENGTHS))


def test_select_filters_episodes_and_rebases_frame_indices(written: tuple[Path, list]) -> None:
    path, episodes = written
    ds = rdstd.open(path).select(pl.col("task") == "task 1")
    assert ds.episodes["episode_id"].to_list() == ["ep001", "ep003"]
    assert len(ds) == LENGTHS[1] + LENGTHS[3]
    frame = ds.frame(LENGTHS[1])
    assert (frame["episode_index"], frame["frame_index"]) == (3, 0)
    np.testing.assert_array_equal(frame["observation.state"], episodes[3].vectors["observation.state"][0])


def test_stats_match_numpy_over_all_frames(written: tuple[Path, list]) -> None:
    path, episodes = written
    stats = rdstd.open(path).stats
    state = np.concatenate([e.vectors["observation.state"] for e in episodes]).astype(np.float64)
    s = stats["observation.state"]
    assert s["count"] == [len(state)] * 3
    np.testing.assert_allclose(s["mean"], state.mean(axis=0))
    np.testing.assert_allclose(s["std"], state.std(axis=0))
    np.testing.assert_allclose(s["min"], state.min(axis=0))
    np.testing.assert_allclose(s["q01"], np.quantile(state, 0.01, axis=0))
    np.testing.assert_allclose(s["q99"], np.quantile(state, 0.99, axis=0))
    assert s["quantiles_exact"] is True
    assert len(stats["action"]["mean"]) == 4


def test_tasks_are_stored_once_per_episode_with_an_index(written: tuple[Path, list]) -> None:
    ds = rdstd.open(written[0])
    assert ds.tasks.sort("task_index")["task"].to_list() == ["task 0", "task 1"]
    assert ds.episodes["task_index"].to_list() == [0, 1, 0, 1, 0]


def test_a_dataset_can_be_pickled_to_worker_processes(written: tuple[Path, list]) -> None:
    import pickle

    ds = rdstd.open(written[0])
    ds.frame(3)
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone.frame(50)["action"], ds.frame(50)["action"])


def test_an_episode_with_the_wrong_shape_is_refused_and_names_the_feature(tmp_path: Path) -> None:
    bad = make_episode(0, 4)
    bad.vectors["observation.state"] = np.zeros((4, 5), dtype=np.float32)
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer:
        with pytest.raises(EpisodeError, match=r"observation\.state has shape \(5,\)"):
            writer.add(bad)
        writer.add(make_episode(1, 4))
    assert rdstd.open(tmp_path / "ds").num_episodes == 1


def test_timestamps_that_go_backwards_are_refused(tmp_path: Path) -> None:
    bad = make_episode(0, 4)
    bad.timestamps = np.array([0.0, 0.2, 0.1, 0.3])
    with (
        DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer,
        pytest.raises(EpisodeError, match="increasing"),
    ):
        writer.add(bad)


def test_an_existing_output_is_never_overwritten_by_accident(written: tuple[Path, list]) -> None:
    path, _ = written
    with pytest.raises(UsageError, match="a canonical rdstd dataset is already there") as err:
        DatasetWriter(path, FEATURES, PROVENANCE)
    assert "--overwrite" in err.value.hint
    assert rdstd.open(path).num_episodes == len(LENGTHS)


def test_an_exception_inside_the_writer_removes_everything_it_wrote(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError),
        DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE, row_group_frames=4) as writer,
    ):
        writer.add(make_episode(0, 30))
        raise RuntimeError("boom")
    assert not (tmp_path / "ds").exists()


def test_duplicate_episode_ids_are_refused_at_close(tmp_path: Path) -> None:
    with (
        pytest.raises(EpisodeError, match="not unique"),
        DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer,
    ):
        writer.add(make_episode(0, 3))
        writer.add(make_episode(0, 3))
    assert not (tmp_path / "ds").exists()

"""The zarr replay-buffer backend on generated stores (v2, v3, zip) and the real PushT sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, EpisodeError, MissingDependencyError
from rdstd.formats.base import read_frames
from rdstd.formats.zarr import ZarrReplayBufferBackend, classify_layout
from rdstd.testing.contract import BackendContract
from rdstd.testing.fixtures import make_zarr_replay_buffer
from tests.conftest import sample

LENGTHS = [20, 35, 17]


class TestZarrV2Folder(BackendContract):
    @pytest.fixture
    def backend(self) -> ZarrReplayBufferBackend:
        return ZarrReplayBufferBackend()

    @pytest.fixture
    def source_path(self, tmp_path: Path) -> Path:
        make_zarr_replay_buffer(tmp_path / "rb.zarr", LENGTHS)
        return tmp_path / "rb.zarr"


class TestZarrV3Zip(BackendContract):
    @pytest.fixture
    def backend(self) -> ZarrReplayBufferBackend:
        return ZarrReplayBufferBackend()

    @pytest.fixture
    def source_path(self, tmp_path: Path) -> Path:
        make_zarr_replay_buffer(tmp_path / "rb.zarr.zip", LENGTHS, zarr_format=3, zip_store=True)
        return tmp_path / "rb.zarr.zip"


@pytest.mark.parametrize(("zarr_format", "zip_store"), [(2, False), (3, False), (2, True)])
def test_episodes_are_the_rows_between_episode_ends_whatever_the_chunking(
    tmp_path: Path, zarr_format: int, zip_store: bool
) -> None:
    path = tmp_path / ("rb.zarr.zip" if zip_store else "rb.zarr")
    content = make_zarr_replay_buffer(path, LENGTHS, zarr_format=zarr_format, zip_store=zip_store, chunk_rows=13)
    with ZarrReplayBufferBackend().open(path) as source:
        starts = [0, *content.episode_ends[:-1]]
        for ref, start, stop in zip(source.episode_refs(), starts, content.episode_ends, strict=True):
            episode = source.read_episode(ref)
            np.testing.assert_array_equal(episode.vectors["data/state"], content.arrays["state"][start:stop])
            np.testing.assert_array_equal(episode.images["data/img"], content.arrays["img"][start:stop])


def test_pusht_converts_with_its_spec_to_pixels_units_and_lossless_images(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    content = make_zarr_replay_buffer(path, LENGTHS)
    convert(path, tmp_path / "out", spec="zarr/pusht")
    ds = rdstd.open(tmp_path / "out")
    state = ds.manifest.vectors["observation.state"]
    assert [d.unit for d in state.dims] == ["px", "px", "px", "px", "rad"]
    assert ds.manifest.rate_hz == 10
    episode = ds.episode(1)
    np.testing.assert_array_equal(episode.vectors["observation.state"], content.arrays["state"][20:55])
    np.testing.assert_array_equal(
        episode.vectors["observation.keypoints"], content.arrays["keypoint"][20:55].reshape(35, 18)
    )
    np.testing.assert_array_equal(
        episode.images["observation.images.top"][3], content.arrays["img"][23].astype(np.uint8)
    )
    stamps = content.arrays["timestamp"][20:55]  # the source's measured clock (seconds), from the episode's start
    np.testing.assert_array_equal(episode.timestamps, stamps - stamps[0])
    assert ds.manifest.clock.kind == "measured"


def test_a_truncated_chunk_is_an_error_naming_the_chunk_file(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, LENGTHS, chunk_rows=16)
    chunk = path / "data" / "state" / "2.0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    with ZarrReplayBufferBackend().open(path) as source, pytest.raises(CorruptSourceError) as err:
        read_frames(source.read_episode(source.episode_refs()[1]).vectors["data/state"])
    assert "data/state/2.0" in err.value.message
    assert "does not decode" in err.value.message


def test_a_missing_chunk_of_a_zarr_python_2_store_is_an_error_not_fill_values(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, LENGTHS, chunk_rows=16, written_like="zarr-python-2")
    (path / "data" / "img" / "3.0.0.0").unlink()
    with (
        ZarrReplayBufferBackend().open(path) as source,
        pytest.raises(CorruptSourceError, match=r"img/3\.0\.0\.0.*missing"),
    ):
        source.read_episode(source.episode_refs()[2])


def test_skip_mode_writes_the_good_episodes_and_lists_the_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16, 16], chunk_rows=16)
    (path / "data" / "action" / "1.0").write_bytes(b"garbage")
    report = convert(path, tmp_path / "out", spec="zarr/pusht", on_error="skip")
    assert report.episodes_written == 2
    assert [(s.index, s.key) for s in report.skipped] == [(1, "episode_000001")]
    assert "data/action/1.0" in report.skipped[0].reason
    ds = rdstd.open(tmp_path / "out")
    assert ds.episodes["episode_id"].to_list() == ["episode_000000", "episode_000002"]


def test_fail_mode_leaves_no_output_behind(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16, 16], chunk_rows=16)
    (path / "data" / "action" / "2.0").write_bytes(b"garbage")
    with pytest.raises(CorruptSourceError):
        convert(path, tmp_path / "out", spec="zarr/pusht")
    assert not (tmp_path / "out").exists()


def test_episode_ends_past_the_data_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, LENGTHS)
    import zarr

    ends = zarr.open_array(str(path / "meta" / "episode_ends"), mode="r+")
    ends[-1] = 1000
    with pytest.raises(CorruptSourceError, match=r"episode_ends.*1000"):
        ZarrReplayBufferBackend().open(path)


def test_an_image_codec_store_without_imagecodecs_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, LENGTHS)
    meta_file = path / "data" / "img" / ".zarray"
    meta = json.loads(meta_file.read_text())
    meta["compressor"] = {"id": "imagecodecs_jpegxl", "level": 99}
    meta_file.write_text(json.dumps(meta))
    import builtins

    real_import = builtins.__import__

    def no_imagecodecs(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("imagecodecs"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_imagecodecs)
    with pytest.raises(MissingDependencyError) as err:
        ZarrReplayBufferBackend().open(path)
    assert "rdstd[zarr]" in err.value.hint


def test_layouts_are_told_apart_by_their_keys() -> None:
    assert classify_layout({"img", "state", "keypoint", "n_contacts", "action"}) == "diffusion_policy_pusht"
    assert classify_layout({"robot0_eef_pos", "robot0_eef_rot_axis_angle", "camera0_rgb"}) == "umi"
    assert classify_layout({"timestamp", "stage", "action"}) == "diffusion_policy_real"
    assert classify_layout({"foo"}) == "replay_buffer"


@pytest.mark.samples
def test_the_real_pusht_sample_round_trips_exactly(tmp_path: Path) -> None:
    import zarr

    path = sample("zarr/pusht/pusht_cchi_v7_replay.zarr")
    report = convert(path, tmp_path / "pusht")
    assert report.spec == "zarr/pusht"
    assert (report.episodes_written, report.frames_written) == (206, 25650)
    ds = rdstd.open(tmp_path / "pusht")
    source = zarr.open_group(str(path), mode="r")
    ends = source["meta/episode_ends"][:]
    assert len(ds) == 25650 and ds.num_episodes == 206
    for i in (0, 1, 205):
        start, stop = (int(ends[i - 1]) if i else 0), int(ends[i])
        episode = ds.episode(i)
        np.testing.assert_array_equal(episode.vectors["observation.state"], source["data/state"][start:stop])
        np.testing.assert_array_equal(episode.vectors["action"], source["data/action"][start:stop])
        pixels = episode.images["observation.images.top"].decode_all()
        np.testing.assert_array_equal(pixels, source["data/img"][start:stop].astype(np.uint8))
    frame = ds.frame(161 + 5)
    assert (frame["episode_index"], frame["frame_index"]) == (1, 5)
    np.testing.assert_array_equal(frame["action"], source["data/action"][166])
    assert ds.stats["action"]["count"] == [25650, 25650]
    np.testing.assert_allclose(ds.stats["action"]["mean"], source["data/action"][:].astype(np.float64).mean(axis=0))


def test_converting_no_episodes_is_an_error_not_an_empty_dataset(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16], chunk_rows=16)
    (path / "data" / "state" / "0.0").write_bytes(b"x")
    with pytest.raises(EpisodeError, match="no episode could be converted"):
        convert(path, tmp_path / "out", spec="zarr/pusht", on_error="skip")
    assert not (tmp_path / "out").exists()


def test_v2_folder_chunks_are_decoded_directly_with_zarrs_values_and_zarr_reads_the_rest(tmp_path: Path) -> None:
    """A v2 folder store's chunk files are decoded by their compressor alone (no zarr per read), to the very values
    zarr reads (a short last chunk too); a zip or a v3 store goes through zarr, and so does an absent chunk."""
    cases: dict[str, dict[str, Any]] = {
        "v2": {},
        "v2-zero": {"zero_episodes": [1]},  # episode 1's chunks hold only fill values: not written
        "zip": {"zip_store": True},
        "v3": {"zarr_format": 3},
    }
    for name, kwargs in cases.items():
        path = tmp_path / (f"{name}.zarr.zip" if name == "zip" else f"{name}.zarr")
        content = make_zarr_replay_buffer(path, LENGTHS, chunk_rows=13, **kwargs)
        with ZarrReplayBufferBackend().open(path) as source:
            episodes = [source.read_episode(ref) for ref in source.episode_refs()]
            state = np.concatenate([read_frames(e.vectors["data/state"]) for e in episodes])
            img = np.concatenate([read_frames(e.images["data/img"]) for e in episodes])  # type: ignore[arg-type]
            direct = [source._arrays[key].direct is not None for key in ("state", "img")]
        np.testing.assert_array_equal(state, content.arrays["state"][: len(state)])
        np.testing.assert_array_equal(img, content.arrays["img"][: len(img)])
        assert direct == ([True, True] if name.startswith("v2") else [False, False]), name


def test_the_next_chunk_is_read_ahead_and_its_error_comes_only_when_it_is_used(tmp_path: Path) -> None:
    """Chunks are decoded one ahead in the background; a broken next chunk does not fail the episode before it."""
    path = tmp_path / "rb.zarr"
    content = make_zarr_replay_buffer(path, LENGTHS, chunk_rows=16)  # episode 0: rows 0-19, chunks 0 and 1
    chunk = path / "data" / "state" / "2.0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    with ZarrReplayBufferBackend().open(path) as source:
        refs = source.episode_refs()
        state = read_frames(source.read_episode(refs[0]).vectors["data/state"])
        np.testing.assert_array_equal(state, content.arrays["state"][:20])
        array = source._arrays["state"]
        assert array.reads == [0, 1] and array._ahead is not None and array._ahead[0] == 2  # 2 is on its way
        with pytest.raises(CorruptSourceError, match=r"data/state/2\.0.*does not decode"):
            read_frames(source.read_episode(refs[1]).vectors["data/state"])


def test_a_folder_stores_file_list_is_what_pathlib_finds(tmp_path: Path) -> None:
    from rdstd.formats.zarr.store import StoreFiles

    root = tmp_path / "store.zarr"
    (root / "data" / "img").mkdir(parents=True)
    (root / ".zgroup").write_text("{}")
    for name in ("0.0.0", "1.0.0", ".zarray"):
        (root / "data" / "img" / name).write_bytes(b"x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0").write_bytes(b"y")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)  # a symlinked folder is not entered
    (root / "data" / "chunk_link").symlink_to(root / "data" / "img" / "0.0.0")
    (root / "data" / "broken").symlink_to(tmp_path / "missing")  # a broken link is no file
    expected = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert StoreFiles(root).names == expected
    assert {"data/chunk_link", "data/img/.zarray"} <= expected and not {"data/broken", "linked/0"} & expected

"""zarr replay buffers: absent chunks read by the fill-value rule, nothing outside the store, broken files named,
steps outside episodes reported, empty stores and episodes said plainly, frames read a chunk at a time."""

from __future__ import annotations

import errno
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, EpisodeError, LfsPointerError, SourceError
from rdstd.formats.base import FrameArray, read_frames
from rdstd.formats.zarr import ZarrReplayBufferBackend
from rdstd.formats.zarr.frames import ZarrFrames
from rdstd.schema.spec import ConverterSpec
from rdstd.testing.fixtures import make_zarr_replay_buffer
from tests.conftest import sample

POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 98765\n"
)


def _open(path: Path) -> Any:
    return ZarrReplayBufferBackend().open(path)


def _chunk_files(array_dir: Path) -> set[str]:
    return {p.relative_to(array_dir).as_posix() for p in array_dir.rglob("*") if p.is_file() and "zarr" not in p.name}


# -- item 4: absent chunks -----------------------------------------------------------------------------------
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_an_all_zero_episode_written_by_zarr_3_reads_as_zeros_not_as_corruption(
    tmp_path: Path, zarr_format: int
) -> None:
    path = tmp_path / "rb.zarr"
    content = make_zarr_replay_buffer(path, [16, 16, 16], chunk_rows=16, zarr_format=zarr_format, zero_episodes=[1])
    state_chunks = _chunk_files(path / "data" / "state")
    assert len([c for c in state_chunks if not c.startswith(".")]) == 2  # zarr 3 wrote no chunk for episode 1
    with _open(path) as source:
        episodes = [source.read_episode(ref) for ref in source.episode_refs()]
        assert source.info().extra["arrays"]["state"]["absent_chunks"] == "fill value"
    for episode, start in zip(episodes, (0, 16, 32), strict=True):
        np.testing.assert_array_equal(
            read_frames(episode.vectors["data/state"]), content.arrays["state"][start : start + 16]
        )
        np.testing.assert_array_equal(
            read_frames(episode.images["data/img"]), content.arrays["img"][start : start + 16]
        )
    assert not np.any(read_frames(episodes[1].vectors["data/state"]))
    assert any(
        "data/state: some chunks are absent and read as the fill value 0.0" in n for n in episodes[1].meta["notes"]
    )
    assert not any("absent" in n for n in episodes[0].meta["notes"])


def test_an_all_zero_episode_converts_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16, zarr_format=3, zero_episodes=[0])
    report = convert(path, tmp_path / "out", spec="zarr/pusht")
    assert report.episodes_written == 2 and not report.skipped
    assert any("read as the fill value" in note for note in report.source_notes)


def test_a_zarr_python_2_store_has_every_chunk_so_an_absent_one_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16, 16], chunk_rows=16, zero_episodes=[1], written_like="zarr-python-2")
    assert (path / "data" / "state" / "1.0").is_file()  # zarr 2 writes all-zero chunks too
    with _open(path) as source:
        refs = source.episode_refs()
        assert not np.any(read_frames(source.read_episode(refs[1]).vectors["data/state"]))
        assert source.info().extra["arrays"]["state"]["absent_chunks"] == "error"
        (path / "data" / "state" / "1.0").unlink()
    with _open(path) as source, pytest.raises(CorruptSourceError, match=r"data/state/1\.0: chunk file is missing"):
        source.read_episode(source.episode_refs()[1])


def test_a_null_fill_value_makes_an_absent_chunk_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16, zarr_format=2)
    meta_file = path / "data" / "action" / ".zarray"
    meta = json.loads(meta_file.read_text())
    meta["fill_value"] = None
    meta_file.write_text(json.dumps(meta, indent=2))
    (path / "data" / "action" / "1.0").unlink()
    with _open(path) as source, pytest.raises(CorruptSourceError, match=r"data/action/1\.0: chunk file is missing"):
        source.read_episode(source.episode_refs()[1])


@pytest.mark.samples
def test_an_absent_chunk_in_the_real_pusht_store_is_an_error(tmp_path: Path) -> None:
    real = sample("zarr/pusht/pusht_cchi_v7_replay.zarr")
    copy = tmp_path / "pusht.zarr"
    shutil.copytree(real, copy, copy_function=os.symlink)
    (copy / "data" / "action" / "1.0").unlink()
    with _open(copy) as source:
        assert source.read_episode(source.episode_refs()[0]).length == 161
        with pytest.raises(CorruptSourceError, match=r"data/action/1\.0: chunk file is missing"):
            source.read_episode(source.episode_refs()[1])


# -- item 5: steps that belong to no episode, arrays of different lengths -------------------------------
def test_steps_after_the_last_episode_end_are_reported_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16, extra_steps=7)
    with _open(path) as source:
        info = source.info()
        (warning,) = info.extra["warnings"]
        assert "steps 32..38 (7 steps) come after the last episode end (32)" in warning
        assert "data/state" in warning and info.frames == 32
        last = source.read_episode(source.episode_refs()[-1])
        assert warning in last.meta["notes"]
    report = convert(path, tmp_path / "out", spec="zarr/pusht")
    assert report.frames_written == 32 and any("belong to no episode" in n for n in report.source_notes)


def test_arrays_of_different_lengths_are_reported(tmp_path: Path) -> None:
    import zarr

    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16)
    zarr.open_array(str(path / "data" / "action"), mode="r+").resize((40, 2))
    with _open(path) as source:
        warnings = source.info().extra["warnings"]
    assert any(w.startswith("data/action: steps 32..39 (8 steps)") for w in warnings)
    assert any("data arrays differ in length" in w and "data/action=40" in w for w in warnings)


def test_an_array_shorter_than_the_episodes_is_an_error_naming_it(tmp_path: Path) -> None:
    import zarr

    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16)
    zarr.open_array(str(path / "data" / "action"), mode="r+").resize((20, 2))
    with pytest.raises(CorruptSourceError, match=r"last episode ends at step 32, data/action holds 20 steps"):
        _open(path)


# -- item 6: empty stores and episodes ---------------------------------------------------------------------
def test_an_empty_replay_buffer_is_an_empty_source_not_an_internal_error(tmp_path: Path) -> None:
    import zarr

    path = tmp_path / "rb.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_group("data").create_array("state", shape=(0, 5), dtype="float32", chunks=(16, 5))
    root.create_group("meta").create_array("episode_ends", shape=(0,), dtype="int64", chunks=(16,))
    with _open(path) as source:
        assert source.episode_refs() == []
        info = source.info()
        assert (info.episodes, info.frames, info.extra["warnings"]) == (0, 0, [])
    spec = ConverterSpec.model_validate(
        {"name": "empty", "format": "zarr", "rate_hz": 10, "features": {"observation.state": {"key": "data/state"}}}
    )
    with pytest.raises(EpisodeError, match="the source has none"):
        convert(path, tmp_path / "out", spec=spec)
    assert not (tmp_path / "out").exists()


def test_a_zero_step_episode_is_an_empty_episode_not_a_corrupt_index(tmp_path: Path) -> None:
    import zarr

    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16)
    ends = zarr.open_array(str(path / "meta" / "episode_ends"), mode="r+")
    ends.resize((3,))
    ends[:] = [16, 16, 32]
    with _open(path) as source:
        refs = source.episode_refs()
        assert [r.length for r in refs] == [16, 0, 16]
        empty = source.read_episode(refs[1])
        assert empty.length == 0 and read_frames(empty.vectors["data/state"]).shape == (0, 5)
        assert "the episode has no steps (meta/episode_ends repeats 16)" in empty.meta["notes"]
    ends[:] = [16, 10, 32]
    with pytest.raises(CorruptSourceError, match=r"episode ends go backwards at index 1 \(16 then 10\)"):
        _open(path)


def test_an_unreadable_chunk_is_a_permission_error_and_detection_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16)
    chunk = path / "data" / "state" / "1.0"
    real_open = Path.open

    def guarded(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == chunk:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)
    with _open(path) as source:
        episode = source.read_episode(source.episode_refs()[1])
        with pytest.raises(SourceError) as err:
            read_frames(episode.vectors["data/state"])
    assert not isinstance(err.value, CorruptSourceError)
    assert err.value.message == f"{chunk}: cannot read: permission denied"

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    archive = tmp_path / "rb.zarr.zip"
    archive.write_bytes(b"PK")
    monkeypatch.setattr(zipfile, "ZipFile", refuse)
    assert ZarrReplayBufferBackend().detect(archive) is False


# -- item 2: nothing outside the store ---------------------------------------------------------------------
def test_a_zip_member_climbing_out_of_the_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr.zip"
    make_zarr_replay_buffer(path, [16], chunk_rows=16, zarr_format=3, zip_store=True)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("../../outside/evil", b"x")
    with pytest.raises(CorruptSourceError, match=r"zip member '\.\./\.\./outside/evil' points outside the store"):
        _open(path)


def test_a_chunk_key_separator_that_is_a_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16], chunk_rows=16, zarr_format=3)
    meta_file = path / "data" / "state" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["chunk_key_encoding"] = {"name": "v2", "configuration": {"separator": "/../../"}}
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(SourceError, match="separator"), _open(path) as source:
        source.read_episode(source.episode_refs()[0])


# -- item 3: Git LFS pointers --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("zarr_format", "name"),
    [(2, "data/state/.zarray"), (2, "data/.zgroup"), (2, "data/state/.zattrs"), (3, "data/state/zarr.json"),
     (3, "zarr.json")],
)  # fmt: skip
def test_an_lfs_pointer_in_place_of_metadata_says_so(tmp_path: Path, zarr_format: int, name: str) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16], chunk_rows=16, zarr_format=zarr_format)
    (path / name).write_text(POINTER)
    with pytest.raises(LfsPointerError) as err:
        _open(path)
    assert name in err.value.message and "lfs pull" in err.value.hint


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_an_lfs_pointer_in_place_of_a_chunk_says_so(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16, zarr_format=zarr_format)
    chunk = path / "data" / "state" / ("1.0" if zarr_format == 2 else "c/1/0")
    chunk.write_text(POINTER)
    with _open(path) as source:
        episode = source.read_episode(source.episode_refs()[1])
        with pytest.raises(LfsPointerError) as err:
            read_frames(episode.vectors["data/state"])
    assert str(chunk) in err.value.message and "lfs pull" in err.value.hint


def test_an_lfs_pointer_in_place_of_the_episode_ends_chunk_says_so(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(path, [16, 16], chunk_rows=16, zarr_format=3)
    (path / "meta" / "episode_ends" / "c" / "0").write_text(POINTER)
    with pytest.raises(LfsPointerError, match=r"episode_ends/c/0"):
        _open(path)


def test_an_lfs_pointer_in_place_of_a_zipped_store_is_recognised_and_named(tmp_path: Path) -> None:
    path = tmp_path / "rb.zarr.zip"
    path.write_text(POINTER)
    assert ZarrReplayBufferBackend().detect(path)
    with pytest.raises(LfsPointerError, match="Git LFS pointer"):
        _open(path)


# -- item 7: frames read on demand ---------------------------------------------------------------------------
def test_episode_frames_are_read_on_demand_touching_only_the_chunks_of_the_requested_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zarr.storage import LocalStore

    path = tmp_path / "rb.zarr"
    content = make_zarr_replay_buffer(path, [5, 200], chunk_rows=10, zarr_format=3, image_hw=(16, 16))
    fetched: list[str] = []
    real_get = LocalStore.get

    async def logged(self: LocalStore, key: str, *args: Any, **kwargs: Any) -> Any:
        fetched.append(key)
        return await real_get(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", logged)
    with _open(path) as source:
        episode = source.read_episode(source.episode_refs()[1])
        images = episode.images["data/img"]
        assert isinstance(images, ZarrFrames) and isinstance(images, FrameArray)
        assert images.shape == (200, 16, 16, 3) and images.dtype == np.float32
        before = len(fetched)
        assert not [k for k in fetched if k.startswith("data/img/c/")]  # nothing read yet
        frames = images[20:36]  # steps 25..40 of the array: chunks 2, 3 and 4 of 10 steps each
        np.testing.assert_array_equal(frames, content.arrays["img"][25:41])
        assert sorted(k for k in fetched[before:] if k.startswith("data/img/c/")) == [
            "data/img/c/2/0/0/0", "data/img/c/3/0/0/0", "data/img/c/4/0/0/0",
        ]  # fmt: skip
        np.testing.assert_array_equal(images[-1], content.arrays["img"][204])
        np.testing.assert_array_equal(read_frames(images, 190, 200), content.arrays["img"][195:205])

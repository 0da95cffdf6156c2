"""Bad HDF5 input gives one-line errors naming the file and the key; with --on-error skip the others go on."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, LfsPointerError, MappingError, MissingDependencyError, SourceError
from rdstd.formats.base import read_frames
from rdstd.formats.hdf5 import Hdf5Backend
from rdstd.formats.registry import detect
from rdstd.schema.spec import ConverterSpec
from tests.formats import hdf5_fixtures as fx

POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 368123456\n"
)


def _one_line(exc: pytest.ExceptionInfo[Exception], *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_a_git_lfs_pointer_says_how_to_fetch_the_file(tmp_path: Path) -> None:
    path = tmp_path / "episode_0.hdf5"
    path.write_text(POINTER)
    assert detect(path).name == "hdf5"
    with pytest.raises(LfsPointerError) as caught:
        Hdf5Backend().open(path)
    _one_line(caught, str(path), "Git LFS pointer")
    assert "git" in caught.value.hint and "lfs pull" in caught.value.hint


def test_a_truncated_copy_is_a_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.hdf5"
    fx.write_robomimic(good, [np.zeros((3, 3))])
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(good.read_bytes()[:700])
    with pytest.raises(CorruptSourceError) as caught:
        Hdf5Backend().open(bad)
    _one_line(caught, str(bad), "h5py cannot open it")


def test_in_a_folder_a_broken_file_fails_its_episode_and_skip_converts_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "aloha"
    fx.write_aloha_folder(folder, episodes=2, steps=3)
    (folder / "episode_2.hdf5").write_bytes((folder / "episode_0.hdf5").read_bytes()[:96])
    with Hdf5Backend().open(folder) as source:
        assert any("episode_2.hdf5: cannot be read" in w for w in source.info().extra["warnings"])
    report = convert(folder, tmp_path / "out", on_error="skip")
    assert report.episodes_written == 2
    assert len(report.skipped) == 1 and "episode_2.hdf5" in str(report.skipped[0])
    with pytest.raises(CorruptSourceError, match=r"episode_2\.hdf5"):
        convert(folder, tmp_path / "out2")


def test_a_folder_where_no_file_is_readable_fails_with_the_first_files_error(tmp_path: Path) -> None:
    folder = tmp_path / "episodes"
    folder.mkdir()
    for i in range(2):
        (folder / f"episode_{i}.hdf5").write_text(POINTER)
    assert detect(folder).name == "hdf5"
    with pytest.raises(LfsPointerError) as caught:
        Hdf5Backend().open(folder)
    _one_line(caught, "episode_0.hdf5", "Git LFS pointer")


def test_an_external_link_out_of_the_source_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.hdf5"
    with h5py.File(outside, "w") as f:
        f.create_dataset("qpos", data=np.zeros((3, 14)))
    folder = tmp_path / "ds"
    folder.mkdir()
    fx.write_aloha_episode(folder / "episode_0.hdf5", steps=3)
    with h5py.File(folder / "episode_0.hdf5", "a") as f:
        f["observations/extra"] = h5py.ExternalLink("../outside.hdf5", "/qpos")
    with pytest.raises(SourceError) as caught:
        Hdf5Backend().open(folder / "episode_0.hdf5")
    _one_line(caught, "observations/extra", "outside the source folder", "../outside.hdf5")


def test_an_external_link_to_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "episode_0.hdf5"
    fx.write_aloha_episode(path, steps=3)
    with h5py.File(path, "a") as f:
        f["observations/extra"] = h5py.ExternalLink("gone.hdf5", "/qpos")
    with pytest.raises(CorruptSourceError) as caught:
        Hdf5Backend().open(path)
    _one_line(caught, str(path), "observations/extra", "missing", "gone.hdf5")


def test_a_virtual_dataset_whose_source_is_missing_is_not_read_as_fill_values(tmp_path: Path) -> None:
    part = tmp_path / "part.hdf5"
    with h5py.File(part, "w") as f:
        f.create_dataset("qpos", data=np.ones((3, 14)))
    path = tmp_path / "episode_0.hdf5"
    fx.write_aloha_episode(path, steps=3)
    layout = h5py.VirtualLayout(shape=(3, 14), dtype="f8")
    layout[:] = h5py.VirtualSource(str(part), "qpos", shape=(3, 14))
    with h5py.File(path, "a") as f:
        f.create_virtual_dataset("observations/virtual_qpos", layout, fillvalue=-1)
    assert Hdf5Backend().open(path).info().episodes == 1  # readable while the source file is there
    part.unlink()
    with pytest.raises(CorruptSourceError) as caught:
        Hdf5Backend().open(path)
    _one_line(caught, "observations/virtual_qpos", "virtual dataset", "missing")


def test_a_spec_naming_a_missing_dataset_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "episode_0.hdf5"
    fx.write_aloha_episode(path, steps=3)
    spec = ConverterSpec.model_validate(
        {"name": "hdf5/mine", "format": "hdf5", "rate_hz": 50, "features": {"action": {"key": "observations/nope"}}}
    )
    with pytest.raises(MappingError) as caught:
        convert(path, tmp_path / "out", spec=spec)
    _one_line(caught, "observations/nope")


def test_a_file_of_no_known_layout_says_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "odd.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=np.zeros(3))
        f.create_dataset("b", data=np.zeros(5))
        f.create_group("g")
    with Hdf5Backend().open(path) as source, pytest.raises(SourceError) as caught:
        source.info()  # raised when used: a spec's source: episodes block could still name the layout
    _one_line(caught, str(path), "no layout rdstd knows", "a, b, g")


def test_a_dataset_compressed_with_a_plugin_filter_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    real_import = importlib.import_module

    def without_hdf5plugin(name: str, package: str | None = None) -> object:
        if name == "hdf5plugin":
            raise ImportError("No module named 'hdf5plugin'")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", without_hdf5plugin)  # as on an install without the extra
    path = tmp_path / "episode_0.hdf5"
    fx.write_aloha_episode(path, steps=2)
    with h5py.File(path, "a") as f:
        ds = f.create_dataset(
            "observations/packed", shape=(2, 4), dtype="u1", chunks=(1, 4), compression=32015, allow_unknown_filter=True
        )
        for i in range(2):
            ds.id.write_direct_chunk((i, 0), b"\x00" * 4)
    with pytest.raises(MissingDependencyError) as caught, Hdf5Backend().open(path) as source:
        source.info()
    _one_line(caught, "hdf5plugin", "observations/packed", "zstd")
    assert "rdstd[hdf5]" in caught.value.hint


def test_a_dataset_compressed_with_a_plugin_filter_reads_when_hdf5plugin_is_installed(tmp_path: Path) -> None:
    hdf5plugin = pytest.importorskip("hdf5plugin", reason="the hdf5 extra installs hdf5plugin")
    path = tmp_path / "episode_0.hdf5"
    fx.write_aloha_episode(path, steps=3)
    qpos = np.arange(42, dtype=np.float64).reshape(3, 14)
    with h5py.File(path, "a") as f:
        del f["observations/qpos"]
        f.create_dataset("observations/qpos", data=qpos, chunks=(1, 14), **hdf5plugin.Zstd())
    with Hdf5Backend().open(path) as source:
        (ref,) = source.episode_refs()
        values = read_frames(source.read_episode(ref).vectors["observations/qpos"])
    np.testing.assert_array_equal(values, qpos)


def _flip_middle(path: Path) -> None:
    """Invert 40 bytes spread over the middle of the file (damage the file still opens with)."""
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 4000, 97):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_bit_flipped_file_that_still_opens_is_named_and_skip_converts_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "aloha"
    fx.write_aloha_folder(folder, episodes=3, steps=6)
    _flip_middle(folder / "episode_0.hdf5")
    with pytest.raises(CorruptSourceError) as caught:  # was an internal error: h5py's OSError names no file
        convert(folder, tmp_path / "out")
    _one_line(caught, str(folder / "episode_0.hdf5"), "h5py cannot read it")
    assert caught.value.situation == "hdf5-data-unreadable"
    assert not (tmp_path / "out").exists()
    report = convert(folder, tmp_path / "out", on_error="skip")
    assert report.episodes_written == 2 and [s.index for s in report.skipped] == [0]


def _flip_headers(path: Path) -> None:
    """Invert bytes spread over the file's first 8 KB after the superblock (its groups' object headers)."""
    data = bytearray(path.read_bytes())
    for offset in range(800, min(8192, len(data)), 97):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_file_with_damaged_object_headers_is_named_and_skip_converts_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "aloha"
    fx.write_aloha_folder(folder, episodes=3, steps=3)
    _flip_headers(folder / "episode_0.hdf5")
    with pytest.raises(CorruptSourceError) as caught:  # was an internal error: h5py's KeyError names no file
        convert(folder, tmp_path / "out")
    _one_line(caught, str(folder / "episode_0.hdf5"), "h5py cannot read its structure")
    assert caught.value.situation == "hdf5-data-unreadable"
    assert not (tmp_path / "out").exists()
    report = convert(folder, tmp_path / "out", on_error="skip")
    assert report.episodes_written == 2 and len(report.skipped) == 1
    assert "episode_0.hdf5" in str(report.skipped[0])

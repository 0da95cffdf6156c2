"""Detection: real bytes of formats rdstd does not read yet are named, unreadable paths say so, plugins load lazily."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rdstd.convert.pipeline import convert, open_source
from rdstd.errors import PluginError, SourceError, SourceNotFoundError, UnknownFormatError
from rdstd.formats import registry, sniff
from rdstd.formats.registry import backends, detect, entries, get_backend
from tests.conftest import sample

# -- formats recognised but not read (real samples, read where they are) ---------------------------------------------


def test_an_old_ros1_bag_version_is_named_too(tmp_path: Path) -> None:
    path = tmp_path / "old.bag"
    path.write_bytes(b"#ROSBAG V1.2\n" + b"\0" * 32)
    with pytest.raises(UnknownFormatError, match=r"a ROS 1 bag \(#ROSBAG V1.2\)"):
        detect(path)


@pytest.mark.parametrize(
    "relative",
    [
        "ros/cruise-automation__rosbag.js/example.bag",
        "ros/synthetic_manipulation/episode_ros1.bag",
        "ros/synthetic_manipulation/episode_ros2_db3",
        "ros/synthetic_manipulation/episode_ros2_mcap",
        "ros/ros2__rosbag2/mcap_wbag",
    ],
)
def test_ros_bags_are_read_by_the_rosbag_backend(relative: str) -> None:
    assert detect(sample(relative)).name == "rosbag"


def test_a_ros2_file_names_the_bag_folder_it_belongs_to() -> None:
    for relative in ("ros/ros2__rosbag2/sqlite3_talker/talker.db3", "ros/ros2__rosbag2/mcap_cdr_test/cdr_test_0.mcap"):
        path = sample(relative)
        with pytest.raises(UnknownFormatError, match="a storage file of the ROS 2 bag folder") as caught:
            detect(path)
        assert str(path.parent) in caught.value.message and f"pass the folder {path.parent}" in caught.value.hint


def test_a_parquet_file_points_to_its_dataset_folder() -> None:
    root = sample("lerobot/v30_small")
    with pytest.raises(UnknownFormatError, match="single Parquet file") as caught:
        detect(root / "data" / "chunk-000" / "file-000.parquet")
    assert f"pass its dataset folder {root}" in caught.value.hint


def test_a_tfrecord_file_points_to_its_builder_folder() -> None:
    builder = sample("rlds/edgecases/rlds_edgecases/1.0.0")
    shard = next(builder.glob("*.tfrecord-*"))
    with pytest.raises(UnknownFormatError, match="single TFRecord file") as caught:
        detect(shard)
    assert str(builder) in caught.value.hint


def test_a_folder_of_datasets_names_the_ones_inside() -> None:
    with pytest.raises(UnknownFormatError, match="holds 3 dataset") as caught:
        detect(sample("lerobot"))
    assert "v30_small (lerobot)" in caught.value.message


def test_archives_say_unpack_them(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as z:
        z.writestr("episode_0/notes.txt", "hello")
    with tarfile.open(tmp_path / "data.tar", "w") as t:
        payload = b"hello"
        info = tarfile.TarInfo("episode_0/notes.txt")
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    with tarfile.open(tmp_path / "data.tar.gz", "w:gz") as t:
        t.add(tmp_path / "data.tar", arcname="data.tar")
    for name, says in [("data.zip", "zip archive"), ("data.tar", "tar archive"), ("data.tar.gz", "tar archive")]:
        with pytest.raises(UnknownFormatError, match=says) as caught:
            detect(tmp_path / name)
        assert "unpack" in caught.value.hint


def test_hdf5_behind_a_user_block_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "with_userblock.h5"
    path.write_bytes(b"\0" * 512 + sniff.HDF5_MAGIC + b"\0" * 64)
    assert detect(path).name == "hdf5"


def test_an_empty_file_and_a_canonical_dataset_are_told_apart(tmp_path: Path) -> None:
    (tmp_path / "empty.bag").write_bytes(b"")
    with pytest.raises(UnknownFormatError, match="empty file"):
        detect(tmp_path / "empty.bag")
    (tmp_path / "canonical").mkdir()
    (tmp_path / "canonical" / "rdstd.json").write_text("{}")
    with pytest.raises(UnknownFormatError, match="already a canonical rdstd dataset") as caught:
        detect(tmp_path / "canonical")
    assert "rdstd info" in caught.value.hint


def test_an_unknown_folder_still_says_what_was_tried(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("x")
    with pytest.raises(UnknownFormatError, match="tried lerobot, rlds, rosbag, zarr") as caught:
        detect(tmp_path / "stuff")
    assert "--source-format" in caught.value.hint


@pytest.mark.parametrize("named", [None, "zarr", "rlds", "lerobot"])
def test_a_missing_source_is_not_found_whichever_backend_is_named(tmp_path: Path, named: str | None) -> None:
    (tmp_path / "pusht.zarr").mkdir()
    with pytest.raises(SourceNotFoundError, match="no such file or directory") as caught:
        open_source(tmp_path / "pusht.zar", named)
    assert "pusht.zarr" in caught.value.hint, "a near name is suggested"


# -- permission errors ----------------------------------------------------------------------------------------------


def _deny(path: Path) -> OSError:
    return PermissionError(errno.EACCES, "Permission denied", str(path))


def test_a_folder_that_cannot_be_listed_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root reads anything, so the refusal is simulated where the operating system would raise it
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path) == tmp_path / "locked":
            raise _deny(tmp_path / "locked")
        return real_scandir(path)

    monkeypatch.setattr(sniff.os, "scandir", scandir)
    with pytest.raises(SourceError) as caught:
        detect(tmp_path / "locked")
    assert caught.value.message == f"cannot read {tmp_path / 'locked'}: permission denied"
    assert caught.value.exit_code == 3 and not isinstance(caught.value, UnknownFormatError)


def test_a_file_that_cannot_be_opened_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.bag"
    path.write_bytes(b"#ROSBAG V2.0\n")

    def head(p: Path, size: int) -> bytes:
        raise _deny(p)

    monkeypatch.setattr(sniff, "_head", head)
    with pytest.raises(SourceError, match=f"cannot read {path}: permission denied"):
        detect(path)


def test_a_dataset_with_an_unreadable_metadata_file_names_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "v30"
    shutil.copytree(sample("lerobot/v30_small") / "meta", root / "meta")
    locked = root / "meta" / "info.json"
    real_access = os.access

    def access(path: str | os.PathLike[str], mode: int) -> bool:
        return Path(path) != locked and real_access(path, mode)

    monkeypatch.setattr(sniff.os, "access", access)
    lerobot = get_backend("lerobot")
    monkeypatch.setattr(lerobot, "detect", lambda path: False)  # what the backend sees: info.json cannot be opened
    with pytest.raises(SourceError) as caught:
        detect(root)
    assert caught.value.message == f"cannot read {locked}: permission denied"


def test_a_backend_that_hits_a_permission_error_while_detecting_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ds" / "meta").mkdir(parents=True)
    lerobot = get_backend("lerobot")

    def detect_denied(path: Path) -> bool:
        raise _deny(path / "meta" / "info.json")

    monkeypatch.setattr(lerobot, "detect", detect_denied)
    with pytest.raises(SourceError, match=r"cannot read .*meta/info.json: permission denied"):
        detect(tmp_path / "ds")


# -- plugins through the rdstd.formats entry point ------------------------------------------------------------------

PLUGIN_MODULE = '''
"""A tiny third-party backend: a text file of episode lengths, one 1-d vector per step, 5 Hz."""
from pathlib import Path
import numpy as np
from rdstd.formats.base import EpisodeRef, FormatBackend, SourceDataset, SourceEpisode, SourceInfo, SourceKey


class TinySource(SourceDataset):
    format = "tiny"

    def __init__(self, path):
        super().__init__(path)
        self.lengths = [int(x) for x in path.read_text().split()[1:]]

    def info(self):
        keys = [SourceKey("value", "vector", (1,), "float32")]
        return SourceInfo("tiny", "1", str(self.path), len(self.lengths), sum(self.lengths), keys, rate_hz=5.0)

    def episode_refs(self):
        return [EpisodeRef(i, f"ep{i}", str(self.path), n) for i, n in enumerate(self.lengths)]

    def read_episode(self, ref):
        n = self.lengths[ref.index]
        return SourceEpisode(ref, n, vectors={"value": np.arange(n, dtype=np.float32).reshape(n, 1)})


class TinyBackend(FormatBackend):
    name = "tiny"
    priority = 90

    def detect(self, path):
        try:
            return path.is_file() and path.read_text().startswith("TINY")
        except OSError:
            return False

    def open(self, path):
        return TinySource(path)
'''


def _install_plugin(site: Path, dist: str, entry_points: str, module: str | None = None) -> None:
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if module is not None:
        (site / "tiny_rdstd_plugin.py").write_text(module)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path (like site-packages) for plugin dist-infos; the registry reloads around the test."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    registry.reload()
    yield folder
    sys.modules.pop("tiny_rdstd_plugin", None)
    registry.reload()


def test_a_plugin_backend_is_detected_listed_and_converts(site: Path, tmp_path: Path) -> None:
    _install_plugin(site, "tiny_plugin", "[rdstd.formats]\ntiny = tiny_rdstd_plugin:TinyBackend\n", PLUGIN_MODULE)
    source = tmp_path / "run.tiny"
    source.write_text("TINY 3 4")
    assert detect(source).name == "tiny"
    listed = {e.name: e.origin for e in entries()}
    assert listed["tiny"] == "plugin tiny_plugin 0.1" and listed["zarr"] == "builtin"
    report = convert(source, tmp_path / "out")
    assert (report.format, report.episodes_written, report.frames_written) == ("tiny", 2, 7)
    with open_source(source, "tiny") as opened:
        assert opened.info().episodes == 2


def test_a_plugin_whose_import_fails_is_named_and_does_not_break_the_others(site: Path, tmp_path: Path) -> None:
    _install_plugin(site, "broken_plugin", "[rdstd.formats]\nbroken = no_such_module_for_rdstd:Backend\n")
    assert "zarr" in backends(), "the built-ins still load"
    with pytest.raises(PluginError) as caught:
        get_backend("broken")
    assert "'broken'" in caught.value.message and "broken_plugin 0.1" in caught.value.message
    assert "ModuleNotFoundError" in caught.value.message
    (tmp_path / "stuff").mkdir()
    with pytest.raises(UnknownFormatError, match="plugin 'broken' could not be loaded"):
        detect(tmp_path / "stuff")


def test_a_plugin_whose_import_fails_does_not_break_import_rdstd_or_the_cli(site: Path) -> None:
    _install_plugin(site, "broken_plugin", "[rdstd.formats]\nbroken = no_such_module_for_rdstd:Backend\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).resolve().parents[2])])}
    code = "import rdstd; from rdstd.cli.app import main; raise SystemExit(main(['formats']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "broken" in done.stdout and "NOT USABLE" in done.stdout and "broken_plugin 0.1" in done.stdout


def test_a_plugin_named_like_a_builtin_does_not_replace_it(site: Path) -> None:
    _install_plugin(site, "tiny_plugin", "[rdstd.formats]\nzarr = tiny_rdstd_plugin:TinyBackend\n", PLUGIN_MODULE)
    assert type(get_backend("zarr")).__name__ == "ZarrReplayBufferBackend"
    shadowed = [e for e in entries() if e.origin == "plugin tiny_plugin 0.1"]
    assert shadowed and "shadowed by the builtin" in shadowed[0].problem


def test_a_plugin_entry_that_is_not_a_backend_is_refused_with_its_name(site: Path) -> None:
    _install_plugin(site, "tiny_plugin", "[rdstd.formats]\nodd = tiny_rdstd_plugin:TinySource\n", PLUGIN_MODULE)
    with pytest.raises(PluginError, match="'odd'"):
        get_backend("odd")

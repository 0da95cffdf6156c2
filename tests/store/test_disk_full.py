"""A full disk or a read-only file system stops the write with one OutputError, and nothing is left behind.

These tests mount small tmpfs file systems (root only); they skip, saying why, where mount is not permitted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import rdstd
from rdstd.cli.app import main
from rdstd.errors import OutputError
from rdstd.store import DatasetWriter
from rdstd.testing.fixtures import make_zarr_replay_buffer
from tests.store.helpers import FEATURES, PROVENANCE, make_episode


def mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB file system."""
    where = tmp_path / "small"
    mount_tmpfs(where, "size=2m")
    yield where
    subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "ro"
    mount_tmpfs(where, "size=1m,ro")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_a_full_disk_is_an_output_error_and_leaves_nothing(small_disk: Path) -> None:
    with (
        pytest.raises(OutputError, match="disk is full") as err,
        DatasetWriter(small_disk / "ds", FEATURES, PROVENANCE) as w,
    ):
        for i in range(10_000):
            w.add(make_episode(i, 50))
    assert str(small_disk / "ds") in err.value.message
    assert list(small_disk.iterdir()) == []


def test_a_full_disk_during_an_overwrite_keeps_the_old_dataset(small_disk: Path) -> None:
    out = small_disk / "ds"
    with DatasetWriter(out, FEATURES, PROVENANCE) as writer:
        writer.add(make_episode(0, 5))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(OutputError), DatasetWriter(out, FEATURES, PROVENANCE, overwrite=True) as writer:
        for i in range(10_000):
            writer.add(make_episode(i, 50))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in small_disk.iterdir()] == ["ds"]
    assert rdstd.open(out).num_episodes == 1


def test_convert_in_skip_mode_stops_on_a_full_disk_with_one_line(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rb.zarr"
    make_zarr_replay_buffer(source, [100] * 6, image_hw=(96, 96), chunk_rows=100)
    (small_disk / "ballast").write_bytes(bytes(1_950_000))  # the converted dataset is ~0.37 MB
    capsys.readouterr()
    code = main(["convert", str(source), str(small_disk / "out"), "--on-error", "skip"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "[RD700]" in err and "disk is full" in err and "Traceback" not in err and "internal error" not in err
    assert [p.name for p in small_disk.iterdir()] == ["ballast"], "no temporary shard, folder or lock is left"


def test_a_read_only_file_system_is_an_output_error(read_only: Path) -> None:
    with pytest.raises(OutputError, match="read-only"):
        DatasetWriter(read_only / "ds", FEATURES, PROVENANCE)

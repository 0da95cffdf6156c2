"""Git LFS pointers are named as such, with the command that fetches the real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdstd.errors import CorruptSourceError, LfsPointerError
from rdstd.lfs import is_pointer, pointer_size, raise_if_pointer

POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 12345\n"
)


def test_a_pointer_is_recognised_with_its_size(tmp_path: Path) -> None:
    file = tmp_path / "data" / "file-000.parquet"
    file.parent.mkdir()
    file.write_bytes(POINTER)
    assert is_pointer(file)
    assert pointer_size(POINTER) == 12345
    with pytest.raises(LfsPointerError) as info:
        raise_if_pointer(file, tmp_path)
    assert isinstance(info.value, CorruptSourceError)
    assert "Git LFS pointer" in info.value.message and "12,345 bytes" in info.value.message
    assert "git -C" in info.value.hint and "data/file-000.parquet" in info.value.hint


@pytest.mark.parametrize(
    "content",
    [b"PAR1" + b"\0" * 100, b"", b"version 1\n", POINTER + b"x" * 2000],
)
def test_other_files_are_not_pointers(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "f"
    file.write_bytes(content)
    assert not is_pointer(file)
    raise_if_pointer(file)


def test_a_missing_file_is_not_a_pointer(tmp_path: Path) -> None:
    assert not is_pointer(tmp_path / "absent")


@pytest.mark.parametrize("name", ["run.bag", "run.mcap", "episode.parquet", "shard.tfrecord-00000-of-00001"])
def test_a_pointer_no_backend_claims_is_named_as_a_pointer_by_detection(tmp_path: Path, name: str) -> None:
    """A ROS 1 bag (or any file whose backend recognises it by its bytes) cloned without ``git lfs pull``: the
    error says it is a pointer and how to fetch it, not that no backend recognises it."""
    from rdstd.formats.registry import detect

    path = tmp_path / name
    path.write_bytes(POINTER)
    with pytest.raises(LfsPointerError, match=r"is a Git LFS pointer, not the real file \(12,345 bytes") as info:
        detect(path)
    assert f"git -C {tmp_path} lfs pull --include='{name}'" in (info.value.hint or "")

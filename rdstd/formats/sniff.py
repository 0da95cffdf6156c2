"""What a path looks like when no backend claims it: formats rdstd does not read yet, and misplaced paths.

Detection (:func:`rdstd.formats.registry.detect`) asks the backends first; only when none recognises the path does
it call :func:`sniff`, so a plugin that reads one of these formats wins. Sniffing reads at most a few bytes of a
file (magic numbers) and one folder listing; it never imports a heavy package.

Each :class:`Sniffed` names the format and says what to do instead: point at the dataset's folder (a Parquet or
TFRecord file given for its dataset), unpack an archive, or use another tool for a format rdstd does not read.
Reading the path itself failing with a permission error is :func:`unreadable`, reported before anything else.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

#: Magic numbers at the start of a file.
ROSBAG1_MAGIC = b"#ROSBAG V"  # followed by the version: 2.0 today, 1.2 and 1.1 in old bags
MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: A POSIX tar header says ``ustar`` at byte 257.
TAR_MAGIC_OFFSET = 257
TAR_MAGIC = b"ustar"
#: HDF5 files may start with a user block of 512, 1024, 2048 … bytes; the signature follows it.
_HDF5_OFFSETS = (0, 512, 1024, 2048, 4096, 8192)
_HEAD_BYTES = 512
#: Folders above a misplaced file searched for its dataset root.
_PARENT_LEVELS = 4
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst")

_NOT_YET = "which rdstd does not read yet"


@dataclass(frozen=True)
class Sniffed:
    """What the path looks like (``what``) and what the user can do (``hint``)."""

    what: str
    hint: str

    def message(self, path: Path) -> str:
        """The one-line message for ``path``."""
        return f"{path}: {self.what}"


def unreadable(path: Path) -> OSError | None:
    """The permission error reading ``path`` (its first bytes, or its folder listing) raises, if any."""
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                next(entries, None)
        else:
            _head(path, 1)
    except OSError as exc:
        if exc.errno in {errno.EACCES, errno.EPERM}:
            return exc
        raise
    return None


def unreadable_inside(path: Path, *, depth: int = 2, limit: int = 500) -> Path | None:
    """The first file or folder up to ``depth`` levels inside ``path`` that this process may not read, if any.

    Backends' ``detect`` cannot raise, so a dataset with one unreadable metadata file (a copy made with mode
    0600 by another user) reads as "not recognised"; this names the file instead. At most ``limit`` entries
    are looked at.
    """
    if not path.is_dir():
        return None
    queue, seen = [(path, 0)], 0
    while queue:
        folder, level = queue.pop(0)
        for entry in sorted(folder.iterdir()):
            seen += 1
            if seen > limit:
                return None
            is_dir = entry.is_dir()
            if not os.access(entry, os.R_OK | (os.X_OK if is_dir else 0)):
                return entry
            if is_dir and level + 1 < depth:
                queue.append((entry, level + 1))
    return None


def sniff(path: Path) -> Sniffed | None:
    """What ``path`` looks like, when it is a format or a place rdstd recognises but does not read; else None."""
    if path.is_dir():
        return _sniff_folder(path)
    if path.is_file():
        return _sniff_file(path)
    return None


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def has_hdf5_signature(path: Path) -> bool:
    """Whether the HDF5 signature sits at offset 0, 512, 1024 … (a user block may precede it)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        for offset in _HDF5_OFFSETS:
            if offset + len(HDF5_MAGIC) > size:
                return False
            f.seek(offset)
            if f.read(len(HDF5_MAGIC)) == HDF5_MAGIC:
                return True
    return False


def _sniff_folder(path: Path) -> Sniffed | None:
    names = {entry.name for entry in os.scandir(path)}
    if "rdstd.json" in names:
        return Sniffed(
            "already a canonical rdstd dataset; there is nothing to convert",
            f"see what it holds with: rdstd info {path}",
        )
    if any(n.endswith(".bag") for n in names):
        bags = sorted(n for n in names if n.endswith(".bag"))
        return Sniffed(
            f"a folder of ROS 1 bags ({', '.join(bags[:3])}{' …' if len(bags) > 3 else ''})",
            "pass one bag, or read them as one split recording with --source-format rosbag",
        )
    return None


def _sniff_file(path: Path) -> Sniffed | None:
    head = _head(path, _HEAD_BYTES)
    name = path.name.lower()
    if not head:
        return Sniffed("an empty file (0 bytes)", "check the copy or download that made it")
    if head.startswith(ROSBAG1_MAGIC):
        version = head.split(b"\n", 1)[0].decode("ascii", "replace")
        return Sniffed(
            f"a ROS 1 bag ({version}), {_NOT_YET}", "only bag format 2.0 is read; migrate it with ROS's rosbag"
        )
    inside = _ros2_folder(path)
    if inside is not None and (
        head.startswith(MCAP_MAGIC) or (head.startswith(SQLITE_MAGIC) and name.endswith(".db3"))
    ):
        return Sniffed(
            f"a storage file of the ROS 2 bag folder {inside}",
            f"pass the folder {inside}: its metadata.yaml holds the message counts the ledger checks",
        )
    if head.startswith(PARQUET_MAGIC):
        root = _dataset_root(path)
        where = f"its dataset folder {root}" if root else "the dataset's root folder (the one holding meta/info.json)"
        return Sniffed(
            "a single Parquet file, not a dataset folder",
            f"pass {where} instead",
        )
    if ".tfrecord" in name or name.endswith(".tfrecords"):
        root = _builder_dir(path)
        where = f"its builder folder {root}" if root else "the RLDS builder folder (the one with dataset_info.json)"
        return Sniffed("a single TFRecord file, not an RLDS dataset", f"pass {where}")
    if head.startswith(ZIP_MAGICS):
        return Sniffed(
            "a zip archive that is not a zarr replay buffer",
            f"unpack it (unzip {path}) and pass the dataset folder inside",
        )
    if _is_tar(head, name):
        return Sniffed("a tar archive", f"unpack it (tar -xf {path}) and pass the dataset folder inside")
    if head.startswith((GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC, ZSTD_MAGIC)):
        return Sniffed("a compressed file", "decompress it and pass the dataset folder inside")
    return None


def _is_tar(head: bytes, name: str) -> bool:
    magic = head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + len(TAR_MAGIC)]
    return magic == TAR_MAGIC or name.endswith(_TAR_SUFFIXES)


def _ros2_folder(path: Path) -> Path | None:
    return path.parent if (path.parent / "metadata.yaml").is_file() else None


def _dataset_root(path: Path) -> Path | None:
    """The LeRobot or canonical dataset folder a Parquet file belongs to, if one is a few levels up."""
    for parent in list(path.parents)[:_PARENT_LEVELS]:
        if (parent / "meta" / "info.json").is_file() or (parent / "rdstd.json").is_file():
            return parent
    return None


def _builder_dir(path: Path) -> Path | None:
    """The RLDS builder folder a TFRecord file sits in, if it has a dataset_info.json."""
    return path.parent if (path.parent / "dataset_info.json").is_file() else None

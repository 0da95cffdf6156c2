"""Git LFS pointers: the most common broken download (a clone without ``git lfs pull``).

A pointer is a small text file (``version https://git-lfs.github.com/spec/v1``, ``oid sha256:…``, ``size N``)
standing where a Parquet file, an mp4, a TFRecord shard or a zarr chunk should be. Readers call
:func:`raise_if_pointer` before (or when) a file fails to parse, so the user is told what the file is and how
to fetch the real one, instead of "magic bytes not found".
"""

from __future__ import annotations

import re
from pathlib import Path

from rdstd.errors import LfsPointerError

_SPEC_LINE = b"version https://git-lfs.github.com/spec/"
#: Pointer files are tiny; anything larger is not one (the spec caps them well under 1 KiB).
_MAX_POINTER_BYTES = 1024
_SIZE = re.compile(rb"^size (\d+)$", re.MULTILINE)


def pointer_size(head: bytes) -> int | None:
    """The size of the real file when ``head`` (the file's first bytes) is an LFS pointer, else None."""
    if not head.startswith(_SPEC_LINE):
        return None
    match = _SIZE.search(head)
    return int(match.group(1)) if match else 0


def is_pointer(path: Path) -> bool:
    """Whether the file at ``path`` is a Git LFS pointer (reads at most 1 KiB; False for anything unreadable)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_MAX_POINTER_BYTES + 1)
    except OSError:
        return False
    return len(head) <= _MAX_POINTER_BYTES and pointer_size(head) is not None


def raise_if_pointer(path: Path, root: Path | None = None) -> None:
    """Raise :class:`LfsPointerError` naming ``path`` and the command that fetches it, when it is a pointer."""
    if not is_pointer(path):
        return
    size = pointer_size(path.read_bytes()) or 0
    try:
        rel = path.relative_to(root).as_posix() if root is not None else path.name
    except ValueError:
        rel = path.name
    where = f" -C {root}" if root is not None else ""
    raise LfsPointerError(
        f"{path}: is a Git LFS pointer, not the real file ({size:,} bytes were never downloaded)",
        hint=f"fetch it with: git{where} lfs pull --include={rel!r} (or git lfs pull for the whole dataset)",
        situation="lfs-pointer",
    )

"""Reading a source's own files: one place that turns OS errors and Git LFS pointers into one-line errors.

A file that cannot be opened (permission denied, a directory where a file should be) is a
:class:`~rdstd.errors.SourceError` naming the file and the OS reason, never "corrupt" or "not a dataset"; a
Git LFS pointer standing in for the file is an :class:`~rdstd.errors.LfsPointerError` with the fetch command.
"""

from __future__ import annotations

import errno
from pathlib import Path

from rdstd.errors import SourceError
from rdstd.lfs import raise_if_pointer


def unreadable(path: Path, exc: OSError) -> SourceError:
    """The error for a source file the OS refuses to read (``cannot read …: permission denied``)."""
    reason = (exc.strerror or type(exc).__name__).lower()
    if exc.errno in (errno.EACCES, errno.EPERM):
        hint = "check the file's permissions and owner (e.g. chmod a+r)"
    else:
        hint = "check that the dataset folder is complete and readable"
    return SourceError(f"{path}: cannot read: {reason}", hint=hint, situation="source-unreadable")


def check_readable(path: Path, root: Path | None = None) -> None:
    """Open ``path`` and read its head: an unreadable file or an LFS pointer raises its own clear error."""
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise unreadable(path, exc) from exc
    raise_if_pointer(path, root)


def read_bytes(path: Path, root: Path | None = None) -> bytes:
    """The whole of a (small, metadata) file; unreadable files and LFS pointers raise their clear errors."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise unreadable(path, exc) from exc
    raise_if_pointer(path, root)
    return data

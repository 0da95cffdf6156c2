"""Operating-system write failures (full disk, quota, permissions, read-only file system) as :class:`OutputError`.

Shared by everything that writes: the store's output, the video encoder and the exporters.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from rdstd.errors import OutputError

#: errno -> what it means for an output, said to the user.
_OUTPUT_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
}
_ERRNO_IN_TEXT = re.compile(r"\[?errno (\d+)\]?", re.IGNORECASE)


def output_error(exc: BaseException, path: Path) -> OutputError | None:
    """The :class:`OutputError` an ``OSError`` (or Arrow I/O error) stands for, or None when it is not one."""
    if not isinstance(exc, OSError):
        return None
    code = exc.errno
    if code not in _OUTPUT_ERRNOS:
        found = _ERRNO_IN_TEXT.search(str(exc))
        code = int(found.group(1)) if found else None
    if code not in _OUTPUT_ERRNOS:
        return None
    assert code is not None
    hints = {
        errno.ENOSPC: "free some space or write to another disk, then run again",
        errno.EDQUOT: "free some space or write to another disk, then run again",
        errno.EROFS: "write to a writable location",
    }
    return OutputError(
        f"{path}: cannot write the output: {_OUTPUT_ERRNOS[code]} (nothing was left behind)",
        hint=hints.get(code, "check the permissions of the output folder"),
        situation="output-unwritable",
    )


__all__ = ["output_error"]

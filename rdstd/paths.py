"""Path rules shared by every reader and writer: nothing outside a dataset is read or written.

Paths that come from metadata (a LeRobot template, an RLDS ``filepathTemplate``, a frame reference, a feature
name that becomes a file name on export) are joined to their root through :func:`inside`, which normalises the
path *without following links* and refuses one that leaves the root. Symbolic links that already sit inside a
dataset are followed when the file is opened: a Hugging Face cache snapshot is a folder of links into
``../../blobs``, and refusing them would refuse every downloaded dataset. What is refused is a path *written in
metadata* that climbs out (``..``) or is absolute.

Names that become single path components (feature, camera and dataset names) go through :func:`safe_component`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rdstd.errors import CorruptSourceError, RdstdError

#: Characters a name that becomes one path component may hold (no separators; dots allowed, but not ``..``).
_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def normalized(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute and normalised (``..`` folded) without following links: the one form used inside."""
    return Path(os.path.normpath(Path(path).absolute()))


def inside(
    root: Path,
    rel: str,
    what: str,
    *,
    error: type[RdstdError] = CorruptSourceError,
    hint: str = "fix the dataset's metadata; rdstd reads and writes nothing outside the dataset folder",
) -> Path:
    """``root / rel``, normalised without following links; ``error`` naming ``what`` when it leaves ``root``.

    ``rel`` must be relative: an absolute path in metadata is refused as well.
    """
    if Path(rel).is_absolute() or (len(rel) > 1 and rel[1] == ":"):
        raise error(f"{root}: {what} is an absolute path ({rel!r}); paths in a dataset are relative to it", hint=hint)
    base = normalized(root)
    path = normalized(base / rel)
    if path != base and not path.is_relative_to(base):
        raise error(f"{root}: {what} points outside the dataset folder ({rel!r})", hint=hint)
    return path


def is_safe_component(name: str) -> bool:
    """Whether ``name`` can be used as one path component: a fixed character set, no separators, not ``..``."""
    return bool(_COMPONENT.match(name)) and ".." not in name


def safe_component(name: str, what: str, *, error: type[RdstdError] = CorruptSourceError) -> str:
    """``name`` unchanged when :func:`is_safe_component`; else ``error`` naming ``what``."""
    if not is_safe_component(name):
        raise error(
            f"{what} {name!r} cannot be a file name (allowed: letters, digits, '_', '.', '-'; no '/', no '..')",
            hint="rename it in the dataset's manifest or the converter spec",
        )
    return name

"""The ``rdstd.checks`` entry points, from an index kept on disk while the installed distributions stay the same.

``importlib.metadata.entry_points`` reads the metadata of every installed distribution on each call (about 5 ms
with 200 of them, on every ``rdstd validate``). The index holds the entry points of the group found last time,
keyed by a fingerprint of what that search reads: each ``sys.path`` entry, the ``*.dist-info`` and ``*.egg-info``
names in it, and the size, modification time and inode of each one's ``entry_points.txt`` (a zip file on the path:
its own). Installing, removing or upgrading a distribution (or editing its entry points) changes the fingerprint,
and the next run searches again. Listing the folders and stat-ing those files costs about 1 ms.

The index lives in ``$RDSTD_CACHE/validate/plugins.json`` (default ``~/.cache/rdstd``). ``RDSTD_PLUGIN_INDEX=0``
turns it off (every run searches). Where the folder cannot be written the search runs each time; when a
distribution finder other than the standard path finder is installed (its distributions cannot be fingerprinted)
the index is not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from rdstd.io.atomic import write_bytes

#: The environment variable that turns the index off (``0``).
ENV = "RDSTD_PLUGIN_INDEX"
#: Fingerprints kept (environments and working folders: ``sys.path`` starts with the working folder).
KEYS = 8
_VERSION = 1


def plugin_entry_points(group: str) -> list[tuple[EntryPoint, str]]:
    """Every installed entry point of ``group`` with where it comes from (``plugin <dist> <version>``), as
    ``importlib.metadata.entry_points(group=group)`` gives them; from the index when it is current."""
    key = fingerprint(group)
    path = index_path()
    if key is not None:
        cached = _read(path, key)
        if cached is not None:
            return cached
    found = [(ep, _origin(ep)) for ep in entry_points(group=group)]
    if key is not None:
        _write(path, key, found)
    return found


def index_path() -> Path:
    """Where the index is kept."""
    base = os.environ.get("RDSTD_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "rdstd") / "validate" / "plugins.json"


def fingerprint(group: str) -> str | None:
    """A digest of everything the entry-point search reads, or None when the index is off or cannot be trusted."""
    if os.environ.get(ENV, "1") == "0" or _other_finders():
        return None
    digest = hashlib.sha256(f"{_VERSION}\0{group}\0{sys.version}".encode())
    # os.scandir / os.stat on plain strings: Path objects would cost as much as the index saves
    for entry in sys.path:
        folder = os.path.abspath(entry or ".")  # noqa: PTH100
        digest.update(f"\0path\0{folder}".encode())
        try:
            metas = sorted((e.name, e.path) for e in os.scandir(folder) if e.name.endswith((".dist-info", ".egg-info")))
        except NotADirectoryError:  # a zip file on the path: its own size and time stand for what it holds
            digest.update(_stamp(folder).encode())
            continue
        except OSError:
            continue
        for name, meta in metas:
            digest.update(f"\0{name}\0{_stamp(f'{meta}/entry_points.txt')}".encode())
    return digest.hexdigest()


def _stamp(path: str) -> str:
    try:
        st = os.stat(path)  # noqa: PTH116
    except OSError:
        return "-"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _other_finders() -> bool:
    """Whether a meta-path finder other than the standard path finder can give distributions."""
    from importlib.machinery import PathFinder

    return any(
        callable(getattr(finder, "find_distributions", None)) and finder is not PathFinder for finder in sys.meta_path
    )


def _origin(ep: EntryPoint) -> str:
    return f"plugin {ep.dist.name} {ep.dist.version}" if ep.dist is not None else f"plugin {ep.value}"


def _load(path: Path) -> dict[str, list[dict[str, str]]]:
    """The index: entry points by fingerprint, most recent last ({} when absent or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data["keys"] if isinstance(data, dict) and data.get("version") == _VERSION else {}


def _read(path: Path, key: str) -> list[tuple[EntryPoint, str]] | None:
    entries = _load(path).get(key)
    try:
        return (
            None
            if entries is None
            else [(EntryPoint(name=e["name"], value=e["value"], group=e["group"]), e["origin"]) for e in entries]
        )
    except (KeyError, TypeError):  # not an index this version wrote: search again
        return None


def _write(path: Path, key: str, found: list[tuple[EntryPoint, str]]) -> None:
    keys = {k: v for k, v in _load(path).items() if k != key}  # one key per environment and working folder
    keys[key] = [{"name": ep.name, "value": ep.value, "group": ep.group, "origin": origin} for ep, origin in found]
    kept = dict(list(keys.items())[-KEYS:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, json.dumps({"version": _VERSION, "keys": kept}).encode())
    except OSError:  # a read-only home: the search runs each time, nothing is lost
        return

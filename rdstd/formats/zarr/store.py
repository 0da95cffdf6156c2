"""The files of a zarr store (a folder or a zip), read without zarr: names, metadata JSON, chunk file names.

Everything path-like is checked here: zip member names must stay inside the archive (no absolute names, no
``..``), chunk key separators must be ``/`` or ``.``. Metadata files (``.zarray``, ``.zgroup``, ``.zattrs``,
``zarr.json``, ``.zmetadata``) that are Git LFS pointers, or that the OS refuses to read, raise their own
clear errors before zarr touches them.
"""

from __future__ import annotations

import itertools
import json
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from rdstd.errors import CorruptSourceError, LfsPointerError, UnsupportedVersionError
from rdstd.formats.files import read_bytes, unreadable
from rdstd.lfs import is_pointer, pointer_size, raise_if_pointer

EPISODE_ENDS = "meta/episode_ends"
METADATA_FILES = frozenset({".zarray", ".zgroup", ".zattrs", "zarr.json", ".zmetadata"})
_SEPARATORS = ("/", ".")


def _check_member(archive: Path, name: str) -> str:
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":") or "\\" in name:
        raise CorruptSourceError(
            f"{archive}: zip member {name!r} points outside the store",
            hint="the archive is malformed or hostile; rdstd reads nothing outside the dataset",
            situation="path-outside-dataset",
        )
    return name.rstrip("/")


def looks_like_replay_buffer(path: Path) -> bool:
    """A folder or zip holding ``meta/episode_ends`` (or a ``.zarr.zip`` that is a Git LFS pointer). Never raises."""
    try:
        if path.is_dir():
            return any((path / EPISODE_ENDS / m).is_file() for m in (".zarray", "zarr.json"))
        if path.is_file() and path.suffix == ".zip":
            if path.name.endswith(".zarr.zip") and is_pointer(path):
                return True  # opening it says what it is and how to fetch it
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
            return any(f"{EPISODE_ENDS}/{m}" in names for m in (".zarray", "zarr.json"))
    except (zipfile.BadZipFile, OSError):
        return False
    return False


def _file_names(root: Path) -> set[str]:
    """Every file under ``root`` as a ``/``-separated relative name, as ``Path.rglob`` finds them (a symlink to a
    file counts, a symlinked folder is not entered).
    ``os.scandir`` knows a regular file from its directory entry: no stat per chunk file, several times faster
    than pathlib on a chunk-per-file store."""
    names: set[str] = set()
    folders = [("", str(root))]
    while folders:
        prefix, folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append((f"{prefix}{entry.name}/", entry.path))
                elif entry.is_file():
                    names.add(prefix + entry.name)
    return names


class StoreFiles:
    """The file names of a zarr store (folder or zip) and its metadata documents."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = path.is_file()
        if self.is_zip:
            raise_if_pointer(path, path.parent)
            try:
                with zipfile.ZipFile(path) as archive:
                    self.names = {_check_member(path, n) for n in archive.namelist()}
            except OSError as exc:
                raise unreadable(path, exc) from exc
            except zipfile.BadZipFile as exc:
                raise CorruptSourceError(
                    f"{path}: not a readable zip file ({exc})", hint="re-download the store", situation="zip-unreadable"
                ) from exc
        else:
            try:
                self.names = _file_names(path)
            except OSError as exc:
                raise unreadable(Path(exc.filename or path), exc) from exc
            for name in sorted(self.names):
                if name.rsplit("/", 1)[-1] in METADATA_FILES:
                    raise_if_pointer(path / name, path)

    def read_text(self, name: str) -> bytes:
        """The raw bytes of the metadata document ``name``."""
        if not self.is_zip:
            return read_bytes(self.path / name, self.path)
        try:
            with zipfile.ZipFile(self.path) as archive:
                data = archive.read(name)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise CorruptSourceError(
                f"{self.path}/{name}: unreadable zarr metadata ({exc})", situation="array-metadata-invalid"
            ) from exc
        if pointer_size(data[:1024]) is not None:
            raise LfsPointerError(
                f"{self.path}/{name}: is a Git LFS pointer, not the real file",
                hint="git lfs pull the store",
                situation="lfs-pointer",
            )
        return data

    def read_json(self, name: str) -> Any:
        """The JSON document at ``name`` in the store."""
        data = self.read_text(name)
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptSourceError(
                f"{self.path}/{name}: unreadable zarr metadata ({exc})", situation="array-metadata-invalid"
            ) from exc

    def arrays(self, group: str) -> dict[str, dict[str, Any]]:
        """Metadata of every array directly under ``group`` (v2 ``.zarray`` or v3 ``zarr.json``)."""
        found: dict[str, dict[str, Any]] = {}
        prefix = f"{group}/"
        for name in sorted(self.names):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            if len(parts) != 2 or parts[1] not in (".zarray", "zarr.json"):
                continue
            meta = self.read_json(name)
            if not isinstance(meta, dict):
                raise CorruptSourceError(
                    f"{self.path}/{name}: not a JSON object",
                    hint="re-download the store",
                    situation="array-metadata-invalid",
                )
            expected = 2 if parts[1] == ".zarray" else 3
            version = meta.get("zarr_format")
            if isinstance(version, bool) or version != expected:
                raise UnsupportedVersionError(
                    f"{self.path}/{name}: zarr_format is {version!r}, a {parts[1]} file needs {expected}",
                    hint="the metadata is damaged or from an unknown zarr version",
                    situation="zarr-version-mismatch",
                )
            if expected == 2 or meta.get("node_type") == "array":
                found[parts[0]] = meta
        return found


def codec_ids(meta: dict[str, Any]) -> list[str]:
    """The codec ids an array's metadata names (v2 compressor + filters, v3 codecs)."""
    ids = []
    if meta.get("zarr_format") == 2:
        for item in [meta.get("compressor"), *(meta.get("filters") or [])]:
            if isinstance(item, dict) and "id" in item:
                ids.append(str(item["id"]))
    else:
        for item in meta.get("codecs") or []:
            if isinstance(item, dict):
                ids.append(str(item.get("name", "")))
    return ids


def written_by_zarr_python_2(text: bytes) -> bool:
    """Whether a v2 ``.zarray`` has zarr-python 2's formatting (4-space indent, sorted keys).

    zarr-python 2 writes every chunk unless told otherwise (``write_empty_chunks=True`` since 2.11, always
    before); zarr-python 3 writes v2 metadata with a 2-space indent in its own key order and omits chunks that
    hold only the fill value.
    """
    if not text.startswith(b'{\n    "'):
        return False
    try:
        pairs = json.loads(text, object_pairs_hook=lambda items: items)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    keys = [k for k, _ in pairs]
    return keys == sorted(keys)


def chunk_grid(meta: dict[str, Any], where: str) -> tuple[list[int], str, str] | None:
    """(chunk shape, separator, key prefix) of an array, or ``None`` for sharded v3 arrays (zarr reads shards)."""
    try:
        if meta.get("zarr_format") == 2:
            grid = [int(c) for c in meta["chunks"]]
            sep = str(meta.get("dimension_separator") or ".")
            prefix = ""
        else:
            codecs = meta.get("codecs") or []
            if any(isinstance(c, dict) and c.get("name") == "sharding_indexed" for c in codecs):
                return None
            grid = [int(c) for c in meta["chunk_grid"]["configuration"]["chunk_shape"]]
            encoding = meta.get("chunk_key_encoding") or {}
            default = encoding.get("name", "default") == "default"
            sep = str((encoding.get("configuration") or {}).get("separator", "/" if default else "."))
            prefix = "c" + sep if default else ""
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptSourceError(
            f"{where}: malformed chunk grid in the array metadata ({exc})", situation="array-metadata-invalid"
        ) from exc
    if sep not in _SEPARATORS:
        raise UnsupportedVersionError(
            f"{where}: chunk key separator {sep!r} is neither '/' nor '.'", situation="chunk-separator-unknown"
        )
    if not grid or any(c <= 0 for c in grid):
        raise CorruptSourceError(f"{where}: chunk shape {grid} is not positive", situation="array-metadata-invalid")
    return grid, sep, prefix


def chunk_names(array: str, meta: dict[str, Any], shape: tuple[int, ...], chunk: int, where: str) -> list[str]:
    """Store names of every chunk whose first-axis chunk index is ``chunk`` (empty for sharded arrays)."""
    found = chunk_grid(meta, where)
    if found is None:
        return []
    grid, sep, prefix = found
    if len(grid) != len(shape):
        raise CorruptSourceError(
            f"{where}: chunk shape {grid} does not match the array's shape {list(shape)}",
            situation="array-metadata-invalid",
        )
    counts = [-(-size // step) for size, step in zip(shape[1:], grid[1:], strict=True)]
    return [
        f"{array}/{prefix}" + sep.join(str(i) for i in (chunk, *rest))
        for rest in itertools.product(*(range(c) for c in counts))
    ]

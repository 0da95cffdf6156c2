"""zarr replay buffers (Diffusion Policy, UMI): ``data/<key>`` concatenated over steps, ``meta/episode_ends``.

Stores are zarr v2 (``.zarray`` JSON) or v3 (``zarr.json``), as a folder or a ``.zarr.zip``. Array metadata is
read as JSON first, so codecs are known before zarr touches them: stores whose chunks use imagecodecs
(JPEG-XL, JPEG 2000, as UMI writes) get those codecs registered on demand, with an error naming the extra when
imagecodecs is missing. Episodes are read chunk by chunk with the last chunk of each array cached, since
chunk boundaries are not episode boundaries (PushT: 161-step chunks); memory stays at one episode plus one
chunk per array. A chunk file that is missing or does not decode is an error naming that file: zarr would
otherwise return the fill value for a missing chunk, which here would be silently wrong data.
"""

from __future__ import annotations

import itertools
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptSourceError, MissingDependencyError, SourceError, UnsupportedVersionError
from rdstd.formats.base import EpisodeRef, FormatBackend, SourceDataset, SourceEpisode, SourceInfo, SourceKey

_EPISODE_ENDS = "meta/episode_ends"


class _Listing:
    """The files of a zarr store (folder or zip), read without zarr."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = path.is_file()
        if self.is_zip:
            try:
                with zipfile.ZipFile(path) as archive:
                    self.names = {n.rstrip("/") for n in archive.namelist()}
            except (zipfile.BadZipFile, OSError) as exc:
                raise CorruptSourceError(
                    f"{path}: not a readable zip file ({exc})", hint="re-download the store"
                ) from exc
        else:
            self.names = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}

    def read_json(self, name: str) -> Any:
        """The JSON document at ``name`` in the store."""
        try:
            if self.is_zip:
                with zipfile.ZipFile(self.path) as archive:
                    text = archive.read(name)
            else:
                text = (self.path / name).read_bytes()
            return json.loads(text)
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            raise CorruptSourceError(f"{self.path}/{name}: unreadable zarr metadata ({exc})") from exc

    def arrays(self, group: str) -> dict[str, dict[str, Any]]:
        """Metadata of every array directly under ``group`` (v2 ``.zarray`` or v3 ``zarr.json``)."""
        found: dict[str, dict[str, Any]] = {}
        prefix = f"{group}/"
        for name in sorted(self.names):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            if len(parts) == 2 and parts[1] == ".zarray":
                found[parts[0]] = self.read_json(name)
            elif len(parts) == 2 and parts[1] == "zarr.json":
                meta = self.read_json(name)
                if meta.get("node_type") == "array":
                    found[parts[0]] = meta
        return found


def _looks_like_replay_buffer(path: Path) -> bool:
    if path.is_dir():
        return any((path / _EPISODE_ENDS / m).is_file() for m in (".zarray", "zarr.json"))
    if path.is_file() and path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
        return any(f"{_EPISODE_ENDS}/{m}" in names for m in (".zarray", "zarr.json"))
    return False


def _codec_ids(meta: dict[str, Any]) -> list[str]:
    ids = []
    if meta.get("zarr_format") == 2:
        for item in [meta.get("compressor"), *(meta.get("filters") or [])]:
            if isinstance(item, dict) and "id" in item:
                ids.append(str(item["id"]))
    else:
        for item in meta.get("codecs", []):
            if isinstance(item, dict):
                ids.append(str(item.get("name", "")))
    return ids


def _import_zarr() -> Any:
    try:
        import zarr
    except ImportError as exc:
        raise MissingDependencyError("zarr", "zarr", purpose="read zarr replay buffers") from exc
    return zarr


def _register_image_codecs(path: Path, ids: set[str]) -> None:
    needed = sorted(i for i in ids if i.startswith("imagecodecs_"))
    if not needed:
        return
    try:
        from imagecodecs.numcodecs import register_codecs
    except ImportError as exc:
        raise MissingDependencyError(
            "imagecodecs", "zarr", purpose=f"decode {', '.join(needed)} chunks in {path}"
        ) from exc
    register_codecs(verbose=False)


def classify_layout(keys: set[str]) -> str:
    """Which writer produced a replay buffer, from its keys (see reference/hdf5.md, auto-detection)."""
    if any(k.endswith("_eef_rot_axis_angle") for k in keys):
        return "umi"
    if {"img", "keypoint", "n_contacts"} <= keys:
        return "diffusion_policy_pusht"
    if {"timestamp", "stage"} <= keys:
        return "diffusion_policy_real"
    return "replay_buffer"


def _is_image(per_step: tuple[int, ...]) -> bool:
    """A per-step shape of (H, W, C) with C in 1, 3, 4 and H, W >= 8 is a camera."""
    return len(per_step) == 3 and per_step[-1] in (1, 3, 4) and min(per_step[:2]) >= 8


@dataclass
class _Array:
    """One ``data/<key>`` array with a one-chunk cache."""

    key: str
    handle: Any
    meta: dict[str, Any]
    chunk_rows: int
    cached: tuple[int, npt.NDArray[Any]] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.meta["shape"])

    @property
    def dtype(self) -> str:
        return str(np.dtype(self.handle.dtype).name)

    def chunk_keys(self, chunk: int) -> list[str]:
        """Relative file names of every chunk whose first-axis chunk index is ``chunk`` (empty if unknown)."""
        if self.meta.get("zarr_format") == 2:
            grid = [int(c) for c in self.meta["chunks"]]
            sep = self.meta.get("dimension_separator") or "."
            prefix = ""
        else:
            if any(c.get("name") == "sharding_indexed" for c in self.meta.get("codecs", []) if isinstance(c, dict)):
                return []
            grid = [int(c) for c in self.meta["chunk_grid"]["configuration"]["chunk_shape"]]
            encoding = self.meta.get("chunk_key_encoding", {})
            sep = encoding.get("configuration", {}).get("separator", "/")
            prefix = "c" + sep if encoding.get("name", "default") == "default" else ""
        counts = [-(-size // step) for size, step in zip(self.shape[1:], grid[1:], strict=True)]
        return [
            f"data/{self.key}/{prefix}" + sep.join(str(i) for i in (chunk, *rest))
            for rest in itertools.product(*(range(c) for c in counts))
        ]


class ZarrReplayBuffer(SourceDataset):
    """An opened replay buffer."""

    format = "zarr"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._listing = _Listing(path)
        metas = self._listing.arrays("data")
        if not metas:
            raise SourceError(f"{path}: the replay buffer has no arrays under data/", hint="check the store path")
        ends_meta = self._listing.arrays("meta").get("episode_ends")
        if ends_meta is None:
            raise SourceError(f"{path}: no meta/episode_ends array", hint="this is not a replay buffer")
        version = {m.get("zarr_format") for m in [*metas.values(), ends_meta]}
        if not version <= {2, 3}:
            raise UnsupportedVersionError(f"{path}: zarr format {sorted(map(str, version))} is not 2 or 3")
        self.zarr_format = max(v for v in version if isinstance(v, int))
        _register_image_codecs(path, {i for m in metas.values() for i in _codec_ids(m)})
        zarr = _import_zarr()
        if self._listing.is_zip:
            self._store = zarr.storage.ZipStore(path, mode="r")
        else:
            self._store = zarr.storage.LocalStore(path, read_only=True)
        try:
            ends_array = zarr.open_array(store=self._store, path=_EPISODE_ENDS, mode="r")
            self._ends = np.asarray(ends_array[:], dtype=np.int64)
            self._arrays = {
                key: _Array(key, handle, meta, int(handle.chunks[0]))
                for key, meta in metas.items()
                for handle in [zarr.open_array(store=self._store, path=f"data/{key}", mode="r")]
            }
        except Exception as exc:
            raise CorruptSourceError(f"{path}: cannot open the zarr arrays ({type(exc).__name__}: {exc})") from exc
        self._check_episode_ends()
        self.layout = classify_layout(set(self._arrays))

    def _check_episode_ends(self) -> None:
        steps = {a.shape[0] for a in self._arrays.values()}
        if len(steps) != 1:
            detail = ", ".join(f"{a.key}={a.shape[0]}" for a in self._arrays.values())
            raise CorruptSourceError(f"{self.path}: data arrays disagree on the number of steps ({detail})")
        total = steps.pop()
        ends = self._ends
        if len(ends) and (np.any(np.diff(ends) <= 0) or ends[0] <= 0):
            raise CorruptSourceError(f"{self.path}/{_EPISODE_ENDS}: episode ends are not strictly increasing")
        if len(ends) and int(ends[-1]) > total:
            raise CorruptSourceError(
                f"{self.path}/{_EPISODE_ENDS}: last episode ends at step {int(ends[-1])}, the data has {total} steps"
            )
        self.total_steps = total

    def info(self) -> SourceInfo:
        """Format, counts, keys (images are 4-d uint8/float arrays), and the arrays' layout and codecs."""
        keys = []
        for arr in self._arrays.values():
            per_step = arr.shape[1:]
            if arr.key == "timestamp" and len(per_step) <= 1:
                kind = "timestamp"
            elif _is_image(per_step):
                kind = "image"
            else:
                kind = "vector"
            keys.append(SourceKey(f"data/{arr.key}", kind, per_step, arr.dtype))  # type: ignore[arg-type]
        extra = {
            "layout": self.layout,
            "zarr_format": self.zarr_format,
            "steps": self.total_steps,
            "arrays": {
                a.key: {
                    "shape": list(a.shape),
                    "dtype": a.dtype,
                    "chunk_rows": a.chunk_rows,
                    "codecs": _codec_ids(a.meta),
                }
                for a in self._arrays.values()
            },
        }
        return SourceInfo(
            format=self.format,
            version=f"zarr v{self.zarr_format} replay buffer",
            path=str(self.path),
            episodes=len(self._ends),
            frames=int(self._ends[-1]) if len(self._ends) else 0,
            keys=keys,
            extra=extra,
        )

    def episode_refs(self) -> Sequence[EpisodeRef]:
        """One ref per episode, keyed ``episode_NNNNNN`` by its position in ``meta/episode_ends``."""
        starts = np.concatenate([[0], self._ends[:-1]])
        return [
            EpisodeRef(i, f"episode_{i:06d}", str(self.path), int(e - s))
            for i, (s, e) in enumerate(zip(starts, self._ends, strict=True))
        ]

    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """Steps ``[ends[i-1], ends[i])`` of every data array."""
        start = int(self._ends[ref.index - 1]) if ref.index else 0
        stop = int(self._ends[ref.index])
        vectors: dict[str, npt.NDArray[Any]] = {}
        images: dict[str, Any] = {}
        for arr in self._arrays.values():
            rows = self._rows(arr, start, stop)
            if _is_image(arr.shape[1:]):
                images[f"data/{arr.key}"] = rows
            else:
                vectors[f"data/{arr.key}"] = rows
        meta = {"steps": [start, stop], "layout": self.layout}
        return SourceEpisode(ref, stop - start, vectors=vectors, images=images, meta=meta)

    def _rows(self, arr: _Array, start: int, stop: int) -> npt.NDArray[Any]:
        pieces = []
        first, last = start // arr.chunk_rows, (stop - 1) // arr.chunk_rows
        for chunk in range(first, last + 1):
            data = self._chunk(arr, chunk)
            base = chunk * arr.chunk_rows
            pieces.append(data[max(start - base, 0) : min(stop - base, len(data))])
        return np.concatenate(pieces) if len(pieces) != 1 else pieces[0].copy()

    def _chunk(self, arr: _Array, chunk: int) -> npt.NDArray[Any]:
        if arr.cached is not None and arr.cached[0] == chunk:
            return arr.cached[1]
        keys = arr.chunk_keys(chunk)
        missing = [k for k in keys if k not in self._listing.names]
        if missing:
            raise CorruptSourceError(
                f"{self.path}/{missing[0]}: chunk file is missing (episode data would read as fill values)",
                hint="the store is incomplete; re-download or re-export it",
            )
        key = keys[0] if keys else f"data/{arr.key}"
        lo = chunk * arr.chunk_rows
        try:
            data = np.asarray(arr.handle[lo : min(lo + arr.chunk_rows, arr.shape[0])])
        except Exception as exc:
            raise CorruptSourceError(
                f"{self.path}/{key}: chunk does not decode ({type(exc).__name__}: {exc})",
                hint="the file is truncated or corrupt; re-download the store",
            ) from exc
        arr.cached = (chunk, data)
        return data

    def close(self) -> None:
        """Close the store (zip stores hold a file handle)."""
        close = getattr(self._store, "close", None)
        if close is not None:
            close()


class ZarrReplayBufferBackend(FormatBackend):
    """Diffusion Policy / UMI replay buffers in zarr v2 or v3, as a folder or a zip."""

    name = "zarr"
    extra = "zarr"
    priority = 50

    def detect(self, path: Path) -> bool:
        """A folder or zip with ``meta/episode_ends``."""
        try:
            return _looks_like_replay_buffer(path)
        except OSError:
            return False

    def open(self, path: Path) -> ZarrReplayBuffer:
        """Open the replay buffer at ``path``."""
        return ZarrReplayBuffer(path)

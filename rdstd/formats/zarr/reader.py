"""The zarr replay-buffer backend: ``data/<key>`` concatenated over steps, ``meta/episode_ends``.

Episodes are handed out as :class:`~rdstd.formats.zarr.frames.ZarrFrames` (read when sliced). What does not
belong to an episode is said, not dropped: steps after the last episode end, and arrays longer than the others,
are listed in ``info().extra["warnings"]`` and in the last episode's ``meta["notes"]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptSourceError, MissingDependencyError, SourceError
from rdstd.formats.base import (
    EpisodeRef,
    FormatBackend,
    SourceDataset,
    SourceEpisode,
    SourceInfo,
    SourceKey,
    read_frames,
)
from rdstd.formats.zarr.frames import ZarrArray, ZarrFrames
from rdstd.formats.zarr.store import (
    EPISODE_ENDS,
    StoreFiles,
    codec_ids,
    looks_like_replay_buffer,
    written_by_zarr_python_2,
)
from rdstd.lfs import raise_if_pointer


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


def _fill_reason(files: StoreFiles, key: str, meta: dict[str, Any]) -> str | None:
    """Why an absent chunk of ``data/<key>`` may be read as its fill value (``None``: it may not)."""
    if meta.get("fill_value") is None:
        return None
    if meta.get("zarr_format") == 3:
        return "zarr v3 stores omit chunks that hold only the fill value"
    if written_by_zarr_python_2(files.read_text(f"data/{key}/.zarray")):
        return None
    return (
        "this zarr v2 store was not written by zarr-python 2, and its writer omits chunks that hold only the fill value"
    )


class ZarrReplayBuffer(SourceDataset):
    """An opened replay buffer."""

    format = "zarr"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._files = StoreFiles(path)
        metas = self._files.arrays("data")
        if not metas:
            raise SourceError(
                f"{path}: the replay buffer has no arrays under data/",
                hint="check the store path",
                situation="no-arrays",
            )
        ends_meta = self._files.arrays("meta").get("episode_ends")
        if ends_meta is None:
            raise SourceError(
                f"{path}: no meta/episode_ends array",
                hint="this is not a replay buffer",
                situation="episode-ends-missing",
            )
        self.zarr_format = max(int(m["zarr_format"]) for m in [*metas.values(), ends_meta])
        _register_image_codecs(path, {i for m in metas.values() for i in codec_ids(m)})
        zarr = _import_zarr()
        try:
            if self._files.is_zip:
                self._store = zarr.storage.ZipStore(path, mode="r")
            else:
                self._store = zarr.storage.LocalStore(path, read_only=True)
        except OSError as exc:
            raise CorruptSourceError(f"{path}: cannot open the store ({exc})", situation="store-unreadable") from exc
        self._ends = self._read_ends(zarr)
        self._arrays: dict[str, ZarrArray] = {}
        for key, meta in metas.items():
            try:
                handle = zarr.open_array(store=self._store, path=f"data/{key}", mode="r")
            except Exception as exc:  # zarr's own metadata errors: one boundary, the cause kept
                raise CorruptSourceError(
                    f"{path}/data/{key}: cannot open the zarr array ({type(exc).__name__}: {exc})",
                    hint="its metadata is damaged; re-download the store",
                    situation="array-metadata-invalid",
                ) from exc
            if not handle.shape:
                raise CorruptSourceError(
                    f"{path}/data/{key}: a 0-d array, not one row per step", situation="array-not-per-step"
                )
            self._arrays[key] = ZarrArray(key, handle, meta, self._files, _fill_reason(self._files, key, meta))
        self.warnings: list[str] = []
        self._check_episode_ends()
        self.layout = classify_layout(set(self._arrays))

    def _read_ends(self, zarr: Any) -> npt.NDArray[np.int64]:
        where = f"{self.path}/{EPISODE_ENDS}"
        try:
            handle = zarr.open_array(store=self._store, path=EPISODE_ENDS, mode="r")
            raw = np.asarray(handle[...])
        except OSError as exc:
            raise CorruptSourceError(f"{where}: cannot read ({exc})", situation="array-unreadable") from exc
        except Exception as exc:  # zarr/codec errors on bad bytes: one boundary, the cause kept
            if not self._files.is_zip:
                for name in sorted(n for n in self._files.names if n.startswith(f"{EPISODE_ENDS}/")):
                    raise_if_pointer(self.path / name, self.path)
            raise CorruptSourceError(
                f"{where}: does not decode ({type(exc).__name__}: {exc})",
                hint="re-download the store",
                situation="chunk-undecodable",
            ) from exc
        if raw.ndim != 1 or raw.dtype.kind not in "iu":
            raise CorruptSourceError(
                f"{where}: must be a 1-d integer array, is {raw.dtype} of shape {list(raw.shape)}",
                situation="episode-ends-invalid",
            )
        return raw.astype(np.int64)

    def _check_episode_ends(self) -> None:
        ends = self._ends
        where = f"{self.path}/{EPISODE_ENDS}"
        if len(ends) and int(ends[0]) < 0:
            raise CorruptSourceError(
                f"{where}: the first episode ends at step {int(ends[0])}, before step 0",
                situation="episode-ends-invalid",
            )
        drops = np.flatnonzero(np.diff(ends) < 0)
        if drops.size:
            i = int(drops[0])
            raise CorruptSourceError(
                f"{where}: episode ends go backwards at index {i + 1} ({int(ends[i])} then {int(ends[i + 1])})",
                hint="the episode index is damaged",
                situation="episode-ends-invalid",
            )
        last = int(ends[-1]) if len(ends) else 0
        lengths = {key: arr.shape[0] for key, arr in self._arrays.items()}
        short = {key: n for key, n in lengths.items() if n < last}
        if short:
            key, n = next(iter(short.items()))
            raise CorruptSourceError(
                f"{where}: last episode ends at step {last}, data/{key} holds {n} steps",
                hint="the store is incomplete; re-download or re-export it",
                situation="episode-ends-invalid",
            )
        by_length: dict[int, list[str]] = {}
        for key, n in lengths.items():
            if n > last:
                by_length.setdefault(n, []).append(f"data/{key}")
        for n, keys in sorted(by_length.items()):
            self.warnings.append(
                f"{', '.join(keys)}: steps {last}..{n - 1} ({n - last} steps) come after the last episode end "
                f"({last}) and belong to no episode; they are not converted"
            )
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"data/{k}={n}" for k, n in lengths.items())
            self.warnings.append(f"data arrays differ in length ({detail})")
        self.total_steps = last

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
            keys.append(SourceKey(arr.name, kind, per_step, arr.dtype.name))  # type: ignore[arg-type]
        extra = {
            "layout": self.layout,
            "zarr_format": self.zarr_format,
            "steps": self.total_steps,
            "arrays": {
                a.key: {
                    "shape": list(a.shape),
                    "dtype": a.dtype.name,
                    "chunk_rows": a.chunk_rows,
                    "codecs": codec_ids(a.meta),
                    "absent_chunks": "fill value" if a.fill_reason else "error",
                }
                for a in self._arrays.values()
            },
            "warnings": list(self.warnings),
        }
        return SourceInfo(
            format=self.format,
            version=f"zarr v{self.zarr_format} replay buffer",
            path=str(self.path),
            episodes=len(self._ends),
            frames=self.total_steps,
            keys=keys,
            extra=extra,
        )

    def _bounds(self, index: int) -> tuple[int, int]:
        return (int(self._ends[index - 1]) if index else 0), int(self._ends[index])

    def episode_refs(self) -> Sequence[EpisodeRef]:
        """One ref per episode, keyed ``episode_NNNNNN`` by its position in ``meta/episode_ends`` (none when empty)."""
        refs = []
        for i in range(len(self._ends)):
            start, stop = self._bounds(i)
            refs.append(EpisodeRef(i, f"episode_{i:06d}", str(self.path), stop - start))
        return refs

    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """Steps ``[ends[i-1], ends[i])`` of every data array, as views read on demand.

        The chunk files those steps need are checked now (absent ones raise, or are noted as fill values, by the
        rule in :mod:`rdstd.formats.zarr.frames`); decoding happens when the frames are sliced.
        """
        if not 0 <= ref.index < len(self._ends):
            raise CorruptSourceError(
                f"{self.path}: no episode {ref.index} (the store holds {len(self._ends)})",
                situation="episode-not-found",
            )
        start, stop = self._bounds(ref.index)
        vectors: dict[str, ZarrFrames] = {}
        images: dict[str, ZarrFrames] = {}
        notes: list[str] = []
        for arr in self._arrays.values():
            note = arr.check_present(start, stop)
            if note is not None:
                notes.append(note)
            frames = ZarrFrames(arr, start, stop)
            (images if _is_image(arr.shape[1:]) else vectors)[arr.name] = frames
        if stop == start:
            notes.append(f"the episode has no steps ({EPISODE_ENDS} repeats {stop})")
        if ref.index == len(self._ends) - 1:
            notes.extend(self.warnings)
        meta: dict[str, Any] = {"steps": [start, stop], "layout": self.layout, "notes": notes}
        clock = next((vectors[a.name] for a in self._arrays.values() if a.key == "timestamp"), None)
        stamps = None
        if clock is not None and len(clock.shape) <= 2 and math.prod(clock.shape[1:]) == 1:
            # Diffusion Policy and UMI record time.time() per step: seconds (the episode's own clock, kept measured)
            stamps = read_frames(clock).reshape(-1).astype(np.float64)
        return SourceEpisode(ref, stop - start, vectors=vectors, images=images, timestamps_s=stamps, meta=meta)

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
        return looks_like_replay_buffer(path)

    def open(self, path: Path) -> ZarrReplayBuffer:
        """Open the replay buffer at ``path``."""
        return ZarrReplayBuffer(path)

"""Small, deterministic source datasets written with the real libraries, for tests, the demo and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rdstd.errors import UsageError


@dataclass(frozen=True)
class ReplayBufferContent:
    """What :func:`make_zarr_replay_buffer` wrote, for tests to compare against."""

    episode_ends: npt.NDArray[np.int64]
    arrays: dict[str, npt.NDArray[Any]]


def replay_buffer_arrays(
    lengths: list[int], *, image_hw: tuple[int, int] = (32, 32), seed: int = 0
) -> ReplayBufferContent:
    """PushT-like content: state (5), action (2), keypoint (9, 2), img float32 0..255, timestamps at 10 Hz."""
    rng = np.random.default_rng(seed)
    total = int(sum(lengths))
    t = np.concatenate([np.arange(n) / 10.0 for n in lengths]).astype(np.float64)
    state = np.stack(
        [
            256 + 100 * np.sin(t),
            256 + 100 * np.cos(t),
            200 + 10 * t,
            300 - 5 * t,
            np.mod(t, 2 * np.pi),
        ],
        axis=1,
    ).astype(np.float32)
    action = (state[:, :2] + rng.normal(0, 2, size=(total, 2))).astype(np.float32)
    keypoint = rng.uniform(0, 512, size=(total, 9, 2)).astype(np.float32)
    h, w = image_hw
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((total, h, w, 3), dtype=np.float32)
    for i in range(total):
        frames[i, :, :, 0] = (xx * 255 // max(w - 1, 1) + i) % 256
        frames[i, :, :, 1] = (yy * 255 // max(h - 1, 1)) % 256
        frames[i, :, :, 2] = (i * 7) % 256
    arrays: dict[str, npt.NDArray[Any]] = {
        "state": state,
        "action": action,
        "keypoint": keypoint,
        "n_contacts": rng.integers(0, 3, size=(total, 1)).astype(np.float32),
        "img": frames,
        "timestamp": (1_700_000_000.0 + np.arange(total) / 10.0).astype(np.float64),
    }
    return ReplayBufferContent(np.cumsum(lengths).astype(np.int64), arrays)


def make_zarr_replay_buffer(
    path: Path,
    lengths: list[int],
    *,
    image_hw: tuple[int, int] = (32, 32),
    zarr_format: int = 2,
    chunk_rows: int = 16,
    seed: int = 0,
    zip_store: bool = False,
    zero_episodes: Sequence[int] = (),
    written_like: Literal["zarr-python-3", "zarr-python-2"] = "zarr-python-3",
    extra_steps: int = 0,
) -> ReplayBufferContent:
    """Write a Diffusion-Policy-style replay buffer with zarr (v2 or v3, folder or zip); returns its content.

    ``zero_episodes`` sets every data array of those episodes but the clock to 0 (the fill value, so zarr-python 3
    writes no chunk that holds only them; the timestamps stay a valid clock). ``written_like="zarr-python-2"``
    (v2 folders only) writes what zarr-python 2 writes, as Diffusion Policy's replay buffers are: every chunk, and
    ``.zarray`` JSON indented by 4 with sorted keys.
    ``extra_steps`` appends rows after the last episode end (an interrupted write).
    """
    import zarr
    from zarr.storage import LocalStore, ZipStore

    content = replay_buffer_arrays(lengths, image_hw=image_hw, seed=seed)
    bounds = np.concatenate([[0], content.episode_ends])
    for index in zero_episodes:
        for key, values in content.arrays.items():
            if key != "timestamp":
                values[bounds[index] : bounds[index + 1]] = 0
    if extra_steps:
        tail = replay_buffer_arrays([extra_steps], image_hw=image_hw, seed=seed + 1).arrays
        arrays = {k: np.concatenate([v, tail[k]]) for k, v in content.arrays.items()}
        content = ReplayBufferContent(content.episode_ends, arrays)
    zarr2 = written_like == "zarr-python-2"
    if zarr2 and (zarr_format != 2 or zip_store):
        raise UsageError("written_like='zarr-python-2' is for zarr v2 folders", situation="fixture-option-invalid")
    store = ZipStore(path, mode="w") if zip_store else LocalStore(path)
    root = zarr.open_group(store=store, mode="w", zarr_format=zarr_format)  # type: ignore[arg-type]
    data = root.create_group("data")
    for key, values in content.arrays.items():
        chunks = (min(chunk_rows, len(values)), *values.shape[1:])
        array = data.create_array(
            key, shape=values.shape, dtype=values.dtype, chunks=chunks, config={"write_empty_chunks": zarr2}
        )
        array[:] = values
    meta = root.create_group("meta")
    ends = meta.create_array("episode_ends", shape=content.episode_ends.shape, dtype=np.int64)
    ends[:] = content.episode_ends
    if zip_store:
        store.close()
    if zarr2:
        for name in (".zarray", ".zgroup"):
            for file in path.rglob(name):
                doc = json.loads(file.read_text(encoding="utf-8"))
                if doc.get("dimension_separator") == ".":
                    del doc["dimension_separator"]  # zarr-python 2's DirectoryStore leaves the default unsaid
                file.write_text(json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=True), encoding="utf-8")
    return content

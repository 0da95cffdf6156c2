"""Streaming a canonical dataset's episodes for the checks: low-dim columns only, one shard at a time.

A shard's timestamps and vectors are read in one call (shards hold at most 100,000 frames, so memory stays
bounded whatever the dataset's size) and cut into episodes. Page checksums are verified as the reader does.
Pixels are read only for a check that asks, through :meth:`rdstd.store.reader.Dataset.episode` (one episode's
image bytes, decoded per sampled frame).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

from rdstd.errors import CorruptDatasetError
from rdstd.store import layout
from rdstd.store.parquet import PARQUET_ERRORS
from rdstd.store.reader import Dataset, EpisodeData
from rdstd.validate.check import EpisodeView

_REBUILD = "the dataset is damaged; rebuild it with rdstd convert (or restore it from a copy)"


def episodes(ds: Dataset, *, pixels: bool = False) -> Iterator[EpisodeView]:
    """Every episode of ``ds`` in table order, as an :class:`EpisodeView`."""
    vectors = ds.manifest.vectors
    columns = ["timestamp", *vectors]
    table = ds.episodes
    shards = table["shard"].to_numpy()
    order = np.argsort(shards, kind="stable")
    current: int | None = None
    data: dict[str, npt.NDArray[Any]] = {}
    for pos in order:
        shard = int(shards[pos])
        if shard != current:
            data = _read_shard(ds, shard, columns)
            current = shard
        row = table.row(int(pos), named=True)
        first, length = int(row["shard_row"]), int(row["length"])
        raw = {k: data[k][first : first + length] for k in vectors}
        view = EpisodeView(
            position=int(pos),
            index=int(row["episode_index"]),
            episode_id=str(row["episode_id"]),
            source_key=str(row["source_key"] or ""),
            split=str(row["split"] or "unknown"),
            task=str(row["task"] or ""),
            embodiment=str(row["embodiment"] or ""),
            source_meta=json.loads(row["source_meta"] or "{}"),
            timestamps=data["timestamp"][first : first + length],
            vectors={k: v.astype(np.float64, copy=False) for k, v in raw.items()},
            raw=raw,
        )
        if pixels:
            view.frames_of = _PixelReader(ds, int(pos))
        yield view


def _read_shard(ds: Dataset, shard: int, columns: list[str]) -> dict[str, npt.NDArray[Any]]:
    file = ds.path / layout.shard_name(shard)
    try:
        handle = pq.ParquetFile(file, memory_map=False, page_checksum_verification=True)
        table = handle.read(columns=columns)
    except PARQUET_ERRORS as exc:
        raise CorruptDatasetError(f"{file}: unreadable data shard ({exc})", hint=_REBUILD) from exc
    out: dict[str, npt.NDArray[Any]] = {"timestamp": table.column("timestamp").to_numpy()}
    for key, feature in ds.manifest.vectors.items():
        column = table.column(key).combine_chunks()
        out[key] = column.values.to_numpy(zero_copy_only=False).reshape(len(table), feature.size)
    return out


class _PixelReader:
    """Decodes sampled frames of one episode, reading the episode's image columns once, on first use."""

    def __init__(self, ds: Dataset, position: int) -> None:
        self._ds = ds
        self._position = position
        self._data: EpisodeData | None = None

    def __call__(self, camera: str, indices: Sequence[int]) -> list[npt.NDArray[Any]]:
        if self._data is None:
            self._data = self._ds.episode(self._position)
        frames = self._data.images[camera]
        return [frames[i] for i in indices]

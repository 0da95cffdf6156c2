"""Streaming a canonical dataset's episodes for the checks: low-dim columns only, one shard at a time.

A shard's timestamps and vectors are read in one call (shards hold at most 100,000 frames, so memory stays
bounded whatever the dataset's size), converted to float64 once, and handed to the checks as a
:class:`~rdstd.validate.check.ShardView` (whole columns with episode boundaries) whose episodes are views into them.
Page checksums are verified as the reader does.
Pixels are read only for a check that asks, through :meth:`rdstd.store.reader.Dataset.episode` (one episode's
image bytes, decoded per sampled frame).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

from rdstd.errors import CorruptDatasetError
from rdstd.io.parquet import PARQUET_ERRORS
from rdstd.io.threads import shared_pool
from rdstd.store import layout
from rdstd.store.reader import Dataset, EpisodeData
from rdstd.validate.check import EpisodeView, Extent, ShardView

_Columns = dict[str, npt.NDArray[Any]]
_REBUILD = "the dataset is damaged; rebuild it with rdstd convert (or restore it from a copy)"


def episodes(ds: Dataset, *, pixels: bool = False) -> Iterator[EpisodeView]:
    """Every episode of ``ds`` in shard order (table order within a shard), as an :class:`EpisodeView`."""
    for shard in shards(ds, pixels=pixels):
        yield from shard.episodes


def shards(ds: Dataset, *, pixels: bool = False) -> Iterator[ShardView]:
    """The episodes of ``ds`` a shard at a time (table order within a shard), with the shard's columns."""
    return ReadAhead(ds).views(pixels=pixels)


class ReadAhead:
    """A canonical dataset's shards, read one ahead on a helper thread (Parquet decoding and checksums, the cast to
    float64 into reused buffers (:class:`Casts`), each vector's :class:`Extent`, the frame intervals and the
    episode views run there, most of the numbers outside the interpreter's lock) while the checks work on the
    shard before; the checks' :meth:`~rdstd.validate.check.Check.prepare` runs there too (see :meth:`views`). The
    first shard's read starts when this is made, so that it overlaps the setup of a run (configuration, checks)
    that comes between.
    """

    def __init__(self, ds: Dataset) -> None:
        self._ds = ds
        table = ds.episodes
        self._shard_of = table["shard"].to_numpy()
        order = np.argsort(self._shard_of, kind="stable")
        cuts = np.flatnonzero(np.diff(self._shard_of[order])) + 1
        self._meta = {name: table[name].to_list() for name in _META}
        self._groups = [g for g in np.split(order, cuts) if len(g)]
        self._casts = Casts()
        self._pending: Future[ShardView] | None = self._submit(0)

    def _submit(self, group: int) -> Future[ShardView] | None:
        if group >= len(self._groups):
            return None
        return shared_pool(_READER, 1).submit(self._load, self._groups[group])

    def views(
        self, *, pixels: bool = False, prepare: Sequence[Callable[[ShardView], None]] = ()
    ) -> Iterator[ShardView]:
        """The shards' episodes in shard order, each shard as a :class:`ShardView` (once: the read-ahead is used
        up); ``pixels``: the episodes decode sampled frames on request; ``prepare``: called with each shard on the
        reader's thread (:meth:`~rdstd.validate.check.Check.prepare`) once it has read the next shard, while the
        checks work on this one (:meth:`ShardView.kept` waits for them, or takes the work back when the reader
        has not started it)."""
        hooks = tuple(prepare)
        for i in range(len(self._groups)):
            pending, self._pending = self._pending, None
            assert pending is not None, "ReadAhead.views() runs once"
            shard = pending.result()
            self._pending = self._submit(i + 1)  # the next read first: the checks must not wait for it
            if hooks:
                shard.preparing = shared_pool(_READER, 1).submit(_prepare, hooks, shard)
            if pixels:
                for ep in shard.episodes:
                    ep.frames_of = _PixelReader(self._ds, ep.position)
            yield shard

    def _load(self, positions: npt.NDArray[np.intp]) -> ShardView:
        ds, meta = self._ds, self._meta
        vectors = ds.manifest.vectors
        columns = ["timestamp", *vectors]
        data = _read_shard(ds, int(self._shard_of[positions[0]]), columns)
        firsts = np.array([meta["shard_row"][p] for p in positions], dtype=np.intp)
        lengths = np.array([meta["length"][p] for p in positions], dtype=np.intp)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
        tiled = bool(np.all(firsts - firsts[0] == starts))
        raws = {k: _rows(data[k], firsts, lengths, tiled) for k in columns}
        # dims-major (Fortran order): per-episode reductions down a column and per-frame reductions across dims
        # run several times faster than on the rows as stored
        floats = {k: self._casts.cast(raws[k]) for k in vectors}
        shard = _view(ds, positions, meta, raws, floats, lengths, False)
        shard.preset({k: Extent.of(v, starts, lengths) for k, v in floats.items()})
        shard.intervals  # noqa: B018 - worked out here, on the reader's thread (three timing checks read it)
        return shard


def _prepare(hooks: Sequence[Callable[[ShardView], None]], shard: ShardView) -> None:
    for hook in hooks:
        hook(shard)


#: The episode table's columns a shard's views read.
_META = (
    "episode_index",
    "episode_id",
    "source_key",
    "split",
    "task",
    "embodiment",
    "source_meta",
    "shard_row",
    "length",
)
#: The read-ahead thread's pool (one daemon thread, shared by runs in the process).
_READER = "rdstd-validate-read"


def view(
    positions: npt.NDArray[np.intp], meta: dict[str, list[Any]], columns: _Columns, vectors: Sequence[str]
) -> ShardView:
    """A :class:`ShardView` of episodes held in memory (a source streamed through the converter): ``columns`` are
    the episodes' ``timestamp`` and vectors as stored, concatenated in order; ``meta`` the episode table's columns
    (as :func:`shards` reads them) for the episodes at ``positions``."""
    lengths = np.array([meta["length"][p] for p in positions.tolist()], dtype=np.intp)
    floats = {k: _dims_major(columns[k]) for k in vectors}
    return _view(None, positions, meta, dict(columns), floats, lengths, False)


def _view(
    ds: Dataset | None,
    positions: npt.NDArray[np.intp],
    meta: dict[str, list[Any]],
    raws: _Columns,
    floats: _Columns,
    lengths: npt.NDArray[np.intp],
    pixels: bool,
) -> ShardView:
    """A shard's episodes as views into its columns (``raws``: the episodes' rows in order; ``floats``: the
    vectors of ``raws`` as float64)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    times = raws.pop("timestamp")
    views: list[EpisodeView] = []
    for n, pos in enumerate(positions.tolist()):
        rows = slice(int(starts[n]), int(starts[n] + lengths[n]))
        view = EpisodeView(
            position=pos,
            index=int(meta["episode_index"][pos]),
            episode_id=str(meta["episode_id"][pos]),
            source_key=str(meta["source_key"][pos] or ""),
            split=str(meta["split"][pos] or "unknown"),
            task=str(meta["task"][pos] or ""),
            embodiment=str(meta["embodiment"][pos] or ""),
            source_meta=_source_meta(meta["source_meta"][pos]),
            timestamps=times[rows],
            vectors={k: v[rows] for k, v in floats.items()},
            raw={k: v[rows] for k, v in raws.items()},
        )
        if pixels and ds is not None:
            view.frames_of = _PixelReader(ds, pos)
        views.append(view)
    return ShardView(views, times, floats, starts, lengths)


def _source_meta(text: str | None) -> dict[str, Any]:
    """An episode's ``source_meta`` JSON as a dict (most are empty: no parse)."""
    if not text or text == "{}":
        return {}
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def _dims_major(column: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """A vector column as float64, dims-major (Fortran order), in one copy."""
    return np.asarray(column, dtype=np.float64, order="F")


class Casts:
    """Vector columns cast to float64 dims-major (as :func:`_dims_major`), into buffers reused from shard to shard:
    a fresh array of a shard's size faults every page of it in again (several ms a shard). A buffer is reused only
    once nothing refers to it any more (its reference count is this pool's own: no view of it is alive, whoever
    made one), so that a check that keeps an episode's values never sees them change."""

    #: Buffers kept at most (a check that holds on to views makes the pool allocate anew, not grow without end).
    LIMIT = 16

    def __init__(self) -> None:
        self._held: list[npt.NDArray[np.float64]] = []

    def cast(self, column: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """``column`` (rows x dims) as float64, dims-major, in a buffer of the pool."""
        rows, dims = column.shape
        size = rows * dims
        for i in range(len(self._held)):
            # 2: the list's reference and getrefcount's argument; any view of the buffer adds one
            if self._held[i].size >= size and sys.getrefcount(self._held[i]) == 2:
                buffer = self._held.pop(i)
                break
        else:
            buffer = np.empty(size)
        self._held.append(buffer)
        del self._held[: -self.LIMIT]
        out = buffer[:size].reshape((rows, dims), order="F")
        out[...] = column
        return out


def _rows(
    column: npt.NDArray[Any], firsts: npt.NDArray[np.intp], lengths: npt.NDArray[np.intp], tiled: bool
) -> npt.NDArray[Any]:
    """The episodes' rows of a shard column, concatenated in episode order (a view when they tile the shard)."""
    if tiled:
        return column[int(firsts[0]) : int(firsts[0] + lengths.sum())]
    return np.concatenate([column[f : f + n] for f, n in zip(firsts.tolist(), lengths.tolist(), strict=True)])


def _read_shard(ds: Dataset, shard: int, columns: list[str]) -> dict[str, npt.NDArray[Any]]:
    file = ds.path / layout.shard_name(shard)
    try:
        handle = pq.ParquetFile(file, memory_map=False, page_checksum_verification=True)
        table = handle.read(columns=columns)
    except PARQUET_ERRORS as exc:
        raise CorruptDatasetError(
            f"{file}: unreadable data shard ({exc})", hint=_REBUILD, situation="shard-unreadable"
        ) from exc
    out: dict[str, npt.NDArray[Any]] = {"timestamp": table.column("timestamp").to_numpy()}
    for key, feature in ds.manifest.vectors.items():
        column = table.column(key).combine_chunks()
        out[key] = column.values.to_numpy(zero_copy_only=False).reshape(len(table), feature.size)
    return out


class StoredRows:
    """An episode's timestamps and vectors as stored, read back from its shard by position in the episode table
    (for a check that needs an episode again after its shard went by; the last shard read is kept)."""

    def __init__(self, ds: Dataset) -> None:
        self._ds = ds
        self._shard: tuple[int, _Columns] | None = None

    def __call__(self, position: int) -> tuple[npt.NDArray[Any], dict[str, npt.NDArray[Any]]]:
        table = self._ds.episodes
        shard, first, length = (int(table[name][position]) for name in ("shard", "shard_row", "length"))
        kept = self._shard  # one read of the attribute: checks on two threads may both ask
        if kept is None or kept[0] != shard:
            kept = self._shard = (shard, _read_shard(self._ds, shard, ["timestamp", *self._ds.manifest.vectors]))
        data = kept[1]
        rows = slice(first, first + length)
        return data["timestamp"][rows], {k: v[rows] for k, v in data.items() if k != "timestamp"}


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

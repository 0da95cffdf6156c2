"""One ``data/<key>`` array of a replay buffer, read a chunk at a time, and episode views on it.

:class:`ZarrArray` reads whole first-axis chunks (the unit zarr compresses) and caches the last one, since
chunk boundaries are not episode boundaries (PushT: 161-step chunks). Chunk files of plain v2 folder stores are
decoded by their compressor directly (numcodecs: the bytes zarr would decode, without its per-read machinery),
and the next chunk is decoded in the background while the current one is used (episodes are read in order).
:class:`ZarrFrames` is a :class:`~rdstd.formats.base.FrameArray`: the frames ``[start, stop)`` of one episode,
read only when sliced, so memory stays at the frames asked for plus two chunks per array (the one in use and the
one read ahead), whatever the episode's length.

Absent chunks (the rule, see ``docs/formats/zarr.md``): the zarr specs (v2 and v3) say a chunk that is not
stored holds the array's ``fill_value``, and zarr-python 3 does not write chunks that hold only the fill value.
So an absent chunk is read as the fill value and said in a note, except where absence cannot be right:

- ``fill_value`` is ``null`` (the chunk's content would be undefined);
- a v2 array whose ``.zarray`` was written by zarr-python 2 (Diffusion Policy and UMI replay buffers), which
  writes every chunk by default: there an absent chunk means an incomplete copy, and reading fill values would
  be silently wrong data.

Those raise a :class:`~rdstd.errors.CorruptSourceError` naming the chunk file.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptSourceError
from rdstd.formats.files import unreadable
from rdstd.formats.zarr.store import StoreFiles, chunk_names
from rdstd.io.threads import DaemonPool, shared_pool
from rdstd.lfs import raise_if_pointer


@dataclass
class ZarrArray:
    """One ``data/<key>`` array: metadata, the zarr handle, the absent-chunk rule, a one-chunk cache."""

    key: str
    handle: Any
    meta: dict[str, Any]
    files: StoreFiles
    #: Why an absent chunk may be read as the fill value; ``None`` when absence is an error.
    fill_reason: str | None
    #: First-axis chunk indices read so far, in order (for tests and benchmarks).
    reads: list[int] = field(default_factory=list)
    cached: tuple[int, npt.NDArray[Any]] | None = None
    #: How chunk files are decoded without zarr (see :meth:`_direct_codec`); unset until the first chunk.
    direct: tuple[Any, np.dtype[Any]] | None = None
    _direct_checked: bool = False
    #: The next chunk, being decoded in the background while this one is used (directly decoded arrays only).
    _ahead: tuple[int, Future[npt.NDArray[Any] | None]] | None = None

    @property
    def name(self) -> str:
        """The array's name in the store: ``data/<key>``."""
        return f"data/{self.key}"

    @property
    def shape(self) -> tuple[int, ...]:
        """The whole array's shape (steps, *per step)."""
        return tuple(int(s) for s in self.handle.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type."""
        dtype: np.dtype[Any] = np.dtype(self.handle.dtype)
        return dtype

    @property
    def chunk_rows(self) -> int:
        """Steps per chunk along the first axis."""
        return int(self.handle.chunks[0])

    @property
    def fill_value(self) -> Any:
        """The declared fill value (``None`` for v2 ``null``)."""
        return self.meta.get("fill_value")

    def chunks_of(self, start: int, stop: int) -> range:
        """First-axis chunk indices that hold steps ``[start, stop)``."""
        if stop <= start:
            return range(0)
        return range(start // self.chunk_rows, (stop - 1) // self.chunk_rows + 1)

    def absent(self, start: int, stop: int) -> list[str]:
        """Store names of the chunk files for steps ``[start, stop)`` that are not in the store."""
        where = f"{self.files.path}/{self.name}"
        return [
            name
            for chunk in self.chunks_of(start, stop)
            for name in chunk_names(self.name, self.meta, self.shape, chunk, where)
            if name not in self.files.names
        ]

    def check_present(self, start: int, stop: int) -> str | None:
        """Raise when a chunk of steps ``[start, stop)`` is absent and may not be; else the note to make, if any."""
        missing = self.absent(start, stop)
        if not missing:
            return None
        if self.fill_reason is None:
            raise CorruptSourceError(
                f"{self.files.path}/{missing[0]}: chunk file is missing"
                f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
                "this store's writer writes every chunk, so the episode's data would read as fill values",
                hint="the store is incomplete; re-download or re-export it",
                situation="chunk-missing",
            )
        return (
            f"{self.name}: some chunks are absent and read as the fill value {self.fill_value!r} ({self.fill_reason})"
        )

    def chunk(self, chunk: int) -> npt.NDArray[Any]:
        """The rows of first-axis chunk ``chunk`` (cached: consecutive episodes share boundary chunks)."""
        if self.cached is not None and self.cached[0] == chunk:
            return self.cached[1]
        lo = chunk * self.chunk_rows
        hi = min(lo + self.chunk_rows, self.shape[0])
        where = f"{self.files.path}/{self.name}"
        names = chunk_names(self.name, self.meta, self.shape, chunk, where)
        self.reads.append(chunk)
        ahead, self._ahead = self._ahead, None
        try:
            if ahead is not None and ahead[0] == chunk:
                data = ahead[1].result()  # its error, if any, is raised here, where a direct read raises it
            else:
                if ahead is not None:
                    ahead[1].cancel()
                data = self._read_direct(names, hi - lo)
            if data is not None:
                self._read_ahead(chunk + 1)
            else:
                data = np.asarray(self.handle[lo:hi])
        except OSError as exc:
            raise unreadable(Path(exc.filename or f"{where}/{names[0] if names else ''}"), exc) from exc
        except Exception as exc:  # codec and zarr errors on bad bytes: one boundary, the cause kept
            if not self.files.is_zip:
                for name in names:
                    raise_if_pointer(self.files.path / name, self.files.path)
            label = f"{self.files.path}/{names[0]}" if len(names) == 1 else f"{where} (chunk {chunk})"
            raise CorruptSourceError(
                f"{label}: chunk does not decode ({type(exc).__name__}: {exc})",
                hint="the file is truncated or corrupt; re-download the store",
                situation="chunk-undecodable",
            ) from exc
        self.cached = (chunk, data)
        return data

    def _read_ahead(self, chunk: int) -> None:
        """Start decoding first-axis chunk ``chunk`` in the background (episodes are read in order; the codecs
        release the GIL), so that decoding overlaps the work on the current one. One chunk ahead per array."""
        lo = chunk * self.chunk_rows
        if lo >= self.shape[0]:
            return
        where = f"{self.files.path}/{self.name}"
        names = chunk_names(self.name, self.meta, self.shape, chunk, where)
        rows = min(self.chunk_rows, self.shape[0] - lo)
        self._ahead = (chunk, _reader_pool().submit(self._read_direct, names, rows))

    def _direct_codec(self) -> tuple[Any, np.dtype[Any]] | None:
        """(numcodecs codec or None, dtype) when a chunk is one file decoded by its compressor alone: a v2 array in
        a folder store, C order, no filters, a plain dtype, every non-first axis in one chunk. ``None`` otherwise
        (zarr reads it). The same bytes zarr would decode, without its per-read machinery and copy."""
        if not self._direct_checked:
            self._direct_checked = True
            meta = self.meta
            chunks = meta.get("chunks")
            if (
                not self.files.is_zip
                and meta.get("zarr_format") == 2
                and meta.get("order", "C") == "C"
                and not meta.get("filters")
                and isinstance(meta.get("dtype"), str)
                and isinstance(chunks, list)
                and [int(c) for c in chunks[1:]] == list(self.shape[1:])
            ):
                import numcodecs

                try:
                    dtype = np.dtype(meta["dtype"])
                    compressor = meta.get("compressor")
                    codec = numcodecs.get_codec(compressor) if compressor else None
                except (TypeError, ValueError, KeyError):  # a codec or dtype numcodecs does not know: zarr decides
                    return None
                if not dtype.hasobject and dtype.fields is None:
                    self.direct = (codec, dtype)
        return self.direct

    def _read_direct(self, names: list[str], rows: int) -> npt.NDArray[Any] | None:
        """Rows of the chunk stored in ``names`` (one file) decoded here, or ``None`` to let zarr read it (an
        absent chunk, whose fill-value rule zarr applies, or an array :meth:`_direct_codec` does not take)."""
        direct = self._direct_codec()
        if direct is None or len(names) != 1 or names[0] not in self.files.names:
            return None
        codec, dtype = direct
        raw = (self.files.path / names[0]).read_bytes()
        decoded = codec.decode(raw) if codec is not None else raw
        values = np.frombuffer(decoded, dtype=dtype)
        full = (self.chunk_rows, *self.shape[1:])
        if values.size != int(np.prod(full)):
            raise ValueError(f"the chunk holds {values.size} values, its shape {list(full)} needs {int(np.prod(full))}")
        return values.reshape(full)[:rows]

    def rows(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Steps ``[start, stop)`` as one numpy array, filled chunk by chunk (no second copy of the rows)."""
        out = np.empty((max(stop - start, 0), *self.shape[1:]), dtype=self.dtype)
        for chunk in self.chunks_of(start, stop):
            data = self.chunk(chunk)
            base = chunk * self.chunk_rows
            lo, hi = max(start, base), min(stop, base + len(data))
            out[lo - start : hi - start] = data[lo - base : hi - base]
        return out


def _reader_pool() -> DaemonPool:
    """The process's chunk read-ahead threads (made on first use)."""
    return shared_pool("rdstd-zarr-ahead", 2)


class ZarrFrames:
    """Frames ``[start, stop)`` of one :class:`ZarrArray`, read on demand (a :class:`FrameArray`)."""

    def __init__(self, array: ZarrArray, start: int, stop: int) -> None:
        self.array = array
        self.start = start
        self.stop = stop

    @property
    def shape(self) -> tuple[int, ...]:
        """(frames, *per-frame shape)."""
        return (self.stop - self.start, *self.array.shape[1:])

    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type."""
        return self.array.dtype

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: slice | int, /) -> Any:
        """The frames ``index`` selects (a slice, or one frame by position), read from the chunks that hold them."""
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self))
            rows = self.array.rows(self.start + lo, self.start + max(hi, lo))
            return rows if step == 1 else rows[::step]
        position = int(index)
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"frame {index} is outside 0..{len(self) - 1}")
        return self.array.rows(self.start + position, self.start + position + 1)[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[Any]:
        rows = self.array.rows(self.start, self.stop)
        return rows if dtype is None else rows.astype(dtype)

    def __repr__(self) -> str:
        return f"ZarrFrames({self.array.name}[{self.start}:{self.stop}], shape={self.shape}, dtype={self.dtype})"

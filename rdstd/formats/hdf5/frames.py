"""Per-step HDF5 values read on demand: raw arrays (:class:`H5Frames`) and encoded images (:class:`EncodedRows`).

Neither reads anything when built. :class:`H5Frames` is a :class:`~rdstd.formats.base.FrameArray` over a
dataset (optionally one episode of a stacked ``(episodes, steps, …)`` array, or a row range of a concatenated
one): slicing reads only those rows. :class:`EncodedRows` is the list of one camera's encoded frames, read a
block at a time (never the whole camera): ALOHA's JPEG bytes zero-padded to a common length are trimmed with
``compress_len``, RoboMIND's variable-length bytes are taken as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import simplejpeg

from rdstd.errors import CorruptSourceError
from rdstd.formats.hdf5.h5 import dataset_where, reading
from rdstd.media import images
from rdstd.schema.vocabulary import ImageCodec

JPEG_MAGIC = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Encoded frames read per h5py call: memory stays at a few padded rows, the per-call cost is shared.
BLOCK_ROWS = 16


class H5Frames:
    """Rows ``[start, stop)`` of an h5py dataset (or of its episode ``episode`` along axis 0), read when sliced."""

    def __init__(self, dataset: Any, *, episode: int | None = None, start: int = 0, stop: int | None = None) -> None:
        self._ds = dataset
        self._episode = episode
        full = dataset.shape[1] if episode is not None else dataset.shape[0]
        self._start = start
        self._stop = full if stop is None else stop
        per_step = dataset.shape[2:] if episode is not None else dataset.shape[1:]
        self._shape: tuple[int, ...] = (self._stop - self._start, *(int(d) for d in per_step))

    @property
    def shape(self) -> tuple[int, ...]:
        """(frames, *per-frame shape)."""
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type."""
        dtype: np.dtype[Any] = np.dtype(self._ds.dtype)
        return dtype

    def __len__(self) -> int:
        return self._shape[0]

    def __getitem__(self, index: slice, /) -> npt.NDArray[Any]:
        start, stop, step = index.indices(self._shape[0])
        lo, hi = self._start + start, self._start + max(stop, start)
        with reading(dataset_where(self._ds)):
            rows = self._ds[self._episode, lo:hi] if self._episode is not None else self._ds[lo:hi]
            array = np.asarray(rows)
        return array[::step] if step != 1 else array


def encoded_shape(data: bytes, codec: str) -> tuple[tuple[int, ...], str]:
    """(shape, dtype) of the pixels an encoded frame decodes to; JPEG from its header alone (no decode)."""
    if codec == "jpeg":
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        except ValueError:
            pass  # not a readable header: the full decode below says why
        else:
            return (int(height), int(width), 3), "uint8"  # decoded as RGB (rdstd.media.images.decode)
    pixels = images.decode(data, ImageCodec(codec))
    return tuple(int(d) for d in pixels.shape), pixels.dtype.name


def codec_of(head: bytes) -> str | None:
    """``jpeg`` or ``png`` from an encoded frame's first bytes; None for anything else."""
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    return None


class EncodedRows(Sequence[bytes]):
    """One camera's encoded frames, read a block at a time from a padded 2-D uint8 or a variable-length dataset.

    Padded rows stored one per chunk with no filter (what the ALOHA recorders write: chunks of ``(1, padded)``)
    are read with HDF5's direct chunk read: one call per frame hands back the row's bytes, which are cut at
    ``compress_len`` (no array per row, no selection machinery). Other layouts are read in blocks whose edges
    fall on chunk edges, so no chunk is read (or decompressed) twice.
    """

    def __init__(
        self,
        dataset: Any,
        where: str,
        *,
        lengths: npt.NDArray[np.int64] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> None:
        self._ds = dataset
        self._where = where
        self._lengths = lengths
        self._start = start
        self._n = (int(dataset.shape[0]) if stop is None else stop) - start
        if lengths is not None and len(lengths) != self._n:
            raise CorruptSourceError(
                f"{where}: compress_len holds {len(lengths)} lengths for {self._n} frames",
                situation="compress-len-invalid",
            )
        chunks = getattr(dataset, "chunks", None)
        self._direct = lengths is not None and one_row_chunks(dataset)
        rows = int(chunks[0]) if chunks else 1
        #: Rows per block read: a whole number of chunks, at least BLOCK_ROWS.
        self._block = rows * max(1, -(-BLOCK_ROWS // rows))

    def __len__(self) -> int:
        return self._n

    def frame(self, i: int) -> bytes:
        """Frame ``i``'s encoded bytes (padding trimmed)."""
        return self.frames(i, i + 1)[0]

    def frames(self, start: int, stop: int) -> list[bytes]:
        """Frames ``[start, stop)``: one direct chunk read each, or blocks of whole chunks (see the class docs)."""
        with reading(self._where):
            return self._frames(start, stop)

    def _frames(self, start: int, stop: int) -> list[bytes]:
        if self._direct:
            return [self._trim_bytes(i, self._chunk(self._start + i)) for i in range(start, stop)]
        out: list[bytes] = []
        lo = start
        while lo < stop:
            row = self._start + lo
            hi = min(stop, lo + self._block - row % self._block)  # the block ends on a chunk edge
            block = self._ds[row : self._start + hi]
            out.extend(self._trim(lo + j, block[j]) for j in range(hi - lo))
            lo = hi
        return out

    def _chunk(self, row: int) -> bytes:
        """Row ``row``'s stored bytes; a chunk never written reads as the fill value (zeros), as h5py would."""
        try:
            data: bytes = self._ds.id.read_direct_chunk((row, 0))[1]
        except RuntimeError:  # "chunk storage is not allocated"
            return np.asarray(self._ds[row], dtype=np.uint8).tobytes()
        return data

    def _trim(self, i: int, raw: Any) -> bytes:
        if self._lengths is None:
            return raw if isinstance(raw, bytes) else np.asarray(raw, dtype=np.uint8).tobytes()
        return self._trim_bytes(i, np.asarray(raw, dtype=np.uint8).tobytes())

    def _trim_bytes(self, i: int, row: bytes) -> bytes:
        assert self._lengths is not None
        n = int(self._lengths[i])
        if not 0 < n <= len(row):
            raise CorruptSourceError(
                f"{self._where}: frame {i} claims {n} bytes of a {len(row)}-byte row",
                situation="compress-len-invalid",
            )
        if row[n - 2 : n] != JPEG_END:
            raise CorruptSourceError(
                f"{self._where}: frame {i} does not end a JPEG at compress_len={n}",
                hint="compress_len does not match the image bytes; the file is damaged",
                situation="compress-len-invalid",
            )
        return row[:n]

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._n)
            if step != 1:
                return [self.frame(i) for i in range(start, stop, step)]
            return self.frames(start, max(start, stop))
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        return self.frame(index)

    def __iter__(self) -> Iterator[bytes]:
        for lo in range(0, self._n, self._block):
            yield from self.frames(lo, min(lo + self._block, self._n))


def first_rows(dataset: Any, n: int) -> list[npt.NDArray[np.uint8]]:
    """The first ``n`` rows of a padded 2-D uint8 dataset (direct chunk reads when it has one-row chunks)."""
    if one_row_chunks(dataset):
        try:
            return [np.frombuffer(dataset.id.read_direct_chunk((t, 0))[1], np.uint8) for t in range(n)]
        except RuntimeError:  # a chunk never written: the plain read below gives its fill value
            pass
    return list(np.asarray(dataset[:n], dtype=np.uint8))


def one_row_chunks(dataset: Any) -> bool:
    """Whether ``dataset`` is 2-D uint8 stored one row per chunk with no filter (direct chunk reads apply)."""
    chunks = getattr(dataset, "chunks", None)
    if chunks is None or dataset.ndim != 2 or dataset.dtype != np.uint8 or dataset.is_virtual:
        return False
    if tuple(chunks) != (1, int(dataset.shape[1])):
        return False
    return bool(dataset.id.get_create_plist().get_nfilters() == 0)


def padded_lengths(
    cams: dict[str, Any], compress_len: npt.NDArray[Any], where: str
) -> dict[str, npt.NDArray[np.int64]]:
    """Which row of ``compress_len`` (n_cams, T) belongs to which padded camera dataset.

    The writers (act, aloha) fill the rows in their ``camera_names`` order, which the file does not record (h5py
    lists datasets alphabetically). A row fits a camera when, at the first frames, the JPEG ends exactly there and
    only zeros follow; the match must be one-to-one, else the error names the file.
    """
    table = np.asarray(compress_len).astype(np.int64)
    if table.ndim != 2 or table.shape[0] != len(cams):
        raise CorruptSourceError(
            f"{where}: compress_len has shape {list(table.shape)} for {len(cams)} cameras",
            situation="compress-len-invalid",
        )
    probe = min(3, table.shape[1])
    fits: dict[str, list[int]] = {}
    for name, ds in cams.items():
        rows = first_rows(ds, probe)
        fits[name] = [
            r
            for r in range(table.shape[0])
            if all(
                0 < table[r, t] <= len(rows[t])
                and rows[t][table[r, t] - 2 : table[r, t]].tobytes() == JPEG_END
                and not rows[t][table[r, t] :].any()
                for t in range(probe)
            )
        ]
    chosen: dict[str, int] = {}
    for name in sorted(fits, key=lambda n: len(fits[n])):
        free = [r for r in fits[name] if r not in chosen.values()]
        if not free:
            raise CorruptSourceError(
                f"{where}: no row of compress_len fits the padded JPEG bytes of {name}",
                hint="the image bytes and compress_len disagree; the file is damaged",
                situation="compress-len-invalid",
            )
        chosen[name] = free[0]
    return {name: table[row] for name, row in chosen.items()}

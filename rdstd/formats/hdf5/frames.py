"""Per-step HDF5 values read on demand: raw arrays (:class:`H5Frames`) and encoded images (:class:`EncodedRows`).

Neither reads anything when built. :class:`H5Frames` is a :class:`~rdstd.formats.base.FrameArray` over a
dataset (optionally one episode of a stacked ``(episodes, steps, …)`` array, or a row range of a concatenated
one): slicing reads only those rows. :class:`EncodedRows` is the list of one camera's encoded frames, read a
block at a time (never the whole camera): ALOHA's JPEG bytes zero-padded to a common length are trimmed with
``compress_len``, RoboMIND's variable-length bytes are taken as they are.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import simplejpeg

from rdstd.errors import CorruptSourceError
from rdstd.formats.hdf5.h5 import dataset_where, reading
from rdstd.media import images
from rdstd.schema.episode import BinaryFrames
from rdstd.schema.vocabulary import ImageCodec

JPEG_MAGIC = b"\xff\xd8"
JPEG_END = b"\xff\xd9"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Encoded frames read per h5py call: memory stays at a few padded rows, the per-call cost is shared.
BLOCK_ROWS = 16
#: Per-step values of an episode read whole on the first slice when they take at most this many bytes.
WHOLE_READ_BYTES = 1 << 20
#: Datasets with more rows than this are not mapped chunk by chunk (the map costs a call per chunk up front).
MAX_MAPPED_ROWS = 1 << 16
#: Bytes of other data a block's single read may span besides its rows (HDF5 puts index nodes between chunks).
SPAN_SLACK = 1 << 16
#: Rows per ``preadv`` of packed rows (up to three pieces each: the OS takes at most 1024 per call).
IOV_ROWS = 256


class H5Frames:
    """Rows ``[start, stop)`` of an h5py dataset (or of its episode ``episode`` along axis 0), read when sliced.

    When all of them take at most :data:`WHOLE_READ_BYTES` (a robot's joint vectors), the first slice reads them
    all and later slices come from memory: one h5py call per episode instead of one per chunk of frames.
    """

    def __init__(self, dataset: Any, *, episode: int | None = None, start: int = 0, stop: int | None = None) -> None:
        self._ds = dataset
        self._episode = episode
        full = dataset.shape[1] if episode is not None else dataset.shape[0]
        self._start = start
        self._stop = full if stop is None else stop
        per_step = dataset.shape[2:] if episode is not None else dataset.shape[1:]
        self._shape: tuple[int, ...] = (self._stop - self._start, *(int(d) for d in per_step))
        self._all: npt.NDArray[Any] | None = None

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
        stop = max(stop, start)
        if self._all is None and math.prod(self._shape) * self.dtype.itemsize <= WHOLE_READ_BYTES:
            self._all = self._read(self._start, self._stop)  # small: one read serves every chunk of the episode
        array = self._all[start:stop] if self._all is not None else self._read(self._start + start, self._start + stop)
        return array[::step] if step != 1 else array

    def _read(self, lo: int, hi: int) -> npt.NDArray[Any]:
        with reading(dataset_where(self._ds)):
            rows = self._ds[self._episode, lo:hi] if self._episode is not None else self._ds[lo:hi]
            return np.asarray(rows)


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

    A slice is a :class:`~rdstd.schema.episode.BinaryFrames`: the frames in one Arrow buffer plus offsets, no
    Python object per frame. Padded rows (ALOHA) are read as one block and cut at ``compress_len`` in numpy:

    - rows stored one per chunk with no filter, in a file h5py opened with its default driver (what the ALOHA
      recorders write: chunks of ``(1, padded)``), are read straight from the file: HDF5 lists where every chunk
      is once per camera, and each block of rows is one ``pread`` of the bytes they span (checked once against
      HDF5's own read of the first chunk);
    - other one-row chunks are read with HDF5's direct chunk read, one call per row;
    - any other layout is read in blocks whose edges fall on chunk edges, so no chunk is read (or decompressed)
      twice.

    Variable-length rows (RoboMIND) are read in the same chunk-aligned blocks and taken whole.
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
        self._lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self._start = start
        self._n = (int(dataset.shape[0]) if stop is None else stop) - start
        if lengths is not None and len(lengths) != self._n:
            raise CorruptSourceError(
                f"{where}: compress_len holds {len(lengths)} lengths for {self._n} frames",
                situation="compress-len-invalid",
            )
        chunks = getattr(dataset, "chunks", None)
        self._direct = lengths is not None and one_row_chunks(dataset)
        self._file: _ChunkFile | bool | None = None if self._direct else False  # found on the first read
        rows = int(chunks[0]) if chunks else 1
        #: Rows per block read: a whole number of chunks, at least BLOCK_ROWS.
        self._block = rows * max(1, -(-BLOCK_ROWS // rows))

    def __len__(self) -> int:
        return self._n

    def frame(self, i: int) -> bytes:
        """Frame ``i``'s encoded bytes (padding trimmed)."""
        return self.frames(i, i + 1)[0]

    def frames(self, start: int, stop: int) -> BinaryFrames:
        """Frames ``[start, stop)`` in one Arrow buffer (see the class docs for how they are read)."""
        with reading(self._where):
            if self._lengths is None:
                return BinaryFrames(self._whole(start, stop))
            packed = self._packed(start, stop)
            if packed is not None:
                return BinaryFrames(packed)
            buffer, at = self._padded(start, stop)
            width = int(self._ds.shape[1]) if stop > start else 0
            return BinaryFrames(compact(buffer, at, width, self._lengths[start:stop], self._where, start))

    def _packed(self, start: int, stop: int) -> pa.BinaryArray | None:
        """Frames ``[start, stop)`` read from the file straight into one buffer, each cut at its ``compress_len``
        (one ``preadv`` scatters a block's rows to their places and its padding to a scratch buffer: the bytes are
        copied once), or None where that does not apply (no chunk map, or a length that is not within its row:
        the padded read names the frame)."""
        assert self._lengths is not None
        if not self._direct:
            return None
        if self._file is None:
            self._file = _ChunkFile.of(self._ds)
        if not isinstance(self._file, _ChunkFile) or not self._ds.id.valid:
            return None
        lengths = self._lengths[start:stop]
        if len(lengths) and not ((lengths > 1) & (lengths <= self._file.width)).all():
            return None
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = self._file.packed(self._start + start, self._start + stop, lengths, offsets)
        ends = offsets[1:]
        if len(ends) and not ((data[ends - 2] == 0xFF) & (data[ends - 1] == 0xD9)).all():
            j = int(np.argmin((data[ends - 2] == 0xFF) & (data[ends - 1] == 0xD9)))
            raise CorruptSourceError(
                f"{self._where}: frame {start + j} does not end a JPEG at compress_len={int(lengths[j])}",
                hint="compress_len does not match the image bytes; the file is damaged",
                situation="compress-len-invalid",
            )
        return binary_array(data, offsets)

    def _padded(self, start: int, stop: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """The padded rows ``[start, stop)``: a byte buffer and where each row starts in it."""
        k = stop - start
        lo, hi = self._start + start, self._start + stop
        if self._direct:
            if self._file is None:
                self._file = _ChunkFile.of(self._ds)
            if isinstance(self._file, _ChunkFile) and self._ds.id.valid:
                return self._file.rows(lo, hi)
        width = int(self._ds.shape[1]) if k else 0
        out = np.empty((k, width), dtype=np.uint8)
        if self._direct:
            for j in range(k):
                out[j] = np.frombuffer(self._chunk(lo + j), dtype=np.uint8)
        else:
            for a, b in self._blocks(lo, hi):
                out[a - lo : b - lo] = self._ds[a:b]
        return out.reshape(-1), np.arange(k, dtype=np.int64) * width

    def _whole(self, start: int, stop: int) -> pa.BinaryArray:
        """Variable-length rows ``[start, stop)`` as they are, joined into one buffer (h5py hands each one over as
        an array or bytes object; their bytes are copied once)."""
        values: list[Any] = []
        for a, b in self._blocks(self._start + start, self._start + stop):
            values.extend(self._ds[a:b])
        pieces = [np.frombuffer(v, dtype=np.uint8) if isinstance(v, bytes) else np.asarray(v, np.uint8) for v in values]
        offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        np.cumsum([p.size for p in pieces], out=offsets[1:])
        data = np.concatenate([p.reshape(-1) for p in pieces]) if pieces else np.zeros(0, np.uint8)
        return binary_array(data, offsets)

    def _blocks(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """``[lo, hi)`` in blocks of whole chunks (the first and last may be cut by the request)."""
        while lo < hi:
            end = min(hi, lo + self._block - lo % self._block)  # the block ends on a chunk edge
            yield lo, end
            lo = end

    def _chunk(self, row: int) -> bytes:
        """Row ``row``'s stored bytes; a chunk never written reads as the fill value (zeros), as h5py would."""
        try:
            data: bytes = self._ds.id.read_direct_chunk((row, 0))[1]
        except RuntimeError:  # "chunk storage is not allocated"
            return np.asarray(self._ds[row], dtype=np.uint8).tobytes()
        return data

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> BinaryFrames: ...

    def __getitem__(self, index: int | slice) -> bytes | BinaryFrames:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._n)
            if step != 1:
                return self.frames(start, max(start, stop))[::step]
            return self.frames(start, max(start, stop))
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        return self.frame(index)

    def __iter__(self) -> Iterator[bytes]:
        for lo in range(0, self._n, self._block):
            yield from self.frames(lo, min(lo + self._block, self._n))


def compact(
    buffer: npt.NDArray[np.uint8],
    at: npt.NDArray[np.int64],
    width: int,
    lengths: npt.NDArray[np.int64],
    where: str,
    first: int,
) -> pa.BinaryArray:
    """Padded rows cut to their ``lengths`` as one Arrow binary array (one buffer, one copy of the bytes kept).

    Row ``j`` is ``buffer[at[j] : at[j] + width]``. Each length must be within its row and end a JPEG
    (``FF D9``), else the error names the first frame that does not (numbered from ``first``).
    """
    k = len(at)
    fits = (lengths > 1) & (lengths <= width)
    ends = np.zeros(k, dtype=bool)
    if fits.any():
        last = at[fits] + lengths[fits]
        ends[fits] = (buffer[last - 2] == 0xFF) & (buffer[last - 1] == 0xD9)
    if not ends.all():
        j = int(np.argmin(ends))
        n = int(lengths[j])
        if not 0 < n <= width:
            raise CorruptSourceError(
                f"{where}: frame {first + j} claims {n} bytes of a {width}-byte row", situation="compress-len-invalid"
            )
        raise CorruptSourceError(
            f"{where}: frame {first + j} does not end a JPEG at compress_len={n}",
            hint="compress_len does not match the image bytes; the file is damaged",
            situation="compress-len-invalid",
        )
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if k and offsets[-1] == k * width == len(buffer) and (at == np.arange(k) * width).all():
        data = buffer  # no padding at all: the rows are the frames, in order
    elif k:
        data = np.concatenate([buffer[a : a + n] for a, n in zip(at.tolist(), lengths.tolist(), strict=True)])
    else:
        data = np.zeros(0, dtype=np.uint8)
    return binary_array(data, offsets)


def binary_array(data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> pa.BinaryArray:
    """An Arrow binary array over ``data`` (not copied): value ``i`` is ``data[offsets[i]:offsets[i + 1]]`` (a
    large_binary one when the values pass 2 GiB, which 32-bit offsets cannot address)."""
    large = bool(len(offsets)) and int(offsets[-1]) >= 2**31
    kind, width = (pa.large_binary(), np.int64) if large else (pa.binary(), np.int32)
    array: pa.BinaryArray = pa.Array.from_buffers(
        kind, len(offsets) - 1, [None, pa.py_buffer(offsets.astype(width)), pa.py_buffer(data)]
    )
    return array


class _ChunkFile:
    """Where each one-row chunk of a dataset lies in its file, for reading blocks of rows with one ``pread``.

    Only for what the bytes on disk mean without HDF5: no filter, every chunk written and exactly one row wide,
    h5py's default (sec2) driver on a file without a user block; anything else reads through HDF5.
    """

    def __init__(self, fd: int, offsets: npt.NDArray[np.int64], width: int) -> None:
        self.fd = fd
        self.offsets = offsets
        self.width = width

    @classmethod
    def of(cls, dataset: Any) -> _ChunkFile | bool:
        """The dataset's chunk map, or False when its rows must be read through HDF5."""
        try:
            file = dataset.file
            if file.driver != "sec2" or file.userblock_size != 0 or dataset.shape[0] > MAX_MAPPED_ROWS:
                return False
            rows, width = int(dataset.shape[0]), int(dataset.shape[1])
            if dataset.id.get_num_chunks() != rows:
                return False  # a chunk never written: HDF5 gives its fill value
            found: list[tuple[int, int, int, int]] = []
            dataset.id.chunk_iter(lambda c: found.append((c.chunk_offset[0], c.byte_offset, c.size, c.filter_mask)))
            table = np.array(found, dtype=np.int64).reshape(-1, 4)
            if len(table) != rows or (table[:, 2] != width).any() or table[:, 3].any():
                return False
            offsets = np.empty(rows, dtype=np.int64)
            offsets[table[:, 0]] = table[:, 1]
            fd = int(file.id.get_vfd_handle())
            mapped = cls(fd, offsets, width)
            if rows and mapped._read(int(offsets[0]), width).tobytes() != dataset.id.read_direct_chunk((0, 0))[1]:
                return False
        except (AttributeError, NotImplementedError, RuntimeError, TypeError, ValueError):
            return False  # an h5py or HDF5 without chunk iteration, or a dataset it does not apply to
        return mapped

    def rows(self, lo: int, hi: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """Rows ``[lo, hi)`` (one read of the bytes they span when they lie close together) and their starts."""
        where = self.offsets[lo:hi]
        if not len(where):
            return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64)
        base = int(where.min())
        span = int(where.max()) + self.width - base
        if span <= 2 * len(where) * self.width + SPAN_SLACK:
            return self._read(base, span), where - base
        return np.concatenate([self._read(int(o), self.width) for o in where]), np.arange(len(where)) * self.width

    def packed(
        self, lo: int, hi: int, lengths: npt.NDArray[np.int64], at: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.uint8]:
        """The first ``lengths[j]`` bytes of rows ``lo + j`` of ``[lo, hi)``, row ``j`` at ``at[j]`` of one buffer.

        Rows that lie close together (as :meth:`rows` judges) are read in file order with one ``preadv`` per
        :data:`IOV_ROWS` rows: each row's kept bytes land in their place, the padding after them and anything
        HDF5 put between chunks land in one scratch buffer. Scattered rows are read one by one.
        """
        out = np.empty(int(at[-1]) if len(at) else 0, dtype=np.uint8)
        where = self.offsets[lo:hi]
        if not len(where):
            return out
        view = out.data
        order = np.argsort(where, kind="stable")
        starts = where[order]
        gaps = np.diff(starts) - self.width
        span = int(starts[-1]) + self.width - int(starts[0])
        if span > 2 * len(where) * self.width + SPAN_SLACK or (len(gaps) and int(gaps.min()) < 0):
            for j, (offset, n) in enumerate(zip(where.tolist(), lengths.tolist(), strict=True)):
                self._fill(view[int(at[j]) : int(at[j]) + n], offset)
            return out
        scratch = memoryview(bytearray(max(self.width, int(gaps.max()) if len(gaps) else 0)))
        rows = order.tolist()
        offsets, kept, places = starts.tolist(), lengths[order].tolist(), at[order].tolist()
        for first in range(0, len(rows), IOV_ROWS):
            last = min(first + IOV_ROWS, len(rows))
            pieces: list[memoryview] = []
            for i in range(first, last):
                if i > first and offsets[i] > offsets[i - 1] + self.width:
                    pieces.append(scratch[: offsets[i] - offsets[i - 1] - self.width])
                pieces.append(view[places[i] : places[i] + kept[i]])
                if i + 1 < last and kept[i] < self.width:
                    pieces.append(scratch[: self.width - kept[i]])
            wanted = offsets[last - 1] + kept[last - 1] - offsets[first]
            if os.preadv(self.fd, pieces, offsets[first]) != wanted:  # short: a regular file ends there
                for i in range(first, last):
                    self._fill(view[places[i] : places[i] + kept[i]], offsets[i])
        return out

    def _fill(self, view: memoryview, offset: int) -> None:
        """Fill ``view`` with the file's bytes from ``offset`` (an error if the file ends first)."""
        done = 0
        while done < len(view):
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got <= 0:
                raise OSError(errno.EIO, f"the file ends inside a chunk at byte {offset + done}")
            done += got

    def _read(self, offset: int, size: int) -> npt.NDArray[np.uint8]:
        out = np.empty(size, dtype=np.uint8)
        self._fill(out.data, offset)
        return out


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
    raw = np.asarray(compress_len)
    castable = np.isfinite(raw) & (np.abs(raw) < 2.0**62) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    if not castable.all():  # NaN, inf or past int64: no length, and no int64 either
        bad = tuple(int(i) for i in np.argwhere(~castable)[0])
        raise CorruptSourceError(
            f"{where}{list(bad)} is {raw[bad]}, not a length",
            hint="the file is damaged",
            situation="compress-len-invalid",
        )
    table = raw.astype(np.int64)
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

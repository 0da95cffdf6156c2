"""What the bag's single pass keeps per message, without holding it: bytes in a small in-memory buffer, written to
an anonymous temporary file each time the buffer fills (:class:`ByteSpill`), and read back only while they are
needed. Per-message times (:class:`TimeLog`, 8 bytes a message on disk) and transforms (:class:`TransformSpill`,
80 bytes a sample) are kept this way, as are each vector stream's values (``reader.Rows``), so what a long
recording holds while its frames are written does not grow with its length.
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import SourceError

#: Bytes held in memory (per kept stream) before they go to the temporary file.
BUFFER_BYTES = 1 << 18
#: Transform samples read back at once (a block of :meth:`TransformSpill.block`).
ROWS_AT_ONCE = 4096
#: Bytes a :class:`FrameColumn` holds in memory before they go to its temporary file.
COLUMN_BUFFER_BYTES = 1 << 14


class ByteSpill:
    """Appended bytes, the first in an anonymous temporary file, the last up to :data:`BUFFER_BYTES` in memory."""

    def __init__(self, where: str, prefix: str, buffer_bytes: int | None = None) -> None:
        self.where = where
        self.prefix = prefix
        #: Bytes held in memory before they go to the file (:data:`BUFFER_BYTES` unless given).
        self.buffer_bytes = buffer_bytes
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self._on_disk = 0
        self.closed = False

    def __len__(self) -> int:
        return self._on_disk + len(self._buffer)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``."""
        self._buffer += data
        if len(self._buffer) >= (BUFFER_BYTES if self.buffer_bytes is None else self.buffer_bytes):
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix=self.prefix, buffering=0)  # noqa: SIM115 - close()
            view = memoryview(self._buffer)
            written = 0
            while written < len(view):  # a raw file may write less than asked
                written += self._file.write(view[written:]) or 0
            view.release()
            self._on_disk += len(self._buffer)
            self._buffer.clear()

    def check_open(self) -> None:
        """A bag-closed error once :meth:`close` ran."""
        if self.closed:
            raise SourceError(
                f"{self.where}: the bag is closed; its frames and vectors are read while it is open",
                hint="read the episode's images and vectors inside `with backend.open(path) as source:`",
                situation="bag-closed",
            )

    def read(self, start: int = 0, stop: int | None = None) -> bytes:
        """Bytes ``[start, stop)`` of what was appended (a bag-closed error once closed)."""
        self.check_open()
        stop = len(self) if stop is None else stop
        out = b""
        if start < self._on_disk:
            assert self._file is not None
            want = min(stop, self._on_disk) - start
            out = os.pread(self._file.fileno(), want, start)
            if len(out) != want:
                raise SourceError(
                    f"{self.where}: {len(out)} of {want} bytes kept in a temporary file could be read back",
                    hint="the temporary folder (TMPDIR) changed or filled while the bag was read; convert again",
                    situation="spill-unreadable",
                )
        if stop > self._on_disk:
            out += bytes(self._buffer[max(start, self._on_disk) - self._on_disk : stop - self._on_disk])
        return out

    def close(self) -> None:
        """Drop the bytes (and the temporary file)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = bytearray()
        self.closed = True


class TimeLog:
    """One topic's times (int64 ns) on one clock, in stream order; :meth:`values` reads them back whole."""

    def __init__(self, where: str) -> None:
        self._bytes = ByteSpill(where, "rdstd-times-")
        self._pack = struct.Struct("<q").pack

    def __len__(self) -> int:
        return len(self._bytes) // 8

    def append(self, t: int) -> None:
        """One message's time."""
        self._bytes.write(self._pack(t))

    def extend(self, times: npt.NDArray[np.int64]) -> None:
        """Consecutive messages' times at once."""
        self._bytes.write(np.ascontiguousarray(times, dtype="<i8").tobytes())

    def values(self) -> npt.NDArray[np.int64]:
        """Every time kept, as a new array (the caller holds it only while it needs it)."""
        return self.range(0, len(self))

    def range(self, start: int, stop: int) -> npt.NDArray[np.int64]:
        """The times of messages ``[start, stop)`` (stream order), as a new array."""
        return np.frombuffer(self._bytes.read(start * 8, stop * 8), dtype="<i8").astype(np.int64)

    def close(self) -> None:
        """Drop the times."""
        self._bytes.close()


_SAMPLE = np.dtype([("parent", "<i4"), ("child", "<i4"), ("t", "<i8"), ("message", "<i8"), ("values", "<f8", (7,))])


class TransformSpill:
    """Transform samples as a recording holds them (message order): frame names interned, each sample 80 bytes
    (parent, child, time, message position, translation xyz and rotation xyzw) in a :class:`ByteSpill`."""

    def __init__(self, where: str = "transforms") -> None:
        self._ids: dict[str, int] = {}
        self.names: list[str] = []
        self._bytes = ByteSpill(where, "rdstd-tf-")
        self._pack = struct.Struct("<iiqq7d").pack

    def _id(self, name: str) -> int:
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = len(self.names)
            self.names.append(name)
        return found

    def __len__(self) -> int:
        return len(self._bytes) // _SAMPLE.itemsize

    def append(
        self, parent: str, child: str, t_ns: int, translation: list[float], rotation: list[float], message: int = 0
    ) -> None:
        """One sample: the pose of ``child`` in ``parent`` at ``t_ns``, from the ``message``-th message of its
        topic."""
        self._bytes.write(self._pack(self._id(parent), self._id(child), t_ns, message, *translation, *rotation))

    @property
    def blocks(self) -> int:
        """How many blocks of :data:`ROWS_AT_ONCE` samples :meth:`block` reads."""
        return -(-len(self) // ROWS_AT_ONCE)

    def block(self, k: int, messages: tuple[int, int] | None = None) -> npt.NDArray[np.void]:
        """Samples ``[k * ROWS_AT_ONCE, (k + 1) * ROWS_AT_ONCE)`` as a structured array (fields ``parent``, ``child``
        (indices into :attr:`names`), ``t``, ``message``, ``values`` (x y z qx qy qz qw)); only those from messages
        ``[start, stop)`` when ``messages`` is given."""
        size, start = _SAMPLE.itemsize, k * ROWS_AT_ONCE
        samples = np.frombuffer(self._bytes.read(start * size, min(len(self), start + ROWS_AT_ONCE) * size), _SAMPLE)
        if messages is not None:
            samples = samples[(samples["message"] >= messages[0]) & (samples["message"] < messages[1])]
        return samples

    def close(self) -> None:
        """Drop the samples."""
        self._bytes.close()


class FrameColumn:
    """One number (or fixed-shape row) per aligned frame, appended a window at a time and read back by slice: bytes
    in a :class:`ByteSpill` holding at most :data:`COLUMN_BUFFER_BYTES` in memory, so what an episode keeps per
    frame while it is written (sample positions, weights, poses) sits in a temporary file, not in memory."""

    def __init__(self, where: str, dtype: npt.DTypeLike, shape: tuple[int, ...] = ()) -> None:
        self._stored = np.dtype(dtype).newbyteorder("<")
        self.row_shape = shape
        self._row = int(np.prod(shape, dtype=np.int64)) * self._stored.itemsize
        self._bytes = ByteSpill(where, "rdstd-column-", COLUMN_BUFFER_BYTES)

    def __len__(self) -> int:
        """Rows appended (a bag-closed error once closed: the rows are gone, the episode is not empty)."""
        self._bytes.check_open()
        return len(self._bytes) // self._row

    @property
    def shape(self) -> tuple[int, ...]:
        """(frames, *row shape)."""
        return (len(self), *self.row_shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type (native byte order)."""
        return self._stored.newbyteorder("=")

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[Any]:
        """Every row (numpy's conversion)."""
        whole = self._read(0, len(self))
        return whole if dtype is None else whole.astype(dtype)

    def append(self, rows: npt.ArrayLike) -> None:
        """Rows for the next frames."""
        self._bytes.write(np.ascontiguousarray(rows, dtype=self._stored).tobytes())

    def __getitem__(self, index: slice | int) -> npt.NDArray[Any]:
        """The rows of ``index`` (a slice, any step; or one position, negative from the end)."""
        n = len(self)
        if not isinstance(index, slice):
            k = int(index) + (n if int(index) < 0 else 0)
            if not 0 <= k < n:
                raise IndexError(f"frame {index} of {n}")
            index = slice(k, k + 1)
        start, stop, step = index.indices(n)
        if step < 0 or stop <= start:
            whole = self._read(0, n) if step < 0 else self._read(0, 0)
            return whole[index] if step < 0 else whole
        return self._read(start, stop)[::step]

    def _read(self, start: int, stop: int) -> npt.NDArray[Any]:
        data = self._bytes.read(start * self._row, stop * self._row)
        return np.frombuffer(data, dtype=self._stored).reshape(-1, *self.row_shape).astype(self.dtype)

    def close(self) -> None:
        """Drop the rows (and the temporary file)."""
        self._bytes.close()

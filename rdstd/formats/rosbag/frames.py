"""Camera frames kept from the bag's single pass, and aligned vectors, read when the converter slices them.

The pass that builds the ledger sees every camera message once; each image topic's payloads go to a
:class:`FrameSpill` (an anonymous temporary file, with each message's offset and length in another): a
CompressedImage's encoded bytes (JPEG/PNG, passed through), or the whole serialized message of a raw Image or a
``compressedDepth`` image (decoded to pixels when sliced). An aligned episode knows, for each of its frames, which
message of the topic it uses (its position in the topic's stream order); slicing ``[start:stop]`` reads only those
payloads back (one positioned read each), so memory is bounded by the frames of one converter
chunk, not by the recording, and the bag is not read a second time.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol, SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptSourceError, SourceError
from rdstd.formats.rosbag.fields import image_codec
from rdstd.formats.rosbag.spill import COLUMN_BUFFER_BYTES, ByteSpill
from rdstd.streams.align import Sampling

#: Frames read per window when the frames are iterated whole.
WINDOW_FRAMES = 64


class Positions(Protocol):
    """Per-frame numbers read by slice: a numpy array, or a :class:`~.spill.FrameColumn` (a temporary file)."""

    def __len__(self) -> int:
        """The frame count."""

    def __getitem__(self, index: slice, /) -> npt.NDArray[Any]:
        """The numbers of the frames ``index`` selects."""


class FrameSpill:
    """One image topic's message payloads in stream order: bytes in an anonymous temporary file, each message's
    offset and length (16 bytes) in a :class:`~.spill.ByteSpill` (a temporary file too, but for its last
    :data:`~.spill.COLUMN_BUFFER_BYTES`), so a long recording's camera holds nothing per message in memory.

    ``payload`` says what each holds: ``data`` (a CompressedImage's encoded bytes) or ``message`` (the serialized
    message, decoded again when read).
    """

    def __init__(self, where: str, payload: str) -> None:
        self.where = where
        self.payload = payload
        self._index = ByteSpill(where, "rdstd-frame-index-", COLUMN_BUFFER_BYTES)  # (offset, length) a message
        self._count = 0
        self.size = 0
        self._file: IO[bytes] | None = None
        self.closed = False

    def __len__(self) -> int:
        return self._count

    def append(self, payload: Any) -> None:
        """One message's payload (any buffer: bytes, a memoryview, a uint8 numpy array), written to the file at
        once (nothing is held in memory)."""
        view = memoryview(payload).cast("B")
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="rdstd-frames-", buffering=0)  # noqa: SIM115 - close()
        written = self._file.write(view)
        while written is not None and written < view.nbytes:  # a raw file may write less than asked
            written += self._file.write(view[written:]) or 0
        self._index.write(_ENTRY.pack(self.size, view.nbytes))
        self._count += 1
        self.size += view.nbytes

    def read(self, positions: npt.NDArray[np.int64]) -> list[bytes]:
        """The payloads at ``positions`` (repeats allowed), in that order."""
        if self.closed:
            raise SourceError(
                f"{self.where}: the bag is closed; its frames and vectors are read while it is open",
                hint="read the episode's images and vectors inside `with backend.open(path) as source:`",
                situation="bag-closed",
            )
        if len(positions) == 0:
            return []
        lo, hi = int(positions.min()), int(positions.max())
        if lo < 0 or hi >= self._count:
            raise CorruptSourceError(
                f"{self.where}: message {hi} asked for, {self._count} were read",
                hint="the bag changed while it was read; open it again",
                situation="message-index-out-of-range",
            )
        assert self._file is not None
        fd = self._file.fileno()
        # one positioned read per payload, straight into its bytes (reading the span a slice covers and cutting it
        # up copied every byte twice and allocated up to 64 MB at once)
        entries = np.frombuffer(self._index.read(lo * _ENTRY.size, (hi + 1) * _ENTRY.size), dtype="<i8")
        wanted = entries.reshape(-1, 2)[positions - lo].tolist()  # the span's entries: a slice's are close together
        out = [os.pread(fd, length, offset) for offset, length in wanted]
        if any(len(data) != length for data, (_, length) in zip(out, wanted, strict=True)):
            raise SourceError(
                f"{self.where}: a frame kept in a temporary file could not be read back whole",
                hint="the temporary folder (TMPDIR) changed or filled while the bag was read; convert again",
                situation="spill-unreadable",
            )
        return out

    def close(self) -> None:
        """Drop the payloads (and the temporary file)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._index.close()
        self.closed = True


#: A message's (offset, length) in a :class:`FrameSpill`'s index.
_ENTRY = struct.Struct("<qq")


class TopicFrames:
    """Messages of one image topic by position, from its :class:`FrameSpill`, turned into frames by ``take``."""

    def __init__(self, spill: FrameSpill, path: str, topic: str, decode: Callable[[bytes], Any]) -> None:
        self.spill = spill
        self.path = path
        self.topic = topic
        self.decode = decode

    def read(self, positions: npt.NDArray[np.int64], take: Callable[[Any], Any]) -> list[Any]:
        """``take(payload or message)`` for the messages at ``positions`` (repeats allowed), in that order."""
        payloads = self.spill.read(positions)
        if self.spill.payload == "message":
            return [take(self.decode(p)) for p in payloads]
        return [take(p) for p in payloads]


class _Encoded:
    """A CompressedImage's bytes, checked to be in the codec the episode declares (its first frame's)."""

    def __init__(self, codec: str, where: str) -> None:
        self.codec = codec
        self.where = where

    def __call__(self, data: bytes) -> bytes:
        found = image_codec(data)
        if found != self.codec:
            raise CorruptSourceError(
                f"{self.where}: a frame is {found or 'neither jpeg nor png'}, the topic's first frame is {self.codec}",
                situation="image-codec-changes",
            )
        return data


class BagFrames(list[bytes]):
    """Encoded frames (JPEG/PNG bytes) of one image topic, read from its spill when sliced or iterated.

    A ``list`` to the converter (``EncodedFrames.frames``); it holds nothing itself: ``len``, indexing, slicing and
    iteration read the frames through a :class:`TopicFrames`.
    """

    def __init__(self, window: TopicFrames, positions: Positions, codec: str) -> None:
        super().__init__()
        self._window = window
        self._positions = positions
        self._take = _Encoded(codec, f"{window.path}: {window.topic}")

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: SupportsIndex, /) -> bytes: ...
    @overload
    def __getitem__(self, index: slice, /) -> list[bytes]: ...
    def __getitem__(self, index: SupportsIndex | slice, /) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return self._window.read(np.asarray(self._positions[index]), self._take)
        k = int(index) + (len(self) if int(index) < 0 else 0)
        if not 0 <= k < len(self):
            raise IndexError(f"frame {int(index)} of {len(self)}")
        picked: list[bytes] = self._window.read(np.asarray(self._positions[k : k + 1]), self._take)
        return picked[0]

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self), WINDOW_FRAMES):
            yield from self[start : start + WINDOW_FRAMES]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, list) and len(other) == len(self) and list(iter(self)) == list(other)

    __hash__ = None


class BagPixels:
    """Raw ``sensor_msgs/Image`` frames of one topic as a :class:`~rdstd.formats.base.FrameArray` (read when
    sliced)."""

    def __init__(
        self,
        window: TopicFrames,
        positions: Positions,
        frame_shape: tuple[int, ...],
        dtype: np.dtype[Any],
        to_pixels: Callable[[Any], npt.NDArray[Any]],
    ) -> None:
        self._window = window
        self._positions = positions
        self._frame_shape = frame_shape
        self._dtype = dtype
        self._to_pixels = to_pixels

    @property
    def shape(self) -> tuple[int, ...]:
        """(frames, H, W[, C])."""
        return (len(self._positions), *self._frame_shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The pixel type."""
        return self._dtype

    def __len__(self) -> int:
        return len(self._positions)

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[Any]:
        """All frames (numpy's conversion)."""
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, index: slice | SupportsIndex, /) -> npt.NDArray[Any]:
        if not isinstance(index, slice):
            return self[int(index) : int(index) + 1][0] if int(index) >= 0 else self[len(self) + int(index)]
        frames = self._window.read(np.asarray(self._positions[index]), self._to_pixels)
        if not frames:
            return np.zeros((0, *self._frame_shape), dtype=self._dtype)
        shapes = {f.shape for f in frames}
        if shapes != {self._frame_shape}:
            raise CorruptSourceError(
                f"{self._window.path}: {self._window.topic}: image size changes within the recording "
                f"({sorted(shapes)}, first frame {self._frame_shape})",
                situation="image-size-changes",
            )
        return np.stack(frames)


class BagVectors:
    """One vector stream sampled at the episode's frames, as a :class:`~rdstd.formats.base.FrameArray`: slicing
    ``[start:stop]`` fetches only the values those frames use (the sample at or before each frame time, and the one
    after it when interpolating; kept from the bag's single pass, :class:`~rdstd.formats.rosbag.reader.Rows`) and
    applies the sampling.

    ``lo``/``hi`` are the positions (in the topic's receive order) of each frame's bracketing samples, ``w`` the
    interpolation weight (see :func:`rdstd.streams.align.apply_sampling`).
    """

    def __init__(
        self,
        fetch: Callable[[npt.NDArray[np.int64]], npt.NDArray[Any]],
        where: str,
        lo: Positions,
        hi: Positions,
        w: Positions,
        sample: Callable[[npt.NDArray[Any], Sampling], npt.NDArray[Any]],
        frame_shape: tuple[int, ...],
        dtype: np.dtype[Any],
    ) -> None:
        self._fetch = fetch
        self._where = where
        self._lo, self._hi, self._w = lo, hi, w
        self._sample = sample
        self._frame_shape = frame_shape
        self._dtype = dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """(frames, *vector shape)."""
        return (len(self._lo), *self._frame_shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type."""
        return self._dtype

    def __len__(self) -> int:
        return len(self._lo)

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[Any]:
        """Every frame (numpy's conversion), a window at a time."""
        n = len(self)
        parts = [self[start : start + WINDOW_FRAMES * 16] for start in range(0, n, WINDOW_FRAMES * 16)]
        whole = np.concatenate(parts) if parts else np.zeros((0, *self._frame_shape), dtype=self._dtype)
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, index: slice | SupportsIndex, /) -> npt.NDArray[Any]:
        if not isinstance(index, slice):
            k = int(index) + (len(self) if int(index) < 0 else 0)
            one: npt.NDArray[Any] = self[k : k + 1][0]
            return one
        lo, hi = np.asarray(self._lo[index], dtype=np.int64), np.asarray(self._hi[index], dtype=np.int64)
        w = np.asarray(self._w[index], dtype=np.float64)
        n = len(lo)
        if n == 0:
            return np.zeros((0, *self._frame_shape), dtype=self._dtype)
        used, inverse = np.unique(np.concatenate([lo, hi]), return_inverse=True)
        values = self._fetch(used)
        if values.shape[1:] != self._frame_shape:
            raise CorruptSourceError(
                f"{self._where}: the stream's vectors are {values.shape[1:]}, not {self._frame_shape}",
                hint="the bag changed since it was opened: convert again",
                situation="bag-changed",
            )
        values = values.astype(self._dtype, copy=False)
        inverse = inverse.reshape(-1)
        local = Sampling(inverse[:n], inverse[n:], w, np.ones(n, dtype=bool), np.zeros(n, dtype=np.int64))
        return self._sample(values, local)

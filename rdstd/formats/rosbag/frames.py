"""Camera frames read from the bag when the converter asks for them, a time window at a time.

An aligned episode knows, for each of its frames, which message of the image topic it uses (its position in the
topic's receive-time order). Slicing ``[start:stop]`` reads only the receive-time window those messages lie in
(rosbags' ``start``/``stop``: index seeks in ROS 1, a ``WHERE`` in sqlite3, the chunk index in MCAP), so memory is
bounded by the frames of one converter chunk, not by the recording.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptSourceError, SourceError
from rdstd.formats.rosbag.fields import image_codec
from rdstd.streams.align import Sampling

if TYPE_CHECKING:
    from rdstd.formats.rosbag.bag import RawBag

#: Frames read per window when the frames are iterated whole.
WINDOW_FRAMES = 64


class TopicWindow:
    """Reads messages of one topic by position, through receive-time windows."""

    def __init__(
        self, bag: RawBag, topic: str, receive_ns: npt.NDArray[np.int64], decode: Callable[[bytes], Any]
    ) -> None:
        self.bag = bag
        self.topic = topic
        self.receive = receive_ns
        self.decode = decode
        #: Windows need the topic's receive times in stream order to be sorted (they are, unless a file is damaged).
        self.sorted = bool(np.all(np.diff(receive_ns) >= 0))

    def read(self, positions: npt.NDArray[np.int64], take: Callable[[Any], Any]) -> list[Any]:
        """``take(message)`` for the messages at ``positions`` (repeats allowed), in that order."""
        if len(positions) == 0:
            return []
        if self.bag.closed:
            raise SourceError(
                f"{self.bag.path}: the bag is closed; its frames and vectors are read while it is open",
                hint="read the episode's images and vectors inside `with backend.open(path) as source:`",
                situation="bag-closed",
            )
        lo, hi = int(positions.min()), int(positions.max())
        if self.sorted:
            start, stop = int(self.receive[lo]), int(self.receive[hi]) + 1
            base = int(np.searchsorted(self.receive, start, side="left"))
        else:
            start, stop, base = None, None, 0
        wanted = set(positions.tolist())
        found: dict[int, Any] = {}
        for k, (_, raw) in enumerate(self.bag.messages(self.topic, start, stop), start=base):
            if k > hi:
                break
            if k in wanted:
                found[k] = take(self.decode(raw))
        missing = wanted - set(found)
        if missing:
            raise CorruptSourceError(
                f"{self.bag.path}: {self.topic}: message {min(missing)} is no longer where the ledger read it",
                hint="the bag changed while it was being converted",
                situation="bag-changed",
            )
        return [found[p] for p in positions.tolist()]


class _Encoded:
    """A CompressedImage's bytes, checked to be in the codec the episode declares (its first frame's)."""

    def __init__(self, codec: str, where: str) -> None:
        self.codec = codec
        self.where = where

    def __call__(self, msg: Any) -> bytes:
        data = np.asarray(msg.data, dtype=np.uint8).tobytes()
        found = image_codec(data)
        if found != self.codec:
            raise CorruptSourceError(
                f"{self.where}: a frame is {found or 'neither jpeg nor png'}, the topic's first frame is {self.codec}",
                situation="image-codec-changes",
            )
        return data


class BagFrames(list[bytes]):
    """Encoded frames (JPEG/PNG bytes) of one image topic, read from the bag when sliced or iterated.

    A ``list`` to the converter (``EncodedFrames.frames``); it holds nothing itself: ``len``, indexing, slicing and
    iteration read the frames through a :class:`TopicWindow`.
    """

    def __init__(self, window: TopicWindow, positions: npt.NDArray[np.int64], codec: str) -> None:
        super().__init__()
        self._window = window
        self._positions = np.asarray(positions, dtype=np.int64)
        self._take = _Encoded(codec, f"{window.bag.path}: {window.topic}")

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: SupportsIndex, /) -> bytes: ...
    @overload
    def __getitem__(self, index: slice, /) -> list[bytes]: ...
    def __getitem__(self, index: SupportsIndex | slice, /) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return self._window.read(self._positions[index], self._take)
        picked: list[bytes] = self._window.read(self._positions[[int(index)]], self._take)
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
        window: TopicWindow,
        positions: npt.NDArray[np.int64],
        frame_shape: tuple[int, ...],
        dtype: np.dtype[Any],
        to_pixels: Callable[[Any], npt.NDArray[Any]],
    ) -> None:
        self._window = window
        self._positions = np.asarray(positions, dtype=np.int64)
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
        frames = self._window.read(self._positions[index], self._to_pixels)
        if not frames:
            return np.zeros((0, *self._frame_shape), dtype=self._dtype)
        shapes = {f.shape for f in frames}
        if shapes != {self._frame_shape}:
            raise CorruptSourceError(
                f"{self._window.bag.path}: {self._window.topic}: image size changes within the recording "
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
        lo: npt.NDArray[np.int64],
        hi: npt.NDArray[np.int64],
        w: npt.NDArray[np.float64],
        sample: Callable[[npt.NDArray[Any], Sampling], npt.NDArray[Any]],
        frame_shape: tuple[int, ...],
        dtype: np.dtype[Any],
    ) -> None:
        self._fetch = fetch
        self._where = where
        self._lo = np.asarray(lo, dtype=np.int64)
        self._hi = np.asarray(hi, dtype=np.int64)
        self._w = np.asarray(w, dtype=np.float64)
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
        lo, hi, w = self._lo[index], self._hi[index], self._w[index]
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

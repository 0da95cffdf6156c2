"""Image encoding and decoding for the store.

JPEG goes through simplejpeg (libjpeg-turbo, releases the GIL: ~680 frames/s per core at 640×480 here);
PNG (lossless, 8- or 16-bit) through Pillow (zlib releases the GIL too). Bytes that are already JPEG or PNG are
never re-encoded. :func:`encode_frames` encodes a stream of frames on a small thread pool, in order (small
frames a few to a task).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image
from typing_extensions import Buffer

from rdstd.errors import CorruptSourceError, EpisodeError, UsageError
from rdstd.io.threads import DaemonPool, shared_pool
from rdstd.schema.features import ImageFeature
from rdstd.schema.vocabulary import ColorOrder, ImageCodec

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"


def sniff_codec(data: bytes) -> ImageCodec | None:
    """The codec of encoded image bytes, from their magic number (None when neither JPEG nor PNG)."""
    if data[:2] == _JPEG_MAGIC:
        return ImageCodec.JPEG
    if data[:8] == _PNG_MAGIC:
        return ImageCodec.PNG
    return None


def encode(pixels: npt.NDArray[Any], codec: ImageCodec, *, jpeg_quality: int = 95) -> bytes:
    """Encode one HWC (or HW) image. JPEG takes uint8 RGB or gray; PNG takes uint8 or uint16.

    Pixels that cannot be stored so raise :class:`EpisodeError` (the caller names the episode and frame).
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3:
        raise EpisodeError(f"an image must be HWC or HW, got shape {pixels.shape}", situation="image-shape-invalid")
    channels = pixels.shape[2]
    if codec == ImageCodec.JPEG:
        if pixels.dtype != np.uint8:
            raise EpisodeError(
                f"JPEG needs uint8 pixels, got {pixels.dtype}",
                hint="convert the camera to uint8",
                situation="image-dtype-invalid",
            )
        colorspace = {1: "GRAY", 3: "RGB", 4: "RGBA"}.get(channels)
        if colorspace is None:
            raise EpisodeError(f"JPEG takes 1, 3 or 4 channels, got {channels}", situation="image-channels-invalid")
        return bytes(
            simplejpeg.encode_jpeg(
                np.ascontiguousarray(pixels), quality=jpeg_quality, colorspace=colorspace, colorsubsampling="420"
            )
        )
    if codec == ImageCodec.PNG:
        if pixels.dtype == np.uint16:
            if channels != 1:
                raise EpisodeError(
                    f"16-bit PNG is supported for one channel (depth) only, got {channels}",
                    situation="image-channels-invalid",
                )
        elif pixels.dtype != np.uint8:
            raise EpisodeError(f"PNG needs uint8 or uint16 pixels, got {pixels.dtype}", situation="image-dtype-invalid")
        if channels not in _PNG_COLOR_TYPES:
            raise EpisodeError(f"PNG takes 1, 2, 3 or 4 channels, got {channels}", situation="image-channels-invalid")
        if not pixels.shape[0] or not pixels.shape[1]:
            raise EpisodeError(
                f"the image does not encode as PNG (it is {pixels.shape[1]}×{pixels.shape[0]})",
                situation="image-unencodable",
            )
        return _png(pixels)
    raise UsageError(
        f"cannot encode single images as {codec}", hint="use jpeg or png", situation="image-codec-unsupported"
    )


#: PNG colour type per channel count: gray, gray + alpha, RGB, RGBA.
_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(pixels: npt.NDArray[Any]) -> bytes:
    """A PNG of HWC uint8 or uint16 pixels: every row "up"-filtered (vectorised), zlib level 1.

    About 4× faster than Pillow's encoder at its fastest level on robot camera frames, at a similar size;
    zlib releases the GIL, so frames encode in parallel on :func:`encode_frames`' pool.
    """
    height, width, channels = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(pixels, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type "up": each byte minus the byte above it (mod 256)
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, depth, _PNG_COLOR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            _PNG_MAGIC,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(filtered.data, 1)),
            _png_chunk(b"IEND", b""),
        )
    )


def decode(data: Buffer, codec: ImageCodec | None = None, *, channels: int = 3) -> npt.NDArray[Any]:
    """Decode JPEG or PNG bytes (any buffer, e.g. a zero-copy Arrow buffer) to an HWC array.

    The result is uint8, or uint16 for 16-bit PNG.
    """
    view: bytes | npt.NDArray[np.uint8] = data if isinstance(data, bytes) else np.frombuffer(memoryview(data), np.uint8)
    codec = codec or sniff_codec(bytes(view[:8]))
    try:
        if codec == ImageCodec.JPEG:
            colorspace = "GRAY" if channels == 1 else "RGB"
            out: npt.NDArray[Any] = simplejpeg.decode_jpeg(view, colorspace=colorspace)
            return out
        with Image.open(io.BytesIO(bytes(view))) as image:
            array = np.asarray(image)
    except (ValueError, OSError) as exc:
        raise CorruptSourceError(f"image bytes do not decode as {codec}: {exc}", situation="image-undecodable") from exc
    if array.dtype == np.int32:  # Pillow's "I" mode for 16-bit gray
        array = array.astype(np.uint16)
    if array.ndim == 2:
        array = array[:, :, None]
    return array


def decode_as(data: Buffer, feature: ImageFeature) -> npt.NDArray[Any]:
    """Decode one stored frame of ``feature`` to canonical pixels (HWC, RGB: BGR bytes kept as-is are swapped)."""
    pixels = decode(data, feature.codec, channels=feature.channels)
    return pixels[:, :, ::-1] if feature.color == ColorOrder.BGR else pixels


#: Encoder threads at most (the encoders release the GIL; more than the cores only adds switching).
MAX_ENCODE_THREADS = 4


#: Processes sharing this machine's cores, this one among them (:func:`share_cores`).
_sharing = 1


def share_cores(processes: int) -> int:
    """Declare that ``processes`` processes (this one among them: a batch run's workers) share the cores, so
    :func:`encode_threads` gives this one its share; returns the previous value (to restore it)."""
    global _sharing
    previous, _sharing = _sharing, max(1, processes)
    return previous


def encode_threads() -> int:
    """Threads :func:`encode_frames` uses: this process's share of the cores it may run on (:func:`share_cores`),
    at most :data:`MAX_ENCODE_THREADS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_ENCODE_THREADS, cores // _sharing))


def _encode_pool() -> DaemonPool:
    """The process's encoder pool (made on first use; a forked child makes its own)."""
    return shared_pool("rdstd-encode", encode_threads())


#: Raw bytes of input frames one encoder task takes (small frames are batched: a future per 96×96 frame costs
#: about what encoding it does; a 640×480 RGB frame, 900 KB, is a task of its own) ...
ENCODE_TASK_BYTES = 1024 * 1024
#: ... and at most this many frames.
MAX_TASK_FRAMES = 32


def task_frames(pixels: npt.NDArray[Any]) -> int:
    """Frames per encoder task for frames like ``pixels``: :data:`ENCODE_TASK_BYTES` of them, 1 to
    :data:`MAX_TASK_FRAMES`."""
    return max(1, min(MAX_TASK_FRAMES, ENCODE_TASK_BYTES // max(int(np.asarray(pixels).nbytes), 1)))


def encode_frames(
    frames: Iterable[npt.NDArray[Any]],
    codec: ImageCodec,
    *,
    jpeg_quality: int = 95,
    prepare: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None,
) -> Iterator[bytes]:
    """Encode ``frames`` (each first passed through ``prepare``, e.g. to canonical pixels) in order.

    The work runs on a small thread pool, a few frames per task (:func:`task_frames`), with a bounded window of
    tasks in flight, so memory stays at a few frames whatever the input's length. An error is raised at the
    position of the frame that caused it (frames before it are yielded first: a task that fails is encoded again
    here, frame by frame), so a caller counting frames can name it. With one core, runs inline.
    """

    def one(pixels: npt.NDArray[Any]) -> bytes:
        return encode(np.asarray(prepare(pixels) if prepare is not None else pixels), codec, jpeg_quality=jpeg_quality)

    def batch(chunk: list[npt.NDArray[Any]]) -> list[bytes]:
        return [one(pixels) for pixels in chunk]

    threads = encode_threads()
    if threads == 1:
        for pixels in frames:
            yield one(pixels)
        return
    pool = _encode_pool()
    window: deque[tuple[list[npt.NDArray[Any]], Future[list[bytes]]]] = deque()

    def done(chunk: list[npt.NDArray[Any]], future: Future[list[bytes]]) -> Iterator[bytes]:
        try:
            encoded = future.result()
        except Exception:
            for pixels in chunk:  # the failing frame raises at its own position
                yield one(pixels)
            raise  # (it did not fail again: the first error stands)
        yield from encoded

    size = 0
    chunk: list[npt.NDArray[Any]] = []
    try:
        for pixels in frames:
            if not chunk:
                size = task_frames(pixels)
            chunk.append(pixels)
            if len(chunk) >= size:
                window.append((chunk, pool.submit(batch, chunk)))
                chunk = []
            if len(window) >= 2 * threads + 2:
                yield from done(*window.popleft())
        if chunk:
            window.append((chunk, pool.submit(batch, chunk)))
        while window:
            yield from done(*window.popleft())
    finally:
        for _, pending in window:
            pending.cancel()

"""Decoding a batch of camera frames for training: in a thread pool, resized at decode time where the codec allows.

JPEG is decoded by simplejpeg (libjpeg-turbo, releases the GIL) at the smallest DCT scale (M/8, M = 1..8)
whose size is still at least the requested one, then resized to exactly the requested size with Pillow
(bilinear; the aspect ratio is not kept: ask for the size the model takes). PNG (and 16-bit depth) decode at full
size, then resize (depth with nearest neighbour: depth values are never blended). Video frames are decoded per
file in time order with the process's reused decoders (:data:`rdstd.store.video.DECODERS`, which seek to the
keyframe at or before a time and decode forward), so a window of consecutive frames is decoded in one pass.

Output is uint8 HWC (``layout="hwc"``) or float32 CHW in [0, 1] (``layout="chw"``; 16-bit depth keeps its raw
values as float32).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image

from rdstd.errors import CorruptDatasetError, CorruptSourceError, UsageError
from rdstd.schema.features import ImageFeature
from rdstd.schema.vocabulary import ColorOrder, ImageCodec
from rdstd.store import images, video

Layout = Literal["hwc", "chw"]
_REBUILD = "the dataset is damaged; rebuild it with rdstd convert"


@dataclass(frozen=True)
class ImageOptions:
    """How cameras come out of the loader: ``size`` (height, width) to resize to (None: as stored) and ``layout``
    (``hwc`` uint8, or ``chw`` float32 in [0, 1])."""

    size: tuple[int, int] | None = None
    layout: Layout = "hwc"

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) <= 0):
            raise UsageError(f"image size {self.size} is not (height, width) with both > 0")
        if self.layout not in ("hwc", "chw"):
            raise UsageError(f"image layout {self.layout!r} is not 'hwc' or 'chw'")

    def shape(self, feature: ImageFeature) -> tuple[int, ...]:
        """The shape of one decoded frame of ``feature``."""
        h, w = self.size or (feature.height, feature.width)
        return (feature.channels, h, w) if self.layout == "chw" else (h, w, feature.channels)

    def dtype(self, feature: ImageFeature) -> np.dtype[Any]:
        """The dtype of decoded frames of ``feature``."""
        if self.layout == "chw":
            return np.dtype(np.float32)
        return np.dtype(feature.dtype)


class _Pool:
    """A per-process thread pool (a forked worker makes its own)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pid = -1
        self._threads = 0

    def get(self, threads: int) -> ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid() or self._threads != threads:
            self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rdstd-decode")
            self._pid, self._threads = os.getpid(), threads
        return self._pool


_POOL = _Pool()


def decode_one(data: Any, feature: ImageFeature, options: ImageOptions, where: str) -> npt.NDArray[Any]:
    """Decode one stored frame (bytes or a buffer) to the options' size, HWC in the stored dtype."""
    try:
        if feature.codec == ImageCodec.JPEG and options.size is not None:
            h, w = options.size
            view = np.frombuffer(memoryview(data), np.uint8)
            colorspace = "GRAY" if feature.channels == 1 else "RGB"
            pixels: npt.NDArray[Any] = simplejpeg.decode_jpeg(view, colorspace=colorspace, min_height=h, min_width=w)
            if pixels.ndim == 2:
                pixels = pixels[:, :, None]
            if feature.color == ColorOrder.BGR:
                pixels = pixels[:, :, ::-1]
        else:
            pixels = images.decode_as(data, feature)
    except (ValueError, OSError, CorruptSourceError) as exc:
        reason = exc.message if isinstance(exc, CorruptSourceError) else str(exc)
        raise CorruptDatasetError(f"{where}: stored image is corrupt ({reason})", hint=_REBUILD) from exc
    return resize(pixels, options.size)


def resize(pixels: npt.NDArray[Any], size: tuple[int, int] | None) -> npt.NDArray[Any]:
    """``pixels`` (HWC) at exactly ``size`` (height, width): bilinear for 8-bit, nearest for 16-bit (depth)."""
    if size is None or pixels.shape[:2] == tuple(size):
        return pixels
    h, w = size
    if pixels.dtype != np.uint8:
        rows = (np.arange(h) * pixels.shape[0] // h).astype(np.intp)
        cols = (np.arange(w) * pixels.shape[1] // w).astype(np.intp)
        picked: npt.NDArray[Any] = pixels[rows[:, None], cols[None, :]]
        return picked
    channels = pixels.shape[2]
    image = Image.fromarray(np.ascontiguousarray(pixels if channels > 1 else pixels[:, :, 0]))
    out = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))
    return out if out.ndim == 3 else out[:, :, None]


def _place(out: npt.NDArray[Any], i: int, pixels: npt.NDArray[Any], layout: Layout) -> None:
    """Write one HWC frame into slot ``i`` of the batch ``out`` in its layout."""
    if layout == "chw":
        scale = np.float32(1 / 255) if pixels.dtype == np.uint8 else np.float32(1)
        np.multiply(pixels.transpose(2, 0, 1), scale, out=out[i], casting="unsafe")
    else:
        out[i] = pixels


def decode_stored(
    stored: Sequence[Any], feature: ImageFeature, options: ImageOptions, *, threads: int, where: str
) -> npt.NDArray[Any]:
    """Decode stored frames (buffers; None for padding, left zero) into one array (N, *options.shape)."""
    out = np.zeros((len(stored), *options.shape(feature)), dtype=options.dtype(feature))

    def work(i: int) -> None:
        _place(out, i, decode_one(stored[i], feature, options, f"{where}, frame {i} of the batch"), options.layout)

    todo = [i for i, data in enumerate(stored) if data is not None]
    if threads <= 1 or len(todo) <= 1:
        for i in todo:
            work(i)
    else:
        for _ in _POOL.get(threads).map(work, todo):
            pass
    return out


def decode_video(
    refs: Sequence[dict[str, Any] | None], root: Path, feature: ImageFeature, options: ImageOptions
) -> npt.NDArray[Any]:
    """Decode video frame references (None for padding, left zero) into one array (N, *options.shape).

    Requests are grouped by file and sorted by time, so each file's decoder seeks once per run of nearby frames
    and decodes forward; a frame asked for twice is decoded once.
    """
    out = np.zeros((len(refs), *options.shape(feature)), dtype=options.dtype(feature))
    order = sorted(
        (i for i, ref in enumerate(refs) if ref is not None),
        key=lambda i: (refs[i]["path"], refs[i]["timestamp_s"]),  # type: ignore[index]
    )
    for i in order:
        ref = refs[i]
        assert ref is not None
        decoder = video.DECODERS.get(video.resolve_ref(root, ref["path"]))
        _place(out, i, resize(decoder.frame_at(float(ref["timestamp_s"])), options.size), options.layout)
    return out

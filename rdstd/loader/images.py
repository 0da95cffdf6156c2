"""Decoding a batch of camera frames for training: in a thread pool, resized at decode time where the codec allows.

JPEG is decoded by simplejpeg (libjpeg-turbo, releases the GIL) at the smallest DCT scale (M/8, M = 1..8)
whose size is still at least the requested one, then resized to exactly the requested size with Pillow
(bilinear, or area averaging; the aspect ratio is not kept: ask for the size the model takes). PNG (and 16-bit
depth) decode at full size, then resize (depth with nearest neighbour: depth values are never blended). Video
frames are decoded per file in time order with the process's reused decoders (:data:`rdstd.media.video.DECODERS`,
which seek to the keyframe at or before a time and decode forward), so a window of consecutive frames is decoded
in one pass.

Output is uint8 HWC (``layout="hwc"``) or float32 CHW in [0, 1] (``layout="chw"``; 16-bit depth keeps its raw
values as float32).
"""

from __future__ import annotations

import os
import sys
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
from rdstd.io.remote import RemotePath
from rdstd.media import images, video
from rdstd.schema.features import ImageFeature
from rdstd.schema.vocabulary import ColorOrder, ImageCodec
from rdstd.store.reader import video_file

Layout = Literal["hwc", "chw"]
Resample = Literal["bilinear", "area", "nearest"]
_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX}
_REBUILD = "the dataset is damaged; rebuild it with rdstd convert"


@dataclass(frozen=True)
class ImageOptions:
    """How cameras come out of the loader: ``size`` (height, width) to resize to (None: as stored), ``layout``
    (``hwc`` uint8, or ``chw`` float32 in [0, 1]) and ``resample``: ``bilinear`` (antialiased: Pillow's, or
    torch's when the process has imported torch, ~3× cheaper), ``area`` (Pillow's box filter: each output pixel
    the mean of the input area it covers), or ``nearest`` (the cheapest; after JPEG DCT scaling the remaining
    step is under 2×, so aliasing stays small)."""

    size: tuple[int, int] | None = None
    layout: Layout = "hwc"
    resample: Resample = "bilinear"

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(self.size) <= 0):
            raise UsageError(
                f"image size {self.size} is not (height, width) with both > 0", situation="image-option-invalid"
            )
        if self.layout not in ("hwc", "chw"):
            raise UsageError(f"image layout {self.layout!r} is not 'hwc' or 'chw'", situation="image-option-invalid")
        if self.resample not in ("bilinear", "area", "nearest"):
            raise UsageError(
                f"resample {self.resample!r} is not 'bilinear', 'area' or 'nearest'", situation="image-option-invalid"
            )

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
    """Per-process thread pools, one per thread count (a forked worker makes its own)."""

    def __init__(self) -> None:
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._pid = -1

    def get(self, threads: int) -> ThreadPoolExecutor:
        if self._pid != os.getpid():
            self._pools, self._pid = {}, os.getpid()
        pool = self._pools.get(threads)
        if pool is None:
            pool = self._pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rdstd-decode")
        return pool


_POOL = _Pool()


def _torch() -> Any:
    """torch when this process has imported it already (a DataLoader worker does), else None: never imported here."""
    return sys.modules.get("torch")


def _pillow_resizes(options: ImageOptions) -> bool:
    """Whether a resize to ``options`` goes through Pillow (not nearest picking, nor torch's bilinear)."""
    if options.size is None or options.resample == "nearest":
        return False
    return options.resample != "bilinear" or _torch() is None


def _jpeg(
    data: Any, feature: ImageFeature, size: tuple[int, int] | None, buffer: Any = None, *, rgbx: bool = False
) -> npt.NDArray[Any]:
    """simplejpeg decode at the smallest DCT scale covering ``size`` (full size when None), RGB, gray, or RGBX
    when ``rgbx`` (for Pillow, which keeps RGB as 4 bytes a pixel: no conversion on the way in)."""
    view = np.frombuffer(memoryview(data), np.uint8)
    h, w = size or (0, 0)
    if feature.channels == 1:
        colorspace = "GRAY"
    else:
        colorspace = "RGBX" if rgbx and buffer is None else "RGB"
        colorspace = colorspace.replace("RGB", "BGR") if feature.color == ColorOrder.BGR else colorspace
    pixels: npt.NDArray[Any] = simplejpeg.decode_jpeg(
        view, colorspace=colorspace, min_height=h, min_width=w, buffer=buffer
    )
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def decode_one(
    data: Any, feature: ImageFeature, options: ImageOptions, where: str, into: npt.NDArray[Any] | None = None
) -> npt.NDArray[Any]:
    """Decode one stored frame (bytes or a buffer) to the options' size, HWC in the stored dtype (RGB: BGR
    cameras swapped). ``into``: a contiguous HWC array of the output's shape to decode (or resize, with torch)
    straight into."""
    h, w = options.size or (feature.height, feature.width)
    want = (h, w, feature.channels)
    try:
        if feature.codec == ImageCodec.JPEG:
            direct = into is not None and options.size is None and feature.color == ColorOrder.RGB
            pixels = _jpeg(data, feature, options.size, into if direct else None, rgbx=_pillow_resizes(options))
        else:
            pixels = images.decode_as(data, feature)
        rgbx = pixels.shape[2] == 4 and feature.channels == 3
        into = into if into is not None and into.shape == want and into.dtype == pixels.dtype else None
        pixels = resize(pixels, options.size, options.resample, drop_x=rgbx, into=into)
    except (ValueError, OSError, CorruptSourceError) as exc:
        reason = exc.message if isinstance(exc, CorruptSourceError) else str(exc)
        raise CorruptDatasetError(
            f"{where}: stored image is corrupt ({reason})", hint=_REBUILD, situation="image-corrupt"
        ) from exc
    if pixels.shape != want:
        raise CorruptDatasetError(
            f"{where}: stored image decodes to {pixels.shape}, the manifest says {want}",
            hint=_REBUILD,
            situation="image-size-mismatch",
        )
    return pixels


def resize(
    pixels: npt.NDArray[Any],
    size: tuple[int, int] | None,
    resample: str = "bilinear",
    *,
    drop_x: bool = False,
    into: npt.NDArray[Any] | None = None,
) -> npt.NDArray[Any]:
    """``pixels`` (HWC) at exactly ``size`` (height, width): bilinear, area or nearest for 8-bit, always nearest
    for 16-bit (depth values are never blended). ``drop_x``: ``pixels`` are RGBX (the JPEG decoder's output for
    Pillow), returned as RGB.

    Bilinear is Pillow's antialiased filter; when the process has imported torch (a DataLoader worker), torch's
    uint8 antialiased bilinear does it instead: the same filter (values within ±1 of Pillow's rounding), about 3×
    cheaper. torch is never imported for it; ``into`` (an HWC array of the result's shape) then receives it."""
    if size is None or pixels.shape[:2] == tuple(size):
        return pixels[:, :, :3] if drop_x else pixels
    h, w = size
    if pixels.dtype != np.uint8 or resample == "nearest":
        rows = ((np.arange(h) + 0.5) * pixels.shape[0] / h).astype(np.intp)  # pixel centres
        cols = ((np.arange(w) + 0.5) * pixels.shape[1] / w).astype(np.intp)
        picked: npt.NDArray[Any] = pixels.take(rows, axis=0).take(cols, axis=1)
        return picked[:, :, :3] if drop_x else picked
    torch = _torch() if resample == "bilinear" else None
    if torch is not None:
        return _torch_bilinear(torch, pixels[:, :, :3] if drop_x else pixels, h, w, into)
    channels = pixels.shape[2]
    if drop_x:  # RGBX from the JPEG decoder: Pillow's own layout, taken without a copy, packed to RGB in one pass
        size_wh = (pixels.shape[1], pixels.shape[0])
        image = Image.frombuffer("RGBX", size_wh, np.ascontiguousarray(pixels), "raw", "RGBX", 0, 1)
        small = image.resize((w, h), _FILTERS[resample])
        return np.frombuffer(small.tobytes("raw", "RGB"), np.uint8).reshape(h, w, 3)
    image = Image.fromarray(np.ascontiguousarray(pixels if channels > 1 else pixels[:, :, 0]))
    out = np.asarray(image.resize((w, h), _FILTERS[resample]))
    return out if out.ndim == 3 else out[:, :, None]


def _torch_bilinear(
    torch: Any, pixels: npt.NDArray[np.uint8], h: int, w: int, into: npt.NDArray[Any] | None
) -> npt.NDArray[np.uint8]:
    """torch's antialiased bilinear resize of a uint8 HWC frame: ``into`` filled (torch's copy from its planar
    result is cheaper than numpy's), or an HWC view of the planar result."""
    if not (pixels.flags.writeable and pixels.flags.c_contiguous):
        pixels = pixels.copy()
    planar = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    small = torch.nn.functional.interpolate(planar, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    if into is not None and into.flags.writeable:
        torch.from_numpy(into).permute(2, 0, 1).copy_(small[0])
        return into
    out: npt.NDArray[np.uint8] = small[0].permute(1, 2, 0).numpy()
    return out


def _place(out: npt.NDArray[Any], i: int, pixels: npt.NDArray[Any], layout: Layout) -> None:
    """Write one HWC frame into slot ``i`` of the batch ``out`` in its layout (nothing when decoded in place)."""
    if layout == "chw":
        scale = np.float32(1 / 255) if pixels.dtype == np.uint8 else np.float32(1)
        np.multiply(pixels.transpose(2, 0, 1), scale, out=out[i], casting="unsafe")
    elif not np.shares_memory(out[i], pixels):
        out[i] = pixels


def decode_stored(
    out: npt.NDArray[Any],
    slots: npt.NDArray[np.intp],
    stored: Sequence[Any],
    feature: ImageFeature,
    options: ImageOptions,
    *,
    threads: int,
    where: str,
) -> None:
    """Decode ``stored[k]`` (buffers) into ``out[slots[k]]`` (a batch of ``options.shape``), in the thread pool."""

    def work(k: int) -> None:
        slot = int(slots[k])
        into = out[slot] if options.layout == "hwc" else None
        pixels = decode_one(stored[k], feature, options, f"{where}, frame {slot} of the batch", into)
        _place(out, slot, pixels, options.layout)

    if threads <= 1 or len(stored) <= 1:
        for k in range(len(stored)):
            work(k)
    else:
        for _ in _POOL.get(threads).map(work, range(len(stored))):
            pass


def decode_video(
    out: npt.NDArray[Any],
    slots: npt.NDArray[np.intp],
    refs: Sequence[dict[str, Any]],
    root: Path | RemotePath,
    feature: ImageFeature,
    options: ImageOptions,
) -> None:
    """Decode video frame references ``refs[k]`` into ``out[slots[k]]``.

    Requests are grouped by file and sorted by time, so each file's decoder seeks once per run of nearby frames
    and decodes forward.
    """
    order = sorted(range(len(refs)), key=lambda k: (refs[k]["path"], refs[k]["timestamp_s"]))
    # bilinear scaling happens in FFmpeg's conversion to RGB (swscale), not on a full-size RGB copy after it
    scaled = options.size if options.resample == "bilinear" else None
    for k in order:
        ref = refs[k]
        decoder = video.DECODERS.get(video_file(root, ref["path"]))
        pixels = resize(decoder.frame_at(float(ref["timestamp_s"]), scaled), options.size, options.resample)
        _place(out, int(slots[k]), pixels, options.layout)

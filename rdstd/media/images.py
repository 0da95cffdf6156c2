"""Image encoding and decoding for the store.

JPEG goes through simplejpeg (libjpeg-turbo, releases the GIL: ~680 frames/s per core at 640×480 here);
PNG (lossless, 8- or 16-bit) through Pillow. Bytes that are already JPEG or PNG are never re-encoded.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import simplejpeg
from PIL import Image
from typing_extensions import Buffer

from rdstd.errors import CorruptSourceError, EpisodeError, UsageError
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
        out = io.BytesIO()
        if pixels.dtype == np.uint16:
            if channels != 1:
                raise EpisodeError(
                    f"16-bit PNG is supported for one channel (depth) only, got {channels}",
                    situation="image-channels-invalid",
                )
            image = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]).astype("<u2"))
        elif pixels.dtype == np.uint8:
            image = Image.fromarray(np.ascontiguousarray(pixels if channels > 1 else pixels[:, :, 0]))
        else:
            raise EpisodeError(f"PNG needs uint8 or uint16 pixels, got {pixels.dtype}", situation="image-dtype-invalid")
        try:
            image.save(out, format="PNG", compress_level=1)
        except (ValueError, OSError) as exc:
            raise EpisodeError(f"the image does not encode as PNG ({exc})", situation="image-unencodable") from exc
        return out.getvalue()
    raise UsageError(
        f"cannot encode single images as {codec}", hint="use jpeg or png", situation="image-codec-unsupported"
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

"""From decoded ROS messages to numbers: header stamps, field paths, joint selection by name, images, transforms."""

from __future__ import annotations

import io
import re
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import EpisodeError, MappingError

_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[[0-9:\-]*\])*)$")
_INDEX = re.compile(r"\[([0-9:\-]*)\]")

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"
TF_TYPES = ("tf2_msgs/msg/TFMessage", "tf/msg/tfMessage")
STRING = "std_msgs/msg/String"

#: Raw image encodings: numpy dtype, channels, whether channels are BGR(A).
ENCODINGS: dict[str, tuple[str, int, bool]] = {
    "rgb8": ("uint8", 3, False),
    "bgr8": ("uint8", 3, True),
    "rgba8": ("uint8", 4, False),
    "bgra8": ("uint8", 4, True),
    "mono8": ("uint8", 1, False),
    "8UC1": ("uint8", 1, False),
    "8UC3": ("uint8", 3, False),
    "mono16": ("uint16", 1, False),
    "16UC1": ("uint16", 1, False),
    "32FC1": ("float32", 1, False),
}


def stamp_ns(msg: Any) -> int | None:
    """The message's ``header.stamp`` in ns (a TF message: its first transform's), None when it has none."""
    try:  # the common case: a ROS 2 header
        stamp = msg.header.stamp
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    except AttributeError:
        pass
    header = getattr(msg, "header", None)
    if header is None:
        transforms = getattr(msg, "transforms", None)
        if transforms:
            header = transforms[0].header
    if header is None:
        return None
    stamp = header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(getattr(stamp, "nanosec", getattr(stamp, "nsec", 0)))


def parse_path(path: str) -> list[tuple[str, list[str]]]:
    """``a.b[0].c[0:7]`` as steps (name, [index texts]); a MappingError names what is wrong."""
    steps = []
    for part in path.split("."):
        match = _STEP.match(part)
        if not match:
            raise MappingError(
                f"field path {path!r}: cannot read {part!r}",
                hint="write it like position[0:7] or pose.position.x",
                situation="field-path-invalid",
            )
        steps.append((match.group(1), _INDEX.findall(match.group(2))))
    return steps


def _index(value: Any, text: str) -> Any:
    if ":" in text:
        lo, _, hi = text.partition(":")
        return value[int(lo) if lo else None : int(hi) if hi else None]
    return value[int(text)]


def resolve(msg: Any, steps: list[tuple[str, list[str]]]) -> Any:
    """The value a parsed field path names in ``msg``."""
    value = msg
    for name, indexes in steps:
        if not hasattr(value, name):
            have = ", ".join(k for k in getattr(value, "__dataclass_fields__", {}) if not k.startswith("_"))
            raise MappingError(f"no field {name!r} (the message has: {have or 'no fields'})", situation="field-missing")
        value = getattr(value, name)
        for text in indexes:
            value = _index(value, text)
    return value


def to_vector(value: Any) -> npt.NDArray[Any]:
    """A field's value as a 1-d numeric array: numbers, arrays, and messages of numbers (x, y, z[, w]) alike."""
    if isinstance(value, np.ndarray):
        return value.reshape(-1)
    if isinstance(value, bool | int | float | np.number):
        return np.asarray([value])
    if isinstance(value, list | tuple):
        return np.concatenate([to_vector(v) for v in value]) if value else np.zeros(0)
    fields = [k for k in getattr(value, "__dataclass_fields__", {}) if not k.startswith("_")]
    if fields:
        return np.concatenate([to_vector(getattr(value, k)) for k in fields])
    raise MappingError(f"a {type(value).__name__} value is not numeric", situation="field-not-numeric")


def joint_columns(names: list[str], wanted: list[str], where: str) -> list[int]:
    """Positions of ``wanted`` joints in a JointState's ``names``; a missing joint is an error naming it."""
    missing = [w for w in wanted if w not in names]
    if missing:
        raise EpisodeError(
            f"{where}: joint(s) {', '.join(missing)} not in the message (it has: {', '.join(names)})",
            situation="joint-missing",
        )
    return [names.index(w) for w in wanted]


def image_codec(data: bytes) -> str:
    """``jpeg`` or ``png`` from the bytes themselves (a CompressedImage ``format`` is free text)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return ""


def encoded_shape(data: bytes) -> tuple[int, ...]:
    """(H, W, C) of an encoded image, read from its header by Pillow."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        channels = {"L": 1, "I;16": 1, "RGB": 3, "RGBA": 4, "LA": 2, "P": 3}.get(img.mode, 3)
        return (img.height, img.width, channels)


#: Bayer encodings (cv_bridge names): the colour of the top-left 2×2 cell, row by row.
BAYER: dict[str, str] = {
    f"bayer_{pattern}{bits}": pattern for pattern in ("rggb", "bggr", "gbrg", "grbg") for bits in ("8", "16")
}


def demosaic(mosaic: npt.NDArray[Any], pattern: str) -> npt.NDArray[Any]:
    """Bilinear demosaicing of a Bayer ``mosaic`` (H, W) with ``pattern`` (``rggb``…) to (H, W, 3) RGB, same dtype.

    Each missing sample is the mean of its nearest same-colour neighbours (green: the 4 edge neighbours; red and
    blue: the 2 or 4 nearest). The edges are mirrored, which keeps the 2×2 pattern, so a uniform colour comes back
    exact everywhere.
    """
    h, w = mosaic.shape
    if h < 2 or w < 2:
        raise EpisodeError(
            f"a {h}×{w} Bayer image is too small to demosaic",
            hint="leave the topic out of the plan",
            situation="bayer-image-too-small",
        )
    values = mosaic.astype(np.float64)
    colour = np.empty((h, w), dtype=np.int8)
    index = {"r": 0, "g": 1, "b": 2}
    for k, letter in enumerate(pattern):
        colour[k // 2 :: 2, k % 2 :: 2] = index[letter]
    out = np.empty((h, w, 3), dtype=np.float64)
    for c in range(3):
        mask = (colour == c).astype(np.float64)
        total = _blur(values * mask)
        count = _blur(mask)
        out[..., c] = np.where(mask > 0, values, total / np.maximum(count, 1e-12))
    if np.issubdtype(mosaic.dtype, np.integer):
        info = np.iinfo(mosaic.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(mosaic.dtype)
    return out.astype(mosaic.dtype)


def _blur(plane: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Sum of each sample's 3×3 neighbourhood weighted [[1,2,1],[2,4,2],[1,2,1]] (mirrored edges)."""
    padded = np.pad(plane, 1, mode="reflect")
    rows = padded[:-2] + 2 * padded[1:-1] + padded[2:]
    result: npt.NDArray[np.float64] = rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]
    return result


#: ``compressed_depth_image_transport``'s header before the PNG: int32 format, float32 depthQuantA, depthQuantB.
DEPTH_HEADER = 12


def is_compressed_depth(msg: Any) -> bool:
    """Whether a CompressedImage is ``compressedDepth`` (its format says so, e.g. ``16UC1; compressedDepth png``)."""
    return "compresseddepth" in str(getattr(msg, "format", "")).lower()


def compressed_depth(msg: Any, where: str) -> npt.NDArray[Any]:
    """A ``compressedDepth`` CompressedImage as (H, W) depth: ``16UC1`` as the stored uint16 (millimetres, REP 118),
    ``32FC1`` as float32 metres from the quantized inverse depth (``A / (v - B)``; v = 0 is no reading: NaN).

    The samples after the 12-byte header are a 16-bit PNG, or with ``compressedDepth rvl`` (ROS 2 and Noetic's
    ``compressed_depth_image_transport``) uint32 width and height and an RVL stream (:func:`rvl_decode`).
    """
    fmt = str(msg.format)
    encoding = fmt.split(";", maxsplit=1)[0].strip()
    data = (
        bytes(msg.data)
        if isinstance(msg.data, bytes | bytearray | memoryview)
        else np.asarray(msg.data, dtype=np.uint8).tobytes()
    )
    rvl = "compresseddepth rvl" in fmt.lower()
    if encoding not in ("16UC1", "32FC1") or (not rvl and image_codec(data[DEPTH_HEADER:]) != "png"):
        raise EpisodeError(
            f"{where}: compressedDepth format {fmt!r} is not read (read: 16UC1 or 32FC1 with a "
            f"{DEPTH_HEADER}-byte header before a PNG or an RVL stream)",
            hint="leave the topic out of the plan, or republish it as PNG compressedDepth or a raw Image",
            situation="depth-format-unsupported",
        )
    quantized = _depth_rvl(data, where) if rvl else _depth_png(data, where)
    if encoding == "16UC1":
        return quantized
    _, quant_a, quant_b = struct.unpack("<iff", data[:DEPTH_HEADER])
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (np.float32(quant_a) / (quantized.astype(np.float32) - np.float32(quant_b))).astype(np.float32)
    depth[quantized == 0] = np.nan
    return depth


def _depth_png(data: bytes, where: str) -> npt.NDArray[np.uint16]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data[DEPTH_HEADER:])) as img:
            quantized = np.asarray(img)
    except (OSError, ValueError) as exc:
        raise EpisodeError(
            f"{where}: a compressedDepth PNG does not decode ({exc})",
            hint="the message is damaged; skip the episode with --on-error skip",
            situation="depth-png-undecodable",
        ) from exc
    if quantized.ndim != 2:
        raise EpisodeError(
            f"{where}: a compressedDepth PNG holds {quantized.shape} samples, not one channel",
            hint="the topic is not depth; map it as a colour image or leave it out of the plan",
            situation="depth-png-channels-invalid",
        )
    return quantized.astype(np.uint16)


#: Largest width or height an RVL header may state (a damaged header must not allocate gigabytes).
RVL_MAX_SIDE = 1 << 15


def _depth_rvl(data: bytes, where: str) -> npt.NDArray[np.uint16]:
    body = data[DEPTH_HEADER:]
    if len(body) < 8:
        raise EpisodeError(
            f"{where}: a compressedDepth RVL message holds {len(body)} bytes after its header, not even its size",
            hint="the message is damaged; skip the episode with --on-error skip",
            situation="depth-rvl-undecodable",
        )
    width, height = struct.unpack("<II", body[:8])
    if not (0 < width <= RVL_MAX_SIDE and 0 < height <= RVL_MAX_SIDE):
        raise EpisodeError(
            f"{where}: a compressedDepth RVL message states a {width}x{height} image",
            hint="the message is damaged; skip the episode with --on-error skip",
            situation="depth-rvl-undecodable",
        )
    try:
        return rvl_decode(body[8:], width * height).reshape(height, width)
    except ValueError as exc:
        raise EpisodeError(
            f"{where}: a compressedDepth RVL stream does not decode ({exc})",
            hint="the message is damaged; skip the episode with --on-error skip",
            situation="depth-rvl-undecodable",
        ) from exc


def rvl_decode(stream: bytes, pixels: int) -> npt.NDArray[np.uint16]:
    """``pixels`` uint16 samples from an RVL stream (A. D. Wilson, "Fast Lossless Depth Image Compression", 2017,
    as ``compressed_depth_image_transport`` writes it); a ValueError says why a stream is damaged.

    The stream is little-endian 32-bit words, each holding 8 nibbles read from the most significant; a value is a
    run of nibbles whose top bit says "more follows", the low 3 bits of each (least significant group first). The
    values alternate: a count of zero samples, a count of non-zero samples, then for each non-zero sample its
    difference from the previous non-zero sample, zigzag-coded (``(d << 1) ^ (d >> 31)``), the previous starting
    at 0 and carried across runs; samples wrap at 16 bits. Padding nibbles after the last value are 0.
    """
    if len(stream) % 4:
        raise ValueError(f"{len(stream)} bytes is not a whole number of 32-bit words")
    words = np.frombuffer(stream, dtype="<u4").astype(np.uint32)
    nibbles = ((words[:, None] >> np.arange(28, -1, -4, dtype=np.uint32)) & 0xF).reshape(-1)
    last = nibbles < 8  # the nibble that ends a value
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    if len(ends) == 0:
        raise ValueError("no complete value")
    value_of = np.concatenate([[0], np.cumsum(last[: ends[-1]])])  # which value each nibble belongs to
    place = np.arange(ends[-1] + 1) - starts[value_of]
    if place.max() > 10:  # 11 nibbles hold 33 bits: more than any count or difference needs
        raise ValueError("a value runs over more than 11 nibbles")
    coded = np.add.reduceat((nibbles[: ends[-1] + 1] & 7).astype(np.int64) << (3 * place), starts)
    values = coded.tolist()
    runs: list[int] = []  # zero count, non-zero count, alternating
    firsts: list[int] = []  # where each run's differences start among the values
    at = filled = 0
    while filled < pixels:
        if at + 2 > len(values):
            raise ValueError(f"the stream ends after {filled} of {pixels} samples")
        zeros, nonzeros = values[at], values[at + 1]
        if nonzeros > len(values) - at - 2:
            raise ValueError(f"the stream ends after {filled} of {pixels} samples")
        runs += (zeros, nonzeros)
        firsts.append(at + 2)
        filled += zeros + nonzeros
        at += 2 + nonzeros
    if filled != pixels:
        raise ValueError(f"its runs hold {filled} samples, the image {pixels}")
    counts = np.asarray(runs[1::2], dtype=np.int64)
    before = np.cumsum(counts) - counts  # differences of the runs before each run
    positive = coded[np.arange(int(counts.sum())) + np.repeat(np.asarray(firsts, dtype=np.int64) - before, counts)]
    delta = (positive >> 1) ^ -(positive & 1)
    out = np.zeros(pixels, dtype=np.uint16)
    nonzero = np.repeat(np.tile([False, True], len(runs) // 2), runs)
    out[nonzero] = (np.cumsum(delta) & 0xFFFF).astype(np.uint16)
    return out


def raw_image(msg: Any, where: str) -> npt.NDArray[Any]:
    """A ``sensor_msgs/Image`` as (H, W, C) RGB(A) or (H, W) depth/mono, honouring ``step`` padding and byte order;
    Bayer images are demosaiced (bilinear, :func:`demosaic`) to RGB."""
    encoding = str(msg.encoding)
    if encoding in BAYER:
        bits = np.uint16 if encoding.endswith("16") else np.uint8
        mosaic = _pixels(msg, where, np.dtype(bits), 1)[..., 0]
        return demosaic(mosaic, BAYER[encoding])
    if encoding not in ENCODINGS:
        raise EpisodeError(
            f"{where}: image encoding {encoding!r} is not read (read: {', '.join([*ENCODINGS, *BAYER])})",
            hint="leave the topic out of the plan",
            situation="image-encoding-unsupported",
        )
    dtype_name, channels, bgr = ENCODINGS[encoding]
    pixels = _pixels(msg, where, np.dtype(dtype_name), channels)
    if bgr:
        pixels = pixels[..., [2, 1, 0, 3][:channels]]
    return pixels[..., 0] if channels == 1 else pixels


def _pixels(msg: Any, where: str, base: np.dtype[Any], channels: int) -> npt.NDArray[Any]:
    """(H, W, channels) samples of a raw image, ``step`` padding dropped, in native byte order."""
    dtype = base.newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * dtype.itemsize
    data = np.frombuffer(np.asarray(msg.data, dtype=np.uint8).tobytes(), dtype=np.uint8)
    if step < row_bytes or data.size < step * h:
        raise EpisodeError(
            f"{where}: image data holds {data.size} bytes, {h} rows of step {step} need {step * h}",
            situation="image-data-short",
        )
    rows = data[: step * h].reshape(h, step)[:, :row_bytes]
    pixels: npt.NDArray[Any] = (
        np.ascontiguousarray(rows).view(dtype).reshape(h, w, channels).astype(dtype.newbyteorder("="))
    )
    return pixels


def transforms(msg: Any) -> list[tuple[str, str, int, list[float], list[float]]]:
    """(parent, child, stamp ns, translation, rotation xyzw) of each transform in a TF message."""
    out = []
    for tr in msg.transforms:
        t, r = tr.transform.translation, tr.transform.rotation
        stamp = tr.header.stamp
        ns = int(stamp.sec) * 1_000_000_000 + int(getattr(stamp, "nanosec", getattr(stamp, "nsec", 0)))
        out.append((tr.header.frame_id, tr.child_frame_id, ns, [t.x, t.y, t.z], [r.x, r.y, r.z, r.w]))
    return out

"""From decoded ROS messages to numbers: header stamps, field paths, joint selection by name, images, transforms."""

from __future__ import annotations

import io
import re
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


def raw_image(msg: Any, where: str) -> npt.NDArray[Any]:
    """A ``sensor_msgs/Image`` as (H, W, C) RGB(A) or (H, W) depth/mono, honouring ``step`` padding and byte order."""
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS:
        raise EpisodeError(
            f"{where}: image encoding {encoding!r} is not read (read: {', '.join(ENCODINGS)})",
            hint="Bayer and other encodings need demosaicing; leave the topic out of the plan",
            situation="image-encoding-unsupported",
        )
    dtype_name, channels, bgr = ENCODINGS[encoding]
    dtype = np.dtype(dtype_name).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * dtype.itemsize
    data = np.frombuffer(np.asarray(msg.data, dtype=np.uint8).tobytes(), dtype=np.uint8)
    if step < row_bytes or data.size < step * h:
        raise EpisodeError(
            f"{where}: image data holds {data.size} bytes, {h} rows of step {step} need {step * h}",
            situation="image-data-short",
        )
    rows = data[: step * h].reshape(h, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(h, w, channels).astype(dtype.newbyteorder("="))
    if bgr:
        pixels = pixels[..., [2, 1, 0, 3][:channels]]
    return pixels[..., 0] if channels == 1 else pixels


def transforms(msg: Any) -> list[tuple[str, str, int, list[float], list[float]]]:
    """(parent, child, stamp ns, translation, rotation xyzw) of each transform in a TF message."""
    out = []
    for tr in msg.transforms:
        t, r = tr.transform.translation, tr.transform.rotation
        stamp = tr.header.stamp
        ns = int(stamp.sec) * 1_000_000_000 + int(getattr(stamp, "nanosec", getattr(stamp, "nsec", 0)))
        out.append((tr.header.frame_id, tr.child_frame_id, ns, [t.x, t.y, t.z], [r.x, r.y, r.z, r.w]))
    return out

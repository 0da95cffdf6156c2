"""Small bags written with rosbags' writers: a 1 s arm recording (joints 100 Hz, camera 10 Hz, TF 50 Hz) in ROS 1,
rosbag2 sqlite3 and MCAP, with knobs for the edge cases (clock reset, zero stamps, custom types)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

T0 = 1_700_000_000_000_000_000
JOINTS = ["j1", "j2", "j3"]
PLAN = """\
master: {topic: /cam/compressed, clock: header}
streams:
  joints: {topic: /joint_states, field: position, names: [j1, j2, j3], clock: header, method: interpolate,
           max_age_ms: 15}
  cam: {topic: /cam/compressed, clock: header, method: nearest, max_age_ms: 1}
  ee: {tf: {target: base, source: tool, max_extrapolation_ms: 5}}
task: {topic: /task}
"""


def joint_positions(t: float) -> list[float]:
    """The fixture's joint trajectory (rad) at ``t`` seconds after T0."""
    return [math.sin(2 * math.pi * 0.5 * t), 0.5 * t, math.cos(2 * math.pi * 0.25 * t)]


def tool_xyz(t: float) -> list[float]:
    """base -> tool translation at ``t``."""
    return [0.3 + 0.1 * t, 0.0, 0.2]


def jpeg(k: int) -> bytes:
    """A distinct small JPEG per frame."""
    pixels = np.full((16, 24, 3), (k * 7) % 256, dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _stores(ros2: bool) -> Any:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    if ros2:
        return get_typestore(Stores.ROS2_HUMBLE)
    ts = get_typestore(Stores.ROS1_NOETIC)
    ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    return ts


def _header(ts: Any, ns: int, frame: str, ros2: bool) -> Any:
    time_type = ts.types["builtin_interfaces/msg/Time"]
    header_type = ts.types["std_msgs/msg/Header"]
    stamp = time_type(sec=ns // 10**9, nanosec=ns % 10**9)
    return header_type(stamp=stamp, frame_id=frame) if ros2 else header_type(seq=0, stamp=stamp, frame_id=frame)


def messages(
    ts: Any,
    ros2: bool,
    *,
    seconds: float = 1.0,
    stamp: Callable[[str, int], int] | None = None,
    events: Sequence[float] = (),
    pause: tuple[float, float] | None = None,
    edit: Callable[[str, int, Any], Any] | None = None,
) -> list[tuple[str, str, int, Any]]:
    """(topic, msgtype, receive ns, message) for the fixture recording; ``stamp(topic, ns)`` may alter header stamps,
    ``events`` are the receive times (s after T0) of ``/episode_start`` String messages, ``pause`` = (a, b) leaves
    out every message received from a to b s after T0 (a recording paused), and ``edit(topic, k, msg)`` may replace
    the ``k``-th message of a topic (e.g. a JointState with its names in another order)."""
    types = ts.types
    fix = stamp or (lambda topic, ns: ns)
    out: list[tuple[str, str, int, Any]] = []
    out.append(("/task", "std_msgs/msg/String", T0, types["std_msgs/msg/String"](data="stack the cups")))
    static = types["geometry_msgs/msg/TransformStamped"](
        header=_header(ts, T0, "world", ros2),
        child_frame_id="base",
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=1.0),
            rotation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
    )
    out.append(("/tf_static", "tf2_msgs/msg/TFMessage", T0, types["tf2_msgs/msg/TFMessage"](transforms=[static])))
    for k in range(int(100 * seconds)):
        ns = T0 + k * 10_000_000
        msg = types["sensor_msgs/msg/JointState"](
            header=_header(ts, fix("/joint_states", ns), "", ros2),
            name=list(reversed(JOINTS)),  # published in another order than the plan asks for
            position=np.array(list(reversed(joint_positions(k / 100))), dtype=np.float64),
            velocity=np.zeros(3),
            effort=np.zeros(3),
        )
        out.append(("/joint_states", "sensor_msgs/msg/JointState", ns + 1_000_000, msg))
    for k in range(int(50 * seconds)):
        ns = T0 + k * 20_000_000
        x, y, z = tool_xyz(k / 50)
        tr = types["geometry_msgs/msg/TransformStamped"](
            header=_header(ts, fix("/tf", ns), "base", ros2),
            child_frame_id="tool",
            transform=types["geometry_msgs/msg/Transform"](
                translation=types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
                rotation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            ),
        )
        out.append(("/tf", "tf2_msgs/msg/TFMessage", ns + 2_000_000, types["tf2_msgs/msg/TFMessage"](transforms=[tr])))
    for k in range(int(10 * seconds)):
        ns = T0 + 50_000_000 + k * 100_000_000
        msg = types["sensor_msgs/msg/CompressedImage"](
            header=_header(ts, fix("/cam/compressed", ns), "cam", ros2),
            format="jpeg",
            data=np.frombuffer(jpeg(k), dtype=np.uint8),
        )
        out.append(("/cam/compressed", "sensor_msgs/msg/CompressedImage", ns + 5_000_000, msg))
    for at in events:
        ns = T0 + int(at * 1e9)
        out.append(("/episode_start", "std_msgs/msg/String", ns, types["std_msgs/msg/String"](data="start")))
    if pause is not None:
        lo, hi = T0 + int(pause[0] * 1e9), T0 + int(pause[1] * 1e9)
        out = [m for m in out if not lo <= m[2] < hi]
    if edit is not None:
        seen: dict[str, int] = {}
        for position, (topic, msgtype, t, msg) in enumerate(out):
            k = seen[topic] = seen.get(topic, -1) + 1
            out[position] = (topic, msgtype, t, edit(topic, k, msg))
    out.sort(key=lambda m: m[2])
    return out


def write_bag(
    path: Path, kind: str = "ros1", corrupt: Callable[[str, int, bytes], bytes] | None = None, **options: Any
) -> Path:
    """Write the fixture recording as ``kind``: ``ros1`` (path.bag), ``db3`` or ``mcap`` (a rosbag2 folder);
    ``corrupt(topic, k, data)`` may change the serialized bytes of a topic's ``k``-th message (``options``: see
    :func:`messages`)."""
    ros2 = kind != "ros1"
    ts = _stores(ros2)
    msgs = messages(ts, ros2, **options)
    if corrupt is not None:
        serialize = ts.serialize_cdr if ros2 else ts.serialize_ros1
        seen: dict[str, int] = {}
        for position, (topic, msgtype, t, msg) in enumerate(msgs):
            k = seen[topic] = seen.get(topic, -1) + 1
            msgs[position] = (topic, msgtype, t, _Serialized(corrupt(topic, k, bytes(serialize(msg, msgtype)))))
    if not ros2:
        from rosbags.rosbag1 import Writer as Writer1

        w1 = Writer1(path)
        w1.open()
        conns1: dict[str, Any] = {}
        for topic, msgtype, t, msg in msgs:
            if topic not in conns1:
                conns1[topic] = w1.add_connection(topic, msgtype, typestore=ts)
            w1.write(conns1[topic], t, msg.data if isinstance(msg, _Serialized) else ts.serialize_ros1(msg, msgtype))
        w1.close()
        return path
    from rosbags.rosbag2 import StoragePlugin, Writer

    plugin = StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3
    w2 = Writer(path, version=9, storage_plugin=plugin)
    w2.open()
    conns2: dict[str, Any] = {}
    for topic, msgtype, t, msg in msgs:
        if topic not in conns2:
            conns2[topic] = w2.add_connection(topic, msgtype, typestore=ts)
        w2.write(conns2[topic], t, msg.data if isinstance(msg, _Serialized) else ts.serialize_cdr(msg, msgtype))
    w2.close()
    return path


class _Serialized:
    """A message already serialized (and changed by ``write_bag``'s ``corrupt``)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def with_plan(bag: Path, plan: str = PLAN) -> Path:
    """Write ``plan`` as the bag's ``<bag>.rdstd.yaml`` sidecar; returns the bag."""
    (bag.parent / (bag.name + ".rdstd.yaml")).write_text(plan)
    return bag


def rvl_encode(samples: Sequence[int]) -> bytes:
    """An RVL stream of uint16 ``samples`` (the encoder of ``compressed_depth_image_transport``, in Python): zero
    and non-zero run lengths, zigzag differences of the non-zero samples, as 3-bit groups with a "more" bit, 8 nibbles
    to a little-endian 32-bit word from its most significant nibble."""
    nibbles: list[int] = []

    def put(value: int) -> None:
        while True:
            nibble, value = value & 7, value >> 3
            nibbles.append(nibble | 8 if value else nibble)
            if not value:
                return

    previous, at, count = 0, 0, len(samples)
    while at < count:
        start = at
        while at < count and samples[at] == 0:
            at += 1
        put(at - start)
        start = at
        while at < count and samples[at] != 0:
            at += 1
        put(at - start)
        for sample in samples[start:at]:
            delta = int(sample) - previous
            put(((delta << 1) ^ (delta >> 31)) & 0xFFFFFFFF)
            previous = int(sample)
    nibbles += [0] * (-len(nibbles) % 8)
    words = [sum(n << (28 - 4 * k) for k, n in enumerate(nibbles[w : w + 8])) for w in range(0, len(nibbles), 8)]
    return np.asarray(words, dtype="<u4").tobytes()


def compressed_depth_rvl(depth: Any, quant_a: float = 0.0, quant_b: float = 0.0) -> bytes:
    """A ``compressedDepth rvl`` message's data: the 12-byte header (format, depthQuantA, depthQuantB), uint32
    width and height, and the RVL stream of the (H, W) uint16 samples."""
    import struct

    height, width = depth.shape
    header = struct.pack("<iff", 0, quant_a, quant_b) + struct.pack("<II", width, height)
    return header + rvl_encode(np.asarray(depth, dtype=np.uint16).reshape(-1).tolist())

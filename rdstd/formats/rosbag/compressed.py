"""``sensor_msgs/CompressedImage`` messages taken straight from their serialized bytes.

A camera topic's messages are alike: the same frame id and format, only the stamp and the encoded bytes change.
Its first message is decoded by rosbags, as every other message; its serialized skeleton (ROS 1, or
little-endian CDR) is then worked out once (:func:`skeleton`) and checked against the decoded message. A later
message whose frame id and format bytes are the first message's is taken as it is: its stamp read at its fixed
place, its encoded bytes handed to the frame spill as a view of the message (no decode, no copy). A message that
differs in anything (another frame id or format, a length that does not add up) is decoded by rosbags like any
other, in its place in the stream; one that does not decode is counted as failed in the ledger, as before.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rdstd.formats.rosbag.bag import Raw
from rdstd.formats.rosbag.fields import stamp_ns
from rdstd.formats.rosbag.frames import FrameSpill
from rdstd.formats.rosbag.ledger import DecodeFallback
from rdstd.formats.rosbag.spill import TimeLog

_U32 = struct.Struct("<I").unpack_from
_STAMP = struct.Struct("<iI").unpack_from
#: Little-endian CDR's encapsulation header (the two option bytes after it are not checked).
_CDR_LE = b"\x00\x01"


@dataclass(frozen=True)
class Skeleton:
    """What every message of a camera topic shares: its container's layout, and the frame id and format fields
    exactly as serialized (length prefix and padding included)."""

    ros2: bool
    #: The bytes from the frame id's length prefix to the data's length prefix (frame id, format, padding).
    middle: bytes


def _data_at(raw: Raw, ros2: bool) -> tuple[int, int, int] | None:
    """(end of the stamp, start, stop) of the encoded bytes in a serialized CompressedImage, or None when its
    lengths do not add up to the message."""
    size = len(raw)
    if ros2:
        if size < 20 or raw[:2] != _CDR_LE:
            return None
        pos = 12  # encapsulation (4), stamp sec and nanosec (8)
    else:
        if size < 16:
            return None
        pos = 12  # seq, stamp secs and nsecs
    for _ in range(2):  # frame id, then format
        if pos + 4 > size:
            return None
        pos += 4 + _U32(raw, pos)[0]
        if ros2:
            pos += -(pos - 4) % 4  # CDR aligns the next length prefix to 4 (from the end of the encapsulation)
    if pos + 4 > size:
        return None
    start = pos + 4
    stop = start + _U32(raw, pos)[0]
    if stop != size:
        return None
    return 12, start, stop


def skeleton(msg: Any, raw: Raw, ros2: bool) -> Skeleton | None:
    """The topic's skeleton from its first message (decoded ``msg`` and its bytes ``raw``), or None when the
    bytes are not laid out as expected (then every message is decoded by rosbags)."""
    found = _data_at(raw, ros2)
    if found is None:
        return None
    stamp_end, start, stop = found
    if _stamp(raw, ros2) != stamp_ns(msg):
        return None
    if bytes(raw[start:stop]) != np.asarray(msg.data, dtype=np.uint8).tobytes():
        return None
    return Skeleton(ros2, bytes(raw[stamp_end : start - 4]))


def _stamp(raw: Raw, ros2: bool) -> int:
    sec, nsec = _STAMP(raw, 4)  # after the CDR encapsulation; after the ROS 1 seq
    return int(sec) * 1_000_000_000 + int(nsec)


class CompressedTake(DecodeFallback):
    """Takes a camera topic's later messages (a :class:`~.ledger.FastPath`): receive time, stamp and encoded
    bytes of each message shaped like the first; any other message decoded by ``decode`` and handed to ``keep``
    (the topic's per-message keeper), in stream order."""

    def __init__(
        self,
        shape: Skeleton,
        receive: TimeLog,
        header: TimeLog,
        frames: FrameSpill,
        decode: Callable[[Raw], Any],
        keep: Callable[[int, Any, Raw], None],
    ) -> None:
        super().__init__(receive, header, decode, keep)
        self.shape = shape
        self.frames = frames

    def __call__(self, t: int, raw: Raw) -> None:
        """One message (its receive time and serialized bytes), in stream order."""
        shape = self.shape
        found = _data_at(raw, shape.ros2)
        if found is not None and raw[found[0] : found[1] - 4] == shape.middle:
            self.receive.append(t)
            self.header.append(_stamp(raw, shape.ros2))
            self.frames.append(memoryview(raw)[found[1] : found[2]])
            return
        self._decode(t, raw)

    def flush(self) -> None:
        """Nothing is batched: every message was kept as it came."""

"""``sensor_msgs/JointState`` messages read in batches straight from their serialized bytes.

A joint-state topic is most of a recording's messages (500 Hz against cameras at 30 Hz), and its messages are all
alike: the same joint names, the same array lengths, the same frame id; only the sequence number, the stamp and
the position/velocity/effort values change. So after the topic's first message (decoded by rosbags, as every other
message) its serialized layout is worked out once (:func:`layout`, ROS 1 or little-endian CDR; cross-checked
against the decoded first message), and every later message of the same length is kept as bytes in a batch;
:class:`JointBatch` then checks a whole batch at once against the first message (every byte outside the stamp,
the sequence number and the value arrays must be the same, so the message has the same structure) and takes the
stamps and values of all of them with one numpy view. A message that differs in anything else (another name list,
frame id or array length) is decoded by rosbags like any other, in its place in the stream; one that does not
decode is counted as failed in the ledger, as before.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from rdstd.formats.rosbag.bag import Raw
from rdstd.formats.rosbag.ledger import DecodeFallback
from rdstd.formats.rosbag.spill import TimeLog

#: The JointState arrays, in their serialized order.
ARRAYS = ("position", "velocity", "effort")
#: Messages kept as bytes before a batch is checked and taken (a few hundred KB for a 7-joint arm).
BATCH = 4096
_U32 = struct.Struct("<I")
_CDR_LE = b"\x00\x01"


@dataclass(frozen=True)
class Layout:
    """Where a JointState's stamp and arrays lie in its serialized bytes (all messages of this length and skeleton)."""

    size: int
    #: numpy dtype with fields ``sec``, ``nsec`` and one ``(n,)`` float64 field per array, over one message.
    record: np.dtype[Any]
    #: The first message's bytes, and per byte whether it may differ between messages (stamp, seq, values).
    template: npt.NDArray[np.uint8]
    varying: npt.NDArray[np.bool_]


def _ros1(raw: bytes) -> tuple[int, bool, dict[str, tuple[int, int]], list[tuple[int, int]], int]:
    """(stamp offset, signed sec, arrays {name: (offset, count)}, varying spans, end) of a ROS 1 JointState."""
    unpack = _U32.unpack_from
    p = 16 + unpack(raw, 12)[0]  # seq, stamp sec, nsec, frame_id
    for _ in range(unpack(raw, p)[0]):
        p += 4
        p += unpack(raw, p)[0]
    p += 4
    arrays: dict[str, tuple[int, int]] = {}
    spans = [(0, 12)]
    for name in ARRAYS:
        n = unpack(raw, p)[0]
        arrays[name] = (p + 4, n)
        spans.append((p + 4, p + 4 + 8 * n))
        p += 4 + 8 * n
    return 4, False, arrays, spans, p


def _cdr(raw: bytes) -> tuple[int, bool, dict[str, tuple[int, int]], list[tuple[int, int]], int]:
    """The same for a little-endian CDR (ROS 2) JointState (offsets after the 4-byte encapsulation header are
    aligned relative to it)."""
    unpack = _U32.unpack_from
    base = 4
    p = 8 + 4 + unpack(raw, base + 8)[0]  # stamp sec, nanosec, frame_id (length includes its NUL)
    p = (p + 3) & ~3
    count = unpack(raw, base + p)[0]
    p += 4
    for _ in range(count):
        p = (p + 3) & ~3
        p += 4 + unpack(raw, base + p)[0]
    arrays: dict[str, tuple[int, int]] = {}
    spans = [(base, base + 8)]
    for name in ARRAYS:
        p = (p + 3) & ~3
        n = unpack(raw, base + p)[0]
        p += 4
        if n:
            p = (p + 7) & ~7
        arrays[name] = (base + p, n)
        spans.append((base + p, base + p + 8 * n))
        p += 8 * n
    return base, True, arrays, spans, base + p


def layout(msg: Any, raw: Raw, ros2: bool) -> Layout | None:
    """The layout of JointState messages like ``msg`` (decoded from ``raw``), or None when it cannot be had
    safely (big-endian CDR, trailing bytes it does not explain, or any disagreement with the decoded message)."""
    data = bytes(raw)
    try:
        if ros2:
            if data[:2] != _CDR_LE:
                return None
            stamp, signed, arrays, spans, end = _cdr(data)
            if not end <= len(data) < end + 4:  # CDR may pad the end to 4 bytes
                return None
        else:
            stamp, signed, arrays, spans, end = _ros1(data)
            if end != len(data):
                return None
    except struct.error:
        return None
    fields: dict[str, Any] = {
        "names": ["sec", "nsec"] + [f for f in ARRAYS if arrays[f][1]],
        "formats": ["<i4" if signed else "<u4", "<u4"] + [("<f8", (arrays[f][1],)) for f in ARRAYS if arrays[f][1]],
        "offsets": [stamp, stamp + 4] + [arrays[f][0] for f in ARRAYS if arrays[f][1]],
        "itemsize": len(data),
    }
    record: np.dtype[Any] = np.dtype(cast(Any, fields))  # fields at given offsets: numpy's dict form
    one = np.frombuffer(data, dtype=record)[0]
    try:
        if int(one["sec"]) * 1_000_000_000 + int(one["nsec"]) != (
            int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        ):
            return None
        for name in ARRAYS:
            have = np.asarray(getattr(msg, name), dtype=np.float64).reshape(-1)
            if len(have) != arrays[name][1] or (len(have) and not np.array_equal(one[name], have, equal_nan=True)):
                return None
    except (AttributeError, TypeError, ValueError):
        return None
    varying = np.zeros(len(data), dtype=bool)
    for a, b in spans:
        varying[a:b] = True
    return Layout(len(data), record, np.frombuffer(data, dtype=np.uint8), varying)


#: One stream's target: its values' destination (``append_many(values)``), the array it reads, and the joint
#: columns it picks (None: all).
Target = tuple[Callable[[npt.NDArray[Any]], None], str, list[int] | None]


class JointBatch(DecodeFallback):
    """Takes one JointState topic's messages as bytes and keeps their receive and header times and the values its
    streams read, a batch at a time (see the module docs). A message unlike the first is decoded by ``decode`` and
    kept by ``keep(t, msg, raw)``, the way every other message is; one that does not decode is counted in
    ``failed`` (the first cause in ``error``) for the ledger."""

    def __init__(
        self,
        shape: Layout,
        receive: TimeLog,
        header: TimeLog,
        targets: list[Target],
        decode: Callable[[Raw], Any],
        keep: Callable[[int, Any, Raw], None],
    ) -> None:
        super().__init__(receive, header, decode, keep)
        self.layout = shape
        self.targets = targets
        self._bytes = bytearray()
        self._times: array[int] = array("q")
        self._pending: list[tuple[int, bytes] | None] = []  # None: a message in the byte batch; else one decoded alone

    def __call__(self, t: int, raw: Raw) -> None:
        """One message (its receive time and serialized bytes), in stream order."""
        if len(raw) == self.layout.size:
            self._bytes += raw
            self._times.append(t)
            self._pending.append(None)
        else:
            self._pending.append((t, bytes(raw)))
        if len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Check and keep the messages taken so far, in order."""
        if not self._pending:
            return
        shape = self.layout
        block = np.frombuffer(self._bytes, dtype=np.uint8).reshape(-1, shape.size)
        same = ~((block != shape.template) & ~shape.varying).any(axis=1)
        records = np.frombuffer(self._bytes, dtype=shape.record)
        times = np.frombuffer(self._times, dtype=np.int64)
        row, run = 0, 0  # the next byte-batch row, the start of the run of rows kept together
        for item in self._pending:
            if item is None and same[row]:
                row += 1
                continue
            self._keep(records[run:row], times[run:row])
            if item is None:  # same length, another skeleton: decoded alone
                self._decode(int(times[row]), bytes(block[row]))
                row += 1
            else:
                self._decode(*item)
            run = row
        self._keep(records[run:row], times[run:row])
        del records, times, block
        self._bytes = bytearray()
        self._times = array("q")
        self._pending = []

    def _keep(self, records: npt.NDArray[Any], times: npt.NDArray[np.int64]) -> None:
        if not len(records):
            return
        self.receive.extend(times)
        self.header.extend(records["sec"].astype(np.int64) * 1_000_000_000 + records["nsec"].astype(np.int64))
        for append, name, cols in self.targets:
            values = records[name]
            append(values if cols is None else values[:, cols])

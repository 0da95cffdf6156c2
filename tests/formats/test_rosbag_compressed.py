"""CompressedImage messages taken from their bytes (``rdstd/formats/rosbag/compressed.py``) keep exactly what
decoding each message keeps: receive and header times, the encoded bytes, the ledger's counts and failures."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rdstd.formats.rosbag import RosbagSource, compressed
from rdstd.formats.rosbag.reader import _Collector
from tests.formats.rosbag_fixtures import _stores, with_plan, write_bag

KINDS = ["ros1", "db3", "mcap"]
TOPIC = "/cam/compressed"


def _odd_frames(topic: str, k: int, msg: Any) -> Any:
    """Message 5 has another frame id, 7 another format text, 11 a stamp far in the past (the sign bit of a ROS 1
    secs field is not set): 5 and 7 must be decoded alone, in their place; all keep their own stamps."""
    if topic != TOPIC:
        return msg
    if k == 5:
        msg.header.frame_id = "cam_left"
    elif k == 7:
        msg.format = "jpeg; rgb8 compressed bgr8"
    elif k == 11:
        msg.header.stamp.sec = 12
    return msg


def _kept(bag: Path) -> tuple[dict[str, Any], Any, Any, list[bytes] | None]:
    with RosbagSource(bag) as source:
        ledger = {t: led.as_dict() for t, led in source.ledger.items()}
        if ledger[TOPIC]["failed"]:  # not kept: reading it would read the bag again and fail
            return ledger, None, None, None
        data = source.read_topic(TOPIC)
        assert data.frames is not None
        frames = [bytes(b) for b in data.frames.read(np.arange(len(data.frames), dtype=np.int64))]
        return ledger, data.receive_ns.copy(), data.header_ns, frames


def _both(bag: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, int]:
    """(kept taking messages from their bytes, kept decoding each message, messages taken from their bytes)."""
    taken = []
    take = compressed.CompressedTake.__call__

    def counting(self: compressed.CompressedTake, t: int, raw: Any) -> None:
        before = len(self.frames)
        decoded = []
        keep, self.keep = self.keep, lambda *args: (decoded.append(1), keep(*args))
        take(self, t, raw)
        self.keep = keep
        taken.append(int(len(self.frames) > before and not decoded))

    with monkeypatch.context() as patch:
        patch.setattr(compressed.CompressedTake, "__call__", counting)
        fast = _kept(bag)
    with monkeypatch.context() as patch:
        patch.setattr(_Collector, "claim", lambda self, topic, decode: None)
        slow = _kept(bag)
    return fast, slow, sum(taken)


@pytest.mark.parametrize("kind", KINDS)
def test_frames_taken_from_their_bytes_keep_what_decoding_each_keeps(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = with_plan(write_bag(tmp_path / ("rec.bag" if kind == "ros1" else "rec"), kind, seconds=3.0, edit=_odd_frames))
    fast, slow, taken = _both(bag, monkeypatch)
    assert taken == 27  # 30 messages: the first decoded (it sets the skeleton), 5 and 7 decoded alone
    assert fast[0] == slow[0]
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_array_equal(fast[2], slow[2])
    assert fast[3] == slow[3]
    assert len(fast[3]) == 30 and all(f[:3] == b"\xff\xd8\xff" for f in fast[3])
    assert fast[2][11] == 12 * 1_000_000_000 + int(slow[2][11] % 1_000_000_000)


def _break_data_length(kind: str) -> Any:
    """Message 9's data length prefix set to 2^32 - 1: the message no longer decodes."""

    def corrupt(topic: str, k: int, data: bytes) -> bytes:
        if topic != TOPIC or k != 9:
            return data
        found = compressed._data_at(data, kind != "ros1")
        assert found is not None
        at = found[1] - 4
        assert struct.unpack_from("<I", data, at)[0] == found[2] - found[1]
        return data[:at] + b"\xff\xff\xff\xff" + data[at + 4 :]

    return corrupt


@pytest.mark.parametrize("kind", KINDS)
def test_a_frame_that_does_not_decode_is_counted_failed(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = with_plan(
        write_bag(
            tmp_path / ("rec.bag" if kind == "ros1" else "rec"), kind, seconds=2.0, corrupt=_break_data_length(kind)
        )
    )
    fast, slow, taken = _both(bag, monkeypatch)
    led = fast[0][TOPIC]
    assert (led["read"], led["decoded"], led["failed"]) == (20, 19, 1)
    assert led["error"]
    assert fast[0] == slow[0]
    assert taken == 18


@pytest.mark.parametrize("kind", ["ros1", "db3"])
def test_a_first_frame_laid_out_otherwise_leaves_every_frame_to_rosbags(kind: str) -> None:
    # the skeleton is checked against the decoded first message: bytes that do not match it give no fast path
    ros2 = kind != "ros1"
    ts = _stores(ros2)
    msg = ts.types["sensor_msgs/msg/CompressedImage"](
        header=ts.types["std_msgs/msg/Header"](
            **({} if ros2 else {"seq": 3}),
            stamp=ts.types["builtin_interfaces/msg/Time"](sec=5, nanosec=7),
            frame_id="cam",
        ),
        format="jpeg",
        data=np.frombuffer(b"\xff\xd8\xff\xe0abc", dtype=np.uint8),
    )
    serialize = ts.serialize_cdr if ros2 else ts.serialize_ros1
    raw = bytes(serialize(msg, "sensor_msgs/msg/CompressedImage"))
    shape = compressed.skeleton(msg, raw, ros2)
    assert shape is not None
    assert compressed._data_at(raw, ros2) is not None
    assert compressed.skeleton(msg, raw + b"\x00", ros2) is None  # a length that does not add up
    msg.header.stamp.sec = 6
    assert compressed.skeleton(msg, raw, ros2) is None  # the stamp is not where the skeleton reads it

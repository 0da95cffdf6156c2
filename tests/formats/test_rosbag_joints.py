"""JointState messages taken in batches from their bytes (``rdstd/formats/rosbag/joints.py``) keep exactly what
decoding each message keeps: times, values, joint columns by name, the ledger's counts and failures."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rdstd.formats.rosbag import RosbagSource, joints
from rdstd.formats.rosbag.reader import _Collector
from tests.formats.rosbag_fixtures import JOINTS, joint_positions, with_plan, write_bag

KINDS = ["ros1", "db3", "mcap"]


def _odd_joint_states(topic: str, k: int, msg: Any) -> Any:
    """Messages 10-12 list their joints in the plan's order (the others reversed), 20 has another frame id,
    30 has no velocities: each must be decoded alone, in its place."""
    if topic != "/joint_states":
        return msg
    if 10 <= k <= 12:
        msg.name = list(JOINTS)
        msg.position = np.array(joint_positions(k / 100), dtype=np.float64)
    elif k == 20:
        msg.header.frame_id = "arm"
    elif k == 30:
        msg.velocity = np.zeros(0)
    return msg


def _kept(bag: Path) -> tuple[dict[str, Any], Any, Any, Any]:
    with RosbagSource(bag) as source:
        ledger = {t: led.as_dict() for t, led in source.ledger.items()}
        if ledger["/joint_states"]["failed"]:  # not kept: reading it would read the bag again and fail
            return ledger, None, None, None
        data = source.read_topic("/joint_states")
        rows = data.rows["joints"]
        values = rows.read(np.arange(rows.count, dtype=np.int64)) if rows.count else None
        return ledger, data.receive_ns.copy(), data.header_ns.copy() if data.header_ns is not None else None, values


def _both(bag: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, int]:
    """(kept with batches, kept decoding each message, messages the batches took)."""
    taken = []
    flush = joints.JointBatch.flush

    def counting(self: joints.JointBatch) -> None:
        taken.append(sum(item is None for item in self._pending))
        flush(self)

    with monkeypatch.context() as patch:
        patch.setattr(joints, "BATCH", 7)  # many batches, their edges among the odd messages
        patch.setattr(joints.JointBatch, "flush", counting)
        fast = _kept(bag)
    with monkeypatch.context() as patch:
        patch.setattr(_Collector, "claim", lambda self, topic, decode: None)
        slow = _kept(bag)
    return fast, slow, sum(taken)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_joint_states_keep_what_decoding_each_keeps(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = with_plan(write_bag(tmp_path / ("rec.bag" if kind == "ros1" else "rec"), kind, edit=_odd_joint_states))
    fast, slow, taken = _both(bag, monkeypatch)
    assert taken >= 90  # the batches took the messages (all but the first; the odd ones went on to be decoded)
    assert fast[0] == slow[0]
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_array_equal(fast[2], slow[2])
    np.testing.assert_array_equal(fast[3], slow[3])
    # picked by name whatever order a message lists them in: the known trajectory, in the plan's order
    want = np.array([joint_positions(k / 100) for k in range(100)])
    np.testing.assert_allclose(fast[3], want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fast[2], fast[1] - 1_000_000)  # header stamps: receive 1 ms later


def _break_names(kind: str) -> Any:
    # the name list's count (ROS 1: after seq, stamp and an empty frame id; CDR: after the 4-byte encapsulation
    # header, the stamp and a 1-byte frame id padded to 4) set to 2^32 - 1: the message no longer decodes
    at = 16 if kind == "ros1" else 20

    def corrupt(topic: str, k: int, data: bytes) -> bytes:
        if topic != "/joint_states" or k != 15:
            return data
        assert struct.unpack_from("<I", data, at)[0] == len(JOINTS)
        return data[:at] + b"\xff\xff\xff\xff" + data[at + 4 :]

    return corrupt


@pytest.mark.parametrize("kind", KINDS)
def test_a_batched_joint_state_that_does_not_decode_is_counted_failed(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = with_plan(write_bag(tmp_path / ("rec.bag" if kind == "ros1" else "rec"), kind, corrupt=_break_names(kind)))
    fast, slow, taken = _both(bag, monkeypatch)
    led = fast[0]["/joint_states"]
    assert (led["read"], led["decoded"], led["failed"]) == (100, 99, 1)
    assert led["error"]
    assert fast[0] == slow[0]
    assert taken >= 90

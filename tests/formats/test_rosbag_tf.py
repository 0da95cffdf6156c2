"""The TF buffer (rdstd.streams.tf) on hand-computed trees."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rdstd.streams.tf import TransformBuffer, TransformError

MS = 1_000_000


def _yaw(a: float) -> list[float]:
    return [0.0, 0.0, math.sin(a / 2), math.cos(a / 2)]


def _buffer() -> TransformBuffer:
    tf = TransformBuffer()
    tf.add("world", "base", 0, [0.0, 0.0, 1.0], _yaw(math.pi / 2), static=True)
    for k in range(11):  # base -> tool at 10 Hz over 1 s: x = k/10, yaw = k * 0.1 rad
        tf.add("base", "tool", k * 100 * MS, [k / 10, 0.0, 0.0], _yaw(k * 0.1), static=False)
    tf.add("world", "cam", 0, [1.0, 2.0, 3.0], _yaw(0.0), static=True)
    return tf


def test_a_chain_through_a_static_edge_interpolates_the_dynamic_one() -> None:
    pose, off = _buffer().lookup("world", "tool", 250 * MS)
    assert off == 0
    # base->tool at 0.25 s: x = 0.25, yaw 0.25 rad; world->base: yaw 90 deg then z + 1: (x, y) -> (-y, x)
    np.testing.assert_allclose(pose.translation, [0.0, 0.25, 1.0], atol=1e-12)
    np.testing.assert_allclose(pose.rotation, _yaw(math.pi / 2 + 0.25), atol=1e-12)


def test_lookup_across_branches_and_inverse() -> None:
    tf = _buffer()
    pose, _ = tf.lookup("cam", "tool", 0)  # tool (at base origin) in cam: world point (0, 0, 1) minus cam origin
    np.testing.assert_allclose(pose.translation, [-1.0, -2.0, -2.0], atol=1e-12)
    back, _ = tf.lookup("tool", "cam", 0)
    # the tool frame is yawed 90 deg in the world: cam, 1 m east and 2 m north of it, is at (2, -1) in it
    np.testing.assert_allclose(back.translation, [2.0, -1.0, 2.0], atol=1e-12)
    identity = pose.compose(back)
    np.testing.assert_allclose(identity.translation, [0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(identity.rotation), [0.0, 0.0, 0.0, 1.0], atol=1e-12)


def test_extrapolation_is_bounded_and_reported() -> None:
    tf = _buffer()
    with pytest.raises(TransformError, match="after its last sample"):
        tf.lookup("world", "tool", 1_050 * MS, max_extrapolation_ns=20 * MS)
    pose, off = tf.lookup("world", "tool", 1_010 * MS, max_extrapolation_ns=20 * MS)
    assert off == 10 * MS
    np.testing.assert_allclose(pose.translation, [0.0, 1.0, 1.0], atol=1e-12)


def test_unknown_and_unconnected_frames_are_named() -> None:
    tf = _buffer()
    with pytest.raises(TransformError, match="unknown frame 'gripper'"):
        tf.lookup("world", "gripper", 0)
    tf.add("map", "odom", 0, [0.0, 0.0, 0.0], _yaw(0), static=True)
    with pytest.raises(TransformError, match="not connected"):
        tf.lookup("map", "tool", 0)
    tf.add("odom", "tool", 0, [0.0, 0.0, 0.0], _yaw(0), static=True)
    assert tf.conflicts and "two parents" in tf.conflicts[0]

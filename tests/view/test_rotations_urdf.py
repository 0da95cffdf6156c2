"""Rotations placed in the 3D view (every representation the schema names) and the robot model from a URDF."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rdstd.schema.features import RotationGroup
from rdstd.schema.vocabulary import RotationRepr
from rdstd.validate.checks.rotations import quat_matrices
from rdstd.view.rotations import quaternions

pytest.importorskip("rerun")


def _rz(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def _rx(a: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _ry(a: float) -> np.ndarray:
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _same_rotation(q: np.ndarray, m: np.ndarray) -> None:
    np.testing.assert_allclose(quat_matrices(q, scalar_last=True), m, atol=1e-9)


ANGLES = np.array([[0.3, -0.5, 1.1], [-2.0, 0.7, 0.2]])


@pytest.mark.parametrize("extrinsic", [True, False])
def test_euler_angles_follow_their_axis_order_and_convention(extrinsic: bool) -> None:
    group = RotationGroup(start=0, representation=RotationRepr.EULER, euler_axes="xyz", euler_extrinsic=extrinsic)
    q = quaternions(ANGLES, group)
    assert q is not None
    for row, (a, b, c) in zip(q, ANGLES, strict=True):
        want = _rz(c) @ _ry(b) @ _rx(a) if extrinsic else _rx(a) @ _ry(b) @ _rz(c)
        _same_rotation(row[None], want[None])


def test_euler_without_a_known_convention_is_not_guessed() -> None:
    group = RotationGroup(start=0, representation=RotationRepr.EULER, euler_axes="xyz")
    assert quaternions(ANGLES, group) is None
    assert quaternions(ANGLES, RotationGroup(start=0, representation=RotationRepr.UNKNOWN)) is None


def test_axis_angle_matrix_rot6d_and_wxyz_give_the_same_rotation() -> None:
    m = np.stack([_rz(0.4) @ _rx(1.2), _ry(-2.5)])
    axis_angle = np.array([[0.0, 0.0, 0.0], [0.0, -2.5, 0.0]])
    q = quaternions(axis_angle, RotationGroup(start=0, representation=RotationRepr.AXIS_ANGLE))
    assert q is not None
    _same_rotation(q[1:], m[1:])
    np.testing.assert_allclose(q[0], [0, 0, 0, 1])
    q = quaternions(m.reshape(2, 9), RotationGroup(start=0, representation=RotationRepr.MATRIX))
    assert q is not None
    _same_rotation(q, m)
    rot6d = np.concatenate([m[:, :, 0], m[:, :, 1]], axis=1)
    q = quaternions(rot6d, RotationGroup(start=0, representation=RotationRepr.ROT6D))
    assert q is not None
    _same_rotation(q, m)
    xyzw = q
    wxyz = np.concatenate([np.zeros((2, 1)), xyzw[:, [3, 0, 1, 2]]], axis=1)  # offset by one dimension
    q = quaternions(wxyz, RotationGroup(start=1, representation=RotationRepr.QUAT_WXYZ))
    assert q is not None
    np.testing.assert_allclose(q, xyzw)


URDF = """<?xml version="1.0"?>
<robot name="arm2">
  <link name="base"><visual><geometry><box size="0.1 0.1 0.1"/></geometry></visual></link>
  <link name="upper"><visual><geometry><cylinder radius="0.02" length="0.3"/></geometry></visual></link>
  <link name="lower"><visual><geometry><cylinder radius="0.02" length="0.3"/></geometry></visual></link>
  <joint name="joint_0" type="revolute"><parent link="base"/><child link="upper"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="joint_1" type="revolute"><parent link="upper"/><child link="lower"/><origin xyz="0 0 0.3"/>
    <axis xyz="0 1 0"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
</robot>
"""


def test_the_embodiment_s_urdf_is_loaded_and_its_joints_move_with_the_state(tmp_path: Path) -> None:
    from rdstd.view.episodes import open_view
    from rdstd.view.session import save
    from tests.view.helpers import chunks, rows, write

    urdf = tmp_path / "arm2.urdf"
    urdf.write_text(URDF, encoding="utf-8")
    ds = write(tmp_path / "ds", [15], urdf=str(urdf))
    with open_view(ds) as view:
        [f] = save(view, [0], tmp_path / "ep.rrd").files
    entities = {c.entity_path for c in chunks(f)}
    assert any(e.startswith("/world/robot/") and "visual" in e for e in entities), sorted(entities)
    for joint in ("joint_0", "joint_1"):
        entity = f"/world/robot/joint_transforms/{joint}"
        assert entity in entities
        frame, _, _ = rows(f, entity, "Transform3D:quaternion")
        assert frame.tolist() == list(range(15))

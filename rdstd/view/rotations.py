"""Rotations of a canonical feature as xyzw quaternions, for the 3D view (vectorised over frames)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rdstd.schema.features import RotationGroup
from rdstd.schema.vocabulary import RotationRepr
from rdstd.streams.tf import quat_mul

F64 = npt.NDArray[np.float64]

_AXES = {"x": 0, "y": 1, "z": 2}


def _normalized(q: F64) -> F64:
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    out: F64 = np.tile([0.0, 0.0, 0.0, 1.0], (len(q), 1))
    np.divide(q, norm, out=out, where=norm > 0)
    return out


def _about(axis: str, angle: F64) -> F64:
    q = np.zeros((len(angle), 4))
    q[:, _AXES[axis]] = np.sin(angle / 2)
    q[:, 3] = np.cos(angle / 2)
    return q


def _from_matrices(m: F64) -> F64:
    """xyzw quaternions of rotation matrices (N, 3, 3) (Shepperd's method, branch per row)."""
    n = len(m)
    q = np.empty((n, 4))
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    for i in range(n):
        r = m[i]
        if tr[i] > 0:
            s = 2.0 * np.sqrt(tr[i] + 1.0)
            q[i] = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
        elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
            s = 2.0 * np.sqrt(max(1.0 + r[0, 0] - r[1, 1] - r[2, 2], 1e-12))
            q[i] = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
        elif r[1, 1] > r[2, 2]:
            s = 2.0 * np.sqrt(max(1.0 + r[1, 1] - r[0, 0] - r[2, 2], 1e-12))
            q[i] = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
        else:
            s = 2.0 * np.sqrt(max(1.0 + r[2, 2] - r[0, 0] - r[1, 1], 1e-12))
            q[i] = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    return q


def _rot6d_matrices(v: F64) -> F64:
    """Rotation matrices from the 6D representation (the first two columns, Gram-Schmidt)."""
    a, b = v[:, :3], v[:, 3:6]
    x = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b - np.sum(x * b, axis=1, keepdims=True) * x
    y = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.stack([x, y, np.cross(x, y)], axis=2)


def quaternions(values: F64, group: RotationGroup) -> F64 | None:
    """The rotation group of ``values`` (frames × dims) as unit xyzw quaternions, or None when the group's
    representation does not say how (``unknown``)."""
    v = np.asarray(values[:, group.start : group.start + group.size], dtype=np.float64)
    rep = group.representation
    if rep == RotationRepr.QUAT_XYZW:
        return _normalized(v)
    if rep == RotationRepr.QUAT_WXYZ:
        return _normalized(v[:, [1, 2, 3, 0]])
    if rep == RotationRepr.AXIS_ANGLE:
        angle = np.linalg.norm(v, axis=1, keepdims=True)
        axis = np.divide(v, angle, out=np.zeros_like(v), where=angle > 0)
        return np.concatenate([axis * np.sin(angle / 2), np.cos(angle / 2)], axis=1)
    if rep == RotationRepr.EULER and group.euler_axes and group.euler_extrinsic is not None:
        parts = [_about(a, v[:, i]) for i, a in enumerate(group.euler_axes.lower())]
        order = parts[::-1] if group.euler_extrinsic else parts  # extrinsic xyz = Rz·Ry·Rx; intrinsic = Rx·Ry·Rz
        q = order[0]
        for p in order[1:]:
            q = quat_mul(q, p)
        return _normalized(q)
    if rep == RotationRepr.MATRIX:
        return _normalized(_from_matrices(v.reshape(-1, 3, 3)))
    if rep == RotationRepr.ROT6D:
        return _normalized(_from_matrices(_rot6d_matrices(v)))
    return None

"""Closed vocabularies of the canonical schema: roles, units, frames, rotation representations.

Every enum has an explicit ``unknown`` member: missing knowledge is said, never implied by absence.
"""

from __future__ import annotations

import math
from enum import StrEnum


class Role(StrEnum):
    """What one dimension of a vector feature measures or commands."""

    JOINT_POSITION = "joint_position"
    JOINT_VELOCITY = "joint_velocity"
    JOINT_EFFORT = "joint_effort"
    EEF_POSITION = "eef_position"
    EEF_ROTATION = "eef_rotation"
    EEF_VELOCITY = "eef_velocity"
    GRIPPER = "gripper"
    HAND_JOINT_POSITION = "hand_joint_position"
    BASE_VELOCITY = "base_velocity"
    BASE_POSE = "base_pose"
    OBJECT_POSE = "object_pose"
    REWARD = "reward"
    FLAG = "flag"
    OTHER = "other"
    UNKNOWN = "unknown"


class Unit(StrEnum):
    """Physical unit of one dimension. Canonical data uses the SI members (m, rad, s, N, N·m, A and rates)."""

    M = "m"
    MM = "mm"
    CM = "cm"
    RAD = "rad"
    DEG = "deg"
    S = "s"
    MS = "ms"
    M_PER_S = "m/s"
    MM_PER_S = "mm/s"
    RAD_PER_S = "rad/s"
    DEG_PER_S = "deg/s"
    N = "N"
    NM = "N·m"
    A = "A"
    MA = "mA"
    NORMALIZED = "normalized"
    PX = "px"
    COUNT = "count"
    BOOL = "bool"
    NONE = "none"
    UNKNOWN = "unknown"


#: Source unit -> (canonical SI unit, factor to multiply by). Units absent here are kept as they are.
UNIT_TO_SI: dict[Unit, tuple[Unit, float]] = {
    Unit.MM: (Unit.M, 1e-3),
    Unit.CM: (Unit.M, 1e-2),
    Unit.DEG: (Unit.RAD, math.pi / 180.0),
    Unit.MS: (Unit.S, 1e-3),
    Unit.MM_PER_S: (Unit.M_PER_S, 1e-3),
    Unit.DEG_PER_S: (Unit.RAD_PER_S, math.pi / 180.0),
    Unit.MA: (Unit.A, 1e-3),
}


class RotationRepr(StrEnum):
    """How a group of dimensions encodes a rotation."""

    QUAT_XYZW = "quat_xyzw"
    QUAT_WXYZ = "quat_wxyz"
    EULER = "euler"
    AXIS_ANGLE = "axis_angle"
    ROT6D = "rot6d"
    MATRIX = "matrix"
    UNKNOWN = "unknown"


#: Number of dimensions each rotation representation occupies.
ROTATION_SIZE: dict[RotationRepr, int] = {
    RotationRepr.QUAT_XYZW: 4,
    RotationRepr.QUAT_WXYZ: 4,
    RotationRepr.EULER: 3,
    RotationRepr.AXIS_ANGLE: 3,
    RotationRepr.ROT6D: 6,
    RotationRepr.MATRIX: 9,
}


class ActionMode(StrEnum):
    """Whether an action is a target, a change, or a rate."""

    ABSOLUTE = "absolute"
    DELTA = "delta"
    VELOCITY = "velocity"
    UNKNOWN = "unknown"


class ActionSpace(StrEnum):
    """The space an action lives in."""

    JOINT = "joint"
    EEF = "eef"
    MIXED = "mixed"
    UNKNOWN = "unknown"


class DeltaReference(StrEnum):
    """What a delta action is relative to."""

    PREVIOUS_STATE = "previous_state"
    PREVIOUS_ACTION = "previous_action"
    EPISODE_START = "episode_start"
    NONE = "none"
    UNKNOWN = "unknown"


class GripperOpen(StrEnum):
    """Which end of a gripper's range means open."""

    HIGH = "high"
    LOW = "low"
    UNKNOWN = "unknown"


class GripperKind(StrEnum):
    """Whether a gripper value is a position (absolute) or a command to change it (relative +1/0/-1)."""

    ABSOLUTE = "absolute"
    RELATIVE = "relative"
    UNKNOWN = "unknown"


class ActionTiming(StrEnum):
    """How ``action[t]`` relates to the states in time."""

    NEXT_STATE_TARGET = "next_state_target"
    LEAD_FRAMES = "lead_frames"
    CHUNK = "chunk"
    SAME_STEP = "same_step"
    UNKNOWN = "unknown"


class DeltaFrame(StrEnum):
    """The frame a rotation delta is applied in."""

    BASE = "base"
    TOOL = "tool"
    WORLD = "world"
    UNKNOWN = "unknown"


class RotationComposition(StrEnum):
    """How a rotation delta combines with the current rotation."""

    EULER_DIFFERENCE = "euler_difference"
    ROTATION_COMPOSITION = "rotation_composition"
    UNKNOWN = "unknown"


class ClockKind(StrEnum):
    """Whether frame times were measured by a clock or synthesized from a declared rate."""

    MEASURED = "measured"
    SYNTHESIZED = "synthesized"
    UNKNOWN = "unknown"


class CameraMount(StrEnum):
    """Where a camera is mounted."""

    HEAD = "head"
    WRIST = "wrist"
    THIRD_PERSON = "third_person"
    CHEST = "chest"
    BASE = "base"
    OVERHEAD = "overhead"
    UNKNOWN = "unknown"


class LanguageKind(StrEnum):
    """What a time-segmented language annotation is."""

    PERSISTENT = "persistent"
    EVENT = "event"
    UNKNOWN = "unknown"


class ImageCodec(StrEnum):
    """How image frames are stored."""

    JPEG = "jpeg"
    PNG = "png"
    VIDEO = "video"


class ColorOrder(StrEnum):
    """Channel order of color images."""

    RGB = "rgb"
    BGR = "bgr"
    GRAY = "gray"
    DEPTH = "depth"
    RGBA = "rgba"


def is_frame_name(value: str) -> bool:
    """Tell whether ``value`` is a valid coordinate-frame name.

    Frames are ``base``, ``world``, ``tool``, ``none``, ``unknown`` or ``camera:<name>`` / ``link:<name>``.
    """
    if value in {"base", "world", "tool", "none", "unknown"}:
        return True
    prefix, _, name = value.partition(":")
    return prefix in {"camera", "link"} and bool(name)

"""Embodiments: which robot produced an episode, its joints, gripper and control."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from rdstd.schema.features import StrictModel, check_safe_name


class RobotType(StrEnum):
    """The small registry of known robots; anything else is ``custom`` (say which in ``name``)."""

    FRANKA_PANDA = "franka_panda"
    WIDOWX_250 = "widowx_250"
    UR5E = "ur5e"
    UR5 = "ur5"
    XARM7 = "xarm7"
    KUKA_IIWA = "kuka_iiwa"
    GOOGLE_ROBOT = "google_robot"
    ALOHA = "aloha"
    SO100 = "so100"
    KOCH = "koch"
    UNITREE_G1 = "unitree_g1"
    GR1 = "gr1"
    SIM_2D = "sim_2d"
    CUSTOM = "custom"
    UNKNOWN = "unknown"


class JointType(StrEnum):
    """Kinematic joint type."""

    REVOLUTE = "revolute"
    PRISMATIC = "prismatic"
    CONTINUOUS = "continuous"
    FIXED = "fixed"
    UNKNOWN = "unknown"


class Joint(StrictModel):
    """One joint, with limits in SI units when known."""

    name: str
    type: JointType = JointType.UNKNOWN
    lower: float | None = None
    upper: float | None = None
    velocity_limit: float | None = None
    effort_limit: float | None = None


class ControlMode(StrEnum):
    """How the robot was commanded while recording."""

    JOINT_POSITION = "joint_position"
    JOINT_VELOCITY = "joint_velocity"
    JOINT_TORQUE = "joint_torque"
    EEF_POSE = "eef_pose"
    EEF_DELTA = "eef_delta"
    EEF_VELOCITY = "eef_velocity"
    TELEOP_LEADER = "teleop_leader"
    UNKNOWN = "unknown"


class Embodiment(StrictModel):
    """A robot as recorded: type, joints, gripper, control mode and rate, base frame."""

    name: str = Field(description="key episodes use to name their embodiment")
    robot_type: RobotType = RobotType.UNKNOWN
    joints: list[Joint] = Field(default_factory=list)
    gripper: str | None = Field(default=None, description="gripper model, e.g. 'robotiq_2f85', when known")
    control_mode: ControlMode = ControlMode.UNKNOWN
    control_rate_hz: float | None = Field(default=None, gt=0)
    base_frame: str = "base"
    urdf: str | None = Field(default=None, description="URDF path or package reference, when known")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_safe_name(value, "embodiment name")

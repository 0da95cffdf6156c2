"""Generated canonical datasets for the validator tests: a clean arm dataset, and the same with one problem planted.

The clean dataset: 6 episodes of 60 frames at 10 Hz (measured clock with a little jitter), splits train (0-3)
and val (4-5). ``observation.state`` = 3 joints (rad) + EEF position (m) + quaternion xyzw + gripper (absolute,
1 = open); ``observation.object_rotation`` = a rotation matrix; ``action`` = absolute joint targets reached at the
next frame + the gripper command; a 16x16 camera with a moving pattern; a fully described embodiment.
Each plant (a string, see :func:`make`) changes one thing in one known episode, dimension and frame range.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rdstd.schema import (
    ActionMode,
    ActionSemantics,
    ActionSpace,
    ControlMode,
    DeltaReference,
    Dimension,
    Embodiment,
    Episode,
    EpisodeMeta,
    GripperConvention,
    GripperOpen,
    ImageCodec,
    ImageFeature,
    Joint,
    JointType,
    Provenance,
    RobotType,
    Role,
    RotationGroup,
    RotationRepr,
    Unit,
    VectorFeature,
)
from rdstd.schema.clock import Clock
from rdstd.schema.vocabulary import (
    ActionTiming,
    CameraMount,
    ClockKind,
    DeltaFrame,
    GripperKind,
    RotationComposition,
)
from rdstd.store.writer import DatasetWriter

EPISODES = 6
LENGTH = 60
RATE_HZ = 10.0
JOINTS = ("j0", "j1", "j2")
LIMIT_RAD = 3.0


def _features(plants: set[str]) -> dict[str, VectorFeature | ImageFeature]:
    state_dims = [Dimension(name=j, role=Role.JOINT_POSITION, unit=Unit.RAD, frame="base") for j in JOINTS]
    state_dims += [Dimension(name=a, role=Role.EEF_POSITION, unit=Unit.M, frame="base") for a in "xyz"]
    state_dims += [Dimension(name=f"q{a}", role=Role.EEF_ROTATION, unit=Unit.NONE, frame="base") for a in "xyzw"]
    state_dims.append(Dimension(name="gripper", role=Role.GRIPPER, unit=Unit.NORMALIZED, frame="none"))
    grip = GripperConvention(dim=10, kind=GripperKind.ABSOLUTE, range=(0.0, 1.0), open=GripperOpen.HIGH)
    act_dims = [Dimension(name=j, role=Role.JOINT_POSITION, unit=Unit.RAD, frame="base") for j in JOINTS]
    act_dims.append(Dimension(name="gripper", role=Role.GRIPPER, unit=Unit.NORMALIZED, frame="none"))
    deltas = {"absolute_labelled_delta", "delta", "delta_scaled"}
    mode = ActionMode.DELTA if plants & deltas else ActionMode.ABSOLUTE
    mode = ActionMode.UNKNOWN if "unknown_mode" in plants else mode
    semantics = ActionSemantics(
        mode=mode,
        space=ActionSpace.JOINT,
        reference=DeltaReference.PREVIOUS_STATE if mode == ActionMode.DELTA else DeltaReference.NONE,
        timing=ActionTiming.NEXT_STATE_TARGET,
    )
    act_grip = GripperConvention(dim=3, kind=GripperKind.ABSOLUTE, range=(0.0, 1.0), open=GripperOpen.HIGH)
    matrix_dims = [
        Dimension(name=f"r{i}{j}", role=Role.OBJECT_POSE, unit=Unit.NONE, frame="world")
        for i in range(3)
        for j in range(3)
    ]
    delta_dims = [Dimension(name=f"d{a}", role=Role.EEF_ROTATION, unit=Unit.RAD, frame="base") for a in "xyz"]
    delta = ActionSemantics(
        mode=ActionMode.DELTA,
        space=ActionSpace.EEF,
        reference=DeltaReference.PREVIOUS_STATE,
        timing=ActionTiming.NEXT_STATE_TARGET,
        rotation_frame=DeltaFrame.BASE,
        rotation_composition=RotationComposition.ROTATION_COMPOSITION,
    )
    extra: dict[str, VectorFeature | ImageFeature] = {}
    if plants & _EULER:  # the tool orientation as Euler angles, declared extrinsic xyz
        unit = Unit.DEG if "euler_deg_declared" in plants else Unit.RAD
        extra["observation.eef_euler"] = VectorFeature(
            dtype="float64",
            shape=(3,),
            dims=[Dimension(name=f"e{a}", role=Role.EEF_ROTATION, unit=unit, frame="base") for a in "xyz"],
            rotations=[
                RotationGroup(start=0, representation=RotationRepr.EULER, euler_axes="xyz", euler_extrinsic=True)
            ],
        )
    return (
        extra
        | {
            "action.rotation_delta": VectorFeature(
                dtype="float64",
                shape=(3,),
                dims=delta_dims,
                rotations=[RotationGroup(start=0, representation=RotationRepr.AXIS_ANGLE)],
                action=delta,
            ),
            "observation.state": VectorFeature(
                dtype="float64",
                shape=(11,),
                dims=state_dims,
                rotations=[RotationGroup(start=6, representation=RotationRepr.QUAT_XYZW)],
                grippers=[grip],
            ),
            "observation.object_rotation": VectorFeature(
                dtype="float64",
                shape=(9,),
                dims=matrix_dims,
                rotations=[RotationGroup(start=0, representation=RotationRepr.MATRIX)],
            ),
            "action": VectorFeature(dtype="float64", shape=(4,), dims=act_dims, grippers=[act_grip], action=semantics),
        }
        | (
            {}
            if "no_camera" in plants
            else {
                "observation.images.cam": ImageFeature(
                    height=16, width=16, codec=ImageCodec.PNG, frame="camera:cam", mount=CameraMount.THIRD_PERSON
                ),
            }
        )
    )


def _embodiment(plants: set[str]) -> Embodiment:
    if "urdf" in plants:  # limits only in the URDF beside the manifest
        joints = [Joint(name=j, type=JointType.REVOLUTE) for j in JOINTS]
    else:
        joints = [Joint(name=j, type=JointType.REVOLUTE, lower=-LIMIT_RAD, upper=LIMIT_RAD) for j in JOINTS]
    return Embodiment(
        name="arm",
        robot_type=RobotType.CUSTOM,
        joints=joints,
        control_mode=ControlMode.JOINT_POSITION,
        control_rate_hz=RATE_HZ,
        urdf=URDF_NAME if "urdf" in plants else None,
    )


URDF_NAME = "robot.urdf"


def urdf_text(continuous: tuple[str, ...] = ()) -> str:
    """A small URDF: the fixture's joints, revolute within ±LIMIT_RAD (``continuous`` ones without limits)."""
    joints = "".join(
        f'<joint name="{j}" type="continuous"><parent link="l{k}"/><child link="l{k + 1}"/></joint>'
        if j in continuous
        else f'<joint name="{j}" type="revolute"><parent link="l{k}"/><child link="l{k + 1}"/>'
        f'<limit lower="{-LIMIT_RAD}" upper="{LIMIT_RAD}" effort="10" velocity="2"/></joint>'
        for k, j in enumerate(JOINTS)
    )
    links = "".join(f'<link name="l{k}"/>' for k in range(len(JOINTS) + 1))
    return f'<?xml version="1.0"?><robot name="arm">{links}{joints}</robot>'


def _euler(rot: np.ndarray, extrinsic: bool) -> np.ndarray:
    """Euler angles (a, b, c) of rotation matrices: extrinsic xyz (R = Rz(c) Ry(b) Rx(a)) or intrinsic XYZ
    (R = Rx(a) Ry(b) Rz(c))."""
    if extrinsic:
        a = np.arctan2(rot[:, 2, 1], rot[:, 2, 2])
        b = -np.arcsin(np.clip(rot[:, 2, 0], -1.0, 1.0))
        c = np.arctan2(rot[:, 1, 0], rot[:, 0, 0])
    else:
        a = np.arctan2(-rot[:, 1, 2], rot[:, 2, 2])
        b = np.arcsin(np.clip(rot[:, 0, 2], -1.0, 1.0))
        c = np.arctan2(-rot[:, 0, 1], rot[:, 0, 0])
    return np.stack([a, b, c], axis=1)


#: Plants that add the Euler state: declared extrinsic xyz in rad (``euler``); episode 2 intrinsic XYZ
#: (``euler_intrinsic``), in degrees (``euler_degrees``), turning in the tool frame while the deltas declare the base
#: frame (``euler_tool``); every episode in degrees, declared deg (``euler_deg_declared``: clean).
_EULER = {"euler", "euler_intrinsic", "euler_degrees", "euler_tool", "euler_deg_declared"}

#: A fixed tool orientation the Euler trajectory turns from (so that every angle is well away from 0).
_EULER_BASE = np.array(
    [[0.36, -0.48, 0.8], [0.8, 0.6, 0.0], [-0.48, 0.64, 0.6]]
)  # a proper rotation: orthonormal rows, det +1


def _matrices(q: np.ndarray) -> np.ndarray:
    """Rotation matrices of unit quaternions xyzw."""
    x, y, z, w = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
        ],
        axis=1,
    )


def _episode(index: int, plants: set[str]) -> Episode:
    rng = np.random.default_rng(index)
    n = LENGTH
    t = np.arange(n + 2) / RATE_HZ  # two extra frames: actions are future states
    phase = 0.7 * index
    joints = np.stack([0.8 * np.sin(2 * math.pi * (0.2 + 0.05 * k) * t + phase + k) for k in range(3)], axis=1)
    if "constant" in plants:
        joints[:, 2] = 0.25
    if "limits" in plants and index == 1:
        joints[:, 0] = 3.5 * np.sin(2 * math.pi * 0.2 * t)
    if "wrap" in plants and index == 2:
        joints[:, 0] = (math.pi - 0.3 + 0.04 * np.arange(n + 2) + math.pi) % (2 * math.pi) - math.pi
    eef = 0.4 + 0.1 * np.stack([np.sin(2 * math.pi * 0.1 * t + phase + k) for k in range(3)], axis=1)
    angle = 0.3 * np.sin(2 * math.pi * 0.15 * t + phase)
    axis = np.array([0.2, 0.3, 0.9]) / np.linalg.norm([0.2, 0.3, 0.9])
    quat = np.concatenate([np.sin(angle / 2)[:, None] * axis, np.cos(angle / 2)[:, None]], axis=1)
    grip = 0.5 + 0.5 * np.cos(2 * math.pi * 0.1 * t + phase)
    lead = 2 if "lead" in plants else 1
    action = np.concatenate([joints[lead : n + lead], grip[lead : n + lead, None]], axis=1)
    state = np.concatenate([joints[:n], eef[:n], quat[:n], grip[:n, None]], axis=1)
    rot = _matrices(quat[:n])
    rotation_delta = (angle[1 : n + 1] - angle[:n])[:, None] * axis  # R(t+1) = R(delta_t) R(t), same axis
    timestamps = np.arange(n) / RATE_HZ + np.concatenate([[0.0], rng.uniform(-2e-4, 2e-4, n - 1)])
    yy, xx = np.mgrid[0:16, 0:16]
    frames = np.stack([((xx * 16 + yy * 4 + 7 * i + 40 * index) % 256) for i in range(n)]).astype(np.uint8)
    pixels = np.repeat(frames[..., None], 3, axis=3)
    task = "pick up the red block"
    meta: dict[str, object] = {}
    if "degrees" in plants and index == 2:
        state[:, 1] = np.degrees(state[:, 1]) * 3
        action[:, 1] = np.degrees(action[:, 1]) * 3
    if "wxyz" in plants and index == 1:
        state[:, 6:10] = state[:, [9, 6, 7, 8]]
    if "quat_norm" in plants and index == 2:
        state[20:30, 6:10] *= 1.1
    if "reflection" in plants and index == 3:
        rot[:, :, 2] *= -1.0  # a mirrored axis: orthonormal, det -1
    if "mm" in plants and index == 2:
        state[:, 3] *= 1000.0
    if "nan" in plants and index == 1:
        state[10:13, 0] = np.nan
    if "inverted_gripper" in plants and index == 3:
        action[:, 3] = 1.0 - action[:, 3]
    if "relative_gripper" in plants:
        toggles = np.zeros(n)
        toggles[[5, 25, 45]] = 1.0
        toggles[[15, 35]] = -1.0
        action[:, 3] = toggles
    if "prenormalized" in plants:
        action[:, 1] = np.clip(2 * action[:, 1], -1.0, 1.0)
    if "quantized" in plants:
        action[:, 2] = np.round(action[:, 2] * 8) / 8
    if "jump" in plants and index == 1:
        action[30, :3] += 2.0  # a one-frame spike on every joint target
    if "spike" in plants and index == 4:
        state[40, 0] = 50.0
    if "chatter" in plants and index == 4:
        action[:, 3] = np.arange(n) % 2
    if "grid" in plants:  # "measured" times that are frame_index / rate stored as float32 (as LeRobot writes)
        timestamps = (np.arange(n, dtype=np.float32) / np.float32(RATE_HZ)).astype(np.float64)
    if "dropped_frame" in plants and index == 4:
        timestamps[30:] += 1.0 / RATE_HZ  # frame 30 of the grid is missing: a gap after frame 29
    if plants & {"delta", "delta_scaled"}:  # per-step joint deltas: s_(t+1) = s_t + a_t
        action[:, :3] = joints[1 : n + 1] - joints[:n]
        if "delta_scaled" in plants and index == 2:
            action[:, :3] *= 0.5  # deltas of half the motion (e.g. per two steps, or another unit)
    if "idle" in plants and index == 0:
        state[:40] = state[0]
        action[:40] = action[0]
    if "frozen_camera" in plants and index == 5:
        pixels[:] = pixels[0]
    if "resized_camera" in plants and index == 2:
        pixels = pixels[:, :12]  # stored 12 high where the camera declares 16
    if "blank_camera" in plants and index == 0:
        pixels[:] = 0
    if "empty_task" in plants and index == 3:
        task = "   "
    if "notes" in plants and index == 2:
        meta["notes"] = ["declared 60 frames, found 59"]
    vectors = {
        "observation.state": state,
        "observation.object_rotation": rot.reshape(n, 9),
        "action": action,
        "action.rotation_delta": rotation_delta,
    }
    if plants & _EULER:
        tool = _matrices(quat[:n]) @ _EULER_BASE  # turns with the deltas: R(t+1) = R(delta_t) R(t)
        if "euler_tool" in plants and index == 2:  # turns in its own frame: R(t+1) = R(t) R(delta_t)
            tool = _EULER_BASE @ _matrices(quat[:n])
        euler = _euler(tool, extrinsic=not ("euler_intrinsic" in plants and index == 2))
        if "euler_deg_declared" in plants or ("euler_degrees" in plants and index == 2):
            euler = np.degrees(euler)
        vectors["observation.eef_euler"] = euler
    return Episode(
        EpisodeMeta(
            episode_id=f"ep{index:03d}",
            task=task,
            split="train" if index < 4 else "val",
            embodiment="arm",
            source_meta=meta,
        ),
        timestamps,
        vectors,
        {} if "no_camera" in plants else {"observation.images.cam": pixels},
    )


def make(root: Path, *plants: str) -> Path:
    """Write the dataset with ``plants`` into ``root/<plants or 'clean'>`` and return its path."""
    chosen = set(plants)
    path = root / ("-".join(sorted(chosen)) or "clean")
    episodes = [_episode(i, chosen) for i in range(EPISODES)]
    if "duplicate" in chosen:  # the val episode 5 repeats the train episode 0
        first = episodes[0]
        episodes[5] = Episode(
            first.meta.model_copy(update={"episode_id": "ep005", "split": "val"}),
            first.timestamps,
            first.vectors,
            first.images,
        )
    with DatasetWriter(
        path,
        _features(chosen),
        Provenance(source_format="generated", rdstd_version="test"),
        name="validate-fixture",
        rate_hz=RATE_HZ,
        embodiments=[] if "no_embodiment" in chosen else [_embodiment(chosen)],
        clock=Clock(kind=ClockKind.MEASURED, source="source_timestamps", resampling="none"),
    ) as writer:
        for episode in episodes:
            writer.add(episode)
    if "urdf" in chosen:
        (path / URDF_NAME).write_text(urdf_text())
    return path

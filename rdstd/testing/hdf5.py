"""HDF5 sources written in code with h5py, each following its writer's documented layout (quirks included).

Layouts: robomimic/robosuite (ARISE-Initiative/robomimic docs/datasets/overview.md), LIBERO
(Lifelong-Robot-Learning/LIBERO scripts/create_dataset.py), MimicGen (NVlabs/mimicgen utils/file_utils.py),
Isaac Lab (IsaacLab utils/datasets/hdf5_dataset_file_handler.py), ALOHA/ACT (tonyzhaozh/act record_sim_episodes.py,
MarkFzp/mobile-aloha record_episodes.py), RoboMIND (x-humanoid-robomind.github.io static/all_robot_h5_info.md),
DROID raw (droid-dataset/droid trajectory_utils/trajectory_writer.py).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from PIL import Image

#: ALOHA's camera order in the writers (aloha constants.py), which is not h5py's alphabetical listing order.
ALOHA_CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")


def jpeg(pixels: npt.NDArray[np.uint8], quality: int = 50) -> bytes:
    """JPEG bytes of an RGB image (what cv2.imencode writes in the ALOHA recorders)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png(pixels: npt.NDArray[Any]) -> bytes:
    """PNG bytes of an image (RoboMIND depth)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def picture(seed: int, height: int = 48, width: int = 64) -> npt.NDArray[np.uint8]:
    """A small RGB test picture that differs per seed and compresses to different JPEG lengths."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, height * width * 3).reshape(height, width, 3)
    noise = rng.integers(0, 64, size=(height, width, 3))
    return ((base + noise * (seed % 5)) % 256).astype(np.uint8)


def quat_xyzw_from_axis_angle(axis_angle: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Unit quaternions (x, y, z, w) of rotation vectors (rows)."""
    angle = np.linalg.norm(axis_angle, axis=1, keepdims=True)
    axis = np.divide(axis_angle, angle, out=np.zeros_like(axis_angle), where=angle > 0)
    return np.concatenate([axis * np.sin(angle / 2), np.cos(angle / 2)], axis=1)


def write_aloha_episode(
    path: Path,
    steps: int = 6,
    *,
    cameras: tuple[str, ...] = ALOHA_CAMERAS,
    seed: int = 0,
    sim: bool = False,
    compress: bool = True,
    effort: bool = True,
    base_action: bool = False,
) -> dict[str, list[bytes]]:
    """One ALOHA-family episode file; returns each camera's true JPEG bytes per frame (with ``compress``).

    ``compress`` writes JPEG zero-padded to one length plus ``compress_len`` (aloha, mobile-aloha); without it the
    cameras are raw (T, H, W, 3) uint8 chunked one frame each, as act's sim recorder writes them (the returned
    bytes are then the JPEG of each frame's pixels, which are :func:`picture`). ``effort`` (T, 14) is written by
    the real-robot recorders only; ``base_action`` (T, 2: linear m/s, angular rad/s) by Mobile ALOHA's.
    """
    rng = np.random.default_rng(seed)
    pixels = {cam: [picture(seed * 100 + i * 7 + c) for i in range(steps)] for c, cam in enumerate(cameras)}
    frames = {cam: [jpeg(p) for p in ps] for cam, ps in pixels.items()}
    padded = max((len(b) for bs in frames.values() for b in bs), default=0)
    with h5py.File(path, "w") as f:
        f.attrs["sim"] = sim
        f.attrs["compress"] = compress
        obs = f.create_group("observations")
        images = obs.create_group("images")
        for cam in cameras:
            if not compress:
                shape = pixels[cam][0].shape
                images.create_dataset(cam, data=np.stack(pixels[cam]), chunks=(1, *shape))
                continue
            ds = images.create_dataset(cam, (steps, padded), dtype="uint8", chunks=(1, padded))
            for i, data in enumerate(frames[cam]):
                row = np.zeros(padded, dtype=np.uint8)
                row[: len(data)] = np.frombuffer(data, dtype=np.uint8)
                ds[i] = row
        obs.create_dataset("qpos", data=rng.uniform(-1, 1, (steps, 14)))
        obs.create_dataset("qvel", data=rng.uniform(-1, 1, (steps, 14)))
        if effort:
            obs.create_dataset("effort", data=rng.uniform(-2000, 2000, (steps, 14)))
        f.create_dataset("action", data=rng.uniform(-1, 1, (steps, 14)))
        if base_action:
            f.create_dataset("base_action", data=rng.uniform(-0.5, 0.5, (steps, 2)))
        if compress:
            lengths = np.array([[len(b) for b in frames[c]] for c in cameras], dtype=float)
            f.create_dataset("compress_len", data=lengths)
    return frames


#: Mobile ALOHA's cameras (mobile-aloha constants.py): no cam_low.
MOBILE_ALOHA_CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")


def write_aloha_folder(folder: Path, episodes: int = 3, steps: int = 6) -> Path:
    """``episode_0.hdf5`` … in one folder: one ALOHA dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(episodes):
        write_aloha_episode(folder / f"episode_{i}.hdf5", steps + i, seed=i)
    return folder


def _robomimic_demo(demo: h5py.Group, steps: int, rng: np.random.Generator, quat_xyzw: npt.NDArray[np.float64]) -> None:
    demo.attrs["num_samples"] = steps
    demo.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)))
    demo.create_dataset("rewards", data=np.zeros(steps))
    demo.create_dataset("dones", data=np.arange(steps) == steps - 1)
    states = rng.uniform(-1, 1, (steps, 10))
    states[:, 0] = 0.35 + 0.05 * np.arange(steps)  # MuJoCo sim time, not starting at 0
    demo.create_dataset("states", data=states)
    for group in ("obs", "next_obs"):
        g = demo.create_group(group)
        g.create_dataset("robot0_eef_pos", data=rng.uniform(-1, 1, (steps, 3)))
        g.create_dataset("robot0_eef_quat", data=quat_xyzw)
        g.create_dataset("robot0_gripper_qpos", data=rng.uniform(0, 0.04, (steps, 2)))
        g.create_dataset("agentview_image", data=rng.integers(0, 255, (steps, 16, 16, 3), dtype=np.uint8))


def write_robomimic(path: Path, rotvecs: list[npt.NDArray[np.float64]], *, control_freq: int | None = 20) -> None:
    """A robomimic file: one demo per rotation-vector array (its eef quaternions, xyzw), masks as |S bytes."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        kwargs: dict[str, Any] = {"robots": "Panda"}
        if control_freq is not None:
            kwargs["control_freq"] = control_freq
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": kwargs})
        for i, rv in enumerate(rotvecs, start=1):
            _robomimic_demo(data.create_group(f"demo_{i}"), len(rv), rng, quat_xyzw_from_axis_angle(rv))
        data.attrs["total"] = sum(len(r) for r in rotvecs)
        mask = f.create_group("mask")
        names = [f"demo_{i}".encode() for i in range(1, len(rotvecs) + 1)]
        mask.create_dataset("train", data=np.array(names[:-1], dtype="S8"))
        mask.create_dataset("valid", data=np.array(names[-1:], dtype="S8"))
        mask.create_dataset("20_percent", data=np.array(names[:1], dtype="S8"))


def write_libero(path: Path, steps: int = 4, demos: int = 2, *, instruction: str = "put the bowl on the plate") -> None:
    """A LIBERO task file: problem_info JSON with the language, BDDL text, images stored upside down."""
    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps(
            {
                "problem_name": "libero_tabletop_manipulation",
                "domain_name": "robosuite",
                "language_instruction": instruction,
            }
        )
        data.attrs["bddl_file_name"] = "libero/bddl_files/libero_10/task.bddl"
        data.attrs["bddl_file_content"] = "(define (problem LIBERO_Tabletop_Manipulation)\n" + ";" * 6000 + ")"
        data.attrs["env_args"] = json.dumps({"type": 1, "env_name": "Libero_Tabletop_Manipulation", "env_kwargs": {}})
        data.attrs["macros_image_convention"] = "opengl"
        data.attrs["num_demos"] = demos
        for d in range(demos):
            demo = data.create_group(f"demo_{d}")
            demo.attrs["init_state"] = rng.uniform(-1, 1, 10)
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)))
            obs = demo.create_group("obs")
            obs.create_dataset("ee_pos", data=rng.uniform(-1, 1, (steps, 3)))
            obs.create_dataset("ee_ori", data=rng.uniform(-1, 1, (steps, 3)))
            obs.create_dataset("joint_states", data=rng.uniform(-1, 1, (steps, 7)))
            obs.create_dataset("gripper_states", data=rng.uniform(0, 0.04, (steps, 2)))
            upright = np.stack([upright_image(d * 10 + i) for i in range(steps)])
            obs.create_dataset("agentview_rgb", data=upright[:, ::-1])  # stored upside down
            demo.create_dataset("rewards", data=(np.arange(steps) == steps - 1).astype(np.uint8))
            demo.create_dataset("dones", data=(np.arange(steps) == steps - 1).astype(np.uint8))


def upright_image(seed: int) -> npt.NDArray[np.uint8]:
    """An image whose rows differ (top dark, bottom bright), so a flip is visible."""
    rows = np.linspace(0, 250, 16, dtype=np.float64)[:, None, None] + seed
    return np.broadcast_to(rows, (16, 16, 3)).astype(np.uint8).copy()


def write_mimicgen(path: Path, steps: int = 5) -> None:
    """A MimicGen generated file: robomimic layout plus demo-level datagen_info and src_demo_inds."""
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Stack_D0", "type": 1, "env_kwargs": {"control_freq": 20}})
        demo = data.create_group("demo_0")
        _robomimic_demo(demo, steps, rng, quat_xyzw_from_axis_angle(rng.uniform(-1, 1, (steps, 3))))
        demo.attrs["src_demo_inds"] = np.array([3])
        demo.attrs["src_demo_labels"] = np.array([[3]] * steps)
        info = demo.create_group("datagen_info")
        info.create_dataset("eef_pose", data=np.tile(np.eye(4), (steps, 1, 1)))
        info.create_dataset("target_pose", data=np.tile(np.eye(4), (steps, 1, 1)))
        info.create_dataset("gripper_action", data=rng.uniform(-1, 1, (steps, 1)))
        info.create_group("object_poses").create_dataset("cube", data=np.tile(np.eye(4), (steps, 1, 1)))
        info.create_group("subtask_term_signals").create_dataset("grasp", data=np.arange(steps) > 2)
        info.attrs["env_interface_name"] = "MG_Stack"
        info.attrs["env_interface_type"] = "robosuite"


def write_isaaclab(path: Path, rotvecs: list[npt.NDArray[np.float64]]) -> None:
    """An Isaac Lab 2.x recorder file: wxyz quaternions, initial_state/, states/, 0-based demos with a gap."""
    rng = np.random.default_rng(4)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Isaac-Lift-Cube-Franka-IK-Rel-v0", "type": 2})
        for n, rv in zip((0, 2), rotvecs, strict=False):  # demo_1 failed and was dropped: a gap
            steps = len(rv)
            demo = data.create_group(f"demo_{n}")
            demo.attrs["num_samples"] = steps
            demo.attrs["success"] = np.True_
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)).astype(np.float32))
            xyzw = quat_xyzw_from_axis_angle(rv)
            obs = demo.create_group("obs")
            obs.create_dataset("eef_pos", data=rng.uniform(-1, 1, (steps, 3)).astype(np.float32))
            obs.create_dataset("eef_quat", data=xyzw[:, [3, 0, 1, 2]].astype(np.float32))
            obs.create_dataset("actions", data=np.zeros((steps, 7), np.float32))
            for group, rows in (("initial_state", 1), ("states", steps)):
                robot = demo.create_group(f"{group}/articulation/robot")
                pose = np.zeros((rows, 7), np.float32)
                pose[:, 3] = 1.0  # identity, w first
                robot.create_dataset("root_pose", data=pose)
                robot.create_dataset("joint_position", data=np.zeros((rows, 9), np.float32))
        data.attrs["total"] = sum(len(r) for r in rotvecs)


def write_robomind(
    path: Path, steps: int = 4, *, sim: bool | None = False, depth_attrs: dict[str, Any] | None = None
) -> list[bytes]:
    """A RoboMIND trajectory.hdf5: master/puppet joints, variable-length JPEG and PNG depth bytes.

    ``sim`` is the root ``@sim`` attribute (None: left out); ``depth_attrs`` are set on the depth dataset (RoboMIND's
    public files have none: a test of what rdstd does when a file does state a unit).
    """
    rng = np.random.default_rng(5)
    rgb = [jpeg(picture(50 + i)) for i in range(steps)]
    with h5py.File(path, "w") as f:
        if sim is not None:
            f.attrs["sim"] = sim
        f.attrs["compress"] = True
        for side in ("master", "puppet"):
            g = f.create_group(side)
            g.create_dataset("joint_position_left", data=rng.uniform(-1, 1, (steps, 7)))
            g.create_dataset("joint_position_right", data=rng.uniform(-1, 1, (steps, 7)))
        f["puppet"].create_dataset("end_effector_left", data=rng.uniform(-1, 1, (steps, 6)))
        vlen = h5py.vlen_dtype(np.dtype("uint8"))
        cam = f.create_dataset("observations/rgb_images/camera_top", (steps,), dtype=vlen)
        depth = f.create_dataset("observations/depth_images/camera_top", (steps,), dtype=vlen)
        for i in range(steps):
            cam[i] = np.frombuffer(rgb[i], dtype=np.uint8)
            depth[i] = np.frombuffer(png(rng.integers(0, 4000, (12, 16), dtype=np.uint16)), dtype=np.uint8)
        for name, value in (depth_attrs or {}).items():
            depth.attrs[name] = value
    return rgb


def write_droid(path: Path, steps: int = 5, *, start_s: int = 1_700_000_000) -> None:
    """A DROID raw trajectory.h5: observation/{robot_state, timestamp}, action/, epoch clocks, current_task."""
    rng = np.random.default_rng(6)
    with h5py.File(path, "w") as f:
        f.attrs["current_task"] = "put the marker in the cup"
        f.attrs["success"] = True
        f.attrs["robot_serial_number"] = "panda-1"
        state = f.create_group("observation/robot_state")
        state.create_dataset("cartesian_position", data=rng.uniform(-1, 1, (steps, 6)))
        state.create_dataset("gripper_position", data=rng.uniform(0, 1, steps))
        state.create_dataset("joint_positions", data=rng.uniform(-1, 1, (steps, 7)))
        stamps = f.create_group("observation/timestamp/robot_state")
        nanos = (np.arange(steps) * 66_666_667) % 1_000_000_000
        secs = start_s + (np.arange(steps) * 66_666_667) // 1_000_000_000
        stamps.create_dataset("robot_timestamp_seconds", data=secs.astype(np.int64))
        stamps.create_dataset("robot_timestamp_nanos", data=nanos.astype(np.int64))
        control = f.create_group("observation/timestamp/control")
        control.create_dataset("step_start", data=(start_s * 1000 + np.arange(steps) * 67).astype(np.int64))
        action = f.create_group("action")
        action.create_dataset("cartesian_position", data=rng.uniform(-1, 1, (steps, 6)))
        action.create_dataset("gripper_position", data=rng.uniform(0, 1, steps))
        action.create_dataset("joint_velocity", data=rng.uniform(-1, 1, (steps, 7)))

"""Every real HDF5 sample (../shared/samples/hdf5, read in place) converts, or fails with a one-line error.

Counts are checked against h5py read here, independently of the backend: every episode, every step.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, SourceError
from rdstd.formats.hdf5 import Hdf5Backend
from rdstd.formats.registry import detect
from tests.conftest import sample

ROBOSUITE = "hdf5/ARISE-Initiative__robosuite/robosuite/models/assets/demonstrations"
MISO = "hdf5/misoshiruseijin__robosuite/robosuite/models/assets/demonstrations"
ISAAC = "hdf5/ToxicNS__IsaacLab/datasets"

#: sample -> (flavor, spec to convert with or None, rate to give or None)
CONVERTIBLE = {
    f"{ROBOSUITE}/lift/panda/demo.hdf5": ("robosuite_raw", None, None),
    f"{ROBOSUITE}/SawyerLift/demo.hdf5": ("robosuite_raw", None, None),
    f"{ROBOSUITE}/1710619576_972822/demo.hdf5": ("robosuite_raw", None, None),
    f"{MISO}/franka_reaching_robosuite/demo.hdf5": ("robomimic", None, None),
    f"{MISO}/reaching_sample/demo.hdf5": ("robomimic", None, None),
    f"{ISAAC}/lift/dataset_2demos.hdf5": ("isaaclab", "hdf5/isaaclab_2x", 50.0),
    f"{ISAAC}/lift_annotated/annotated_dataset_2demos.hdf5": ("isaaclab_mimic", "hdf5/isaaclab_2x", 50.0),
    f"{ISAAC}/lift_generated/generated_dataset_small_10r_10demos.hdf5": ("isaaclab", "hdf5/isaaclab_2x", 50.0),
    "hdf5/vikashplus__robohive/robohive/random_policy20230302-070139_trace.h5": ("robohive_trace", None, None),
    "hdf5/vikashplus__robohive/robohive/test.hdf5": ("stacked_arrays", None, 100.0),
    "hdf5/Badger-RL__Guided-Data-Augmentation/src/datasets/PushBallToGoal-v0/physical/trajectories/0.hdf5": (
        "d4rl",
        None,
        10.0,
    ),
}


def h5py_lengths(path: Path) -> list[int]:
    """Episode lengths read with h5py directly: demo_N by number, TrialN by number, stacked, or one file."""
    with h5py.File(path, "r") as f:
        if "data" in f:
            names = sorted((n for n in f["data"] if n.startswith("demo_")), key=lambda n: int(n[5:]))
            return [
                len(f["data"][n]["actions"] if "actions" in f["data"][n] else f["data"][n]["states"]) for n in names
            ]
        trials = sorted((n for n in f if n.startswith("Trial")), key=lambda n: int(n[5:]))
        if trials:
            return [len(f[n]["actions"]) for n in trials]
        if "q" in f:
            return [f["q"].shape[1]] * f["q"].shape[0]
        return [len(f["actions"])]


@pytest.mark.parametrize("relative", sorted(CONVERTIBLE))
def test_each_sample_converts_with_every_episode_and_step(relative: str, tmp_path: Path) -> None:
    path = sample(relative)
    flavor, spec, rate = CONVERTIBLE[relative]
    assert detect(path).name == "hdf5"
    lengths = h5py_lengths(path)
    with Hdf5Backend().open(path) as source:
        info = source.info()
        assert info.extra["flavor"] == flavor
        assert info.extra["evidence"] and info.extra["confidence"] > 0
        assert [r.length for r in source.episode_refs()] == lengths
        assert [source.read_episode(r).length for r in source.episode_refs()] == lengths
    report = convert(path, tmp_path / "out", spec=spec, rate_hz=rate)
    assert report.episodes_written == len(lengths)
    dataset = rdstd.open(tmp_path / "out")
    assert [dataset.episode(i).length for i in range(len(lengths))] == lengths


def test_robosuite_sim_time_is_the_clock_and_does_not_start_at_zero_in_the_source(tmp_path: Path) -> None:
    path = sample(f"{ROBOSUITE}/lift/panda/demo.hdf5")
    with h5py.File(path, "r") as f:
        sim_time = f["data/demo_1/states"][:, 0]
    assert sim_time[0] > 0
    convert(path, tmp_path / "out")
    dataset = rdstd.open(tmp_path / "out")
    np.testing.assert_allclose(dataset.episode(0).timestamps, sim_time - sim_time[0])
    assert dataset.manifest.clock.kind == "measured"
    assert dataset.manifest.provenance.converter_spec == "hdf5/robosuite_raw"


def test_robomimic_sample_keeps_xyzw_quaternions_and_its_splits(tmp_path: Path) -> None:
    path = sample(f"{MISO}/franka_reaching_robosuite/demo.hdf5")
    with h5py.File(path, "r") as f:
        quat = f["data/demo_1/obs/robot0_eef_quat"][()]
        train = {b.decode() for b in f["mask/train"][()]}
    convert(path, tmp_path / "out")
    dataset = rdstd.open(tmp_path / "out")
    assert dataset.manifest.provenance.converter_spec == "hdf5/robomimic"
    np.testing.assert_allclose(dataset.episode(0).vectors["observation.eef_quat"], quat)
    splits = {dataset.episode(i).meta.source_key: dataset.episode(i).meta.split for i in range(5)}
    assert {k for k, v in splits.items() if v == "train"} == train


def test_isaaclab_sample_quaternions_are_reordered_to_xyzw(tmp_path: Path) -> None:
    path = sample(f"{ISAAC}/lift/dataset_2demos.hdf5")
    with h5py.File(path, "r") as f:
        wxyz = f["data/demo_0/states/articulation/robot/root_pose"][:, 3:]
    convert(path, tmp_path / "out", spec="hdf5/isaaclab_2x", rate_hz=50.0)
    got = rdstd.open(tmp_path / "out").episode(0).vectors["observation.robot_root_pose"][:, 3:]
    np.testing.assert_allclose(got, wxyz[:, [1, 2, 3, 0]])
    np.testing.assert_allclose(got[0], [0, 0, 0, 1], atol=1e-6)


def test_the_malformed_env_args_and_the_miscounted_num_samples_are_said() -> None:
    with Hdf5Backend().open(sample(f"{MISO}/reaching_sample/demo.hdf5")) as source:
        warnings = source.info().extra["warnings"]
        notes = source.read_episode(source.episode_refs()[0]).meta["notes"]
    assert any("env_args lacks type, env_kwargs" in w for w in warnings)
    assert any("num_samples says 251, the datasets hold 151 steps" in n for n in notes)


def test_inline_model_xml_is_stored_once_per_distinct_value() -> None:
    with Hdf5Backend().open(sample(f"{ROBOSUITE}/1710619576_972822/demo.hdf5")) as source:
        metas = [source.read_episode(r).meta for r in source.episode_refs()]
        large = source.info().extra["large_attrs"]
    refs = {m["model_file"]["sha256_16"] for m in metas}
    assert refs <= set(large)
    assert all(large[r].startswith("<mujoco") for r in refs)


def test_the_mujoco_state_layout_comes_from_the_inline_model_xml() -> None:
    path = sample(f"{ROBOSUITE}/1710619576_972822/demo.hdf5")
    with Hdf5Backend().open(path) as source:
        layout = source.read_episode(source.episode_refs()[0]).meta["states_layout"]
    with Hdf5Backend().open(sample(f"{ROBOSUITE}/lift/panda/demo.hdf5")) as source:
        named = source.read_episode(source.episode_refs()[0]).meta["states_layout"]
    assert layout["qpos"] == [1, 17] and layout["qvel"] == [17, 32]
    ((cube,),) = [[q for q in layout["quaternions_wxyz"] if q["joint"] == "cube_joint0"]]
    with h5py.File(path, "r") as f:
        quats = f["data/demo_1/states"][:, cube["columns"][0] : cube["columns"][1]]
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-6)  # a unit quaternion: the right columns
    assert "model_1.xml" in named["unknown"]


def test_the_zero_demo_file_is_a_clear_error() -> None:
    path = sample(f"{ISAAC}/lift_generated/generated_dataset_small_10r_10000demos.hdf5")
    with pytest.raises(SourceError, match="holds no episodes") as caught:
        Hdf5Backend().open(path)
    assert str(path) in caught.value.message and "\n" not in caught.value.message


def test_the_truncated_file_is_a_clear_error() -> None:
    path = sample(f"{ISAAC}/lift_generated/generated_dataset_small_10demos.hdf5")
    assert detect(path).name == "hdf5"
    with pytest.raises(CorruptSourceError, match="truncated") as caught:
        Hdf5Backend().open(path)
    assert str(path) in caught.value.message and "\n" not in caught.value.message

"""Mixtures: a common layout from the schema's roles, what cannot be aligned refused, weights respected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rdstd
from rdstd.errors import MappingError, UsageError
from rdstd.loader import FrameDataset
from rdstd.loader.mixture import Mixture, MixtureSampler, Source
from rdstd.schema import Dimension, Episode, EpisodeMeta, Provenance, VectorFeature
from rdstd.schema.features import ActionSemantics, RotationGroup
from rdstd.schema.vocabulary import ActionMode, ActionSpace, Role, RotationRepr, Unit
from rdstd.store import DatasetWriter

DELTA_EEF = ActionSemantics(mode=ActionMode.DELTA, space=ActionSpace.EEF)


def state(joints: int, grippers: int) -> VectorFeature:
    dims = [Dimension(name=f"j{i}", role=Role.JOINT_POSITION, unit=Unit.RAD) for i in range(joints)]
    dims += [Dimension(name=f"g{i}", role=Role.GRIPPER, unit=Unit.NORMALIZED) for i in range(grippers)]
    return VectorFeature(shape=(len(dims),), dims=dims)


def eef_action(
    rotation: RotationRepr = RotationRepr.AXIS_ANGLE,
    *,
    extra: bool = False,
    rot_unit: Unit = Unit.RAD,
    semantics: ActionSemantics = DELTA_EEF,
) -> VectorFeature:
    size = {RotationRepr.AXIS_ANGLE: 3, RotationRepr.EULER: 3, RotationRepr.QUAT_XYZW: 4}[rotation]
    dims = [Dimension(name=n, role=Role.EEF_POSITION, unit=Unit.M) for n in "xyz"]
    dims += [Dimension(name=f"r{i}", role=Role.EEF_ROTATION, unit=rot_unit) for i in range(size)]
    dims += [Dimension(name="grip", role=Role.GRIPPER, unit=Unit.NORMALIZED)]
    if extra:
        dims.insert(3, Dimension(name="base_vx", role=Role.BASE_VELOCITY, unit=Unit.M_PER_S))
    group = RotationGroup(
        start=4 if extra else 3, representation=rotation, euler_axes="xyz" if rotation == RotationRepr.EULER else None
    )
    return VectorFeature(shape=(len(dims),), dims=dims, rotations=[group], action=semantics)


def write(path: Path, features: dict[str, VectorFeature], lengths: list[int], tag: float) -> FrameDataset:
    """Vectors whose every value is ``tag + 0.01 * dim`` (so a value says its dataset and dimension)."""
    with DatasetWriter(path, dict(features), Provenance(source_format="t", rdstd_version="0")) as w:
        for e, n in enumerate(lengths):
            vectors = {
                k: np.tile(tag + 0.01 * np.arange(f.size), (n, 1)).astype(np.float32) for k, f in features.items()
            }
            w.add(Episode(EpisodeMeta(episode_id=f"e{e}"), np.arange(n) / 10.0, vectors))
    return FrameDataset(rdstd.open(path))


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> FrameDataset:
    """A 7-DoF arm with one gripper, EEF-delta actions with a base velocity the layout has no slot for."""
    features = {"observation.state": state(7, 1), "action": eef_action(extra=True)}
    return write(tmp_path_factory.mktemp("m") / "arm", features, [20, 30], 1.0)


@pytest.fixture(scope="module")
def bimanual(tmp_path_factory: pytest.TempPathFactory) -> FrameDataset:
    """A 14-DoF bimanual robot with two grippers (its state is called ``state``)."""
    return write(tmp_path_factory.mktemp("m") / "bi", {"state": state(14, 2)}, [25], 2.0)


@pytest.fixture(scope="module")
def other_arm(tmp_path_factory: pytest.TempPathFactory) -> FrameDataset:
    features = {"observation.state": state(6, 1), "action": eef_action()}
    return write(tmp_path_factory.mktemp("m") / "arm2", features, [15], 3.0)


def test_a_7_dof_arm_and_a_14_dof_bimanual_share_a_padded_joint_batch(
    arm: FrameDataset, bimanual: FrameDataset
) -> None:
    mix = Mixture(
        [Source(arm, 1.0), Source(bimanual, 1.0, rename={"state": "observation.state"})],
        layouts={"observation.state": "joints"},
    )
    assert mix.keys == ["observation.state"]
    assert any("arm: keys not in every source" in line and "action" in line for line in mix.report)
    batch = mix.batch([0, 50, 3, 60])
    assert batch["dataset"].tolist() == [0, 1, 0, 1]
    state_ = batch["observation.state"]
    assert state_.shape == (4, 16) and state_.dtype == np.float32
    mask = batch["observation.state_mask"]
    arm_mask = np.zeros(16, bool)
    arm_mask[:7] = arm_mask[14] = True
    np.testing.assert_array_equal(mask[0], arm_mask)
    assert mask[1].all()
    np.testing.assert_allclose(state_[0, :7], 1.0 + 0.01 * np.arange(7))
    assert state_[0, 14] == pytest.approx(1.07)  # the arm's gripper (its dim 7) in the first gripper slot
    assert not state_[0, 7:14].any() and state_[0, 15] == 0
    np.testing.assert_allclose(state_[1], 2.0 + 0.01 * np.arange(16), rtol=1e-6)


def test_eef_layout_maps_position_rotation_gripper_and_reports_the_rest(
    arm: FrameDataset, other_arm: FrameDataset
) -> None:
    a, b = (FrameDataset(fd.dataset, ["action"]) for fd in (arm, other_arm))
    mix = Mixture([Source(a, 2.0), Source(b, 1.0)], layouts={"action": "eef"})
    assert mix.layouts["action"].names == ["x", "y", "z", "rot0", "rot1", "rot2", "gripper"]
    assert any("action dimensions with no slot in the eef layout: base_vx" in line for line in mix.report)
    batch = mix.batch([0, len(arm)])
    assert set(batch) == {"action", "action_mask", "dataset", "index", "episode_index", "frame_index", "timestamp"}
    arm_dims = [0, 1, 2, 4, 5, 6, 7]  # base_vx (dim 3) left out
    np.testing.assert_allclose(batch["action"][0], 1.0 + 0.01 * np.array(arm_dims), rtol=1e-6)
    np.testing.assert_allclose(batch["action"][1], 3.0 + 0.01 * np.arange(7), rtol=1e-6)
    assert batch["action_mask"].all()


def test_windows_keep_their_axis_in_the_layout(arm: FrameDataset, other_arm: FrameDataset) -> None:
    a = FrameDataset(arm.dataset, ["action"], windows={"action": range(0, 4)})
    b = FrameDataset(other_arm.dataset, ["action"], windows={"action": range(0, 4)})
    batch = Mixture([Source(a, 1), Source(b, 1)], layouts={"action": "eef"}).batch([19, 50])
    assert batch["action"].shape == (2, 4, 7)
    assert batch["action_is_pad"][0].tolist() == [False, True, True, True]


def test_what_cannot_be_aligned_fails_at_construction(
    tmp_path: Path, arm: FrameDataset, bimanual: FrameDataset, other_arm: FrameDataset
) -> None:
    renamed = Source(bimanual, 1, rename={"state": "action"})
    with pytest.raises(MappingError, match="means different things"):
        Mixture([Source(arm, 1), renamed], layouts={"action": "joints"})
    euler = write(tmp_path / "euler", {"action": eef_action(RotationRepr.EULER)}, [5], 4.0)
    with pytest.raises(
        MappingError, match=r"different representations across the mixture \(arm: axis_angle; euler: euler\)"
    ):
        Mixture([Source(arm, 1), Source(euler, 1)], layouts={"action": "eef"})
    degrees = write(tmp_path / "deg", {"action": eef_action(rot_unit=Unit.DEG)}, [5], 4.0)
    with pytest.raises(MappingError, match="eef_rotation dimensions have different units"):
        Mixture([Source(arm, 1), Source(degrees, 1)], layouts={"action": "eef"})
    two_grippers = write(tmp_path / "two", {"action": state(14, 2).model_copy(update={"action": DELTA_EEF})}, [5], 4.0)
    with pytest.raises(MappingError, match="two: 'action' has 0 eef_position"):
        Mixture([Source(arm, 1), Source(two_grippers, 1)], layouts={"action": "eef"})
    with pytest.raises(MappingError, match="not read from bi"):
        Mixture([Source(arm, 1), Source(bimanual, 1)], layouts={"observation.state": "joints"})
    with pytest.raises(MappingError, match=r"different shapes across the mixture \(arm: \(8,\) float32; arm2: \(7,\)"):
        Mixture([Source(arm, 1.0), Source(other_arm, 1.0)], layouts={"action": "eef"})
    with pytest.raises(MappingError, match="different shapes"):
        Mixture([Source(arm, 1), Source(bimanual, 1, rename={"state": "observation.state"})])
    with pytest.raises(UsageError, match="weight"):
        Mixture([Source(arm, 0.0)])
    with pytest.raises(UsageError, match="layout 'pose'"):
        Mixture([Source(arm, 1)], layouts={"action": "pose"})  # type: ignore[dict-item]


def test_sampling_frequencies_follow_the_weights(arm: FrameDataset, bimanual: FrameDataset) -> None:
    mix = Mixture(
        [Source(arm, 0.7), Source(bimanual, 0.3, rename={"state": "observation.state"})],
        layouts={"observation.state": "joints"},
    )
    n = 20_000
    draws = np.fromiter(mix.sampler(n, seed=4), dtype=np.int64)
    share = float((draws < len(arm)).mean())
    assert abs(share - 0.7) < 4 * np.sqrt(0.7 * 0.3 / n)  # 4 sigma
    # within a source, frames are uniform: every frame of the small source is drawn
    assert set(draws[draws >= len(arm)].tolist()) == set(range(len(arm), len(mix)))
    assert draws.tolist() == list(mix.sampler(n, seed=4))
    ranks = [list(mix.sampler(1000, seed=4, rank=r, world_size=2)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == sorted(np.fromiter(mix.sampler(1000, seed=4), dtype=np.int64).tolist())
    with pytest.raises(UsageError):
        MixtureSampler([5, 0], [1, 1], 10)

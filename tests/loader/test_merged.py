"""Training on a merged dataset: features an input lacked read as zeros with ``<key>_is_missing`` set, never as the
placeholders stored in their null rows, and never as a crash (#15's merged datasets through #12's loader)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rdstd
from rdstd.errors import CorruptDatasetError
from rdstd.loader import FrameDataset
from rdstd.ops.merge import merge
from rdstd.schema.vocabulary import Unit
from tests.ops.helpers import make

A_CAM, B_CAM = "observation.images.front", "observation.images.wrist"


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a: 3 episodes with a front camera and a 7-joint state in rad; b: 2 episodes with a wrist camera and its state
    in unknown units, kept as ``observation.state.b``."""
    root = tmp_path_factory.mktemp("merged")
    a = make(root / "a", prefix="a", camera=A_CAM, episodes=3, frames=12)
    b = make(root / "b", prefix="b", camera=B_CAM, unit=Unit.UNKNOWN, episodes=2, frames=10, seed=1)
    merge([a, b], root / "out", separate=["observation.state", "action"])
    return root


def test_each_sample_says_which_features_its_episode_lacks_and_holds_zeros_there(merged: Path) -> None:
    ds = rdstd.open(merged / "out")
    fd = FrameDataset(ds)
    assert fd.partial == {"observation.state", "action", "observation.state.b", "action.b", A_CAM, B_CAM}
    a, b = rdstd.open(merged / "a"), rdstd.open(merged / "b")
    first_b = 36  # a's 3 × 12 frames come first
    batch = fd.batch(np.arange(len(fd)))
    in_b = np.arange(len(fd)) >= first_b
    for key in ("observation.state", "action", A_CAM):
        np.testing.assert_array_equal(batch[f"{key}_is_missing"], in_b)
        assert not batch[key][in_b].any(), f"{key}: zeros where the episode lacks it"
    for key in ("observation.state.b", "action.b", B_CAM):
        np.testing.assert_array_equal(batch[f"{key}_is_missing"], ~in_b)
        assert not batch[key][~in_b].any()
    np.testing.assert_array_equal(batch["observation.state"][:first_b], a.vectors("observation.state", range(36)))
    np.testing.assert_array_equal(batch["observation.state.b"][first_b:], b.vectors("observation.state", range(20)))
    np.testing.assert_array_equal(batch[B_CAM][first_b + 3], b.frame(3, decode_images=True)[B_CAM])
    assert batch[A_CAM][:first_b].any()


def test_windows_across_the_boundary_mask_padding_and_missing_apart(merged: Path) -> None:
    fd = FrameDataset(rdstd.open(merged / "out"), ["action", "action.b"], windows={"action": range(-2, 3)})
    sample = fd[36]  # b's first frame: a's action is missing in the whole window, the past is also padding
    assert sample["action_is_missing"].tolist() == [False, False, True, True, True]
    assert sample["action_is_pad"].tolist() == [True, True, False, False, False]
    assert not sample["action"].any() and sample["action_is_missing"].shape == (5,)
    assert sample["action.b_is_missing"] == np.False_ and sample["action.b"].any()
    assert FrameDataset(rdstd.open(merged / "a")).partial == set(), "a dataset that is not merged has no such keys"
    assert "action_is_missing" not in FrameDataset(rdstd.open(merged / "a"))[0]


def test_normalized_features_stay_finite_where_missing(merged: Path) -> None:
    fd = FrameDataset(rdstd.open(merged / "out"), ["observation.state"], normalize={"observation.state": "mean_std"})
    batch = fd.batch(np.arange(len(fd)))
    assert np.isfinite(batch["observation.state"]).all()
    assert not batch["observation.state"][36:].any() and batch["observation.state"][:36].any()


def test_null_rows_the_manifest_does_not_explain_are_refused(merged: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(merged / "out", copy)
    manifest = json.loads((copy / "rdstd.json").read_text())
    del manifest["extra"]["merge"]
    (copy / "rdstd.json").write_text(json.dumps(manifest))
    fd = FrameDataset(rdstd.open(copy), ["observation.state"])
    assert fd.partial == set()
    fd.batch(np.arange(36))  # a's episodes have values
    with pytest.raises(CorruptDatasetError, match=r"observation\.state has no value at frame 36"):
        fd.batch([36])
    with pytest.raises(CorruptDatasetError, match=rf"{A_CAM} has no value at frame 40"):
        FrameDataset(rdstd.open(copy), [A_CAM])[40]

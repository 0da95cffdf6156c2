"""The ALOHA family's shipped specs: the four cameras and effort of a real ALOHA, Mobile ALOHA's own spec (no
cam_low, base velocity), the simulated tasks' single camera, and optional spec entries in general."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import rdstd
from rdstd.convert.mapper import EpisodeConverter, resolve_spec
from rdstd.convert.pipeline import convert
from rdstd.convert.specs import load_spec
from rdstd.errors import MappingError
from rdstd.formats.hdf5 import Hdf5Backend
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import CameraMount, ImageCodec, Unit
from rdstd.testing import hdf5 as fx

CAMERA_NAMES = {
    "cam_high": "observation.images.high",
    "cam_low": "observation.images.low",
    "cam_left_wrist": "observation.images.left_wrist",
    "cam_right_wrist": "observation.images.right_wrist",
}


def test_a_real_aloha_episode_keeps_its_four_cameras_with_frames_and_its_effort_in_amperes(tmp_path: Path) -> None:
    frames = fx.write_aloha_episode(tmp_path / "episode_0.hdf5", steps=5)
    with h5py.File(tmp_path / "episode_0.hdf5") as f:
        effort_ma = f["observations/effort"][()]
    report = convert(tmp_path / "episode_0.hdf5", tmp_path / "out")
    assert report.spec == "hdf5/aloha"
    assert not [w for w in report.warnings if "optional" in w or "unknown semantics" in w]
    dataset = rdstd.open(tmp_path / "out")
    features = dataset.manifest.features
    row = dataset.episode(0)
    for cam, name in CAMERA_NAMES.items():
        feature = features[name]
        assert isinstance(feature, ImageFeature)
        assert feature.frame == f"camera:{name.rsplit('.', 1)[-1]}"
        assert (feature.height, feature.width) == (48, 64)
        assert row.images[name].encoded == frames[cam]  # the JPEG passed through byte for byte
    assert features["observation.images.high"].mount == CameraMount.OVERHEAD  # type: ignore[union-attr]
    assert features["observation.images.left_wrist"].mount == CameraMount.WRIST  # type: ignore[union-attr]
    effort = features["observation.effort"]
    assert isinstance(effort, VectorFeature)
    assert [d.unit for d in effort.dims] == [Unit.A] * 14  # mA in the file, SI in the dataset
    assert effort.dims[6].name == "left_gripper" and effort.dims[6].role == "joint_effort"
    assert effort.source is not None and effort.source.units == [Unit.MA] * 14  # what the file held, recorded
    np.testing.assert_allclose(row.vectors["observation.effort"], effort_ma * 1e-3, rtol=1e-6)


def test_mobile_aloha_matches_its_own_spec_with_three_cameras_and_the_base_velocity(tmp_path: Path) -> None:
    folder = tmp_path / "mobile"
    folder.mkdir()
    for i in range(2):
        fx.write_aloha_episode(
            folder / f"episode_{i}.hdf5", steps=4, seed=i, cameras=fx.MOBILE_ALOHA_CAMERAS, base_action=True
        )
    with h5py.File(folder / "episode_1.hdf5") as f:
        base = f["base_action"][()]
    report = convert(folder, tmp_path / "out")
    assert report.spec == "hdf5/mobile_aloha"  # more specific than hdf5/aloha: it also needs base_action
    assert not [w for w in report.warnings if "optional" in w or "unknown semantics" in w]
    dataset = rdstd.open(tmp_path / "out")
    cameras = sorted(n for n, f in dataset.manifest.features.items() if isinstance(f, ImageFeature))
    assert cameras == ["observation.images.high", "observation.images.left_wrist", "observation.images.right_wrist"]
    velocity = dataset.manifest.features["action.base"]
    assert isinstance(velocity, VectorFeature)
    assert [(d.name, d.unit, d.role) for d in velocity.dims] == [
        ("linear_velocity", Unit.M_PER_S, "base_velocity"),
        ("angular_velocity", Unit.RAD_PER_S, "base_velocity"),
    ]
    assert {d.frame for d in velocity.dims} == {"base"}
    np.testing.assert_allclose(dataset.episode(1).vectors["action.base"], base)
    assert dataset.manifest.embodiment("mobile_aloha") is not None


def test_a_static_aloha_file_does_not_match_the_mobile_spec(tmp_path: Path) -> None:
    fx.write_aloha_episode(tmp_path / "episode_0.hdf5", steps=3)
    with Hdf5Backend().open(tmp_path / "episode_0.hdf5") as source:
        loaded, warnings = resolve_spec(source.info(), None)
    assert loaded.spec.name == "hdf5/aloha" and warnings == []


def test_a_sim_aloha_episode_matches_the_sim_spec_and_keeps_its_rendered_top_camera(tmp_path: Path) -> None:
    fx.write_aloha_episode(tmp_path / "episode_0.hdf5", steps=4, cameras=("top",), compress=False, effort=False)
    report = convert(tmp_path / "episode_0.hdf5", tmp_path / "out", images=ImageCodec.PNG)  # lossless: compared
    assert report.spec == "hdf5/aloha_sim"
    assert not [w for w in report.warnings if "optional" in w or "unknown semantics" in w]
    dataset = rdstd.open(tmp_path / "out")
    top = dataset.manifest.features["observation.images.top"]
    assert isinstance(top, ImageFeature) and top.frame == "camera:top"
    assert dataset.manifest.clock.rate_hz == 50
    np.testing.assert_array_equal(dataset.episode(0).images["observation.images.top"][2], fx.picture(2 * 7))


def test_an_aloha_fork_without_some_cameras_and_effort_converts_and_says_what_it_lacks(tmp_path: Path) -> None:
    fx.write_aloha_episode(tmp_path / "episode_0.hdf5", steps=3, cameras=("cam_high", "cam_front"), effort=False)
    report = convert(tmp_path / "episode_0.hdf5", tmp_path / "out")
    assert report.spec == "hdf5/aloha"
    (note,) = [w for w in report.warnings if "optional" in w]
    for absent in ("observation.effort (observations/effort)", "observation.images.low (observations/images/cam_low)"):
        assert absent in note
    assert "cam_high" not in note
    assert report.kept_unmapped_keys == ["observations/images/cam_front"]  # a camera the spec does not name is kept
    features = rdstd.open(tmp_path / "out").manifest.features
    assert "observation.images.high" in features and "observation.effort" not in features


def test_a_required_entry_still_fails_when_its_key_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "episode_0.hdf5"
    fx.write_aloha_episode(path, steps=3, cameras=fx.MOBILE_ALOHA_CAMERAS, base_action=True)
    with h5py.File(path, "a") as f:
        del f["observations/images/cam_left_wrist"]
        lengths = f["compress_len"][()]
        del f["compress_len"]
        f.create_dataset("compress_len", data=lengths[[0, 2]])  # the rows of the two cameras left
    with Hdf5Backend().open(path) as source:
        info = source.info()
    loaded, warnings = resolve_spec(info, "hdf5/mobile_aloha")
    assert warnings == []  # a required camera is not left out quietly ...
    with pytest.raises(MappingError, match="cam_left_wrist"):
        EpisodeConverter(loaded.spec, info)  # ... its absence is the mapper's error


def test_optional_entries_are_dropped_only_when_absent_and_a_spec_left_empty_is_not_pruned(tmp_path: Path) -> None:
    fx.write_aloha_episode(tmp_path / "episode_0.hdf5", steps=3, cameras=("cam_high",))
    with Hdf5Backend().open(tmp_path / "episode_0.hdf5") as source:
        info = source.info()
    loaded, warnings = resolve_spec(info, "hdf5/aloha")
    assert set(loaded.spec.cameras) == {"observation.images.high"}
    assert "observation.effort" in loaded.spec.features
    assert len(warnings) == 1 and "observation.images.low (observations/images/cam_low)" in warnings[0]
    aloha = load_spec("hdf5/aloha").spec
    only_optional = aloha.model_copy(update={"features": {}, "cameras": {"x": aloha.cameras["observation.images.low"]}})
    kept, none = resolve_spec(info, only_optional)
    assert set(kept.spec.cameras) == {"x"} and none == []  # nothing would be left: the mapper's error names it

"""RLDS end to end: the backend contract, Bridge -> canonical -> rdstd.open, and the shipped OXE specs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.convert.specs import load_spec, shipped_specs
from rdstd.errors import SourceError
from rdstd.formats.rlds import RldsBackend, RldsDataset
from rdstd.schema.vocabulary import GripperOpen
from rdstd.testing.contract import BackendContract
from tests.conftest import sample
from tests.formats.rlds_fixtures import (
    image,
    random_episode,
    rlds_features,
    synthetic_episode,
    synthetic_features,
    tensor,
    text,
    write_builder,
)

SPECS_DIR = Path(__file__).resolve().parents[2] / "converters" / "rlds"


class TestRldsSynthetic(BackendContract):
    @pytest.fixture
    def backend(self) -> RldsBackend:
        return RldsBackend()

    @pytest.fixture
    def source_path(self, tmp_path: Path) -> Path:
        records = [synthetic_episode(n, seed)[0] for seed, n in enumerate([3, 2, 4])]
        write_builder(tmp_path / "data", synthetic_features(), {"train": [records[:2], records[2:]]})
        return tmp_path / "data"


@pytest.mark.samples
class TestRldsBridgeSample(BackendContract):
    @pytest.fixture
    def backend(self) -> RldsBackend:
        return RldsBackend()

    @pytest.fixture
    def source_path(self) -> Path:
        return sample("rlds/bridge_debug")


@pytest.mark.samples
def test_bridge_converts_to_canonical_with_image_bytes_untouched(tmp_path: Path) -> None:
    report = convert(sample("rlds/bridge_debug"), tmp_path / "out")
    assert report.spec == "rlds/bridge"  # picked by the shipped spec's match rule
    assert report.episodes_written == 50 and report.frames_written == 500
    dataset = rdstd.open(tmp_path / "out")
    with RldsDataset(sample("rlds/bridge_debug")) as source:
        originals = list(source.episodes())
    assert dataset.manifest.rate_hz == 5
    for i, src in enumerate(originals):
        ep = dataset.episode(i)
        assert ep.length == src.length
        assert ep.meta.task == src.task
        assert ep.meta.split == src.meta["split"]
        assert ep.meta.source_checksum == src.meta["checksum"]
        assert np.array_equal(ep.vectors["action"], src.vectors["steps/action"])
        assert np.array_equal(ep.vectors["observation.state"], src.vectors["steps/observation/state"])
        assert ep.vectors["is_last"].reshape(-1).tolist() == [False] * 10  # the quirk stays visible in the data
        for cam, key in [("primary", "image_0"), ("wrist", "image_3")]:
            stored = ep.images[f"observation.images.{cam}"].encoded
            assert [hashlib.sha256(b).hexdigest() for b in stored] == [
                hashlib.sha256(b).hexdigest()
                for b in src.images[f"steps/observation/{key}"].frames  # type: ignore[union-attr]
            ]
        assert "steps/is_last is never true: the episode looks truncated" in ep.meta.source_meta["notes"]
        assert ep.meta.source_meta["episode_metadata"]["episode_metadata/file_path"].endswith("out.npy")
    action = dataset.manifest.features["action"]
    assert action.grippers[0].open == GripperOpen.HIGH  # type: ignore[union-attr]
    assert dataset.tasks.height < 50  # the instruction is stored once per task, not per step


@pytest.mark.samples
def test_the_canonical_episode_id_is_the_one_derived_from_metadata(tmp_path: Path) -> None:
    convert(sample("rlds/edgecases"), tmp_path / "out", spec=_edge_spec())
    dataset = rdstd.open(tmp_path / "out")
    ids = [dataset.episode(i).meta.episode_id for i in range(dataset.num_episodes)]
    assert [i.split("@")[0] for i in ids[:2]] == ["train:/raw/ep4.h5#4", "train:/raw/ep0.h5#0"]
    with RldsDataset(sample("rlds/edgecases")) as source:
        assert ids == [e.meta["episode_id"] for e in source.episodes()]


def _edge_spec() -> Any:
    from rdstd.schema.spec import ConverterSpec

    return ConverterSpec.model_validate(
        {
            "name": "edge",
            "format": "rlds",
            "rate_hz": 10,
            "task_key": "steps/language_instruction",
            "features": {
                "observation.state": {"key": "steps/observation/state_f64", "names": ["a", "b", "c"]},
                "action": {"key": "steps/action"},
            },
            "cameras": {"observation.images.depth": {"key": "steps/observation/depth", "color": "depth"}},
        }
    )


@pytest.mark.samples
def test_edge_case_float64_and_uint16_depth_survive_conversion_exactly(tmp_path: Path) -> None:
    convert(sample("rlds/edgecases"), tmp_path / "out", spec=_edge_spec())
    dataset = rdstd.open(tmp_path / "out")
    with RldsDataset(sample("rlds/edgecases")) as source:
        originals = list(source.episodes())
    for i, src in enumerate(originals):
        ep = dataset.episode(i)
        assert ep.vectors["observation.state"].dtype == np.float64
        assert ep.vectors["observation.state"].tobytes() == src.vectors["steps/observation/state_f64"].tobytes()
        depth = ep.images["observation.images.depth"]
        assert depth.encoded == src.images["steps/observation/depth"].frames  # type: ignore[union-attr]
        assert depth[0].dtype == np.uint16 and int(depth[0].max()) == 1000


def test_a_corrupt_record_is_skipped_and_named_while_the_rest_converts(tmp_path: Path) -> None:
    records = [synthetic_episode(n, seed)[0] for seed, n in enumerate([3, 2, 4])]
    root = write_builder(tmp_path / "data", synthetic_features(), {"train": [records]})
    shard = next(root.glob("*.tfrecord-*"))
    data = bytearray(shard.read_bytes())
    data[8 + 4 + len(records[0]) + 4 + 12 + 30] ^= 0xFF  # inside record 1's payload
    shard.write_bytes(bytes(data))
    spec = {
        "name": "synthetic",
        "format": "rlds",
        "rate_hz": 10,
        "features": {"action": {"key": "steps/action"}},
        "cameras": {"observation.images.main": {"key": "steps/observation/image"}},
    }
    from rdstd.schema.spec import ConverterSpec

    with pytest.raises(SourceError, match="record 1"):
        convert(tmp_path / "data", tmp_path / "failed", spec=ConverterSpec.model_validate(spec))
    assert not (tmp_path / "failed").exists()
    report = convert(tmp_path / "data", tmp_path / "out", spec=ConverterSpec.model_validate(spec), on_error="skip")
    assert report.episodes_written == 2
    (skipped,) = report.skipped
    assert skipped.key == "train/shard-00000/rec-1" and "record 1" in skipped.reason and str(shard) in skipped.reason


# -- the shipped Open X-Embodiment specs ---------------------------------------------------------------------
def _jpeg(h: int, w: int) -> dict[str, Any]:
    return image("jpeg", [h, w, 3])


_FLAGS = {"is_first": tensor("bool"), "is_last": tensor("bool"), "is_terminal": tensor("bool")}

#: Each spec's builder layout, as the OXE builders' features.json have it (small images).
LAYOUTS: dict[str, dict[str, Any]] = {
    "bridge": {
        **{f"observation/image_{i}": _jpeg(8, 8) for i in range(4)},
        "observation/state": tensor("float32", [7]),
        "action": tensor("float32", [7]),
        "language_instruction": text(),
        "reward": tensor("float32"),
        "discount": tensor("float32"),
        **_FLAGS,
    },
    "fractal": {
        "observation/image": _jpeg(8, 10),
        "observation/natural_language_instruction": text(),
        "observation/base_pose_tool_reached": tensor("float32", [7]),
        "observation/gripper_closed": tensor("float32", [1]),
        "action/world_vector": tensor("float32", [3]),
        "action/rotation_delta": tensor("float32", [3]),
        "action/gripper_closedness_action": tensor("float32", [1]),
        "action/base_displacement_vector": tensor("float32", [2]),
        "action/base_displacement_vertical_rotation": tensor("float32", [1]),
        "action/terminate_episode": tensor("int32", [3]),
        "reward": tensor("float32"),
        **_FLAGS,
    },
    "droid": {
        "observation/exterior_image_1_left": _jpeg(9, 16),
        "observation/exterior_image_2_left": _jpeg(9, 16),
        "observation/wrist_image_left": _jpeg(9, 16),
        "observation/cartesian_position": tensor("float64", [6]),
        "observation/joint_position": tensor("float64", [7]),
        "observation/gripper_position": tensor("float64", [1]),
        "action_dict/cartesian_position": tensor("float64", [6]),
        "action_dict/cartesian_velocity": tensor("float64", [6]),
        "action_dict/gripper_position": tensor("float64", [1]),
        "action_dict/joint_velocity": tensor("float64", [7]),
        "action": tensor("float64", [7]),
        "language_instruction": text(),
        **_FLAGS,
    },
    "taco_play": {
        "observation/rgb_static": _jpeg(15, 20),
        "observation/rgb_gripper": _jpeg(8, 8),
        "observation/robot_obs": tensor("float32", [15]),
        "observation/natural_language_instruction": text(),
        "action/actions": tensor("float32", [7]),
        "action/rel_actions_world": tensor("float32", [7]),
        **_FLAGS,
    },
    "berkeley_autolab_ur5": {
        "observation/image": _jpeg(12, 16),
        "observation/hand_image": _jpeg(12, 16),
        "observation/robot_state": tensor("float32", [15]),
        "observation/natural_language_instruction": text(),
        "action/world_vector": tensor("float32", [3]),
        "action/rotation_delta": tensor("float32", [3]),
        "action/gripper_closedness_action": tensor("float32"),
        "action/terminate_episode": tensor("float32"),
        **_FLAGS,
    },
    "aloha": {
        "observation/cam_high": _jpeg(12, 16),
        "observation/cam_left_wrist": _jpeg(12, 16),
        "observation/cam_right_wrist": _jpeg(12, 16),
        "observation/state": tensor("float32", [14]),
        "action": tensor("float32", [14]),
        "language_instruction": text(),
        **_FLAGS,
    },
}

RATES = {"bridge": 5, "fractal": 3, "droid": 15, "taco_play": 15, "berkeley_autolab_ur5": 5, "aloha": 50}


def test_every_required_oxe_spec_is_shipped_and_cites_its_sources() -> None:
    shipped = {name.removeprefix("rlds/") for name in shipped_specs() if name.startswith("rlds/")}
    assert set(LAYOUTS) <= shipped
    for name in LAYOUTS:
        text_ = (SPECS_DIR / f"{name}.yaml").read_text()
        comments = "\n".join(line for line in text_.splitlines() if line.startswith("#"))
        assert "Rate:" in comments and "Hz" in comments, name
        assert "Facts and where they come from" in comments, name
        cited = re.findall(r"\b[\w.-]+/[\w.-]+:[\w./-]+\.(?:py|json|md|yaml|ipynb)\b", comments)
        assert cited, f"{name}: cites no source as owner/repo:path"
        spec = load_spec(SPECS_DIR / f"{name}.yaml").spec
        assert spec.rate_hz == RATES[name] and spec.embodiment is not None
        assert spec.embodiment.control_rate_hz == RATES[name]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_each_oxe_spec_converts_a_builder_with_its_layout(name: str, tmp_path: Path) -> None:
    features = rlds_features(LAYOUTS[name], {"file_path": text()})
    records = [random_episode(features, n, seed) for seed, n in enumerate([4, 3])]
    write_builder(tmp_path / "src", features, {"train": [records]}, name=name)
    report = convert(tmp_path / "src", tmp_path / "out")  # the spec is found by its match rule
    assert report.spec == f"rlds/{name}"
    dataset = rdstd.open(tmp_path / "out")
    assert dataset.num_episodes == 2 and len(dataset) == 7
    assert dataset.manifest.rate_hz == RATES[name]
    spec = load_spec(SPECS_DIR / f"{name}.yaml").spec
    assert set(dataset.manifest.features) == set(spec.features) | set(spec.cameras)


def test_gripper_polarity_is_declared_where_the_sources_disagree() -> None:
    grip = {
        name: {
            f: [g.open for g in s.grippers]
            for f, s in load_spec(SPECS_DIR / f"{name}.yaml").spec.features.items()
            if s.grippers
        }
        for name in LAYOUTS
    }
    assert grip["fractal"]["action"] == [GripperOpen.LOW]  # RT-1: +1 = close
    assert grip["berkeley_autolab_ur5"]["action"] == [GripperOpen.LOW]
    assert grip["droid"]["action.gripper"] == [GripperOpen.LOW]  # 1 = closed, Octo inverts
    assert grip["bridge"]["action"] == [GripperOpen.HIGH]
    assert grip["taco_play"]["action"] == [GripperOpen.UNKNOWN]  # TFDS card and CALVIN README disagree
    assert grip["aloha"]["action"] == [GripperOpen.HIGH, GripperOpen.HIGH]


def test_fractal_actions_are_one_octo_style_vector_with_the_relative_gripper_kept(tmp_path: Path) -> None:
    features = rlds_features(LAYOUTS["fractal"], {"file_path": text()})
    records = [random_episode(features, n, seed) for seed, n in enumerate([4, 3])]
    write_builder(tmp_path / "src", features, {"train": [records]}, name="fractal")
    convert(tmp_path / "src", tmp_path / "out", spec="rlds/fractal")
    dataset = rdstd.open(tmp_path / "out")
    action = dataset.manifest.vectors["action"]
    assert [d.name for d in action.dims] == ["dx", "dy", "dz", "drx", "dry", "drz", "gripper_command"]
    assert action.rotations[0].representation == "axis_angle" and action.grippers[0].kind == "relative"
    assert action.source is not None and action.source.key.count("+") == 2
    with RldsBackend().open(tmp_path / "src") as source:
        for i, ref in enumerate(source.episode_refs()):
            raw = source.read_episode(ref).vectors
            close = raw["steps/action/gripper_closedness_action"].reshape(-1).astype(np.float64)
            got = dataset.episode(i).vectors["action"]
            np.testing.assert_array_equal(got[:, 6], close)  # a relative command is never rescaled
            np.testing.assert_array_equal(got[:, :3], raw["steps/action/world_vector"])

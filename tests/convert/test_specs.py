"""Converter specs: shipped ones validate, drafts cover the source, bad specs give mapping errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rdstd.convert import convert, draft_spec, load_spec, match_spec, shipped_specs, spec_to_yaml
from rdstd.convert.pipeline import open_source
from rdstd.convert.specs import parse_spec
from rdstd.errors import MappingError, UsageError
from rdstd.formats.base import SourceInfo, SourceKey
from rdstd.testing.fixtures import make_zarr_replay_buffer
from tests.conftest import sample


@pytest.mark.parametrize("name", sorted(shipped_specs()))
def test_every_shipped_spec_validates(name: str) -> None:
    loaded = load_spec(name)
    assert loaded.spec.name == name
    assert name.partition("/")[0] == loaded.spec.format  # match_spec looks in the folder of the source's format
    assert len(loaded.sha256) == 64


def test_a_draft_covers_every_source_key_and_round_trips_through_yaml(tmp_path: Path) -> None:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [5, 6])
    with open_source(tmp_path / "rb.zarr") as source:
        info = source.info()
    draft = draft_spec(info)
    assert {f.key for f in draft.features.values()} == {"data/state", "data/action", "data/keypoint", "data/n_contacts"}
    assert {c.key for c in draft.cameras.values()} == {"data/img"}
    assert draft.timestamps is not None and draft.timestamps.key == "data/timestamp"
    text = spec_to_yaml(draft)
    assert parse_spec(text, "draft.yaml") == draft
    file = tmp_path / "draft.yaml"
    file.write_text(text)
    report = convert(tmp_path / "rb.zarr", tmp_path / "out", spec=file)
    assert report.episodes_written == 2


def test_a_spec_naming_a_missing_key_fails_before_writing_anything(tmp_path: Path) -> None:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [5])
    spec = yaml.safe_load(load_spec("zarr/pusht").spec.model_dump_json())
    spec["features"]["observation.state"]["key"] = "data/qpos"
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(spec))
    with pytest.raises(MappingError, match="'data/qpos', which the source does not have") as err:
        convert(tmp_path / "rb.zarr", tmp_path / "out", spec=file)
    assert "data/state" in err.value.message
    assert not (tmp_path / "out").exists()


def test_an_invalid_spec_file_names_the_field(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("name: x\nformat: zarr\nfeatures:\n  a: {key: k, unit: furlongs}\n")
    with pytest.raises(MappingError, match=r"bad\.yaml: invalid converter spec at features\.a\.unit"):
        load_spec(file)


def test_an_unknown_spec_name_lists_the_shipped_ones() -> None:
    with pytest.raises(UsageError) as err:
        load_spec("zarr/nope")
    assert "zarr/pusht" in err.value.hint


def test_a_spec_for_another_format_is_refused(tmp_path: Path) -> None:
    make_zarr_replay_buffer(tmp_path / "rb.zarr", [5])
    spec = load_spec("zarr/pusht").spec.model_copy(update={"format": "rlds"})
    file = tmp_path / "other.yaml"
    file.write_text(spec_to_yaml(spec))
    with pytest.raises(MappingError, match="is for rlds"):
        convert(tmp_path / "rb.zarr", tmp_path / "out", spec=file)


def test_a_feature_can_concatenate_several_source_keys_in_order(tmp_path: Path) -> None:
    import numpy as np

    import rdstd
    from rdstd.schema import ConverterSpec

    content = make_zarr_replay_buffer(tmp_path / "rb.zarr", [5, 6])
    spec = ConverterSpec.model_validate(
        {
            "name": "joined",
            "format": "zarr",
            "rate_hz": 10,
            "features": {
                "observation.both": {
                    "key": ["data/action", "data/state"],
                    "names": ["ax", "ay", "s0", "s1", "s2", "s3", "s4"],
                }
            },
        }
    )
    convert(tmp_path / "rb.zarr", tmp_path / "out", spec=spec)
    ds = rdstd.open(tmp_path / "out")
    expected = np.concatenate([content.arrays["action"], content.arrays["state"]], axis=1)[5:]
    np.testing.assert_array_equal(ds.episode(1).vectors["observation.both"], expected)
    source = ds.manifest.vectors["observation.both"].source
    assert source is not None and source.key == "data/action+data/state"


# -- drafts and rates -------------------------------------------------------------------------------------------


def _buffer_without_times(path: Path) -> Path:
    import shutil

    make_zarr_replay_buffer(path, [4, 5])
    shutil.rmtree(path / "data" / "timestamp")
    return path


def test_a_draft_says_rate_hz_unknown_when_the_source_has_none(tmp_path: Path) -> None:
    src = _buffer_without_times(tmp_path / "rb.zarr")
    with open_source(src) as source:
        info = source.info()
    draft = draft_spec(info)
    text = spec_to_yaml(draft)
    assert "\nrate_hz: unknown\n" in text and "--rate HZ" in text
    assert parse_spec(text, "draft.yaml") == draft


def test_a_drafted_spec_fails_only_with_the_fix_not_with_a_pointer_back_to_drafting(tmp_path: Path) -> None:
    from rdstd.convert import EpisodeConverter

    src = _buffer_without_times(tmp_path / "rb.zarr")
    with open_source(src) as source:
        info = source.info()
    draft = parse_spec(spec_to_yaml(draft_spec(info)), "draft.yaml")
    with pytest.raises(MappingError) as err:
        EpisodeConverter(draft, info)
    assert err.value.hint == "set rate_hz: in the spec, or pass --rate HZ"
    assert EpisodeConverter(draft, info, rate_hz=10.0).clock.rate_hz == 10.0
    file = tmp_path / "draft.yaml"
    file.write_text(spec_to_yaml(draft).replace("rate_hz: unknown", "rate_hz: 10"))
    assert convert(src, tmp_path / "out", spec=file).episodes_written == 2


# -- the matcher ------------------------------------------------------------------------------------------------


def _lerobot_info(path: str, keys: list[str], **extra: object) -> SourceInfo:
    source_keys = [SourceKey(k, "image" if "images" in k else "vector", (3,), "float32") for k in keys]
    return SourceInfo("lerobot", "v3.0", path, 1, 1, source_keys, extra=dict(extra))


SYNTHETIC = ["observation.state", "action", "observation.images.front", "observation.images.wrist"]
G1 = ["observation.state", "action", "observation.images.cam_high"]


def test_the_matcher_uses_the_name_the_source_states_not_its_path() -> None:
    found = match_spec(_lerobot_info("/anywhere/at/all", SYNTHETIC, robot_type="synthetic_7dof_arm"))
    assert found is not None and found.spec.name == "lerobot/synthetic_7dof_arm"
    g1 = match_spec(_lerobot_info("/x/y", G1, robot_type="Unitree_G1_Inspire"))
    assert g1 is not None and g1.spec.name == "lerobot/g1_inspire"
    stated = _lerobot_info("/x/y", G1)
    stated.name = "unitree_g1_dex3"
    assert match_spec(stated) is not None


def test_a_path_that_happens_to_contain_a_spec_name_does_not_match() -> None:
    assert match_spec(_lerobot_info("/home/g1/data/g1_koch", G1, robot_type="koch")) is None
    assert match_spec(_lerobot_info("/data/v30_small", SYNTHETIC, robot_type="so100")) is None


def test_the_real_lerobot_samples_match_their_specs() -> None:
    from rdstd.convert.mapper import resolve_spec

    for sample_dir, name in [
        ("lerobot/v30_small", "lerobot/synthetic_7dof_arm"),
        ("lerobot/g1_v21_subset", "lerobot/g1_inspire"),
    ]:
        with open_source(sample(sample_dir)) as source:
            loaded, _ = resolve_spec(source.info(), None)
        assert loaded.spec.name == name


def test_a_tie_between_shipped_specs_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rdstd.convert import specs

    text = "format: lerobot\nmatch: {keys: [action]}\nfeatures:\n  action: {key: action}\n"
    paths = {}
    for stem in ("one", "two"):
        path = tmp_path / f"{stem}.yaml"
        path.write_text(f"name: lerobot/{stem}\n{text}")
        paths[f"lerobot/{stem}"] = path
    monkeypatch.setattr(specs, "shipped_specs", lambda: paths)
    with pytest.raises(MappingError, match=r"several shipped specs equally well \(lerobot/one, lerobot/two\)") as err:
        match_spec(_lerobot_info("/x", ["action"]))
    assert "--spec" in err.value.hint


# -- spec facts -------------------------------------------------------------------------------------------------


def _plan(spec_name: str, feature: str, size: int) -> Any:
    from rdstd.convert.canonicalize import plan_vector

    vspec = load_spec(spec_name).spec.features[feature]
    key = SourceKey("+".join(vspec.source_keys), "vector", (size,), "float32")
    return plan_vector(feature, vspec, key)


def test_fractal_rotation_deltas_are_axis_angle_and_the_state_quaternion_is_scalar_last() -> None:
    action = _plan("rlds/fractal", "action", 7).feature
    assert action.rotations[0].representation == "axis_angle"
    assert action.action.rotation_composition == "rotation_composition"
    assert (action.grippers[0].kind, action.grippers[0].open) == ("relative", "low")
    state = _plan("rlds/fractal", "observation.state", 7).feature
    assert state.rotations[0].representation == "quat_xyzw"
    assert [d.name for d in state.dims[3:]] == ["qx", "qy", "qz", "qw"]


def test_relative_gripper_commands_of_fractal_and_ur5_are_not_rescaled() -> None:
    for name in ("rlds/fractal", "rlds/berkeley_autolab_ur5"):
        plan = _plan(name, "action", 7)
        commands = np.array([[0, 0, 0, 0, 0, 0, c] for c in (1.0, 0.0, -1.0)], dtype=np.float32)
        np.testing.assert_array_equal(plan.apply(commands)[:, 6], [1.0, 0.0, -1.0])


def test_a_closed_ur5_gripper_reads_zero_in_canonical_data() -> None:
    plan = _plan("rlds/berkeley_autolab_ur5", "observation.state", 15)
    robot_state = np.zeros((2, 15), dtype=np.float32)
    robot_state[:, 9:13] = [0.1, 0.2, 0.3, 0.9]  # qx, qy, qz, qw
    robot_state[0, 13] = 1.0  # gripper_is_closed
    out = plan.apply(robot_state)
    np.testing.assert_array_equal(out[:, 7], [0.0, 1.0])
    np.testing.assert_allclose(out[0, 3:7], [0.1, 0.2, 0.3, 0.9], rtol=1e-6)
    assert [d.name for d in plan.feature.dims][-1] == "gripper_is_closed"


def test_taco_polarity_is_unknown_and_its_normalized_scale_is_stated() -> None:
    spec = load_spec("rlds/taco_play").spec
    action = spec.features["action"]
    assert [g.open for g in action.grippers] == ["unknown"]
    assert "TFDS card" in action.description and "CALVIN" in action.description
    dims = action.dimensions(7)
    assert [(d.scale_si, d.scale_unit) for d in dims[:6]] == [(0.02, "m")] * 3 + [(0.05, "rad")] * 3


def test_droid_declares_its_velocity_rotation_and_every_instruction() -> None:
    spec = load_spec("rlds/droid").spec
    action = spec.features["action"]
    assert action.rotations[0].representation == "euler" and action.rotations[0].euler_axes == "xyz"
    assert spec.all_task_keys == [
        "steps/language_instruction",
        "steps/language_instruction_2",
        "steps/language_instruction_3",
    ]


def test_bridge_says_its_timestamps_are_synthesized_and_its_action_timing() -> None:
    spec = load_spec("rlds/bridge").spec
    assert spec.clock is not None and spec.clock.kind == "synthesized" and spec.clock.rate_hz == 5
    action = spec.features["action"].action
    assert action is not None and action.timing == "next_state_target"


def test_a_draft_takes_the_task_from_the_instruction_key_so_no_language_is_lost(tmp_path: Path) -> None:
    source = sample("rlds/bridge_debug/bridge_dataset/1.0.0")
    with open_source(source) as dataset:
        draft = draft_spec(dataset.info())
    assert draft.all_task_keys == ["steps/language_instruction"]
    spec_file = tmp_path / "draft.yaml"
    spec_file.write_text(spec_to_yaml(draft), encoding="utf-8")
    convert(source, tmp_path / "out", spec=spec_file, limit=2, rate_hz=5.0)
    import rdstd

    tasks = rdstd.open(tmp_path / "out").episodes["task"].to_list()
    assert all(tasks) and all(isinstance(t, str) for t in tasks)


def test_a_16_bit_png_camera_is_never_labelled_8_bit_whatever_the_spec_calls_it(tmp_path: Path) -> None:
    import rdstd

    source = sample("rlds/edgecases/rlds_edgecases/1.0.0")  # observation.depth: 16-bit PNG, 1000 + 7t
    convert(source, tmp_path / "drafted", rate_hz=10.0)  # no spec: drafted from the source
    camera = rdstd.open(tmp_path / "drafted").manifest.cameras["observation.images.depth"]
    assert (camera.dtype, camera.color, camera.channels) == ("uint16", "depth", 1)
    spec = {
        "name": "rgb-by-mistake",
        "format": "rlds",
        "rate_hz": 10,
        "cameras": {"observation.images.depth": {"key": "steps/observation/depth"}},  # says nothing of depth
    }
    from rdstd.schema.spec import ConverterSpec

    convert(source, tmp_path / "given", spec=ConverterSpec.model_validate(spec), drop_unmapped=True)
    dataset = rdstd.open(tmp_path / "given")
    camera = dataset.manifest.cameras["observation.images.depth"]
    assert (camera.dtype, camera.color) == ("uint16", "gray")  # the bytes are 16-bit: never called uint8 RGB
    episode = dataset.episode(0)
    for t in range(episode.timestamps.shape[0]):
        pixels = np.asarray(episode.images["observation.images.depth"][t])
        assert pixels.dtype == np.uint16 and set(np.unique(pixels)) == {1000 + 7 * t}


@pytest.mark.parametrize(
    ("key", "kind", "name"),
    [
        ("observations/images/cam_high", "image", "observation.images.cam_high"),  # ALOHA
        ("obs/agentview_rgb", "image", "observation.images.agentview_rgb"),  # robomimic / LIBERO
        ("steps/observation/image", "image", "observation.images.image"),  # RLDS
        ("observation.images.front", "image", "observation.images.front"),  # LeRobot
        ("observations/qpos", "vector", "observation.qpos"),
        ("data/state", "vector", "observation.state"),
        ("action", "vector", "action"),
    ],
)
def test_canonical_names_read_every_sources_observation_groups_once(key: str, kind: str, name: str) -> None:
    from rdstd.convert.specs import canonical_name

    assert canonical_name(key, kind) == name


def test_drafting_from_a_source_with_nothing_in_it_is_a_clear_error_not_a_validation_crash() -> None:
    info = SourceInfo("zarr", "v2", "/data/empty.zarr", 0, 0, keys=[])
    with pytest.raises(MappingError, match="no per-step values to draft"):
        draft_spec(info)

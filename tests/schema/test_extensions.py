"""Schema 1.1: new optional fields with explicit unknowns, 1.0 still readable, and safe names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

import rdstd
from rdstd.convert.specs import parse_spec
from rdstd.errors import MappingError, SchemaError
from rdstd.schema import (
    SCHEMA_VERSION,
    ActionSemantics,
    Dimension,
    Embodiment,
    Episode,
    EpisodeMeta,
    GripperConvention,
    ImageFeature,
    Manifest,
    Provenance,
    VectorFeature,
)
from rdstd.schema.clock import Clock
from rdstd.schema.episode import LanguageSegment
from rdstd.store import DatasetWriter


def write_dataset(root: Path) -> Path:
    feature = VectorFeature(shape=(2,), dims=[Dimension(name="a"), Dimension(name="b")])
    with DatasetWriter(root, {"observation.state": feature}, Provenance(source_format="t", rdstd_version="t")) as w:
        w.add(Episode(EpisodeMeta(episode_id="e"), np.arange(3) / 10.0, {"observation.state": np.zeros((3, 2))}))
    return root


def manifest_json(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "rdstd.json").read_text())
    return data


def test_the_schema_version_is_1_1() -> None:
    assert SCHEMA_VERSION == "1.1"


def test_a_dataset_whose_manifest_says_1_0_still_opens(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds")
    data = manifest_json(root)
    assert data["schema_version"] == "1.1"
    data["schema_version"] = "1.0"
    del data["clock"]  # a 1.0 manifest has none of the new fields
    (root / "rdstd.json").write_text(json.dumps(data))
    ds = rdstd.open(root)
    assert ds.manifest.schema_version == "1.0" and ds.manifest.clock.kind == "unknown"
    np.testing.assert_array_equal(ds.episode(0).vectors["observation.state"], np.zeros((3, 2)))


def test_a_1_0_manifest_without_the_new_fields_validates() -> None:
    old = {
        "schema_version": "1.0",
        "features": {
            "action": {
                "kind": "vector",
                "shape": [2],
                "dims": [{"name": "x", "role": "eef_position", "unit": "m", "frame": "base"}, {"name": "g"}],
                "grippers": [{"dim": 1, "range": [0.0, 1.0], "open": "high"}],
                "action": {"mode": "delta", "space": "eef", "reference": "previous_state"},
            },
            "observation.images.top": {"kind": "image", "height": 4, "width": 4},
        },
        "provenance": {"source_format": "zarr", "rdstd_version": "0.1"},
        "counts": {"episodes": 1, "frames": 3, "shards": 1},
        "storage": {"row_group_frames": 8},
    }
    manifest = Manifest.model_validate(old)
    action = manifest.vectors["action"]
    assert action.grippers[0].kind == "unknown"
    assert action.action is not None and action.action.timing == "unknown"
    assert action.action.rotation_frame == "unknown" and action.action.rotation_composition == "unknown"
    assert manifest.cameras["observation.images.top"].mount == "unknown"
    assert action.dims[0].scale_si is None


@pytest.mark.parametrize("bad", ["../../../../tmp/x", "a/b", "..", ".hidden", "with space", ""])
def test_a_manifest_with_an_unsafe_feature_name_is_refused_when_read(tmp_path: Path, bad: str) -> None:
    root = write_dataset(tmp_path / "ds")
    data = manifest_json(root)
    data["features"][bad] = data["features"].pop("observation.state")
    (root / "rdstd.json").write_text(json.dumps(data))
    with pytest.raises(SchemaError, match="safe name"):
        rdstd.open(root)


def test_embodiment_and_camera_names_must_be_safe_too() -> None:
    with pytest.raises(ValidationError, match="safe name"):
        Embodiment(name="../robot")
    with pytest.raises(ValidationError, match="safe name"):
        EpisodeMeta(episode_id="e", cameras={"a/../b": {}})


def test_a_spec_cannot_create_an_unsafe_name() -> None:
    base = "name: test/x\nformat: zarr\n"
    with pytest.raises(MappingError, match="features"):
        parse_spec(base + "features:\n  '../../../tmp/x': {key: k}\n", "bad.yaml")
    with pytest.raises(MappingError, match="cameras"):
        parse_spec(base + "cameras:\n  'a/b': {key: k}\n", "bad.yaml")
    with pytest.raises(MappingError, match="name"):
        parse_spec("name: ../x\nformat: zarr\nfeatures:\n  a: {key: k}\n", "bad.yaml")


def test_rate_hz_unknown_is_accepted_and_means_not_known() -> None:
    spec = parse_spec("name: t/x\nformat: zarr\nrate_hz: unknown\nfeatures:\n  a: {key: k}\n", "s.yaml")
    assert spec.rate_hz is None
    with pytest.raises(MappingError, match="rate_hz"):
        parse_spec("name: t/x\nformat: zarr\nrate_hz: fast\nfeatures:\n  a: {key: k}\n", "s.yaml")


def test_action_timing_needs_its_frame_count_where_it_has_one() -> None:
    assert ActionSemantics(timing="chunk", timing_frames=16).timing_frames == 16
    with pytest.raises(ValidationError, match="timing_frames"):
        ActionSemantics(timing="lead_frames")
    with pytest.raises(ValidationError, match="timing_frames"):
        ActionSemantics(timing="next_state_target", timing_frames=2)


def test_a_scale_names_its_unit() -> None:
    assert Dimension(name="dx", unit="normalized", scale_si=0.02, scale_unit="m").scale_si == 0.02
    with pytest.raises(ValidationError, match="together"):
        Dimension(name="dx", unit="normalized", scale_si=0.02)


def test_to_absolute_is_only_for_relative_grippers_of_known_polarity() -> None:
    assert GripperConvention(dim=0, kind="relative", open="low", to_absolute=True).to_absolute
    with pytest.raises(ValidationError, match="only for kind relative"):
        GripperConvention(dim=0, kind="absolute", open="low", to_absolute=True)
    with pytest.raises(ValidationError, match="polarity"):
        GripperConvention(dim=0, kind="relative", to_absolute=True)


def test_episode_meta_says_unknown_split_and_carries_language() -> None:
    meta = EpisodeMeta(
        episode_id="e",
        instructions=["place it"],
        language=[LanguageSegment(start_frame=0, end_frame=4, text="grasp", kind="event")],
    )
    assert meta.split == "unknown"
    assert EpisodeMeta.model_validate_json(meta.model_dump_json()) == meta
    with pytest.raises(ValidationError, match="before it starts"):
        LanguageSegment(start_frame=5, end_frame=2, text="x")


def test_depth_cameras_say_what_a_value_means() -> None:
    cam = ImageFeature(height=4, width=4, channels=1, dtype="uint16", color="depth", depth_unit="m", depth_scale=1e-3)
    assert (cam.depth_unit, cam.depth_scale) == ("m", 1e-3)
    assert Clock().kind == "unknown"


def test_a_later_chunk_may_start_after_zero_but_a_whole_episode_may_not() -> None:
    chunk = Episode(EpisodeMeta(episode_id="e"), np.array([0.3, 0.4]))
    assert chunk.problems() == ["timestamps must start at 0.0, not np.float64(0.3)"]
    assert chunk.problems(starts_episode=False) == []

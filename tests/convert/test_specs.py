"""Converter specs: shipped ones validate, drafts cover the source, bad specs give mapping errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rdstd.convert import convert, draft_spec, load_spec, shipped_specs, spec_to_yaml
from rdstd.convert.pipeline import open_source
from rdstd.convert.specs import parse_spec
from rdstd.errors import MappingError, UsageError
from rdstd.testing.fixtures import make_zarr_replay_buffer


@pytest.mark.parametrize("name", sorted(shipped_specs()))
def test_every_shipped_spec_validates(name: str) -> None:
    loaded = load_spec(name)
    assert loaded.spec.name == name
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

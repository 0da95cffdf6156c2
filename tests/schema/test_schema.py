"""The canonical schema: explicit unknowns, validation, and the committed JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rdstd.errors import ERROR_CODES
from rdstd.schema import Dimension, RotationGroup, VectorFeature
from rdstd.schema.jsonschema import SCHEMA_FILES, render

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_the_committed_json_schema_matches_the_models(name: str) -> None:
    committed = (ROOT / "schemas" / name).read_text(encoding="utf-8")
    assert committed == render(SCHEMA_FILES[name]), f"schemas/{name} drifted: run `make schemas` and commit it"


def test_a_dimension_says_unknown_rather_than_leaving_fields_out() -> None:
    dim = Dimension(name="x")
    assert (dim.role, dim.unit, dim.frame) == ("unknown", "unknown", "unknown")
    assert Dimension.model_validate_json(dim.model_dump_json()) == dim
    assert '"unit":"unknown"' in dim.model_dump_json()


def test_a_vector_must_name_every_dimension() -> None:
    with pytest.raises(ValidationError, match="3 elements but 2 dims"):
        VectorFeature(shape=(3,), dims=[Dimension(name="a"), Dimension(name="b")])


def test_rotation_groups_must_fit_inside_the_vector() -> None:
    with pytest.raises(ValidationError, match="runs past the vector"):
        VectorFeature(
            shape=(5,),
            dims=[Dimension(name=str(i)) for i in range(5)],
            rotations=[RotationGroup(start=2, representation="quat_xyzw")],
        )


def test_euler_rotations_must_say_their_axis_order() -> None:
    with pytest.raises(ValidationError, match="euler_axes"):
        RotationGroup(start=0, representation="euler")


def test_frames_are_a_closed_vocabulary() -> None:
    assert Dimension(name="x", frame="camera:wrist").frame == "camera:wrist"
    with pytest.raises(ValidationError, match="frame"):
        Dimension(name="x", frame="somewhere")


def test_unknown_fields_are_errors_not_silently_dropped() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Dimension.model_validate({"name": "x", "units": "m"})


def test_every_error_code_is_documented_and_every_documented_code_exists() -> None:
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip() for line in doc.splitlines() if line.startswith("| RD")
    }
    assert rows == {code: cls.__name__ for code, cls in ERROR_CODES.items()}

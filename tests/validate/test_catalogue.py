"""The catalogue's newer checks: delta actions integrated against the states (RDV502), the Euler convention by
composition with delta-rotation actions (RDV404), and joint limits from a URDF the embodiment names (RDV104)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rdstd.store import layout
from rdstd.validate import Finding, Report, Severity, validate
from rdstd.validate.checks.actions import integration_error
from rdstd.validate.urdf import UrdfUnusable, parse, resolve
from tests.validate.fixtures import LIMIT_RAD, URDF_NAME, make, urdf_text


def _of(report: Report, check: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check]


def _loud(report: Report) -> list[str]:
    return [f"{f.check} {f.message}" for f in report.findings if f.severity != Severity.INFO]


@pytest.mark.parametrize("plant", ["delta", "euler", "urdf"])
def test_the_clean_twins_fire_nothing_at_warning_or_above(tmp_path: Path, plant: str) -> None:
    report = validate(make(tmp_path, plant), profile="strict")
    assert _loud(report) == []
    assert not _of(report, "RDV404") and not _of(report, "RDV502")


def test_deltas_of_the_wrong_scale_fire_the_integration_but_not_the_fit(tmp_path: Path) -> None:
    """R² cannot see a scale (half-size deltas correlate perfectly): the integral does, in the planted episode."""
    report = validate(make(tmp_path, "delta_scaled"))
    found = _of(report, "RDV502")
    assert [(f.episode_index, f.feature) for f in found] == [(2, "action")]
    assert "0.5x" in found[0].message
    assert isinstance(found[0].measured, float) and found[0].measured == pytest.approx(0.5, abs=0.05)
    assert not [f for f in _of(report, "RDV501") if f.severity != Severity.INFO]


def test_absolute_targets_declared_delta_fail_the_integration_too(tmp_path: Path) -> None:
    found = _of(validate(make(tmp_path, "absolute_labelled_delta")), "RDV502")
    assert sorted(f.episode_index for f in found) == list(range(6))


def test_integration_error_is_zero_for_exact_deltas_and_the_scale_is_measured() -> None:
    rng = np.random.default_rng(0)
    states = np.cumsum(rng.normal(size=(101, 2)), axis=0)
    steps = np.diff(states, axis=0)
    error, scale, used = integration_error(states, steps, 10) or (1.0, 0.0, 0)
    assert error < 1e-9 and scale == pytest.approx(1.0) and used == 20
    error, scale, _ = integration_error(states, 2 * steps, 10) or (0.0, 0.0, 0)
    assert scale == pytest.approx(2.0) and error > 0.2  # the displacement again, over a longer path
    assert integration_error(np.zeros((50, 2)), np.zeros((49, 2)), 10) is None  # nothing moves: cannot tell
    assert integration_error(states, np.full((100, 2), np.nan), 10) is None


def test_a_wrong_euler_convention_names_the_class_that_fits(tmp_path: Path) -> None:
    found = _of(validate(make(tmp_path, "euler_intrinsic")), "RDV404")
    assert [f.episode_index for f in found] == [2]
    assert "intrinsic XYZ" in found[0].message and "declared extrinsic xyz" in found[0].message
    assert isinstance(found[0].measured, float) and found[0].measured > 3


def test_euler_angles_in_degrees_declared_radians_are_found_by_the_wider_search(tmp_path: Path) -> None:
    """No convention read in radians fits episode 2's degrees: the search over the other unit does, and says so."""
    found = _of(validate(make(tmp_path, "euler_degrees")), "RDV404")
    assert [f.episode_index for f in found] == [2] and found[0].severity == Severity.WARNING
    assert "fits extrinsic xyz in degrees, base frame" in found[0].message
    assert "declared extrinsic xyz in radians, base frame" in found[0].message
    assert isinstance(found[0].measured, float) and found[0].measured > 3


def test_deltas_composed_in_the_other_frame_are_found_by_the_wider_search(tmp_path: Path) -> None:
    """Episode 2 turns in the tool frame while the deltas declare the base frame: the declared convention fits as
    soon as the deltas compose in the tool frame."""
    found = _of(validate(make(tmp_path, "euler_tool")), "RDV404")
    assert [f.episode_index for f in found] == [2]
    assert "fits extrinsic xyz in radians, tool frame" in found[0].message
    assert "declared extrinsic xyz in radians, base frame" in found[0].message


def test_euler_angles_declared_in_degrees_are_read_in_degrees(tmp_path: Path) -> None:
    """Angles stored and declared in degrees are converted before the composition (they were read as radians, so
    that no convention could fit and a wrong one went unseen)."""
    assert not _of(validate(make(tmp_path, "euler_deg_declared")), "RDV404")
    found = _of(validate(make(tmp_path, "euler_deg_declared", "euler_intrinsic")), "RDV404")
    assert [f.episode_index for f in found] == [2]
    assert "fits intrinsic XYZ" in found[0].message and "declared extrinsic xyz (" in found[0].message


def test_an_euler_group_without_extrinsic_gets_one_info_with_the_fits(tmp_path: Path) -> None:
    path = make(tmp_path, "euler")
    manifest = path / layout.MANIFEST
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["features"]["observation.eef_euler"]["rotations"][0]["euler_extrinsic"] = None
    manifest.write_text(json.dumps(data), encoding="utf-8")
    found = _of(validate(path), "RDV404")
    assert len(found) == 1 and found[0].severity == Severity.INFO
    assert "extrinsic xyz" in found[0].message


def test_joint_limits_come_from_the_urdf_when_the_embodiment_has_none(tmp_path: Path) -> None:
    report = validate(make(tmp_path, "urdf", "limits"))
    found = [f for f in _of(report, "RDV104") if f.feature == "observation.state"]
    assert [(f.episode_index, f.dims, f.severity) for f in found] == [(1, [0], Severity.ERROR)]
    assert f"from the URDF {URDF_NAME}" in found[0].message
    assert f"[{-LIMIT_RAD:g}, {LIMIT_RAD:g}]" in found[0].message


def test_a_continuous_joint_in_the_urdf_is_not_limited(tmp_path: Path) -> None:
    path = make(tmp_path, "urdf", "limits")
    (path / URDF_NAME).write_text(urdf_text(continuous=("j0",)))
    assert not _of(validate(path), "RDV104")


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ("missing.urdf", "cannot be read"),
        ("../outside.urdf", "outside the dataset folder"),
        ("package://arm_description/urdf/arm.urdf", "package or URL reference"),
        ("broken.urdf", "not valid XML"),
    ],
)
def test_a_urdf_that_cannot_be_used_is_a_finding_not_a_crash(tmp_path: Path, reference: str, says: str) -> None:
    path = make(tmp_path, "urdf", "limits")
    (path / "broken.urdf").write_text("<robot><joint name='j0'")
    manifest = path / layout.MANIFEST
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["embodiments"][0]["urdf"] = reference
    manifest.write_text(json.dumps(data), encoding="utf-8")
    report = validate(path)
    problems = [f for f in _of(report, "RDV104") if f.episode_index is None]
    assert len(problems) == 1 and says in problems[0].message, [f.message for f in _of(report, "RDV104")]
    assert problems[0].severity == Severity.WARNING
    assert not [f for f in _of(report, "RDV104") if f.episode_index is not None]  # no limits: nothing checked


def test_the_urdf_parser_reads_names_types_and_limits(tmp_path: Path) -> None:
    file = tmp_path / "arm.urdf"
    file.write_text(urdf_text(continuous=("j2",)))
    joints = parse(resolve("arm.urdf", tmp_path))
    assert joints["j0"].limited and (joints["j0"].lower, joints["j0"].upper) == (-LIMIT_RAD, LIMIT_RAD)
    assert joints["j2"].type == "continuous" and not joints["j2"].limited
    (tmp_path / "other.xml").write_text("<sdf/>")
    with pytest.raises(UrdfUnusable, match="not a URDF"):
        parse(tmp_path / "other.xml")


def test_a_jump_out_of_a_frozen_stretch_is_seen(tmp_path: Path) -> None:
    """Most steps repeat (the median absolute deviation is 0): the jump when the stream resumes still counts
    (lerobot-doctor found it on the bench's idle episode; rdstd did not)."""
    found = _of(validate(make(tmp_path, "idle")), "RDV954")
    assert [(f.episode_index, f.frames) for f in found] == [(0, (39, 41))]
    assert not _of(validate(make(tmp_path, "delta")), "RDV954")


def test_a_dataset_without_a_camera_gets_one_readiness_note_and_one_with_a_camera_none(tmp_path: Path) -> None:
    """RDV905 (lerobot-doctor's "VLA: no image/video features"): info, once, only where no camera is declared."""
    without = validate(make(tmp_path, "no_camera"))
    notes = _of(without, "RDV905")
    assert [(f.severity, f.episode_index, f.feature) for f in notes] == [(Severity.INFO, None, None)]
    assert "no camera" in notes[0].message
    assert _loud(without) == []
    assert _of(validate(make(tmp_path)), "RDV905") == []

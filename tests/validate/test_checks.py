"""Each check fires on a generated dataset with its problem planted, at the right episode, feature, dims and frames,
and the clean twin fires nothing at warning or above (the strict profile, pixels on)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rdstd.store import layout
from rdstd.validate import Finding, Report, Severity, validate
from tests.validate.fixtures import make


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make(tmp_path_factory.mktemp("clean"))


def test_the_clean_twin_fires_nothing_at_warning_or_above(clean: Path) -> None:
    report = validate(clean, profile="strict")
    assert len(report.checks) >= 24, "strict runs every built-in check, pixels included"
    loud = [f for f in report.findings if f.severity != Severity.INFO]
    assert loud == [], [f.message for f in loud]


@dataclass(frozen=True)
class Planted:
    """A plant and where its finding must be."""

    plant: str
    check: str
    episode: int | None
    feature: str | None
    dims: list[int]
    frames: tuple[int, int] | None
    severity: Severity


PLANTED = [
    Planted("nan", "RDV102", 1, "observation.state", [0], (10, 13), Severity.ERROR),
    Planted("limits", "RDV104", 1, "observation.state", [0], (9, 60), Severity.ERROR),
    Planted("constant", "RDV105", None, "observation.state", [2], None, Severity.ERROR),  # strict: error
    Planted("spike", "RDV106", 4, "observation.state", [0], (40, 41), Severity.WARNING),
    Planted("dropped_frame", "RDV202", 4, None, [], (29, 31), Severity.WARNING),
    Planted("grid", "RDV203", None, None, [], None, Severity.INFO),
    Planted("degrees", "RDV301", 2, "observation.state", [1], (0, 60), Severity.ERROR),
    Planted("mm", "RDV302", 2, "observation.state", [3], (0, 60), Severity.WARNING),
    Planted("wrap", "RDV303", 2, "observation.state", [0], (7, 9), Severity.WARNING),
    Planted("quat_norm", "RDV401", 2, "observation.state", [6, 7, 8, 9], (20, 30), Severity.ERROR),
    Planted("reflection", "RDV401", 3, "observation.object_rotation", list(range(9)), (0, 60), Severity.ERROR),
    Planted("wxyz", "RDV402", 1, "observation.state", [6, 7, 8, 9], (0, 60), Severity.WARNING),
    Planted("wxyz", "RDV403", 1, "observation.state", [6, 7, 8, 9], (0, 60), Severity.WARNING),
    Planted("euler_intrinsic", "RDV404", 2, "observation.eef_euler", [0, 1, 2], (0, 60), Severity.WARNING),
    Planted("absolute_labelled_delta", "RDV501", 0, "action", [0, 1, 2], (0, 60), Severity.ERROR),
    Planted("delta_scaled", "RDV502", 2, "action", [0, 1, 2], (0, 60), Severity.WARNING),
    Planted("lead", "RDV501", 0, "action", [0, 1, 2], (0, 60), Severity.WARNING),
    Planted("prenormalized", "RDV504", None, "action", [1], None, Severity.WARNING),
    Planted("quantized", "RDV504", None, "action", [2], None, Severity.WARNING),
    Planted("resized_camera", "RDV601", 2, "observation.images.cam", [], (0, 1), Severity.ERROR),
    Planted("frozen_camera", "RDV602", 5, "observation.images.cam", [], (0, 60), Severity.WARNING),
    Planted("blank_camera", "RDV602", 0, "observation.images.cam", [], (0, 60), Severity.WARNING),
    Planted("relative_gripper", "RDV701", None, "action", [3], None, Severity.ERROR),
    Planted("inverted_gripper", "RDV702", 3, "action", [3], (0, 60), Severity.ERROR),
    Planted("empty_task", "RDV801", 3, None, [], None, Severity.WARNING),
    Planted("duplicate", "RDV802", 5, None, [], (0, 60), Severity.ERROR),
    Planted("no_embodiment", "RDV902", None, None, [], None, Severity.ERROR),  # strict: error
    Planted("notes", "RDV903", 2, None, [], None, Severity.INFO),
    Planted("idle", "RDV951", 0, None, [], (0, 40), Severity.INFO),
    Planted("idle", "RDV952", 0, "action", [], (0, 40), Severity.INFO),
    Planted("chatter", "RDV953", 4, "action", [3], (0, 60), Severity.INFO),
    Planted("jump", "RDV954", 1, "action", [], (29, 31), Severity.INFO),
]


def _of(report: Report, check: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check]


@pytest.mark.parametrize("case", PLANTED, ids=lambda c: f"{c.check}-{c.plant}")
def test_a_planted_problem_fires_its_check_where_it_was_planted(tmp_path: Path, case: Planted) -> None:
    report = validate(make(tmp_path, case.plant), profile="strict")
    found = [f for f in _of(report, case.check) if f.feature == case.feature]
    assert found, f"{case.check} did not fire on {case.plant}: {[f.message for f in report.findings]}"
    first = found[0]
    assert (first.episode_index, first.feature, first.dims, first.frames) == (
        case.episode,
        case.feature,
        case.dims,
        case.frames,
    ), first
    assert first.severity == case.severity
    if case.episode is not None:
        assert first.episode_id == f"ep{case.episode:03d}"
    assert first.message and first.evidence


def test_degrees_say_what_the_values_look_like(tmp_path: Path) -> None:
    finding = _of(validate(make(tmp_path, "degrees")), "RDV301")[0]
    assert "degrees" in finding.message
    assert finding.statistic and finding.threshold is not None
    assert isinstance(finding.measured, float) and finding.measured > finding.threshold


def test_a_duplicate_within_one_split_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = make(tmp_path, "duplicate")
    table = pq.read_table(path / layout.EPISODES)
    splits = table.column("split").to_pylist()
    splits[5] = "train"
    pq.write_table(table.set_column(table.schema.get_field_index("split"), "split", [splits]), path / layout.EPISODES)
    finding = _of(validate(path), "RDV802")[0]
    assert finding.severity == Severity.WARNING
    assert "both in split train" in finding.message


def test_timestamps_that_go_back_fire_the_monotonic_check(tmp_path: Path) -> None:
    """The writer refuses such timestamps, so the shard is damaged after the write (a hand edit, another tool)."""
    path = make(tmp_path)
    shard = path / layout.shard_name(0)
    table = pq.read_table(shard)
    ts = table.column("timestamp").to_numpy().copy()
    ts[60 + 20] = ts[60 + 18]  # episode 1, frame 20 goes back in time
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", [ts])
    pq.write_table(table, shard, write_page_checksum=True)
    found = _of(validate(path), "RDV201")
    assert [(f.episode_index, f.frames, f.severity) for f in found] == [(1, (19, 21), Severity.ERROR)]


def test_an_unknown_action_mode_gets_the_mode_the_data_fits(tmp_path: Path) -> None:
    report = validate(make(tmp_path, "unknown_mode"))
    fits = [f for f in _of(report, "RDV501") if f.feature == "action"]
    assert fits and all(f.severity == Severity.INFO and "fits absolute" in f.message for f in fits)
    assert any("unknown action mode" in f.message for f in _of(report, "RDV901"))


def test_without_a_rate_the_interval_check_says_unverifiable(tmp_path: Path) -> None:
    path = make(tmp_path)
    data = json.loads((path / layout.MANIFEST).read_text(encoding="utf-8"))
    data["rate_hz"] = None
    data["embodiments"][0]["control_rate_hz"] = None
    (path / layout.MANIFEST).write_text(json.dumps(data), encoding="utf-8")
    found = _of(validate(path), "RDV202")
    assert [(f.evidence, f.severity) for f in found] == [("unverifiable", Severity.INFO)]


def test_the_default_profile_decodes_no_pixels(tmp_path: Path) -> None:
    report = validate(make(tmp_path, "frozen_camera"))
    assert not _of(report, "RDV602")
    assert all(not c.pixels for c in report.checks)


def test_classify_angles_tells_ticks_from_degrees() -> None:
    from rdstd.validate.checks.units import classify_angles

    assert classify_angles(np.array([0.0, 2048.0, 4095.0])) == "encoder ticks"
    assert classify_angles(np.array([-170.5, 12.25, 179.0])) == "degrees"


def test_a_dominant_task_is_reported_as_imbalance(tmp_path: Path) -> None:
    from rdstd.store.reader import Dataset
    from rdstd.validate.config import Config
    from rdstd.validate.runner import validate_dataset

    ds = Dataset.open(make(tmp_path, "empty_task"))
    report = validate_dataset(ds, Config(select=["RDV803"], params={"RDV803": {"max_ratio": 4.0}}))
    (finding,) = report.findings
    assert finding.severity == Severity.INFO and finding.measured == 5.0
    assert "2 tasks: the most common has 5 episodes, the least common 1 (e.g. ['   '])" in finding.message
    assert not validate_dataset(ds, Config(select=["RDV803"])).findings, "5 to 1 is under the default ratio of 50"


def test_rotation_groups_become_the_same_matrices_whatever_the_representation() -> None:
    from rdstd.schema import RotationGroup, RotationRepr
    from rdstd.validate.checks.rotations import group_matrices, quat_matrices

    rng = np.random.default_rng(3)
    axis = rng.normal(size=(20, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(0.01, 3.0, 20)
    xyzw = np.concatenate([np.sin(angle / 2)[:, None] * axis, np.cos(angle / 2)[:, None]], axis=1)
    from_quat = quat_matrices(xyzw, scalar_last=True)
    assert np.allclose(quat_matrices(xyzw[:, [3, 0, 1, 2]], scalar_last=False), from_quat)
    from_axis = group_matrices(axis * angle[:, None], RotationGroup(start=0, representation=RotationRepr.AXIS_ANGLE))
    assert from_axis is not None and np.allclose(from_axis, from_quat)
    abc = rng.uniform(-1, 1, (20, 3))
    extrinsic = group_matrices(
        abc, RotationGroup(start=0, representation="euler", euler_axes="xyz", euler_extrinsic=True)
    )
    intrinsic = group_matrices(
        abc[:, ::-1], RotationGroup(start=0, representation=RotationRepr.EULER, euler_axes="zyx", euler_extrinsic=False)
    )
    assert extrinsic is not None and intrinsic is not None and np.allclose(extrinsic, intrinsic)
    assert np.allclose(np.linalg.det(extrinsic), 1.0)

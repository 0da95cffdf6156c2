"""Recordings written by rdstd view, read back with rerun.chunk.RrdReader and pyarrow: entities, rows per timeline,
values equal to the dataset's, properties, and the stored blueprint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rerun")

import rdstd
from rdstd.errors import UsageError
from rdstd.validate.model import Evidence, Finding, Severity
from rdstd.view.episodes import open_view
from rdstd.view.session import save
from tests.view.helpers import ACTION, EEF, FRONT, STATE, WRIST, chunks, rows, static, write

LENGTHS = [40, 30]


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("view") / "ds", LENGTHS)


@pytest.fixture(scope="module")
def rrds(ds: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    with open_view(ds) as view:
        return save(view, view.indices(), tmp_path_factory.mktemp("rrd")).files


def test_one_recording_per_episode_with_a_stable_id_and_the_blueprint_stored(rrds: list[Path]) -> None:
    from rerun.chunk import RrdReader

    assert [f.name for f in rrds] == ["lab_x_episode_000000.rrd", "lab_x_episode_000001.rrd"]
    for i, f in enumerate(rrds):
        rd = RrdReader(f)
        assert [(s.application_id, s.recording_id) for s in rd.recordings()] == [("rdstd", f"lab_x/episode_{i:06d}")]
        assert len(rd.blueprints()) == 1
    assert not list(rrds[0].parent.glob(".*tmp*")), "the temporary file was renamed"
    verify = subprocess.run(
        [sys.executable, "-m", "rerun_cli", "rrd", "verify", str(rrds[0])], capture_output=True, check=False
    )
    assert verify.returncode == 0, verify.stderr


def test_entities_are_one_per_stream_and_every_one_is_on_both_timelines(rrds: list[Path]) -> None:
    from rerun.chunk import RrdReader

    schema = RrdReader(rrds[0]).store().schema()
    assert sorted(c.name for c in schema.index_columns()) == ["frame", "time"]
    temporal = {c.entity_path for c in chunks(rrds[0]) if not c.is_static}
    assert temporal == {
        f"/{STATE}/joint_position",
        f"/{STATE}/gripper",
        f"/{STATE}/gripper_state/7",
        f"/{EEF}/eef_position",
        f"/{EEF}/eef_rotation",
        f"/{ACTION}/joint_position",
        f"/{ACTION}/gripper",
        f"/{ACTION}/gripper_state/7",
        f"/{FRONT}",
        f"/{WRIST}",
        f"/world/{EEF}",
    }
    for c in chunks(rrds[0]):
        if not c.is_static:
            names = c.to_record_batch().schema.names
            assert "frame" in names and "time" in names, c.entity_path


def test_values_and_timestamps_equal_the_dataset(ds: Path, rrds: list[Path]) -> None:
    data = rdstd.open(ds)
    for i, f in enumerate(rrds):
        ep = data.episode(i)
        n = LENGTHS[i]
        frame, time, values = rows(f, f"/{STATE}/joint_position", "Scalars:scalars")
        np.testing.assert_array_equal(frame, np.arange(n))
        np.testing.assert_array_equal(time, np.round(ep.timestamps * 1e9).astype(np.int64))
        np.testing.assert_array_equal(np.array(values), ep.vectors[STATE][:, :7].astype(np.float64))
        _, _, grip = rows(f, f"/{ACTION}/gripper", "Scalars:scalars")
        np.testing.assert_array_equal(np.array(grip)[:, 0], ep.vectors[ACTION][:, 7])
        for cam in (FRONT, WRIST):
            frame, _, blobs = rows(f, f"/{cam}", "EncodedImage:blob")
            np.testing.assert_array_equal(frame, np.arange(n))
            assert [bytes(b) for b in blobs] == ep.images[cam].encoded, "stored bytes, never re-encoded"


def test_series_names_carry_units_and_unknown_is_said(rrds: list[Path]) -> None:
    assert static(rrds[0], f"/{STATE}/joint_position", "SeriesLines:names") == [f"joint_{i} [rad]" for i in range(7)]
    assert static(rrds[0], f"/{EEF}/eef_position", "SeriesLines:names") == ["x [m]", "y [m]", "z [m]"]
    assert static(rrds[0], f"/{ACTION}/gripper", "SeriesLines:names") == "gripper [unknown]"  # one series
    assert static(rrds[0], f"/{FRONT}", "EncodedImage:media_type") == "image/jpeg"
    assert static(rrds[0], f"/{WRIST}", "EncodedImage:media_type") == "image/png"


def test_the_gripper_is_a_state_lane_that_changes_where_the_data_does(rrds: list[Path]) -> None:
    n = LENGTHS[0]
    frame, _, states = rows(rrds[0], f"/{STATE}/gripper_state/7", "StateChange:state")
    assert frame.tolist() == [0, n // 2, 3 * n // 4]
    assert states == ["open", "closed", "open"]
    # the action's gripper has no convention: its polarity is said to be unknown, not guessed
    _, _, states = rows(rrds[0], f"/{ACTION}/gripper_state/7", "StateChange:state")
    assert set(states) == {"high (polarity unknown)", "low (polarity unknown)"}


def test_the_end_effector_pose_is_placed_in_3d(ds: Path, rrds: list[Path]) -> None:
    eef = rdstd.open(ds).episode(0).vectors[EEF].astype(np.float64)
    _, _, translation = rows(rrds[0], f"/world/{EEF}", "Transform3D:translation")
    _, _, quaternion = rows(rrds[0], f"/world/{EEF}", "Transform3D:quaternion")
    np.testing.assert_allclose(np.array(translation), eef[:, :3], rtol=1e-6)
    q = eef[:, 3:] / np.linalg.norm(eef[:, 3:], axis=1, keepdims=True)
    np.testing.assert_allclose(np.array(quaternion), q, rtol=1e-5, atol=1e-6)
    path = static(rrds[0], f"/world/paths/{EEF}", "LineStrips3D:strips")
    np.testing.assert_allclose(np.array(path), eef[:, :3], rtol=1e-6)


def test_properties_carry_provenance_units_and_the_episode(rrds: list[Path]) -> None:
    assert static(rrds[1], "/__properties/dataset", "source_format") == ["generated"]
    assert static(rrds[1], "/__properties/dataset", "rate_hz") == [10.0]
    assert static(rrds[1], "/__properties/dataset", "viewed_with_rdstd") == [rdstd.__version__]
    assert static(rrds[1], "/__properties/dataset", "robot") == ["arm (unknown)"]
    assert static(rrds[1], "/__properties/units", STATE) == ["rad"] * 7 + ["normalized"]
    assert static(rrds[1], "/__properties/units", ACTION) == ["rad"] * 7 + ["unknown"]
    assert static(rrds[1], "/__properties/episode", "episode_index") == [1]
    assert static(rrds[1], "/__properties/episode", "episode_id") == ["ep001"]
    assert static(rrds[1], "/task", "TextDocument:text").startswith("# pick up cube 1")


def blueprint_views(rrd: Path) -> dict[str, str]:
    """The stored blueprint's views: origin -> kind."""
    from rerun.chunk import RrdReader

    rd = RrdReader(rrd)
    views = {}
    for c in rd.store(store=rd.blueprints()[0]).stream().collect().stream():
        b = c.to_record_batch()
        if "ViewBlueprint:space_origin" in b.schema.names:
            views[b.column("ViewBlueprint:space_origin").to_pylist()[0][0]] = b.column(
                "ViewBlueprint:class_identifier"
            ).to_pylist()[0][0]
    return views


def test_the_stored_blueprint_is_generated_from_the_schema(rrds: list[Path]) -> None:
    views = blueprint_views(rrds[0])
    assert views[f"/{FRONT}"] == "2D" and views[f"/{WRIST}"] == "2D"
    assert views[f"/{STATE}/joint_position"] == "TimeSeries"
    assert views[f"/{ACTION}/joint_position"] == "TimeSeries"
    assert views[f"/{STATE}/gripper_state/7"] == "StateTimeline"
    assert views["/task"] == "TextDocument"
    assert views["/world"] == "3D"
    assert views["/"] == "TextLog"


def _finding(**kw: object) -> Finding:
    base: dict[str, object] = {
        "check": "RDV999",
        "name": "test.planted",
        "severity": Severity.WARNING,
        "evidence": Evidence.DETERMINISTIC,
        "message": "planted",
    }
    return Finding.model_validate(base | kw)


def test_findings_are_logged_at_their_frames_on_the_entity_they_concern(ds: Path, tmp_path: Path) -> None:
    found = [
        _finding(episode_index=0, feature=STATE, dims=[7], dim_names=["gripper"], frames=(12, 15)),
        _finding(episode_id="ep000", feature=FRONT, frames=(5, 6), severity=Severity.ERROR, message="dark"),
        _finding(message="dataset-wide", severity=Severity.INFO),
        _finding(episode_index=1, feature=STATE, frames=(3, 4), message="other episode"),
    ]
    with open_view(ds) as view:
        [f] = save(view, [0], tmp_path / "ep.rrd", findings=found).files
    frame, time, text = rows(f, f"/{STATE}/gripper/findings", "TextLog:text")
    assert frame.tolist() == [12] and time.tolist() == [1_200_000_000]
    assert text[0].startswith("RDV999 test.planted [gripper]: planted (frames 12–15)")
    frame, _, level = rows(f, f"/{FRONT}/findings", "TextLog:level")
    assert frame.tolist() == [5] and level == ["ERROR"]
    frame, _, text = rows(f, "/findings", "TextLog:text")
    assert frame.tolist() == [0] and "dataset-wide" in text[0]
    assert all("other episode" not in str(c.to_record_batch().to_pylist()) for c in chunks(f))


def test_findings_with_frame_ranges_are_lanes_that_cover_exactly_those_frames(ds: Path, tmp_path: Path) -> None:
    found = [
        _finding(episode_index=0, feature=STATE, dims=[7], dim_names=["gripper"], frames=(12, 15)),
        _finding(episode_index=0, feature=STATE, dims=[7], check="RDV102", severity=Severity.ERROR, frames=(14, 20)),
        _finding(episode_id="ep000", feature=FRONT, frames=(5, 6), severity=Severity.ERROR, message="dark"),
        _finding(episode_index=0, feature=FRONT, frames=(1000, 2000), message="past the end"),
        _finding(message="dataset-wide, no frames", severity=Severity.INFO),
    ]
    with open_view(ds) as view:
        [f] = save(view, [0], tmp_path / "ep.rrd", findings=found).files
    frame, time, state = rows(f, f"/finding_ranges/{STATE}/gripper", "StateChange:state")
    assert frame.tolist() == [0, 12, 14, 15, 20]
    assert time.tolist() == [0, 1_200_000_000, 1_400_000_000, 1_500_000_000, 2_000_000_000]
    assert state == ["no finding", "RDV999 warning", "RDV102 error, RDV999 warning", "RDV102 error", "no finding"]
    frame, _, state = rows(f, f"/finding_ranges/{FRONT}", "StateChange:state")
    assert frame.tolist() == [0, 5, 6] and state == ["no finding", "RDV999 error", "no finding"]
    assert not [c for c in chunks(f) if c.entity_path == "/finding_ranges/episode"], "no lane without frames"


def test_findings_lanes_are_in_the_layout_only_when_a_finding_has_frames(ds: Path, tmp_path: Path) -> None:
    def views(findings: list[Finding]) -> dict[str, str]:
        with open_view(ds) as view:
            [f] = save(view, [0], tmp_path / f"{len(findings)}.rrd", findings=findings).files
        return blueprint_views(f)

    assert views([_finding(episode_index=0, feature=STATE, frames=(1, 3))])["/finding_ranges"] == "StateTimeline"
    assert "/finding_ranges" not in views([_finding(message="no frames")])


def test_the_default_validation_profile_runs_and_its_findings_land_at_their_frames(ds: Path, tmp_path: Path) -> None:
    from rdstd.view.findings import run_validation

    with open_view(ds) as view:
        found = run_validation(view)
        jumps = [f for f in found if f.episode_index == 0 and f.feature == ACTION and f.frames]
        assert jumps, "the planted wrap-around of the rolled action is found"
        [f] = save(view, [0], tmp_path / "ep.rrd", findings=found).files
    frame, _, text = rows(f, f"/{ACTION}/joint_position/findings", "TextLog:text")
    assert jumps[0].frames is not None and jumps[0].frames[0] in frame.tolist()
    assert any(t.startswith(jumps[0].check) for t in text)


def test_a_findings_file_that_is_not_a_report_is_a_usage_error(tmp_path: Path) -> None:
    from rdstd.view.findings import read_findings

    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"findings": "no"}), encoding="utf-8")
    with pytest.raises(UsageError, match="not an rdstd validate JSON report"):
        read_findings(bad)
    with pytest.raises(UsageError, match="cannot read"):
        read_findings(tmp_path / "missing.json")


def test_one_rrd_file_for_two_episodes_is_refused_and_an_unknown_episode_named(ds: Path, tmp_path: Path) -> None:
    with open_view(ds) as view:
        with pytest.raises(UsageError, match=r"one \.rrd file holds one episode"):
            save(view, [0, 1], tmp_path / "x.rrd")
        with pytest.raises(UsageError, match=r"no episode 7 \(episodes 0\.\.1\)"):
            save(view, [7], tmp_path / "x.rrd")
    assert not list(tmp_path.iterdir())


def test_a_dataset_in_object_storage_is_viewed_the_same(
    ds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsspec = pytest.importorskip("fsspec")
    monkeypatch.setenv("RDSTD_CACHE", str(tmp_path / "cache"))
    fs = fsspec.filesystem("memory")
    for file in ds.rglob("*"):
        if file.is_file():
            fs.pipe_file(f"/view-ds/{file.relative_to(ds).as_posix()}", file.read_bytes())
    with open_view("memory://view-ds") as view:
        [remote] = save(view, [1], tmp_path / "remote.rrd").files
    with open_view(ds) as view:
        [local] = save(view, [1], tmp_path / "local.rrd").files
    for entity, column in [(f"/{STATE}/joint_position", "Scalars:scalars"), (f"/{FRONT}", "EncodedImage:blob")]:
        a, b = rows(remote, entity, column), rows(local, entity, column)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[2] == b[2]

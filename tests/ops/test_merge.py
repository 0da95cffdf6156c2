"""rdstd merge: three labs' real samples in one dataset, conflicts reported per dimension, bad input refused."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rdstd
from rdstd.convert.pipeline import convert
from rdstd.errors import MergeConflictError, OutputError, UsageError
from rdstd.ops import assemble
from rdstd.ops.merge import merge
from rdstd.schema.features import CameraIntrinsics, VectorFeature
from rdstd.schema.vocabulary import Unit
from rdstd.store.merged import MERGE_KEY
from rdstd.store.reader import Dataset
from rdstd.store.stats import RunningStats
from tests.conftest import sample
from tests.ops.helpers import make

LABS = {
    "bridge": ("rlds/bridge_debug/bridge_dataset/1.0.0", {}),
    "g1": ("lerobot/g1_v21_subset", {}),
    "pusht": ("zarr/pusht/pusht_cchi_v7_replay.zarr", {"spec": "zarr/pusht", "limit": 4}),
}


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bridge RLDS (5 Hz), Unitree G1 LeRobot v2.1 (30 Hz, video), PushT zarr (10 Hz, PNG), converted."""
    root = tmp_path_factory.mktemp("labs")
    out = {}
    for label, (relative, options) in LABS.items():
        convert(sample(relative), root / label, **options)  # type: ignore[arg-type]
        out[label] = root / label
    return out


def from_scratch(ds: Dataset, key: str) -> dict[str, object]:
    """The statistics of ``key`` computed directly from every episode that has it."""
    stats = RunningStats(ds.manifest.vectors[key].size)
    for ep in ds.iter_episodes():
        if key in ep.vectors:
            stats.update(ep.vectors[key].reshape(ep.length, -1))
    return stats.as_dict()


def assert_stats_equal(got: dict[str, object], want: dict[str, object]) -> None:
    assert got["count"] == want["count"]
    for name in ("mean", "std", "min", "max", "q01", "q99"):
        a = np.array(got[name], dtype=float)
        b = np.array(want[name], dtype=float)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=name)


def test_three_labs_merge_with_every_frame_image_byte_stat_and_provenance_kept(
    labs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "all"
    report = merge(list(labs.values()), out, prefix_ids=True)
    merged = rdstd.open(out)
    inputs = {label: rdstd.open(path) for label, path in labs.items()}
    assert merged.num_episodes == sum(d.num_episodes for d in inputs.values())
    assert len(merged) == sum(len(d) for d in inputs.values())
    assert merged.manifest.rate_hz is None  # 5, 30 and 10 Hz live side by side
    assert {e.name for e in merged.manifest.embodiments} >= {"widowx_250", "unitree_g1_inspire", "pusht_agent"}
    # layouts that differ are kept separate, named in the report
    layout = {c.feature: c for c in report.conflicts if c.kind == "layout"}
    assert set(layout) == {"observation.state", "action"}
    assert {"observation.state", "observation.state.g1", "observation.state.pusht"} <= set(merged.manifest.features)
    by_id = {row["episode_id"]: i for i, row in enumerate(merged.episodes.iter_rows(named=True))}
    for label, ds in inputs.items():
        columns = next(i for i in merged.manifest.extra["merge"]["inputs"] if i["label"] == label)["features"]
        for ep in ds.iter_episodes():
            got = merged.episode(by_id[f"{label}:{ep.meta.episode_id}"])
            np.testing.assert_array_equal(got.timestamps, ep.timestamps)
            assert got.meta.source_path == ep.meta.source_path
            assert got.meta.source_meta[MERGE_KEY]["input"] == label
            assert got.meta.embodiment == ep.meta.embodiment
            assert got.meta.task == ep.meta.task
            assert set(got.vectors) | set(got.images) == set(columns)
            for new, old in columns.items():
                if new in got.vectors:
                    np.testing.assert_array_equal(got.vectors[new], ep.vectors[old])
                elif ds.manifest.cameras[old].codec.value == "video":
                    refs, want = got.images[new].refs, ep.images[old].refs
                    assert [r["timestamp_s"] for r in refs] == [r["timestamp_s"] for r in want]
                    assert filecmp.cmp(out / refs[0]["path"], labs[label] / want[0]["path"], shallow=False)
                else:
                    assert got.images[new].encoded == ep.images[old].encoded  # bytes identical, never decoded
    for key in merged.manifest.vectors:
        assert_stats_equal(merged.stats[key], from_scratch(merged, key))


def test_a_planted_unit_conflict_is_reported_per_dimension_and_the_suggested_conversion_merges(tmp_path: Path) -> None:
    a = make(tmp_path / "a", unit=Unit.RAD, prefix="a")
    b = make(tmp_path / "b", unit=Unit.DEG, prefix="b", seed=1)
    with pytest.raises(MergeConflictError) as caught:
        merge([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    conflicts = {c.feature: c for c in caught.value.report.conflicts}  # type: ignore[union-attr]
    state = conflicts["observation.state"]
    assert [(d.dim, d.field, d.values) for d in state.differences] == [
        (i, "unit", {"a": "rad", "b": "deg"}) for i in range(7)
    ]
    assert "--convert b:observation.state" in state.fix
    assert "--convert b:observation.state" in caught.value.message
    report = merge([a, b], tmp_path / "out", convert=["b:observation.state", "b:action"])
    assert {c.feature for c in report.conflicts if c.resolved} == {"observation.state", "action"}
    merged, raw_b = rdstd.open(tmp_path / "out"), rdstd.open(b)
    np.testing.assert_allclose(
        merged.episode(3).vectors["observation.state"],
        np.deg2rad(raw_b.episode(0).vectors["observation.state"]),
        rtol=1e-6,
    )
    assert merged.manifest.features["observation.state"].dims[0].unit == Unit.RAD  # type: ignore[union-attr]
    for key in ("observation.state", "action"):
        assert_stats_equal(merged.stats[key], from_scratch(merged, key))


def test_a_conflict_without_automatic_fix_names_separate_and_separate_keeps_both(tmp_path: Path) -> None:
    a = make(tmp_path / "a", unit=Unit.RAD, prefix="a")
    b = make(tmp_path / "b", unit=Unit.UNKNOWN, prefix="b")
    with pytest.raises(MergeConflictError, match=r"--separate observation\.state"):
        merge([a, b], tmp_path / "out")
    merge([a, b], tmp_path / "out", separate=["observation.state", "action"])
    merged = rdstd.open(tmp_path / "out")
    assert {"observation.state", "observation.state.b", "action", "action.b"} <= set(merged.manifest.features)
    assert "observation.state" not in merged.episode(3).vectors
    assert merged.episode(3).vectors["observation.state.b"].shape == (12, 7)


def test_renamed_cameras_line_up_as_one_feature(tmp_path: Path) -> None:
    a = make(tmp_path / "a", prefix="a", camera="observation.images.front")
    b = make(tmp_path / "b", prefix="b", camera="observation.images.cam_high")
    merge([a, b], tmp_path / "out", rename=["b:observation.images.cam_high=observation.images.front"])
    merged = rdstd.open(tmp_path / "out")
    assert merged.manifest.cameras.keys() == {"observation.images.front"}
    assert (
        merged.episode(4).images["observation.images.front"].encoded
        == rdstd.open(b).episode(1).images["observation.images.cam_high"].encoded
    )


def test_an_inputs_own_camera_calibration_and_feature_definition_are_kept(tmp_path: Path) -> None:
    a = make(tmp_path / "a", prefix="a", intrinsics=CameraIntrinsics(fx=50, fy=50, cx=16, cy=16))
    b = make(tmp_path / "b", prefix="b", intrinsics=CameraIntrinsics(fx=80, fy=80, cx=16, cy=16))
    merge([a, b], tmp_path / "out")
    merged = rdstd.open(tmp_path / "out")
    camera = "observation.images.front"
    assert merged.manifest.cameras[camera].intrinsics.fx == 50  # type: ignore[union-attr]
    assert merged.episode(0).meta.cameras == {}
    calibration = merged.episode(3).meta.cameras[camera]
    assert calibration.intrinsics is not None and calibration.intrinsics.fx == 80
    definitions = merged.manifest.extra["merge"]["inputs"][1]["definitions"]
    assert definitions[camera]["intrinsics"]["fx"] == 80


def test_different_rates_live_side_by_side_and_tasks_are_remapped(tmp_path: Path) -> None:
    a = make(tmp_path / "a", prefix="a", rate_hz=10, task="pick")
    b = make(tmp_path / "b", prefix="b", rate_hz=30, task="place")
    merge([a, b], tmp_path / "out")
    merged = rdstd.open(tmp_path / "out")
    assert merged.manifest.rate_hz is None
    assert [i["rate_hz"] for i in merged.manifest.extra["merge"]["inputs"]] == [10, 30]
    tasks = dict(zip(merged.tasks["task_index"], merged.tasks["task"], strict=True))
    for row in merged.episodes.iter_rows(named=True):
        assert tasks[row["task_index"]] == row["task"]
    assert sorted(tasks.values()) == ["pick 0", "pick 1", "place 0", "place 1"]


def test_a_common_rate_is_imposed_only_when_asked(tmp_path: Path) -> None:
    a = make(tmp_path / "a", prefix="a", rate_hz=10, frames=20)
    b = make(tmp_path / "b", prefix="b", rate_hz=30, frames=60)
    merge([a, b], tmp_path / "out", rate_hz=10)
    merged = rdstd.open(tmp_path / "out")
    assert merged.manifest.rate_hz == 10
    assert merged.episodes["length"].to_list() == [20] * 3 + [20] * 3
    assert [i["path"] for i in merged.manifest.extra["merge"]["inputs"]] == [str(a), str(b)]
    assert nothing_in(tmp_path, "a", "b", "out")  # the resampled copies are gone


# -- bad input: clear errors, nothing written ------------------------------------------------------------------------


def nothing_in(folder: Path, *keep: str) -> bool:
    return sorted(p.name for p in folder.iterdir()) == sorted(keep)


def test_merging_a_dataset_with_itself_is_refused(tmp_path: Path) -> None:
    a = make(tmp_path / "a")
    with pytest.raises(UsageError, match="with itself"):
        merge([a, tmp_path / "." / "a"], tmp_path / "out")
    shutil.copytree(a, tmp_path / "copy")
    with pytest.raises(UsageError, match="copy of itself"):
        merge([a, tmp_path / "copy"], tmp_path / "out")
    assert nothing_in(tmp_path, "a", "copy")


def test_colliding_episode_ids_are_refused_with_the_prefix_fix(tmp_path: Path) -> None:
    a = make(tmp_path / "a", prefix="ep")
    b = make(tmp_path / "b", prefix="ep", seed=5)
    with pytest.raises(UsageError, match="ids must stay unique") as caught:
        merge([a, b], tmp_path / "out")
    assert "--prefix-ids" in caught.value.hint
    assert nothing_in(tmp_path, "a", "b")
    merge([a, b], tmp_path / "out", prefix_ids=True)
    assert rdstd.open(tmp_path / "out").episodes["episode_id"].to_list()[3] == "b:ep000"


def test_an_output_inside_an_input_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    a, b = make(tmp_path / "a", prefix="a"), make(tmp_path / "b", prefix="b")
    before = sorted(p.name for p in a.iterdir())
    with pytest.raises(UsageError, match="overlaps the source"):
        merge([a, b], a / "merged")
    assert sorted(p.name for p in a.iterdir()) == before


def test_a_failure_half_way_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make(tmp_path / "a", prefix="a"), make(tmp_path / "b", prefix="b")

    def boom(self: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(assemble._Assembly, "_finish", boom)
    with pytest.raises(OutputError, match="disk is full"):
        merge([a, b], tmp_path / "out")
    assert nothing_in(tmp_path, "a", "b")


def test_the_cli_prints_the_conflict_report_as_json_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rdstd.cli.app import main

    a = make(tmp_path / "a", unit=Unit.RAD, prefix="a")
    b = make(tmp_path / "b", unit=Unit.DEG, prefix="b")
    code = main(["merge", str(a), str(b), str(tmp_path / "out"), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2
    report = json.loads(captured.out)
    assert report["conflicts"][0]["fix"].startswith("--convert b:observation.state")
    assert "RD110" in captured.err
    code = main(
        ["merge", str(a), str(b), str(tmp_path / "out"), "--convert", "b:observation.state", "--convert", "b:action"]
    )
    assert code == 0
    assert isinstance(rdstd.open(tmp_path / "out").manifest.features["action"], VectorFeature)


def test_a_merged_dataset_merges_again_keeping_each_episodes_history(tmp_path: Path) -> None:
    a = make(tmp_path / "a", prefix="a")
    b = make(tmp_path / "b", prefix="b", camera="observation.images.wrist")
    c = make(tmp_path / "c", prefix="c")
    merge([a, b], tmp_path / "ab")
    merge([tmp_path / "ab", c], tmp_path / "abc")
    merged = rdstd.open(tmp_path / "abc")
    first = merged.episode(0)
    assert first.meta.source_meta[MERGE_KEY]["input"] == "ab"
    assert first.meta.source_meta[MERGE_KEY]["from"]["input"] == "a"
    assert set(merged.episode(3).images) == {"observation.images.wrist"}  # b's episode: no front camera
    assert merged.frame(3 * 12)["observation.images.front"] is None
    assert (
        merged.episode(6).images["observation.images.front"].encoded
        == rdstd.open(c).episode(0).images["observation.images.front"].encoded
    )
    for key in merged.manifest.vectors:
        assert_stats_equal(merged.stats[key], from_scratch(merged, key))
        assert merged.stats[key]["nonfinite"] == [0] * merged.manifest.vectors[key].size  # null rows are not NaN data

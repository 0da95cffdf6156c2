"""Exporting canonical datasets as LeRobot v3.0 and v2.1: layout as LeRobot writes it, values round-tripped."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rdstd.convert.pipeline import convert
from rdstd.errors import RdstdError, SchemaError, UsageError
from rdstd.export import lerobot as lexport
from rdstd.export.lerobot import export_lerobot
from rdstd.formats.lerobot.source import LeRobotSource
from rdstd.media import video
from rdstd.schema.episode import EncodedFrames, VideoFrames
from rdstd.store.reader import Dataset
from tests.conftest import sample
from tests.formats.lerobot_fixtures import (
    STATE_NAMES,
    Spec,
    depth_png,
    identify,
    make_canonical,
    make_dataset,
    state_value,
)

CAM = "observation.images.front"
#: Frames that went through encoding (JPEG in the store, then AV1/H.264) may differ by this much per channel.
ENCODED_MEAN_TOLERANCE = 4.0


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated v3.0 dataset converted twice: video kept, and frames as JPEG."""
    root = tmp_path_factory.mktemp("export")
    source = make_dataset(root / "src", Spec(version="v3.0", lengths=[6, 9, 7, 5]))
    convert(source, root / "video")
    convert(source, root / "jpeg", images="jpeg")
    return {"source": source, "video": root / "video", "jpeg": root / "jpeg"}


def assert_same_values(a: Dataset, b: Dataset) -> None:
    assert a.num_episodes == b.num_episodes
    for i in range(a.num_episodes):
        ea, eb = a.episode(i), b.episode(i)
        assert ea.meta.task == eb.meta.task
        assert np.array_equal(ea.timestamps, eb.timestamps)
        assert ea.vectors.keys() == eb.vectors.keys()
        for key in ea.vectors:
            assert ea.vectors[key].dtype == eb.vectors[key].dtype
            assert np.array_equal(ea.vectors[key], eb.vectors[key]), key


def test_canonical_to_v30_and_back_is_exact_for_values_and_frames_when_video_was_kept(
    canonical: dict[str, Path], tmp_path: Path
) -> None:
    report = export_lerobot(canonical["video"], tmp_path / "lerobot")
    assert report.cameras == {CAM: "stream copy (mpeg4)"}
    convert(tmp_path / "lerobot", tmp_path / "back")
    before, after = Dataset.open(canonical["video"]), Dataset.open(tmp_path / "back")
    assert_same_values(before, after)
    assert [d.name for d in after.manifest.vectors["observation.state"].dims] == ["j0", "j1", "j2", "gripper"]
    for i in range(len(before)):
        assert np.array_equal(before.frame(i)[CAM], after.frame(i)[CAM])  # stream copy: the very same pixels


def test_canonical_jpeg_frames_are_encoded_and_come_back_as_the_same_frames(
    canonical: dict[str, Path], tmp_path: Path
) -> None:
    report = export_lerobot(canonical["jpeg"], tmp_path / "lerobot")
    assert report.cameras[CAM].startswith("encoded (")
    convert(tmp_path / "lerobot", tmp_path / "back")
    before, after = Dataset.open(canonical["jpeg"]), Dataset.open(tmp_path / "back")
    assert_same_values(before, after)
    lengths = [6, 9, 7, 5]
    for e in range(4):
        frames = after.episode(e).images[CAM].decode_all()
        assert [identify(p, e, lengths[e]) for p in frames] == list(range(lengths[e]))
        originals = before.episode(e).images[CAM].decode_all()
        diff = np.abs(frames.reshape(len(frames), -1, 3).mean(1) - originals.reshape(len(frames), -1, 3).mean(1))
        assert diff.max() < ENCODED_MEAN_TOLERANCE


def test_v30_layout_matches_what_lerobot_itself_wrote(canonical: dict[str, Path], tmp_path: Path) -> None:
    reference = sample("lerobot/v30_small")
    convert(reference, tmp_path / "canon")
    out = export_lerobot(tmp_path / "canon", tmp_path / "lerobot").output
    ours, theirs = Path(out), reference
    files = sorted(str(p.relative_to(ours)) for p in ours.rglob("*") if p.is_file())
    extra = {"meta/modality.json", "meta/rdstd_manifest.json"}  # GR00T's file and the canonical manifest
    assert set(files) - extra == {str(p.relative_to(theirs)) for p in theirs.rglob("*") if p.is_file()}
    data = "data/chunk-000/file-000.parquet"
    a, b = pq.ParquetFile(ours / data), pq.ParquetFile(theirs / data)
    assert a.schema_arrow.remove_metadata().equals(b.schema_arrow.remove_metadata())
    assert a.metadata.num_row_groups == b.metadata.num_row_groups == 3  # one row group per episode
    # the episodes table: LeRobot's columns with LeRobot's types, in LeRobot's order, then rdstd's own
    ours_eps = pq.read_schema(ours / "meta/episodes/chunk-000/file-000.parquet").remove_metadata()
    theirs_eps = pq.read_schema(theirs / "meta/episodes/chunk-000/file-000.parquet").remove_metadata()
    lerobot_columns = [n for n in ours_eps.names if not n.startswith("rdstd/")]
    assert lerobot_columns == theirs_eps.names
    assert all(ours_eps.field(n).type == theirs_eps.field(n).type for n in theirs_eps.names)
    ours_tasks, theirs_tasks = (
        pq.read_schema(ours / "meta/tasks.parquet"),
        pq.read_schema(theirs / "meta/tasks.parquet"),
    )
    assert ours_tasks.names == theirs_tasks.names == ["task_index", "__index_level_0__"]
    assert ours_tasks.field("task_index").type == theirs_tasks.field("task_index").type
    tasks = pq.read_table(ours / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]
    hf_ours = json.loads(pq.read_schema(ours / "data/chunk-000/file-000.parquet").metadata[b"huggingface"])
    hf_theirs = json.loads(pq.read_schema(theirs / "data/chunk-000/file-000.parquet").metadata[b"huggingface"])
    assert hf_ours["info"]["features"] == hf_theirs["info"]["features"]
    info_ours = json.loads((ours / "meta/info.json").read_text())
    info_theirs = json.loads((theirs / "meta/info.json").read_text())
    assert info_ours.keys() == info_theirs.keys()
    for key in ("codebase_version", "total_episodes", "total_frames", "total_tasks", "fps", "splits", "data_path"):
        assert info_ours[key] == info_theirs[key], key
    assert (
        info_ours["features"][CAM.replace("front", "wrist")] == info_theirs["features"][CAM.replace("front", "wrist")]
    )
    episodes = pq.read_table(ours / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 40), (40, 92), (92, 152)]
    assert [e[f"videos/{CAM}/from_timestamp"] for e in episodes] == [0.0, 4.0, 9.2]
    stats = json.loads((ours / "meta/stats.json").read_text())
    assert stats.keys() == json.loads((theirs / "meta/stats.json").read_text()).keys()
    assert np.allclose(
        stats["observation.state"]["mean"],
        json.loads((theirs / "meta/stats.json").read_text())["observation.state"]["mean"],
    )


def test_v21_export_is_laid_out_like_a_real_v21_dataset_and_reads_back(
    canonical: dict[str, Path], tmp_path: Path
) -> None:
    reference = sample("lerobot/g1_v21_subset")
    out = Path(export_lerobot(canonical["video"], tmp_path / "v21", version="2.1").output)
    for rel in ("meta/info.json", "meta/episodes.jsonl", "meta/tasks.jsonl", "meta/episodes_stats.jsonl"):
        assert (out / rel).is_file() and (reference / rel).is_file()
    assert (out / f"videos/chunk-000/{CAM}/episode_000003.mp4").is_file()
    info, ref_info = (
        json.loads((out / "meta/info.json").read_text()),
        json.loads((reference / "meta/info.json").read_text()),
    )
    assert info.keys() == ref_info.keys()
    assert (info["data_path"], info["video_path"]) == (ref_info["data_path"], ref_info["video_path"])
    ours = pq.read_schema(out / "data/chunk-000/episode_000000.parquet")
    theirs = pq.read_schema(reference / "data/chunk-000/episode_000000.parquet")
    assert json.loads(ours.metadata[b"huggingface"])["info"]["features"]["action"]["_type"] == "Sequence"
    assert ours.field("action").type.value_type == theirs.field("action").type.value_type  # fixed_size_list<float>
    assert [ours.field(c).type for c in ("timestamp", "index")] == [
        theirs.field(c).type for c in ("timestamp", "index")
    ]
    stats = [json.loads(line) for line in (out / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert sorted(stats[0]["stats"]) == sorted(["observation.state", "action", "next.reward", CAM, "timestamp",
                                               "frame_index", "episode_index", "index", "task_index"])  # fmt: skip
    assert np.asarray(stats[0]["stats"][CAM]["mean"]).shape == (3, 1, 1)
    convert(out, tmp_path / "back")
    assert_same_values(Dataset.open(canonical["video"]), Dataset.open(tmp_path / "back"))


def test_v30_files_roll_over_and_episodes_are_found_across_files(
    canonical: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lexport, "DATA_FILE_MB", 1e-6)
    monkeypatch.setattr(lexport, "VIDEO_FILE_MB", 1e-6)
    out = Path(export_lerobot(canonical["video"], tmp_path / "lerobot").output)
    assert len(list((out / "data/chunk-000").iterdir())) == 4
    assert len(list((out / f"videos/{CAM}/chunk-000").iterdir())) == 4
    convert(out, tmp_path / "back")
    assert_same_values(Dataset.open(canonical["video"]), Dataset.open(tmp_path / "back"))


def test_modality_json_is_built_from_the_semantics(tmp_path: Path) -> None:
    convert(sample("lerobot/g1_v21_subset"), tmp_path / "g1")
    out = Path(export_lerobot(tmp_path / "g1", tmp_path / "lerobot").output)
    modality = json.loads((out / "meta/modality.json").read_text())
    assert modality["state"] == {
        "joint_position": {"start": 0, "end": 14},
        "hand_joint_position": {"start": 14, "end": 26},
    }
    assert modality["action"] == modality["state"]
    assert modality["video"] == {"cam_high": {"original_key": "observation.images.cam_high"}}
    source = LeRobotSource(out)
    assert source.modality is not None and [g.name for g in source.modality.groups_of("action")] == [
        "joint_position",
        "hand_joint_position",
    ]


def test_export_refuses_a_non_empty_output_and_leaves_nothing_when_it_fails(
    canonical: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken/x").write_text("x")
    for overwrite in (False, True):  # a folder of the user's is never replaced, even with --overwrite
        with pytest.raises(UsageError, match="not a LeRobot dataset; rdstd will not replace it"):
            export_lerobot(canonical["video"], tmp_path / "taken", overwrite=overwrite)
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["x"]
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UsageError, match="not a folder"):
        export_lerobot(canonical["video"], tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"
    with pytest.raises(UsageError, match="overlaps the source"):
        export_lerobot(canonical["video"], canonical["video"] / "lerobot")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".taken", ".file"))]  # no temporary leftovers
    broken = tmp_path / "broken"
    shutil.copytree(canonical["video"], broken)
    for mp4 in (broken / "videos").rglob("*.mp4"):
        mp4.unlink()
    with pytest.raises(RdstdError):
        export_lerobot(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


REPO = Path(__file__).resolve().parents[2]


def lerobot_pythons() -> list[str]:
    """Interpreters with LeRobot installed: ``RDSTD_LEROBOT_PYTHONS`` (':'-separated), else the venvs that
    ``.ci/lerobot_venvs.sh`` builds (``.venv-lerobot-0.6``, ``.venv-lerobot-0.4.4``), where they exist."""
    listed = os.environ.get("RDSTD_LEROBOT_PYTHONS") or os.environ.get("RDSTD_LEROBOT_PYTHON")
    if listed:
        return [p for p in listed.split(os.pathsep) if p]
    found = [REPO / f".venv-lerobot-{v}/bin/lerobot-python" for v in ("0.6", "0.4.4")]
    if os.environ.get("CI"):  # .ci/run builds both: in CI a missing one fails its test instead of skipping
        return [str(p) for p in found]
    return [str(p) for p in found if p.is_file()]


def require_lerobot(python: str | None) -> str:
    """The interpreter to run the LeRobot check with; skip (outside CI) or fail (in CI) when there is none."""
    if python is None:
        pytest.skip("no LeRobot environment: run .ci/lerobot_venvs.sh, or set RDSTD_LEROBOT_PYTHONS")
    if not Path(python).is_file():
        pytest.fail(f"{python} is missing: .ci/lerobot_venvs.sh did not build it (CI requires the LeRobot check)")
    return python


def expected_v30_small() -> dict[str, np.ndarray]:
    with np.load(sample("lerobot/expected_v30_small.npz")) as npz:
        return {k: npz[k] for k in npz.files}


def test_rdstds_reread_of_its_v30_export_of_v30_small_equals_what_lerobot_returned(tmp_path: Path) -> None:
    expected = expected_v30_small()
    convert(sample("lerobot/v30_small"), tmp_path / "canon")
    report = export_lerobot(tmp_path / "canon", tmp_path / "lerobot")
    assert set(report.cameras.values()) == {"stream copy (av1)"}  # so the frames must be the very same pixels
    source = LeRobotSource(tmp_path / "lerobot")
    episodes = [source.read_episode(r) for r in source.episode_refs()]
    for key in ("observation.state", "action", "timestamp"):
        got = np.concatenate([e.vectors[key] for e in episodes]).reshape(expected[key].shape)
        assert got.dtype == expected[key].dtype and np.array_equal(got, expected[key]), key
    assert [t for e in episodes for t in [e.task] * e.length] == list(expected["task"])
    for cam in ("observation.images.front", "observation.images.wrist"):
        digests = []
        for episode in episodes:
            frames = episode.images[cam]
            assert isinstance(frames, VideoFrames)
            digests += [
                hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest() for p in video.decode_frames(frames)
            ]
        assert digests == list(expected[f"{cam}/sha256"]), cam


@pytest.mark.parametrize("python", lerobot_pythons() or [None], ids=lambda p: Path(p).parents[1].name if p else "none")
def test_lerobot_itself_loads_the_v30_export_with_identical_values_and_frames(
    tmp_path: Path, python: str | None
) -> None:
    python = require_lerobot(python)
    expected = expected_v30_small()
    convert(sample("lerobot/v30_small"), tmp_path / "canon")
    export_lerobot(tmp_path / "canon", tmp_path / "lerobot")
    script = Path(__file__).with_name("lerobot_load_check.py")
    subprocess.run([python, str(script), str(tmp_path / "lerobot"), str(tmp_path / "got.npz")], check=True)
    got = np.load(tmp_path / "got.npz")
    for key in ("observation.state", "action", "timestamp", "index", "episode_index", "frame_index", "task_index"):
        assert np.array_equal(got[key].reshape(expected[key].shape), expected[key]), key
    assert list(got["task"]) == list(expected["task"])
    for cam in ("observation.images.front", "observation.images.wrist"):
        assert list(got[f"{cam}/sha256"]) == list(expected[f"{cam}/sha256"])


@pytest.mark.parametrize("python", lerobot_pythons() or [None], ids=lambda p: Path(p).parents[1].name if p else "none")
def test_lerobot_itself_loads_an_export_with_depth_images_splits_and_rdstd_columns(
    tmp_path: Path, python: str | None
) -> None:
    python = require_lerobot(python)
    canon = make_canonical(tmp_path / "canon", splits=["val", "train", "val"], success=[True, False, None])
    export_lerobot(canon, tmp_path / "lerobot")
    script = Path(__file__).with_name("lerobot_load_check.py")
    subprocess.run([python, str(script), str(tmp_path / "lerobot"), str(tmp_path / "got.npz")], check=True)
    got = np.load(tmp_path / "got.npz")
    order = [0, 2, 1]  # val, val, train
    want = np.concatenate([np.stack([state_value(e, k) for k in range(4 + e)]) for e in order])
    assert np.array_equal(got["observation.state"], want)
    assert list(got["episode_index"].reshape(-1)) == [i for i, e in enumerate(order) for _ in range(4 + e)]
    assert got["observation.images.depth/mean"].shape[0] == len(want)


def test_the_export_command_writes_lerobot_and_refuses_an_existing_output(
    canonical: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rdstd.cli.app import main

    assert main(["export", str(canonical["video"]), "--to", "lerobot", str(tmp_path / "out"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == "v3.0" and report["episodes"] == 4
    assert LeRobotSource(tmp_path / "out").info().version == "v3.0"
    assert main(["export", str(canonical["video"]), "--to", "lerobot", str(tmp_path / "out")]) == 2
    assert "a LeRobot dataset is already there" in capsys.readouterr().err
    assert main(["export", str(canonical["video"]), "--to", "lerobot", str(tmp_path / "out"), "--overwrite"]) == 0
    code = main(["export", str(canonical["video"]), "--to", "lerobot", "--version", "2.1", str(tmp_path / "v21")])
    assert code == 0 and (tmp_path / "v21/meta/episodes.jsonl").is_file()


# -- nothing dropped without a word (#7.3) --------------------------------------------------------------------


def test_splits_are_exported_as_ranges_grouping_non_contiguous_splits_with_the_mapping_recorded(
    tmp_path: Path,
) -> None:
    canon = make_canonical(tmp_path / "canon", splits=["val", "train", "val", "train", "unknown"], depth=False)
    report = export_lerobot(canon, tmp_path / "lerobot")
    assert report.splits == {"val": "0:2", "train": "2:4"}  # the unknown episode is in no split, last
    info = json.loads((tmp_path / "lerobot/meta/info.json").read_text())
    assert info["splits"] == {"val": "0:2", "train": "2:4"}
    episodes = pq.read_table(tmp_path / "lerobot/meta/episodes/chunk-000/file-000.parquet")
    assert episodes["rdstd/source_position"].to_pylist() == [0, 2, 1, 3, 4]
    assert episodes["rdstd/episode_id"].to_pylist() == ["ep-0", "ep-2", "ep-1", "ep-3", "ep-4"]
    reordered = [m for m in report.warnings if m.startswith("episodes reordered")]
    assert len(reordered) == 1 and report.warnings[reordered[0]] == 2
    assert report.warnings["episodes of split 'unknown' are listed in no LeRobot split"] == 1
    source = LeRobotSource(tmp_path / "lerobot")
    read = [source.read_episode(r) for r in source.episode_refs()]
    assert [e.meta["split"] for e in read] == ["val", "val", "train", "train", "unknown"]
    assert np.array_equal(read[1].vectors["observation.state"][0], state_value(2, 0))  # canonical episode 2


def test_v21_export_writes_the_splits_and_episode_facts_too(tmp_path: Path) -> None:
    canon = make_canonical(
        tmp_path / "canon", splits=["train", "train", "val"], depth=False, success=[True, False, None]
    )
    report = export_lerobot(canon, tmp_path / "v21", version="2.1")
    assert json.loads((tmp_path / "v21/meta/info.json").read_text())["splits"] == {"train": "0:2", "val": "2:3"}
    lines = [json.loads(line) for line in (tmp_path / "v21/meta/episodes.jsonl").read_text().splitlines()]
    assert [line["rdstd/success"] for line in lines] == [True, False, None]
    assert json.loads(lines[1]["rdstd/source_meta"]) == {"attempt": 1, "operator": "op1"}
    assert report.splits == {"train": "0:2", "val": "2:3"}


def test_success_source_meta_and_units_travel_where_lerobot_keeps_them(tmp_path: Path) -> None:
    canon = make_canonical(tmp_path / "canon", splits=["train", "train"], depth=False, success=[True, None])
    export_lerobot(canon, tmp_path / "lerobot")
    episodes = pq.read_table(tmp_path / "lerobot/meta/episodes/chunk-000/file-000.parquet")
    assert episodes["rdstd/success"].to_pylist() == [True, None]
    assert [json.loads(m) for m in episodes["rdstd/source_meta"].to_pylist()] == [
        {"attempt": 0, "operator": "op0"},
        {"attempt": 1, "operator": "op1"},
    ]
    assert episodes["rdstd/source_path"].to_pylist() == ["raw/ep0.h5", "raw/ep1.h5"]
    state = json.loads((tmp_path / "lerobot/meta/info.json").read_text())["features"]["observation.state"]
    assert state["names"] == STATE_NAMES
    assert state["info"]["rdstd"]["units"] == ["rad"] * 4
    assert state["info"]["rdstd"]["roles"] == ["joint_position"] * 4
    assert state["info"]["rdstd"]["frames"] == ["base"] * 4
    manifest = json.loads((tmp_path / "lerobot/meta/rdstd_manifest.json").read_text())
    assert manifest == json.loads((canon / "rdstd.json").read_text())


def test_a_16_bit_depth_camera_is_exported_as_lerobot_depth_images_with_the_stored_bytes(tmp_path: Path) -> None:
    canon = make_canonical(tmp_path / "canon", splits=["train", "val"])
    report = export_lerobot(canon, tmp_path / "lerobot")
    depth = "observation.images.depth"
    assert report.cameras[depth] == "depth image (stored bytes)"
    assert report.warnings[f"depth camera {depth}: unit unknown, so info.depth_unit is not set"] == 1
    feature = json.loads((tmp_path / "lerobot/meta/info.json").read_text())["features"][depth]
    assert feature["dtype"] == "image" and feature["shape"] == [6, 8, 1]
    assert feature["info"]["is_depth_map"] is True and "depth_unit" not in feature["info"]
    table = pq.read_table(tmp_path / "lerobot/data/chunk-000/file-000.parquet")
    assert [row["bytes"] for row in table[depth].to_pylist()[:4]] == [depth_png(0, k) for k in range(4)]
    stats = json.loads((tmp_path / "lerobot/meta/stats.json").read_text())[depth]
    assert stats["max"] == [[[65535.0]]] and stats["min"] == [[[1000.0]]]  # stored units, not scaled to [0, 1]
    source = LeRobotSource(tmp_path / "lerobot")  # and rdstd reads it back bit for bit
    frames = source.read_episode(source.episode_refs()[1]).images[depth]
    assert isinstance(frames, EncodedFrames) and frames.frames == [depth_png(1, k) for k in range(5)]


def test_a_depth_camera_kept_as_video_is_refused_naming_the_camera_and_the_way_to_leave_it_out(
    tmp_path: Path,
) -> None:
    canon = make_canonical(tmp_path / "canon", splits=["train"])
    original = (canon / "rdstd.json").read_text()
    manifest = json.loads(original)
    manifest["features"]["observation.images.depth"]["codec"] = "video"
    (canon / "rdstd.json").write_text(json.dumps(manifest))
    with pytest.raises(UsageError, match=r"depth camera observation\.images\.depth is stored as video") as caught:
        export_lerobot(canon, tmp_path / "lerobot")  # refused from the manifest, before any shard is read
    assert "--exclude observation.images.depth" in caught.value.hint
    (canon / "rdstd.json").write_text(original)  # the shards hold PNG bytes: the reader refuses a manifest that lies
    report = export_lerobot(canon, tmp_path / "lerobot", exclude=["observation.images.depth"])
    assert report.warnings == {"feature observation.images.depth left out (--exclude)": 1}


def test_the_export_command_lists_splits_and_warnings_in_text_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rdstd.cli.app import main

    canon = make_canonical(tmp_path / "canon", splits=["val", "train", "val"])
    assert main(["export", str(canon), "--to", "lerobot", str(tmp_path / "a"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"] == {"val": "0:2", "train": "2:3"}
    assert sum(report["warnings"].values()) == 3 and len(report["warnings"]) == 2  # 2 episodes moved, 1 depth
    assert main(["export", str(canon), "--to", "lerobot", str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "splits:   val 0:2, train 2:3" in text
    assert "warning: depth camera observation.images.depth: unit unknown" in text


# -- every written path stays inside OUT (#8.6) ----------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.0", "2.1"])
def test_a_crafted_camera_name_in_the_manifest_writes_nothing_outside_the_output(
    canonical: dict[str, Path], tmp_path: Path, version: str
) -> None:
    crafted = tmp_path / "crafted"
    shutil.copytree(canonical["jpeg"], crafted)
    manifest = json.loads((crafted / "rdstd.json").read_text())
    evil = "observation.images/../../../../escape/x"
    manifest["features"] = {(evil if k == CAM else k): v for k, v in manifest["features"].items()}
    (crafted / "rdstd.json").write_text(json.dumps(manifest))
    shard = crafted / "data/shard-00000.parquet"
    table = pq.read_table(shard)
    pq.write_table(table.rename_columns([evil if c == CAM else c for c in table.column_names]), shard)
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(SchemaError, match=r"cannot be a file name|invalid manifest"):  # ours, or the schema's
        export_lerobot(crafted, tmp_path / "out" / "lerobot", version=version)
    assert {p for p in tmp_path.rglob("*")} - before <= {tmp_path / "out"}  # at most the parent made for OUT
    assert not list(tmp_path.parent.glob("escape*")) and not (tmp_path / "escape").exists()


def test_the_exporters_path_helper_refuses_any_path_that_leaves_the_output(tmp_path: Path) -> None:
    exporter = lexport._Exporter.__new__(lexport._Exporter)
    exporter.out = tmp_path / "out"
    assert (
        exporter.target("videos/cam/chunk-000/file-000.mp4", "video")
        == tmp_path / "out/videos/cam/chunk-000/file-000.mp4"
    )
    for rel in ("videos/../../x.mp4", "/tmp/x.mp4", "../x"):
        with pytest.raises(SchemaError, match=r"outside|absolute"):
            exporter.target(rel, "video")


def test_timestamps_that_float32_cannot_hold_and_an_unknown_rate_are_warned_about(tmp_path: Path) -> None:
    canon = make_canonical(tmp_path / "canon", splits=["train"], depth=False, stamps_step_s=1 / 3)
    manifest = json.loads((canon / "rdstd.json").read_text())
    manifest["rate_hz"] = None
    (canon / "rdstd.json").write_text(json.dumps(manifest))
    # 1/3 s steps: the float64 stamps 100 s into an episode lose ~4e-6 s as float32
    shard = canon / "data/shard-00000.parquet"
    table = pq.read_table(shard)
    stamps = table["timestamp"].to_numpy() + np.where(table["frame_index"].to_numpy() > 0, 100.0, 0.0)
    pq.write_table(table.set_column(table.column_names.index("timestamp"), "timestamp", pa.array(stamps)), shard)
    report = export_lerobot(canon, tmp_path / "lerobot")
    assert report.warnings["timestamps rounded to float32 (LeRobot's type) move by more than 1e-06 s"] == 1
    assert any(m.startswith("the dataset has no single frame rate") for m in report.warnings)

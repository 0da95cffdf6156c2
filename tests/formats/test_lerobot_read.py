"""The LeRobot reader on generated v2.0, v2.1 and v3.0 datasets, and on every broken variant seen in the wild."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, EpisodeError, UnsupportedVersionError
from rdstd.formats.lerobot import LeRobotBackend
from rdstd.formats.lerobot.meta import flat_names
from rdstd.formats.lerobot.modality import parse_modality
from rdstd.formats.lerobot.source import LeRobotSource
from rdstd.media import images, video
from rdstd.schema.episode import EncodedFrames, VideoFrames
from rdstd.store.reader import Dataset
from rdstd.testing.contract import BackendContract
from tests.formats.lerobot_fixtures import STATE_NAMES, Spec, edit_info, identify, make_dataset, state_value

CAM = "observation.images.front"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lerobot")
    return {
        "v2.0": make_dataset(root / "v20", Spec(version="v2.0", image_keys={"observation.images.top": (16, 24)})),
        "v2.1": make_dataset(root / "v21", Spec(version="v2.1")),
        "v3.0": make_dataset(root / "v30", Spec(version="v3.0")),
    }


def copy_of(datasets: dict[str, Path], version: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(datasets[version], tmp_path / version))


@pytest.mark.parametrize("version", ["v2.0", "v2.1", "v3.0"])
def test_every_version_reads_values_from_the_formula_and_the_right_frame_for_each_row(
    datasets: dict[str, Path], version: str
) -> None:
    source = LeRobotBackend().open(datasets[version])
    assert isinstance(source, LeRobotSource)
    assert source.info().version == version
    for ref in source.episode_refs():
        episode = source.read_episode(ref)
        e, n = episode.meta["lerobot_episode_index"], episode.length
        assert np.array_equal(episode.vectors["observation.state"], np.stack([state_value(e, k) for k in range(n)]))
        assert np.array_equal(episode.vectors["action"], np.stack([state_value(e, k + 1) for k in range(n)]))
        assert episode.vectors["next.reward"].shape == (n, 1)
        assert np.array_equal(episode.timestamps_s, np.arange(n, dtype=np.float32) / 10)
        frames = episode.images[CAM]
        assert isinstance(frames, VideoFrames)
        assert [identify(p, e, n) for p in video.decode_frames(frames)] == list(range(n))


@pytest.mark.parametrize("codec", ["libx264", "libsvtav1"])
def test_h264_with_b_frames_and_av1_videos_give_the_right_frame_for_each_row(tmp_path: Path, codec: str) -> None:
    declared = "h264" if codec == "libx264" else "av1"
    spec = Spec(version="v3.0", lengths=[7, 8], codec=codec, declared_codec=declared, cameras={CAM: (48, 64)})
    root = make_dataset(tmp_path / codec, spec)
    source = LeRobotSource(root)
    for ref in source.episode_refs():
        episode = source.read_episode(ref)
        e, n = episode.meta["lerobot_episode_index"], episode.length
        frames = episode.images[CAM]
        assert isinstance(frames, VideoFrames)
        assert [identify(p, e, n) for p in video.decode_frames(frames)] == list(range(n))
        with video.VideoDecoder(Path(frames.path)) as decoder:  # random order too
            times = video.frame_times(frames)
            assert [identify(decoder.frame_at(times[k]), e, n) for k in (5, 1, 6, 0, 3)] == [5, 1, 6, 0, 3]


def test_v3_episodes_share_one_video_file_at_their_own_offsets(datasets: dict[str, Path]) -> None:
    source = LeRobotSource(datasets["v3.0"])
    segments = [source.read_episode(r).images[CAM] for r in source.episode_refs()]
    assert all(isinstance(s, VideoFrames) for s in segments)
    assert len({s.path for s in segments if isinstance(s, VideoFrames)}) == 1
    assert [s.from_s for s in segments if isinstance(s, VideoFrames)] == [0.0, 0.6, 1.5]


def test_v20_image_features_pass_png_bytes_through_untouched(datasets: dict[str, Path]) -> None:
    source = LeRobotSource(datasets["v2.0"])
    episode = source.read_episode(source.episode_refs()[2])
    frames = episode.images["observation.images.top"]
    assert isinstance(frames, EncodedFrames) and frames.codec == "png"
    assert [identify(images.decode(b), 2, episode.length) for b in frames.frames] == list(range(episode.length))


def test_joint_names_come_from_flat_and_dict_names() -> None:
    assert flat_names(["a", "b"], 2) == ["a", "b"]
    assert flat_names({"motors": ["a", "b"]}, 2) == ["a", "b"]
    assert flat_names([["a", "b"]], 2) == ["a", "b"]
    assert flat_names(["a"], 2) is None
    assert flat_names(None, 2) is None


def test_source_keys_list_vectors_cameras_and_the_clock(datasets: dict[str, Path]) -> None:
    keys = {k.key: k for k in LeRobotSource(datasets["v2.1"]).info().keys}
    assert keys["observation.state"].names == STATE_NAMES
    assert keys["action"].names == STATE_NAMES
    assert keys[CAM].kind == "image" and keys[CAM].codec == "video" and keys[CAM].shape == (32, 48, 3)
    assert keys["timestamp"].kind == "timestamp"
    assert "episode_index" not in keys and "index" not in keys


def test_generated_v21_converts_with_video_kept_and_frames_come_back_by_timestamp(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    convert(datasets["v2.1"], tmp_path / "out")
    ds = Dataset.open(tmp_path / "out")
    assert len(list((tmp_path / "out/videos" / CAM).iterdir())) == 3
    for i, (e, k, n) in {0: (0, 0, 6), 5: (0, 5, 6), 6: (1, 0, 9), 21: (2, 6, 7), 10: (1, 4, 9)}.items():
        assert identify(ds.frame(i)[CAM], e, n) == k
    episode = ds.episode(1)
    assert [identify(p, 1, 9) for p in episode.images[CAM].decode_all()] == list(range(9))


# -- broken datasets ------------------------------------------------------------------------------------------


def test_a_missing_mp4_is_an_episode_error_and_skip_converts_the_others(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    (root / f"videos/chunk-000/{CAM}/episode_000001.mp4").unlink()
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match=r"episode_000001\.mp4 is missing"):
        source.read_episode(source.episode_refs()[1])
    report = convert(root, tmp_path / "out", on_error="skip")
    assert report.episodes_written == 2
    assert [s.key for s in report.skipped] == ["episode_000001"]
    assert "is missing" in report.skipped[0].reason
    with pytest.raises(EpisodeError):
        convert(root, tmp_path / "out2", on_error="fail")
    assert not (tmp_path / "out2").exists()


def test_a_video_path_template_that_does_not_match_the_files_names_the_expected_file(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v3.0", tmp_path)
    # the files are where v2 would put them, the template says v3's place
    (root / "videos/chunk-000").mkdir(parents=True)
    shutil.move(root / f"videos/{CAM}/chunk-000", root / f"videos/chunk-000/{CAM}")
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match=r"video_path template does not match"):
        source.read_episode(source.episode_refs()[0])
    with pytest.raises(EpisodeError, match="no episode could be converted"):
        convert(root, tmp_path / "out", on_error="skip")


def test_a_declared_codec_that_differs_from_the_stream_is_an_episode_error(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ds", Spec(version="v2.1", declared_codec="h264", lengths=[4, 5]))
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match=r"holds mpeg4 video but meta/info.json declares h264") as caught:
        source.read_episode(source.episode_refs()[0])
    assert "correct video.codec" in caught.value.hint


def test_a_video_shorter_than_the_episode_is_an_episode_error_not_wrong_frames(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    episodes = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
    episodes[2]["length"] = 8  # the data file and mp4 have 7 frames
    (root / "meta/episodes.jsonl").write_text("\n".join(json.dumps(e) for e in episodes))
    edit_info(root, total_frames=23)
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match="has 7 rows for this episode, the metadata says 8"):
        source.read_episode(source.episode_refs()[2])


def test_a_video_with_fewer_frames_than_rows_is_an_episode_error(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    from tests.formats.lerobot_fixtures import image, write_mp4

    write_mp4(root / f"videos/chunk-000/{CAM}/episode_000001.mp4", [image(1, k, 32, 48) for k in range(6)], 10)
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match=r"has no frame at 0\.6000 s \(episode frame 6 of 9; 3 frames missing"):
        source.read_episode(source.episode_refs()[1])


def test_a_video_with_more_frames_than_the_episode_is_an_episode_error(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    from tests.formats.lerobot_fixtures import image, write_mp4

    write_mp4(root / f"videos/chunk-000/{CAM}/episode_000000.mp4", [image(0, k, 32, 48) for k in range(8)], 10)
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match="has 8 frames, the episode has 6"):
        source.read_episode(source.episode_refs()[0])


def test_v3_from_timestamps_that_point_at_the_wrong_frames_are_an_episode_error(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = copy_of(datasets, "v3.0", tmp_path)
    file = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(file)
    column = f"videos/{CAM}/from_timestamp"
    # episode 1 starts at 0.6 s; 0.67 s would silently map every row to the next frame (nearest within 0.05 s)
    shifted = pa.array([0.0, 0.67, 1.55])  # episode 2 starts at 1.5 s; 1.55 is half-way between two frames
    table = table.set_column(table.column_names.index(column), column, shifted)
    pq.write_table(table, file)
    source = LeRobotSource(root)
    source.read_episode(source.episode_refs()[0])
    with pytest.raises(EpisodeError, match=r"spans \[0.6700, 1.5000\) s .* does not fit 9 frames at 10 fps"):
        source.read_episode(source.episode_refs()[1])
    edit_episode_table(file, column=f"videos/{CAM}/to_timestamp", values=[0.6, 1.57, 2.25])
    with pytest.raises(EpisodeError, match=r"has no frame at 1\.5500 s"):
        LeRobotSource(root).read_episode(source.episode_refs()[2])


def edit_episode_table(file: Path, *, column: str, values: list[float]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    table = table.set_column(table.column_names.index(column), column, pa.array(values))
    pq.write_table(table, file)


def test_totals_that_disagree_with_the_episode_table_are_a_dataset_error(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    edit_info(root, total_frames=99)
    with pytest.raises(CorruptSourceError, match=r"total_frames is 99 but the episodes .* have 22 frames"):
        LeRobotSource(root)
    edit_info(root, total_frames=22, total_episodes=4)
    with pytest.raises(CorruptSourceError, match=r"total_episodes is 4 but meta/episodes\.jsonl lists 3"):
        LeRobotSource(root)


def test_a_missing_data_file_is_an_episode_error(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    (root / "data/chunk-000/episode_000002.parquet").unlink()
    source = LeRobotSource(root)
    with pytest.raises(EpisodeError, match=r"episode_000002\.parquet is missing"):
        source.read_episode(source.episode_refs()[2])


@pytest.mark.parametrize(
    "template",
    [
        "../outside/episode_{episode_index:06d}.parquet",
        "/etc/episode_{episode_index:06d}.parquet",
        "data/../../episode_{episode_index:06d}.parquet",
    ],
)
def test_a_path_template_that_points_outside_the_dataset_is_refused(
    datasets: dict[str, Path], tmp_path: Path, template: str
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    edit_info(root, data_path=template)
    with pytest.raises(CorruptSourceError, match="outside the dataset folder"):
        LeRobotSource(root)


def test_a_video_key_that_escapes_the_folder_through_the_template_is_refused(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["../../../../escape"] = info["features"].pop(CAM)
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(CorruptSourceError, match="points outside the dataset folder"):
        LeRobotSource(root)


def test_an_unsupported_version_is_refused_with_a_hint(datasets: dict[str, Path], tmp_path: Path) -> None:
    root = copy_of(datasets, "v2.1", tmp_path)
    edit_info(root, codebase_version="v1.6")
    with pytest.raises(UnsupportedVersionError, match=r"v1\.6") as caught:
        LeRobotSource(root)
    assert "v1.6 converter" in caught.value.hint


def test_detection_is_cheap_and_never_raises(tmp_path: Path) -> None:
    backend = LeRobotBackend()
    assert not backend.detect(tmp_path)
    assert not backend.detect(tmp_path / "nope")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_bytes(b"\xff\xfe not json")
    assert not backend.detect(tmp_path)


def test_modality_slices_outside_the_vector_or_overlapping_are_refused() -> None:
    sizes = {"observation.state": 6, "action": 6}
    ok = parse_modality({"state": {"arm": {"start": 0, "end": 5}, "grip": {"start": 5, "end": 6}}}, sizes, "m.json")
    assert ok.dim_names("observation.state", 6, None) == ["arm.0", "arm.1", "arm.2", "arm.3", "arm.4", "grip.0"]
    real = ["a", "b", "c", "d", "e", "f"]
    assert ok.dim_names("observation.state", 6, real) == real  # real names are kept
    with pytest.raises(CorruptSourceError, match=r"arm = \[0, 7\) is outside observation.state"):
        parse_modality({"state": {"arm": {"start": 0, "end": 7}}}, sizes, "m.json")
    with pytest.raises(CorruptSourceError, match="overlap"):
        parse_modality({"action": {"a": {"start": 0, "end": 4}, "b": {"start": 3, "end": 6}}}, sizes, "m.json")
    with pytest.raises(CorruptSourceError, match="does not declare"):
        parse_modality({"state": {"x": {"start": 0, "end": 1, "original_key": "observation.eef"}}}, sizes, "m.json")


# -- the backend contract, on every version ---------------------------------------------------------------------


class _LeRobotContract(BackendContract):
    version = "v2.1"

    @pytest.fixture
    def backend(self) -> LeRobotBackend:
        return LeRobotBackend()

    @pytest.fixture
    def source_path(self, datasets: dict[str, Path]) -> Path:
        return datasets[self.version]


class TestLeRobotV20Contract(_LeRobotContract):
    version = "v2.0"


class TestLeRobotV21Contract(_LeRobotContract):
    version = "v2.1"


class TestLeRobotV30Contract(_LeRobotContract):
    version = "v3.0"

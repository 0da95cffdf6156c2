"""The LeRobot reader on real data: v30_small (written by LeRobot 0.4.4, with what its loader returned),
the real v2.1 G1 subset (AV1 640×480), and GR00T's metadata with modality.json."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from rdstd.convert.pipeline import convert
from rdstd.formats.lerobot import LeRobotBackend
from rdstd.formats.lerobot.source import LeRobotSource
from rdstd.media import video
from rdstd.schema.episode import VideoFrames
from rdstd.store.reader import Dataset
from tests.conftest import sample

pytestmark = pytest.mark.samples

CAMERAS = ("observation.images.front", "observation.images.wrist")
#: Decoded-frame means may differ from LeRobot's (torchcodec) by this much, in uint8 levels per channel.
MEAN_TOLERANCE = 1.0


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(sample("lerobot/expected_v30_small.npz")) as npz:
        return {k: npz[k] for k in npz.files}


def test_v30_small_low_dim_values_equal_what_lerobot_returned_bit_for_bit(expected: dict[str, np.ndarray]) -> None:
    source = LeRobotSource(sample("lerobot/v30_small"))
    state = np.concatenate([source.read_episode(r).vectors["observation.state"] for r in source.episode_refs()])
    action = np.concatenate([source.read_episode(r).vectors["action"] for r in source.episode_refs()])
    stamps = np.concatenate([source.read_episode(r).vectors["timestamp"] for r in source.episode_refs()])
    assert state.dtype == np.float32 and np.array_equal(state, expected["observation.state"])
    assert np.array_equal(action, expected["action"])
    assert np.array_equal(stamps, expected["timestamp"])


def test_v30_small_tasks_and_episode_bounds_match_lerobot(expected: dict[str, np.ndarray]) -> None:
    source = LeRobotSource(sample("lerobot/v30_small"))
    episodes = [source.read_episode(r) for r in source.episode_refs()]
    assert [e.length for e in episodes] == [40, 52, 60]
    tasks = np.concatenate([[e.task] * e.length for e in episodes])
    assert list(tasks) == list(expected["task"])


def test_v30_small_decoded_frames_match_lerobots_decoded_frames(expected: dict[str, np.ndarray]) -> None:
    source = LeRobotSource(sample("lerobot/v30_small"))
    means = {c: [] for c in CAMERAS}
    same_hash = {c: 0 for c in CAMERAS}
    row = 0
    for ref in source.episode_refs():
        episode = source.read_episode(ref)
        for cam in CAMERAS:
            frames = episode.images[cam]
            assert isinstance(frames, VideoFrames)
            for k, pixels in enumerate(video.decode_frames(frames)):
                means[cam].append(pixels.reshape(-1, 3).mean(axis=0))
                digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
                same_hash[cam] += digest == expected[f"{cam}/sha256"][row + k]
        row += episode.length
    for cam in CAMERAS:
        diff = np.abs(np.array(means[cam]) - expected[f"{cam}/mean"] * 255.0)
        assert diff.max() < MEAN_TOLERANCE, (cam, diff.max())
        # PyAV here uses the same dav1d decoder as torchcodec did, so the pixels are identical, not just close.
        assert same_hash[cam] == len(expected["index"]), (cam, same_hash[cam])


def test_v30_small_converts_with_videos_kept_and_reads_back_the_same_frames(
    tmp_path: Path, expected: dict[str, np.ndarray]
) -> None:
    report = convert(sample("lerobot/v30_small"), tmp_path / "out", spec="lerobot/synthetic_7dof_arm")
    assert report.episodes_written == 3 and not report.skipped
    ds = Dataset.open(tmp_path / "out")
    assert ds.manifest.cameras["observation.images.front"].codec == "video"
    assert sorted(p.name for p in (tmp_path / "out/videos/observation.images.front").iterdir()) == ["file-00000.mp4"]
    for i in (0, 39, 40, 91, 151, 7):
        frame = ds.frame(i)
        assert np.array_equal(frame["observation.state"], expected["observation.state"][i])
        for cam in CAMERAS:
            digest = hashlib.sha256(np.ascontiguousarray(frame[cam]).tobytes()).hexdigest()
            assert digest == expected[f"{cam}/sha256"][i]
    assert ds.manifest.vectors["action"].action is not None
    assert ds.manifest.vectors["action"].dims[0].unit == "rad"


def test_v30_small_converts_to_jpeg_frames_within_jpeg_tolerance(
    tmp_path: Path, expected: dict[str, np.ndarray]
) -> None:
    convert(sample("lerobot/v30_small"), tmp_path / "out", images="jpeg")
    ds = Dataset.open(tmp_path / "out")
    assert ds.manifest.cameras["observation.images.wrist"].codec == "jpeg"
    assert not (tmp_path / "out/videos").exists()
    for i in range(0, 152, 13):
        frame = ds.frame(i)
        for cam in CAMERAS:
            assert np.abs(frame[cam].reshape(-1, 3).mean(0) - expected[f"{cam}/mean"][i] * 255).max() < 2.0


def test_g1_v21_subset_reads_three_real_av1_episodes_with_joint_names_from_info() -> None:
    source = LeRobotSource(sample("lerobot/g1_v21_subset"))
    info = source.info()
    assert (info.version, info.episodes, info.frames, info.rate_hz) == ("v2.1", 3, 1093, 30.0)
    state = next(k for k in info.keys if k.key == "observation.state")
    assert state.names is not None and state.names[0] == "kLeftShoulderPitch" and len(state.names) == 26
    assert state.names[-1] == "kRightHandThumbRotation"
    cam = next(k for k in info.keys if k.key == "observation.images.cam_high")
    assert cam.codec == "video" and cam.shape == (480, 640, 3)
    lengths = []
    for ref in source.episode_refs():
        episode = source.read_episode(ref)
        lengths.append(episode.length)
        assert episode.task == "Pick up the yellow bottle on the table."
        frames = episode.images["observation.images.cam_high"]
        assert isinstance(frames, VideoFrames) and frames.count == episode.length
        assert episode.vectors["observation.state"].shape == (episode.length, 26)
    assert lengths == [393, 343, 357]


def test_g1_v21_subset_frames_decode_at_random_positions_like_sequentially() -> None:
    source = LeRobotSource(sample("lerobot/g1_v21_subset"))
    frames = source.read_episode(source.episode_refs()[1]).images["observation.images.cam_high"]
    assert isinstance(frames, VideoFrames)
    times = video.frame_times(frames)
    with video.VideoDecoder(Path(frames.path)) as decoder:
        sequential = {k: decoder.frame_at(times[k]) for k in range(0, 40)}
    with video.VideoDecoder(Path(frames.path)) as decoder:
        for k in (37, 3, 20, 21, 0, 39, 11):
            pixels = decoder.frame_at(times[k])
            assert pixels.shape == (480, 640, 3)
            assert np.array_equal(pixels, sequential[k])


def test_g1_v21_subset_converts_with_the_shipped_spec(tmp_path: Path) -> None:
    report = convert(sample("lerobot/g1_v21_subset"), tmp_path / "g1")
    assert report.spec == "lerobot/g1_inspire" and report.episodes_written == 3
    ds = Dataset.open(tmp_path / "g1")
    state = ds.manifest.vectors["observation.state"]
    assert [d.unit for d in state.dims[:14]] == ["rad"] * 14
    assert [d.unit for d in state.dims[14:]] == ["normalized"] * 12
    assert ds.frame(400)["observation.images.cam_high"].shape == (480, 640, 3)
    copied = sorted(p.name for p in (tmp_path / "g1/videos/observation.images.cam_high").iterdir())
    assert len(copied) == 3


def test_gr00t_modality_json_becomes_per_dimension_names_with_their_group() -> None:
    source = LeRobotSource(sample("lerobot/gr00t_meta"))
    info = source.info()
    assert info.version == "v2.0" and info.rate_hz == 20.0
    state = next(k for k in info.keys if k.key == "observation.state")
    assert state.names is not None
    # info.json names are placeholders (motor_0 …), so the slices name the dimensions
    assert state.names[0] == "left_arm.0" and state.names[6] == "left_arm.6"
    assert state.names[7] == "left_hand.0" and state.names[43] == "waist.2"
    assert "left_arm[0:7]" in state.note and "waist[41:44]" in state.note
    assert source.modality is not None
    assert source.modality.videos == {"ego_view": "observation.images.ego_view"}
    assert source.modality.annotations == ["human.action.task_description", "human.validity"]
    assert info.extra["modality"]["state"]["right_leg"] == {"start": 35, "end": 41}


def test_gr00t_metadata_defects_are_reported_and_missing_parquet_is_an_episode_error() -> None:
    source = LeRobotSource(sample("lerobot/gr00t_meta"))
    problems = source.info().extra["problems"]
    assert any("splits.train is '0:100' for 5 episodes" in p for p in problems)
    assert any("total_chunks is 0" in p for p in problems)
    annotation = next(k for k in source.info().keys if k.key == "annotation.human.validity")
    assert annotation.kind == "text"
    from rdstd.errors import EpisodeError

    with pytest.raises(EpisodeError, match=r"episode_000000\.parquet is missing"):
        source.read_episode(source.episode_refs()[0])


def test_every_real_lerobot_sample_is_detected_as_lerobot() -> None:
    backend = LeRobotBackend()
    for name in ("v30_small", "g1_v21_subset", "gr00t_meta"):
        assert backend.detect(sample(f"lerobot/{name}"))
    assert not backend.detect(sample("lerobot"))

"""Cameras kept as video in the canonical store: copied once, referenced by timestamp, decoded transparently."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rdstd.errors import CorruptSourceError, EpisodeError, RdstdError, SchemaError, UsageError
from rdstd.media import images, video
from rdstd.schema.episode import EncodedFrames, Episode, EpisodeMeta, VideoFrames
from rdstd.schema.features import Dimension, ImageFeature, VectorFeature
from rdstd.schema.manifest import Provenance
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store.reader import Dataset
from rdstd.store.writer import DatasetWriter
from tests.formats.lerobot_fixtures import identify, image, write_mp4

H, W, FPS = 32, 48, 10
CAM = "observation.images.front"


@pytest.fixture(scope="module")
def shared_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file holding episode 0 (frames 0..5) then episode 1 (frames 0..8), like a LeRobot v3.0 file."""
    path = tmp_path_factory.mktemp("video") / "file-000.mp4"
    frames = [image(0, k, H, W) for k in range(6)] + [image(1, k, H, W) for k in range(9)]
    write_mp4(path, frames, FPS)
    return path


def features(codec: str = "video") -> dict[str, VectorFeature | ImageFeature]:
    return {
        "observation.state": VectorFeature(shape=(1,), dims=[Dimension(name="x")]),
        CAM: ImageFeature(height=H, width=W, codec=codec),
    }


def episode(index: int, frames: VideoFrames | EncodedFrames | np.ndarray, n: int) -> Episode:
    meta = EpisodeMeta(episode_id=f"ep{index}", task="t")
    stamps = np.arange(n, dtype=np.float64) / FPS
    return Episode(meta, stamps, {"observation.state": np.zeros((n, 1), np.float32)}, {CAM: frames})


def segment(path: Path, first: int, n: int) -> VideoFrames:
    return VideoFrames(str(path), first / FPS, (first + n) / FPS, n)


def test_the_decoder_returns_the_frame_at_each_time_in_any_order(shared_mp4: Path) -> None:
    with video.VideoDecoder(shared_mp4) as decoder:
        for k in (3, 4, 5, 0, 14, 7, 7, 2):
            e, j, n = (0, k, 6) if k < 6 else (1, k - 6, 9)
            assert identify(decoder.frame_at(k / FPS), e, n) == j


def test_asking_for_a_time_with_no_frame_within_half_a_period_is_an_error(shared_mp4: Path) -> None:
    with video.VideoDecoder(shared_mp4) as decoder:
        with pytest.raises(CorruptSourceError, match=r"no frame within 50\.0 ms of 1\.600000 s"):
            decoder.frame_at(1.6)
        with pytest.raises(CorruptSourceError, match="no frame within"):
            decoder.frame_at(-0.2)
        assert identify(decoder.frame_at(0.34), 0, 6) == 3  # nearest within half a period
        assert identify(decoder.frame_at(0.3), 0, 6) == 3  # still usable after an error


def test_probe_and_packet_times_read_the_header_and_demuxed_times(shared_mp4: Path) -> None:
    info = video.probe(shared_mp4)
    assert (info.codec, info.width, info.height, info.frames) == ("mpeg4", W, H, 15)
    times, keys = video.packet_times(shared_mp4)
    assert np.allclose(times, np.arange(15) / FPS) and keys[0] and keys[2]


def test_episodes_sharing_a_video_file_copy_it_once_and_read_back_their_own_frames(
    shared_mp4: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    with DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0")) as writer:
        writer.add(episode(0, segment(shared_mp4, 0, 6), 6))
        writer.add(episode(1, segment(shared_mp4, 6, 9), 9))
    copied = list((out / "videos" / CAM).iterdir())
    assert [p.name for p in copied] == ["file-00000.mp4"]
    assert copied[0].read_bytes() == shared_mp4.read_bytes()
    ds = Dataset.open(out)
    assert [identify(ds.frame(i)[CAM], 1, 9) for i in range(6, 15)] == list(range(9))
    assert identify(ds.frame(2)[CAM], 0, 6) == 2
    lazy = ds.episode(1).images[CAM]
    assert lazy.refs[0] == {"path": f"videos/{CAM}/file-00000.mp4", "timestamp_s": 0.6}
    assert [identify(p, 1, 9) for p in lazy.decode_all()] == list(range(9))
    assert ds.frame(3, decode_images=False)[CAM]["timestamp_s"] == pytest.approx(0.3)
    with pytest.raises(UsageError, match="stored as video"):
        _ = lazy.encoded


def test_a_dataset_with_video_decodes_after_pickling_as_workers_receive_it(shared_mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0")) as writer:
        writer.add(episode(0, segment(shared_mp4, 6, 9), 9))
    ds = pickle.loads(pickle.dumps(Dataset.open(out)))
    assert identify(ds.frame(4)[CAM], 1, 9) == 4


def test_raw_frames_given_to_a_video_camera_are_encoded_per_episode(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    pixels = np.stack([image(2, k, H, W) for k in range(7)])
    jpegs = EncodedFrames(ImageCodec.JPEG, [images.encode(p, ImageCodec.JPEG) for p in pixels])
    with DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0"), rate_hz=FPS) as writer:
        writer.add(episode(0, pixels, 7))
        writer.add(episode(1, jpegs, 7))
    assert sorted(p.name for p in (out / "videos" / CAM).iterdir()) == ["episode-000000.mp4", "episode-000001.mp4"]
    ds = Dataset.open(out)
    assert [identify(ds.frame(i)[CAM], 2, 7) for i in range(14)] == list(range(7)) * 2


def test_video_frames_stored_as_jpeg_are_decoded_then_encoded(shared_mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with DatasetWriter(out, features("jpeg"), Provenance(source_format="test", rdstd_version="0")) as writer:
        writer.add(episode(0, segment(shared_mp4, 6, 9), 9))
    assert not (out / "videos").exists()
    ds = Dataset.open(out)
    assert [identify(p, 1, 9) for p in ds.episode(0).images[CAM].decode_all()] == list(range(9))


def test_an_aborted_write_leaves_no_copied_video_behind(shared_mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with (
        pytest.raises(RuntimeError),
        DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0")) as writer,
    ):
        writer.add(episode(0, segment(shared_mp4, 0, 6), 6))
        raise RuntimeError("boom")
    assert not out.exists()


def test_frame_references_cannot_leave_the_dataset(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="outside the dataset"):
        video.resolve_ref(tmp_path, "../elsewhere.mp4")


def chunk_of(index: int, frames: np.ndarray | VideoFrames, first: int, n: int) -> Episode:
    meta = EpisodeMeta(episode_id=f"ep{index}", task="t")
    stamps = (first + np.arange(n, dtype=np.float64)) / FPS
    return Episode(meta, stamps, {"observation.state": np.zeros((n, 1), np.float32)}, {CAM: frames})


def test_a_video_camera_written_in_chunks_keeps_one_encoder_per_episode(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    pixels = np.stack([image(2, k, H, W) for k in range(7)])
    with DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0"), rate_hz=FPS) as writer:
        writer.begin_episode(EpisodeMeta(episode_id="ep0"))
        for first, stop in ((0, 3), (3, 4), (4, 7)):
            writer.append(chunk_of(0, pixels[first:stop], first, stop - first))
        writer.end_episode()
    assert [p.name for p in (out / "videos" / CAM).iterdir()] == ["episode-000000.mp4"]
    assert video.probe(out / "videos" / CAM / "episode-000000.mp4").frames == 7
    ds = Dataset.open(out)
    assert [identify(ds.frame(i)[CAM], 2, 7) for i in range(7)] == list(range(7))


def test_an_abandoned_episode_leaves_no_video_file(shared_mp4: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    pixels = np.stack([image(2, k, H, W) for k in range(4)])
    with DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0"), rate_hz=FPS) as writer:
        writer.begin_episode(EpisodeMeta(episode_id="encoded"))
        writer.append(chunk_of(0, pixels, 0, 4))
        writer.abort_episode()
        writer.begin_episode(EpisodeMeta(episode_id="copied"))
        writer.append(chunk_of(0, segment(shared_mp4, 0, 3), 0, 3))
        writer.abort_episode()
        writer.add(episode(1, segment(shared_mp4, 6, 9), 9))
    assert [p.name for p in (out / "videos" / CAM).iterdir()] == ["file-00000.mp4"], "numbering as if never tried"
    ds = Dataset.open(out)
    assert ds.num_episodes == 1
    assert identify(ds.frame(2)[CAM], 1, 9) == 2


def test_an_encoder_failure_is_one_line_without_ffmpeg_numbers_or_log_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    encoder = video.VideoEncoder(tmp_path / "v.mp4", width=33, height=33, rate_hz=FPS, codec="libx264")
    with pytest.raises(EpisodeError) as err:
        encoder.add(np.zeros((33, 33, 3), np.uint8), 0.0)
        encoder.close()
    encoder.abort()
    message = err.value.message
    assert "v.mp4" in message and "width not divisible by 2" in message
    assert "Errno" not in message and "542398533" not in message and "\n" not in message
    assert capfd.readouterr().err == ""
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(EpisodeError, match="must increase"):
        ok = video.VideoEncoder(tmp_path / "w.mp4", width=32, height=32, rate_hz=FPS, codec="libx264")
        ok.add(np.zeros((32, 32, 3), np.uint8), 0.5)
        ok.add(np.zeros((32, 32, 3), np.uint8), 0.5)
    ok.abort()


def test_an_encoder_dropped_unfinished_prints_nothing(tmp_path: Path) -> None:
    """(A skipped episode or Ctrl-C aborts encoders: SVT-AV1 used to print an "error" for each on stderr.)"""
    if video.available_encoder("auto") != "libsvtav1":
        pytest.skip("this PyAV has no libsvtav1")
    code = (
        "import sys, numpy as np; from pathlib import Path; from rdstd.media.video import VideoEncoder\n"
        "e = VideoEncoder(Path(sys.argv[1]), width=64, height=48, rate_hz=30)\n"
        "for i in range(5): e.add(np.zeros((48, 64, 3), np.uint8), i / 30)\n"
        "e.abort(); del e\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "v.mp4")], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0 and done.stderr == "" and list(tmp_path.iterdir()) == []


def test_a_file_system_without_reflinks_falls_back_to_a_copy_that_is_the_outputs_own_file(
    shared_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import fcntl

    asked: list[int] = []
    real_ioctl = fcntl.ioctl

    def refuse(fd: int, request: int, arg: int = 0) -> object:
        if request == video.FICLONE:
            asked.append(request)
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_ioctl(fd, request, arg)

    monkeypatch.setattr(fcntl, "ioctl", refuse)
    source = tmp_path / "src.mp4"
    source.write_bytes(shared_mp4.read_bytes())
    out = tmp_path / "ds"
    with DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0")) as writer:
        writer.add(episode(0, segment(source, 0, 6), 6))
    copied = out / "videos" / CAM / "file-00000.mp4"
    assert asked == [video.FICLONE]
    assert copied.read_bytes() == shared_mp4.read_bytes()
    assert copied.stat().st_ino != source.stat().st_ino and copied.stat().st_nlink == 1
    source.write_bytes(b"changed")  # the output does not share the source's file
    assert copied.read_bytes() == shared_mp4.read_bytes()
    assert not [p for p in copied.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_reflink_that_works_is_used_instead_of_a_copy(
    shared_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import os
    import shutil

    def clone(fd: int, request: int, arg: int = 0) -> object:
        assert request == video.FICLONE
        with open(arg, "rb", closefd=False) as src:  # stands in for the file system's clone
            os.write(fd, src.read())
        return 0

    def no_copy(*args: object, **kwargs: object) -> None:
        raise AssertionError("copied although the reflink worked")

    monkeypatch.setattr(fcntl, "ioctl", clone)
    monkeypatch.setattr(shutil, "copyfile", no_copy)
    out = tmp_path / "ds"
    with DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0")) as writer:
        writer.add(episode(0, segment(shared_mp4, 0, 6), 6))
    assert (out / "videos" / CAM / "file-00000.mp4").read_bytes() == shared_mp4.read_bytes()


def test_a_reflink_error_other_than_unsupported_fails_the_write_and_leaves_nothing(
    shared_mp4: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import fcntl

    def broken(fd: int, request: int, arg: int = 0) -> object:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(fcntl, "ioctl", broken)
    out = tmp_path / "ds"
    with (
        pytest.raises(RdstdError, match=r"Input/output error|I/O"),
        DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0")) as writer,
    ):
        writer.add(episode(0, segment(shared_mp4, 0, 6), 6))
    assert not out.exists()


def test_many_video_files_are_copied_with_several_in_flight_and_each_is_whole(shared_mp4: Path, tmp_path: Path) -> None:
    sources = []
    for i in range(2 * video.COPY_THREADS + 1):
        path = tmp_path / "src" / f"file-{i:03d}.mp4"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(shared_mp4.read_bytes())
        sources.append(path)
    out = tmp_path / "ds"
    with DatasetWriter(out, features(), Provenance(source_format="test", rdstd_version="0")) as writer:
        for i, path in enumerate(sources):
            writer.add(episode(i, segment(path, 0, 6), 6))
    copied = sorted((out / "videos" / CAM).iterdir())
    assert [p.name for p in copied] == [f"file-{i:05d}.mp4" for i in range(len(sources))]
    assert all(p.read_bytes() == shared_mp4.read_bytes() for p in copied)
    ds = Dataset.open(out)
    assert ds.episodes["length"].to_list() == [6] * len(sources)

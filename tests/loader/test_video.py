"""Cameras kept as video: the right frames in windows, one pass for sequential windows, decoders reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("av")

from rdstd.loader import FrameDataset, ImageOptions
from rdstd.loader.images import resize
from rdstd.media import video
from tests.formats.lerobot_fixtures import identify
from tests.loader.helpers import VIDEO_CAM as CAM
from tests.loader.helpers import write_video_dataset

LENGTHS = [6, 9]


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes sharing one mp4 (keyframe every 4 frames), as in a LeRobot v3.0 file."""
    return write_video_dataset(tmp_path_factory.mktemp("video"), LENGTHS)


def test_video_windows_hold_the_right_frames_and_masks(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [CAM], windows={CAM: [-2, 0, 1]}, images=ImageOptions(size=(16, 24)))
    order = np.random.default_rng(0).permutation(len(fd))
    batch = fd.batch(order)
    for n in range(len(order)):
        e, f = int(batch["episode_index"][n]), int(batch["frame_index"][n])
        for w, t in enumerate([f - 2, f, f + 1]):
            pad = not 0 <= t < LENGTHS[e]
            assert batch[f"{CAM}_is_pad"][n, w] == pad
            pixels = batch[CAM][n, w]
            assert pixels.shape == (16, 24, 3)
            if pad:
                assert not pixels.any()
            else:
                assert identify(pixels, e, LENGTHS[e]) == t


def test_sequential_windows_decode_in_one_pass_with_a_reused_decoder(
    ds_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeks: list[float] = []
    original = video.VideoDecoder._seek

    def spy(self: video.VideoDecoder, t_s: float) -> Any:
        seeks.append(t_s)
        return original(self, t_s)

    monkeypatch.setattr(video.VideoDecoder, "_seek", spy)
    video.DECODERS.clear()
    fd = FrameDataset(ds_path, [CAM], windows={CAM: [-1, 0, 1]})
    fd.batch([4, 2, 3, 1])  # frames 0..5 of episode 0, asked out of order
    assert len(seeks) == 1  # opened once, then decoded forward
    fd.batch([8, 9])  # episode 1 frames 1..4 (file frames 7..10): ahead of the last frame, decoded forward
    assert len(seeks) == 1
    fd.batch([7])  # back to file frames 6..8: one seek to the keyframe at or before
    assert len(seeks) == 2


def test_a_jump_past_a_keyframe_seeks_instead_of_decoding_forward(
    ds_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[float] = []
    seeks: list[float] = []
    original_seek, original_next = video.VideoDecoder._seek, video.VideoDecoder._next

    def seek(self: video.VideoDecoder, t_s: float) -> Any:
        seeks.append(t_s)
        return original_seek(self, t_s)

    def step(self: video.VideoDecoder) -> Any:
        frame = original_next(self)
        if frame is not None:
            decoded.append(frame.time)
        return frame

    monkeypatch.setattr(video.VideoDecoder, "_seek", seek)
    monkeypatch.setattr(video.VideoDecoder, "_next", step)
    video.DECODERS.clear()
    fd = FrameDataset(ds_path, [CAM])
    fd.batch([0])
    fd.batch([6 + 3])  # file frame 9, 0.9 s ahead: keyframe 8 lies between, so seek there and decode 8, 9
    assert len(seeks) == 2 and len(decoded) <= 4  # not frames 1..9 decoded forward
    assert identify(fd[9][CAM], 1, LENGTHS[1]) == 3


def test_bilinear_resizing_happens_in_ffmpeg_s_conversion_and_matches_pillow(
    ds_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[tuple[int, int] | None] = []
    original = video.VideoDecoder.frame_at

    def spy(self: video.VideoDecoder, t_s: float, size: tuple[int, int] | None = None) -> Any:
        sizes.append(size)
        return original(self, t_s, size)

    monkeypatch.setattr(video.VideoDecoder, "frame_at", spy)
    video.DECODERS.clear()
    every = np.arange(sum(LENGTHS))
    scaled = FrameDataset(ds_path, [CAM], images=ImageOptions(size=(16, 24))).batch(every)[CAM]
    assert sizes and set(sizes) == {(16, 24)}  # swscale scaled it, no full-size RGB frame was made
    sizes.clear()
    full = FrameDataset(ds_path, [CAM]).batch(every)[CAM]
    nearest = FrameDataset(ds_path, [CAM], images=ImageOptions(size=(16, 24), resample="nearest")).batch(every)[CAM]
    assert set(sizes) == {None}  # nearest picks pixels of the full-size frame
    pillow = np.stack([resize(frame, (16, 24)) for frame in full])
    assert scaled.shape == pillow.shape == nearest.shape == (len(every), 16, 24, 3)
    assert np.abs(scaled.astype(np.int16) - pillow.astype(np.int16)).mean() < 4
    for n, (e, k) in enumerate((e, k) for e, length in enumerate(LENGTHS) for k in range(length)):
        assert identify(scaled[n], e, LENGTHS[e]) == k

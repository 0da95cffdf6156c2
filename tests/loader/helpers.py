"""Generated canonical datasets for the loader tests: every value says which episode and frame it came from."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np

from rdstd.media.images import encode
from rdstd.schema import (
    Dimension,
    EncodedFrames,
    Episode,
    EpisodeMeta,
    ImageCodec,
    ImageFeature,
    Provenance,
    VectorFeature,
    VideoFrames,
)
from rdstd.schema.features import GripperConvention
from rdstd.schema.vocabulary import GripperKind, GripperOpen, Role, Unit
from rdstd.store import DatasetWriter
from rdstd.store import writer as writer_module

PROVENANCE = Provenance(source_format="generated", rdstd_version="test")
STATE = "observation.state"
ACTION = "action"
CAM = "observation.images.cam"
JPG = "observation.images.jpg"

FEATURES: dict[str, VectorFeature | ImageFeature] = {
    # [episode_index, frame_index, a value spread over the dataset]
    STATE: VectorFeature(
        dtype="float64",
        shape=(3,),
        dims=[Dimension(name="ep"), Dimension(name="frame"), Dimension(name="joint", role=Role.JOINT_POSITION)],
    ),
    # eef x in m, a done flag, a relative gripper command
    ACTION: VectorFeature(
        shape=(3,),
        dims=[
            Dimension(name="x", role=Role.EEF_POSITION, unit=Unit.M),
            Dimension(name="done", role=Role.FLAG, unit=Unit.BOOL),
            Dimension(name="gripper", role=Role.GRIPPER, unit=Unit.NONE),
        ],
        grippers=[GripperConvention(dim=2, kind=GripperKind.RELATIVE, open=GripperOpen.LOW)],
    ),
    # lossless: pixel value = (10 * episode + frame) % 256
    CAM: ImageFeature(height=6, width=8, codec=ImageCodec.PNG),
    JPG: ImageFeature(height=48, width=64),
}


def pixel(episode: int, frame: int) -> int:
    """The value every pixel of CAM has at this episode and frame."""
    return (10 * episode + frame) % 256


def make_episode(e: int, length: int, rate_hz: float = 10.0) -> Episode:
    """Episode ``e`` of ``length`` frames at ``rate_hz``."""
    rng = np.random.default_rng(e)
    frames = np.arange(length)
    state = np.stack([np.full(length, e), frames, rng.normal(size=length)], axis=1)
    action = np.stack(
        [rng.normal(0.3, 0.1, size=length), (frames == length - 1), rng.choice([-1.0, 0.0, 1.0], size=length)], axis=1
    ).astype(np.float32)
    cam = [encode(np.full((6, 8, 3), pixel(e, f), np.uint8), ImageCodec.PNG) for f in frames]
    yy, xx = np.mgrid[0:48, 0:64]
    jpg = [
        encode(np.stack([xx * 4, yy * 5, np.full_like(xx, f * 9)], axis=-1).astype(np.uint8), ImageCodec.JPEG)
        for f in frames
    ]
    return Episode(
        EpisodeMeta(episode_id=f"ep{e:03d}"),
        frames / rate_hz,
        {STATE: state, ACTION: action},
        {CAM: EncodedFrames(ImageCodec.PNG, cam), JPG: EncodedFrames(ImageCodec.JPEG, jpg)},
    )


def write(path: Path, lengths: list[int], *, rate_hz: float | None = 10.0, row_group_frames: int = 4) -> Path:
    """A canonical dataset with episodes of ``lengths`` frames, row groups of exactly ``row_group_frames`` (the
    writer's minimum row-group size in bytes is lifted for these tiny frames)."""
    with (
        mock.patch.object(writer_module, "ROW_GROUP_MIN_BYTES", 1),
        DatasetWriter(path, FEATURES, PROVENANCE, rate_hz=rate_hz, row_group_frames=row_group_frames) as writer,
    ):
        for e, n in enumerate(lengths):
            writer.add(make_episode(e, n, rate_hz or 10.0))
    return path


VIDEO_CAM = "observation.images.front"
VIDEO_H, VIDEO_W, VIDEO_FPS = 32, 48, 10


def write_video_dataset(root: Path, lengths: list[int]) -> Path:
    """A canonical dataset at ``root / "ds"`` whose episodes share one mp4 (keyframe every 4 frames), as in a
    LeRobot v3.0 file; frame k of episode e shows ``tests.formats.lerobot_fixtures.image(e, k, ...)``."""
    from tests.formats.lerobot_fixtures import image, write_mp4

    mp4 = root / "file-000.mp4"
    frames_ = [image(e, k, VIDEO_H, VIDEO_W) for e, n in enumerate(lengths) for k in range(n)]
    write_mp4(mp4, frames_, VIDEO_FPS, gop=4)
    features: dict[str, VectorFeature | ImageFeature] = {
        "observation.state": VectorFeature(shape=(1,), dims=[Dimension(name="x")]),
        VIDEO_CAM: ImageFeature(height=VIDEO_H, width=VIDEO_W, codec=ImageCodec.VIDEO),
    }
    out = root / "ds"
    provenance = Provenance(source_format="test", rdstd_version="0")
    with DatasetWriter(out, features, provenance, rate_hz=VIDEO_FPS) as writer:
        first = 0
        for e, n in enumerate(lengths):
            frames = VideoFrames(str(mp4), first / VIDEO_FPS, (first + n) / VIDEO_FPS, n)
            stamps = np.arange(n, dtype=np.float64) / VIDEO_FPS
            vectors = {"observation.state": np.zeros((n, 1))}
            writer.add(Episode(EpisodeMeta(episode_id=f"ep{e}"), stamps, vectors, {VIDEO_CAM: frames}))
            first += n
    return out

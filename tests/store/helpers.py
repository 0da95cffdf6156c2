"""Generated canonical episodes for store tests."""

from __future__ import annotations

from pathlib import Path

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
)

FEATURES: dict[str, VectorFeature | ImageFeature] = {
    "observation.state": VectorFeature(shape=(3,), dims=[Dimension(name=f"j{i}") for i in range(3)]),
    "action": VectorFeature(dtype="float64", shape=(2, 2), dims=[Dimension(name=f"a{i}") for i in range(4)]),
    "observation.images.cam": ImageFeature(height=24, width=32),
    "observation.images.depth": ImageFeature(height=8, width=8, channels=1, dtype="uint16", codec=ImageCodec.PNG),
}
PROVENANCE = Provenance(source_format="generated", rdstd_version="test")


def make_episode(index: int, length: int, seed: int = 0) -> Episode:
    """An episode with random vectors, JPEG color and 16-bit PNG depth frames."""
    rng = np.random.default_rng(seed * 1000 + index)
    color = [encode(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), ImageCodec.JPEG) for _ in range(length)]
    depth = [encode(rng.integers(0, 65535, (8, 8, 1), dtype=np.uint16), ImageCodec.PNG) for _ in range(length)]
    return Episode(
        EpisodeMeta(episode_id=f"ep{index:03d}", task=f"task {index % 2}", source_meta={"n": index, "big": 2**63 + 5}),
        np.arange(length, dtype=np.float64) / 15.0,
        {
            "observation.state": rng.normal(size=(length, 3)).astype(np.float32),
            "action": rng.normal(size=(length, 2, 2)),
        },
        {
            "observation.images.cam": EncodedFrames(ImageCodec.JPEG, color),
            "observation.images.depth": EncodedFrames(ImageCodec.PNG, depth),
        },
    )


def write_dataset(path: Path, episodes: int = 2, **kwargs: object) -> Path:
    """A canonical dataset at ``path`` of ``episodes`` generated episodes of 6 frames (``kwargs``: writer options)."""
    from rdstd.store import DatasetWriter

    with DatasetWriter(path, FEATURES, PROVENANCE, **kwargs) as writer:  # type: ignore[arg-type]
        for i in range(episodes):
            writer.add(make_episode(i, 6))
    return path

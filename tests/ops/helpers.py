"""Small canonical datasets generated in code for the ops tests (JPEG images, a 7-DoF arm, chosen units)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rdstd.media import images
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.episode import EncodedFrames, Episode, EpisodeMeta
from rdstd.schema.features import CameraIntrinsics, Dimension, ImageFeature, VectorFeature
from rdstd.schema.manifest import Provenance
from rdstd.schema.vocabulary import ImageCodec, Role, Unit
from rdstd.store.writer import DatasetWriter

JOINTS = [f"joint{i}" for i in range(7)]


def arm_state(unit: Unit = Unit.RAD) -> VectorFeature:
    """A 7-joint state in ``unit``."""
    dims = [Dimension(name=n, role=Role.JOINT_POSITION, unit=unit, frame="none") for n in JOINTS]
    return VectorFeature(shape=(7,), dims=dims)


def make(
    root: Path,
    *,
    episodes: int = 3,
    frames: int = 12,
    rate_hz: float = 10.0,
    unit: Unit = Unit.RAD,
    camera: str = "observation.images.front",
    size: int = 32,
    seed: int = 0,
    prefix: str = "ep",
    task: str = "pick",
    embodiment: str = "arm",
    duplicate_of: dict[int, int] | None = None,
    splits: list[str] | None = None,
    intrinsics: CameraIntrinsics | None = None,
) -> Path:
    """A canonical dataset at ``root``: ``observation.state`` (7 joints in ``unit``), ``action``, one JPEG camera.

    ``duplicate_of`` {i: j}: episode i repeats episode j's content (another id).
    """
    rng = np.random.default_rng(seed)
    features: dict[str, VectorFeature | ImageFeature] = {
        "observation.state": arm_state(unit),
        "action": arm_state(unit),
        camera: ImageFeature(height=size, width=size, codec=ImageCodec.JPEG, intrinsics=intrinsics),
    }
    provenance = Provenance(source_format="generated", rdstd_version="test")
    content: dict[int, tuple[np.ndarray, np.ndarray, list[bytes]]] = {}
    with DatasetWriter(
        root, features, provenance, rate_hz=rate_hz, embodiments=[Embodiment(name=embodiment, control_rate_hz=rate_hz)]
    ) as writer:
        for e in range(episodes):
            if duplicate_of and e in duplicate_of:
                state, action, jpegs = content[duplicate_of[e]]
            else:
                t = np.arange(frames)[:, None] / rate_hz
                state = (np.sin(t + rng.uniform(0, 3, 7)) * (57.29 if unit == Unit.DEG else 1.0)).astype(np.float32)
                action = state + rng.normal(0, 0.01, state.shape).astype(np.float32)
                pixels = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
                jpegs = [images.encode(p, ImageCodec.JPEG) for p in pixels]
            content[e] = (state, action, jpegs)
            meta = EpisodeMeta(
                episode_id=f"{prefix}{e:03d}",
                task=f"{task} {e % 2}",
                embodiment=embodiment,
                source_path=f"{prefix}.src",
                source_key=str(e),
                split=splits[e] if splits else "train",
            )
            writer.add(
                Episode(
                    meta=meta,
                    timestamps=np.arange(frames, dtype=np.float64) / rate_hz,
                    vectors={"observation.state": state, "action": action},
                    images={camera: EncodedFrames(ImageCodec.JPEG, jpegs)},
                )
            )
    return root

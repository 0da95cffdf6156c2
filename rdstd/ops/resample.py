"""``rdstd resample``: every episode on a fixed-rate grid, with a declared method per feature.

The grid is ``0, 1/rate, 2/rate, …`` up to the episode's last timestamp. Methods (the ROS backend's alignment,
:mod:`rdstd.streams.align`, shared): ``interpolate`` (linear, and slerp for ``quat_xyzw`` rotation groups) for
continuous float signals; ``hold`` (the last sample at or before) for flags, integers, relative gripper commands
and delta or velocity actions (relative commands are never interpolated); ``nearest`` for cameras (the stored
bytes or video frame of the nearest frame: nothing is decoded). ``methods`` overrides per feature. A per-episode
report says, per feature, how many grid frames took a value not sampled exactly at that time, and the largest
gap. The manifest records the resampling (``clock.resampling`` and ``extra["resample"]``).

Round trip: resampling a smooth signal to a higher rate and back reproduces it to the interpolation error,
``|f''| · h² / 8`` for linear interpolation with step ``h`` (the tests hold it to that bound).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import UsageError
from rdstd.ops.assemble import Progress
from rdstd.paths import normalized
from rdstd.schema.episode import EncodedFrames, Episode, VideoFrames
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ActionMode, GripperKind, ImageCodec, RotationRepr
from rdstd.store.reader import Dataset, EpisodeData, video_file
from rdstd.store.writer import DatasetWriter
from rdstd.streams.align import apply_sampling, fixed_grid, sample_at

#: Methods a feature can be resampled with.
METHODS = ("interpolate", "hold", "nearest")
_NO_AGE_LIMIT = np.iinfo(np.int64).max // 4


@dataclass
class ResampleReport:
    """Per episode: frames before and after, and per feature the frames filled and the largest gap (ms)."""

    output: str
    rate_hz: float
    methods: dict[str, str]
    episodes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return self.__dict__.copy()


def default_method(feature: VectorFeature | ImageFeature) -> str:
    """The method a feature is resampled with unless told otherwise (see the module docs)."""
    if isinstance(feature, ImageFeature):
        return "nearest"
    if feature.dtype not in {"float16", "float32", "float64"}:
        return "hold"
    if feature.action is not None and feature.action.mode in {ActionMode.DELTA, ActionMode.VELOCITY}:
        return "hold"
    if any(g.kind == GripperKind.RELATIVE for g in feature.grippers):
        return "hold"
    return "interpolate"


def resample(
    dataset: str | Path,
    output: str | Path,
    *,
    rate_hz: float,
    methods: Mapping[str, str] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ResampleReport:
    """Write ``dataset`` resampled to ``rate_hz`` as ``output`` (see the module docs)."""
    started = time.perf_counter()
    if not rate_hz > 0:
        raise UsageError(f"the rate must be positive, not {rate_hz}", hint="e.g. --rate 10", situation="rate-invalid")
    src, out = normalized(dataset), normalized(output)
    ds = Dataset.open(src)
    chosen = {k: default_method(f) for k, f in ds.manifest.features.items()}
    for key, method in (methods or {}).items():
        if key not in chosen:
            raise UsageError(
                f"--method {key}={method}: no feature {key!r}",
                hint="features: " + ", ".join(chosen),
                situation="feature-unknown",
            )
        if method not in METHODS or (isinstance(ds.manifest.features[key], ImageFeature) and method != "nearest"):
            raise UsageError(
                f"--method {key}={method}: use one of {', '.join(METHODS)} (cameras: nearest)",
                hint=f"e.g. --method {key}=nearest",
                situation="resample-method-unknown",
            )
        chosen[key] = method
    m = ds.manifest
    clock = m.clock.model_copy(
        update={"resampling": f"resampled to {rate_hz:g} Hz by rdstd resample (was: {m.clock.resampling})"}
    )
    extra = dict(m.extra)
    extra["resample"] = {"source": str(src), "from_rate_hz": m.rate_hz, "rate_hz": rate_hz, "methods": chosen}
    report = ResampleReport(str(out), rate_hz, chosen)
    with DatasetWriter(
        out,
        m.features,
        m.provenance,
        name=m.name,
        description=m.description,
        rate_hz=rate_hz,
        embodiments=m.embodiments,
        extra=extra,
        overwrite=overwrite,
        row_group_frames=m.storage.row_group_frames,
        sources=[src],
        clock=clock,
    ) as writer:
        for i, ep in enumerate(ds.iter_episodes()):
            episode, facts = resample_episode(ep, ds, rate_hz, chosen)
            writer.add(episode)
            report.episodes.append({"episode_id": ep.meta.episode_id, **facts})
            if progress is not None:
                progress(i + 1, ds.num_episodes)
    report.seconds = time.perf_counter() - started
    return report


def resample_episode(
    ep: EpisodeData, ds: Dataset, rate_hz: float, methods: Mapping[str, str]
) -> tuple[Episode, dict[str, Any]]:
    """One episode on the grid, and what was filled per feature."""
    times_ns = np.round(ep.timestamps * 1e9).astype(np.int64)
    grid = fixed_grid(0, int(times_ns[-1]) if len(times_ns) else -1, rate_hz)
    facts: dict[str, Any] = {"frames_before": ep.length, "frames_after": len(grid), "features": {}}
    vectors: dict[str, npt.NDArray[Any]] = {}
    images: dict[str, Any] = {}
    for key, feature in ds.manifest.features.items():
        method = methods[key]
        sampling = sample_at(grid, times_ns, method, _NO_AGE_LIMIT)
        filled = int((sampling.dt_ns > 0).sum())
        facts["features"][key] = {
            "method": method,
            "filled": filled,
            "max_gap_ms": float(sampling.dt_ns.max()) / 1e6 if len(grid) else 0.0,
        }
        if isinstance(feature, VectorFeature):
            if key not in ep.vectors:
                continue
            quats = [g.start for g in feature.rotations if g.representation == RotationRepr.QUAT_XYZW]
            values = ep.vectors[key].reshape(ep.length, -1)
            vectors[key] = apply_sampling(values, sampling, method, quats).reshape(len(grid), *feature.shape)
        elif key in ep.images:
            images[key] = _camera(ep, key, feature, sampling.lo, ds)
    meta = ep.meta
    episode = Episode(meta=meta, timestamps=grid.astype(np.float64) / 1e9, vectors=vectors, images=images)
    return episode, facts


def _camera(ep: EpisodeData, key: str, feature: ImageFeature, take: npt.NDArray[np.int64], ds: Dataset) -> Any:
    frames = ep.images[key]
    if feature.codec != ImageCodec.VIDEO:
        stored = frames.encoded
        return EncodedFrames(feature.codec, [stored[int(i)] for i in take])
    refs = frames.refs
    paths = {refs[int(i)]["path"] for i in take}
    if len(paths) != 1:
        raise UsageError(
            f"{ds.location}: episode {ep.meta.episode_id!r}: camera {key} spans several video files; cannot resample",
            hint="convert the source again with --images png (frames stored in the shards), then resample",
            situation="camera-spans-videos",
        )
    times = tuple(float(refs[int(i)]["timestamp_s"]) for i in take)
    path = video_file(ds.path, paths.pop())
    return VideoFrames(str(path), times[0], times[-1], len(times), frame_times_s=times)

"""Camera statistics for a LeRobot export without decoding the whole video.

Two sources, in order of preference:

1. **Carried**: a LeRobot v2.1 source's own per-episode camera statistics (``meta/episodes_stats.jsonl``), which the
   converter keeps in each episode's ``source_meta["image_stats"][camera]`` when the camera is kept as video (the
   very frames the export stream-copies). A camera uses them only when *every* episode carries well-formed ones,
   so all episodes of the export have the same statistics keys; quantiles are included only when every episode
   has them (a v2.1 source has none: the export then has none for that camera, exactly like LeRobot's own
   v2.1 → v3.0 converter).
2. **Keyframes**: otherwise, a camera kept as video is sampled at its keyframes only (each decodes on its own, no
   frames in between), at most :data:`KEYFRAME_FRAMES` of them spread evenly over the episode. Image statistics
   are approximate in LeRobot too (a subsample of frames, strided pixels); this subsample is smaller.

Cameras that are encoded by the export are sampled while they are encoded (the frames are decoded anyway).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.formats.lerobot import stats as lstats
from rdstd.schema.features import ImageFeature

#: The key in an episode's ``source_meta`` that carries the source's camera statistics.
SOURCE_META_KEY = "image_stats"
#: Keyframes decoded per episode and camera, at most, when no statistics are carried.
KEYFRAME_FRAMES = 16
_BASE_KEYS = ("min", "max", "mean", "std", "count")


def well_formed(stats: object, channels: int) -> bool:
    """Whether ``stats`` are LeRobot camera statistics: min/max/mean/std per channel (C, 1, 1) in [0, 1], a count."""
    if not isinstance(stats, Mapping) or not all(k in stats for k in _BASE_KEYS):
        return False
    try:
        for key in ("min", "max", "mean", "std", *(q for q in lstats.QUANTILES if q in stats)):
            values = np.asarray(stats[key], dtype=np.float64)
            if values.shape != (channels, 1, 1) or not np.all(np.isfinite(values)):
                return False
            if key != "std" and not np.all((values >= 0.0) & (values <= 1.0)):
                return False
        count = np.asarray(stats["count"]).reshape(-1)
        return count.size == 1 and float(count[0]) > 0
    except (TypeError, ValueError):
        return False


def carried_keys(
    source_metas: Iterable[str | None], cameras: Mapping[str, ImageFeature], *, quantiles: bool
) -> dict[str, tuple[str, ...]]:
    """Per camera whose statistics every episode carries: the statistics keys to write (LeRobot's order).

    ``source_metas`` are the episodes' ``source_meta`` JSON texts (the canonical episodes table's column).
    """
    usable: dict[str, set[str]] | None = None
    for text in source_metas:
        try:
            meta = json.loads(text) if text else {}
        except ValueError:
            return {}
        carried = meta.get(SOURCE_META_KEY) if isinstance(meta, dict) else None
        if not isinstance(carried, dict):
            return {}
        here = {
            camera: {q for q in lstats.QUANTILES if q in carried[camera]}
            for camera, feature in cameras.items()
            if well_formed(carried.get(camera), feature.channels)
        }
        usable = here if usable is None else {c: usable[c] & here[c] for c in usable.keys() & here.keys()}
        if not usable:
            return {}
    if not usable:
        return {}
    return {
        camera: (*_BASE_KEYS, *(q for q in lstats.QUANTILES if quantiles and q in found))
        for camera, found in usable.items()
    }


def carried(meta: Mapping[str, Any], camera: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The carried statistics of ``camera`` in one episode's ``source_meta``, reduced to ``keys``."""
    stats = meta[SOURCE_META_KEY][camera]
    out = {k: stats[k] for k in keys}
    out["count"] = [int(np.asarray(stats["count"]).reshape(-1)[0])]
    return out


def keyframe_times(keys_s: npt.NDArray[np.float64], start_s: float, end_s: float) -> list[float]:
    """At most :data:`KEYFRAME_FRAMES` keyframe times in [start_s, end_s], spread evenly (the first one always)."""
    inside = keys_s[(keys_s >= start_s) & (keys_s <= end_s)]
    if len(inside) <= KEYFRAME_FRAMES:
        return [float(t) for t in inside]
    picks = np.unique(np.round(np.linspace(0, len(inside) - 1, KEYFRAME_FRAMES)).astype(np.int64))
    return [float(inside[i]) for i in picks]

"""Statistics in LeRobot's naming: per episode, then aggregated over the dataset.

Vectors: ``min, max, mean, std, count`` (v2.1) plus ``q01, q10, q50, q90, q99`` (v3.0), one value per dimension.
Cameras: per channel, shaped (3, 1, 1), pixels scaled to [0, 1], from an evenly spaced subsample of frames
(LeRobot's rule: ``n**0.75`` frames, at least 100 (or all), at most 10,000) and images strided down to about
150 px; so image statistics are approximate, exactly like LeRobot's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
#: Images are strided down to about this many pixels on their longer side before their statistics.
IMAGE_STATS_PX = 150


def sample_indices(length: int) -> npt.NDArray[np.int64]:
    """The frames of an episode whose images enter its statistics (LeRobot's rule)."""
    wanted = min(max(100, int(length**0.75)), 10_000)
    if length <= wanted:
        return np.arange(length, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, length - 1, wanted)).astype(np.int64))


def vector_stats(values: npt.NDArray[Any], *, quantiles: bool) -> dict[str, Any]:
    """Statistics of (T, D) values, per dimension, as LeRobot writes them (lists)."""
    flat = values.reshape(values.shape[0], -1)
    as_float = flat.astype(np.float64)
    out: dict[str, Any] = {
        "min": flat.min(axis=0).tolist(),
        "max": flat.max(axis=0).tolist(),
        "mean": as_float.mean(axis=0).tolist(),
        "std": as_float.std(axis=0).tolist(),
        "count": [int(flat.shape[0])],
    }
    if quantiles:  # one sort for all of them
        values = np.quantile(as_float, list(QUANTILES.values()), axis=0)
        for name, row in zip(QUANTILES, values, strict=True):
            out[name] = row.tolist()
    return out


def image_stats(frames: Sequence[npt.NDArray[np.uint8]], *, quantiles: bool) -> dict[str, Any]:
    """Per-channel statistics of sampled HWC uint8 frames, in [0, 1], each shaped (3, 1, 1) as nested lists.

    Exact over the sampled, strided pixels, computed from 256-bin histograms (uint8 has no more values).
    """
    step = max(1, max(frames[0].shape[:2]) // IMAGE_STATS_PX)
    channels = frames[0].shape[2]
    hist = np.zeros((channels, 256), dtype=np.int64)
    for frame in frames:
        pixels = frame[::step, ::step].reshape(-1, channels)
        for c in range(channels):
            hist[c] += np.bincount(pixels[:, c], minlength=256)
    levels = np.arange(256, dtype=np.float64) / 255.0
    total = hist.sum(axis=1)
    mean = (hist * levels).sum(axis=1) / total
    std = np.sqrt(np.maximum((hist * levels**2).sum(axis=1) / total - mean**2, 0.0))
    cumulative = np.cumsum(hist, axis=1) / total[:, None]
    out: dict[str, Any] = {
        "min": levels[np.argmax(hist > 0, axis=1)],
        "max": levels[255 - np.argmax(hist[:, ::-1] > 0, axis=1)],
        "mean": mean,
        "std": std,
    }
    if quantiles:
        for name, q in QUANTILES.items():
            out[name] = levels[np.argmax(cumulative >= q, axis=1)]
    result: dict[str, Any] = {k: [[[float(v)]] for v in values] for k, values in out.items()}
    result["count"] = [len(frames)]
    if quantiles:  # LeRobot's column order: min, max, mean, std, count, q01 …
        result = {k: result[k] for k in ("min", "max", "mean", "std", "count", *QUANTILES)}
    return result


def depth_stats(frames: Sequence[npt.NDArray[Any]], *, quantiles: bool) -> dict[str, Any]:
    """Per-channel statistics of sampled depth frames (HWC), in the stored units (not scaled), shaped (C, 1, 1).

    LeRobot leaves depth maps in their stored units (it skips the 1/255 scaling of colour images).
    """
    step = max(1, max(frames[0].shape[:2]) // IMAGE_STATS_PX)
    channels = frames[0].shape[2] if frames[0].ndim == 3 else 1
    pixels = np.concatenate([f[::step, ::step].reshape(-1, channels) for f in frames]).astype(np.float64)
    out: dict[str, Any] = {
        "min": pixels.min(axis=0),
        "max": pixels.max(axis=0),
        "mean": pixels.mean(axis=0),
        "std": pixels.std(axis=0),
    }
    if quantiles:
        for name, q in QUANTILES.items():
            out[name] = np.quantile(pixels, q, axis=0)
    result: dict[str, Any] = {k: [[[float(v)]] for v in values] for k, values in out.items()}
    result["count"] = [len(frames)]
    order = ("min", "max", "mean", "std", "count", *(QUANTILES if quantiles else ()))
    return {k: result[k] for k in order}


def aggregate(per_episode: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Dataset statistics from per-episode ones: pooled mean and variance, extreme min/max, count-weighted quantiles."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    weights = counts / counts.sum()
    shape = np.asarray(per_episode[0]["mean"]).shape
    means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in per_episode])
    stds = np.stack([np.asarray(s["std"], dtype=np.float64) for s in per_episode])
    w = weights.reshape(-1, *([1] * len(shape)))
    mean = (w * means).sum(axis=0)
    var = (w * (stds**2 + (means - mean) ** 2)).sum(axis=0)
    out: dict[str, Any] = {
        "min": np.min(np.stack([np.asarray(s["min"]) for s in per_episode]), axis=0).tolist(),
        "max": np.max(np.stack([np.asarray(s["max"]) for s in per_episode]), axis=0).tolist(),
        "mean": mean.tolist(),
        "std": np.sqrt(var).tolist(),
        "count": [int(counts.sum())],
    }
    for name in QUANTILES:
        if name in per_episode[0]:
            out[name] = (
                (w * np.stack([np.asarray(s[name], dtype=np.float64) for s in per_episode])).sum(axis=0).tolist()
            )
    return out

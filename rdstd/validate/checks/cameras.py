"""Camera checks on sampled decoded frames: blank (constant) frames and frozen cameras (identical frames)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

import numpy as np

from rdstd.validate.check import Check, EpisodeView
from rdstd.validate.model import Evidence, Finding, Severity


def sample_indices(length: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over an episode (all of them when it is shorter)."""
    if length <= count:
        return list(range(length))
    return sorted({round(i) for i in np.linspace(0, length - 1, count)})


class CameraContent(Check):
    """RDV602: a camera whose sampled frames are blank (all one value) or frozen (all the same picture)."""

    id = "RDV602"
    name = "camera.frozen_or_blank"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    pixels = True
    description = (
        "samples frames per episode and camera: blank when a frame's pixel std is below blank_std, frozen when "
        "every sampled frame differs from the first by at most frozen_diff (mean absolute difference)"
    )
    hint = "the camera froze or was not connected: drop the camera for these episodes, or re-record"
    defaults: ClassVar[Mapping[str, float]] = {"samples": 8.0, "blank_std": 2.0, "frozen_diff": 0.5}

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        picks = sample_indices(ep.length, int(self.params["samples"]))
        if not picks:
            return
        for camera in self.ds.manifest.cameras:
            frames = [f.astype(np.float32) for f in ep.frames(camera, picks)]
            if not frames:
                continue
            blank = [i for i, f in zip(picks, frames, strict=True) if float(f.std()) < self.params["blank_std"]]
            if blank:
                yield self.finding(
                    f"{camera}: {len(blank)} of {len(picks)} sampled frames are blank (frames {blank[:8]}; "
                    f"value {float(frames[picks.index(blank[0])].mean()):.1f})",
                    ep=ep,
                    feature=camera,
                    frames=(blank[0], blank[-1] + 1),
                    statistic="pixel std of a frame",
                    threshold=self.params["blank_std"],
                    measured=len(blank) / len(picks),
                    expected="varied pixels",
                )
                if len(blank) == len(picks):
                    continue
            if len(frames) >= 3:
                diffs = [float(np.abs(f - frames[0]).mean()) for f in frames[1:]]
                if max(diffs) <= self.params["frozen_diff"]:
                    yield self.finding(
                        f"{camera}: all {len(picks)} sampled frames over frames {picks[0]}-{picks[-1]} are the same "
                        f"picture (max mean difference {max(diffs):.2f})",
                        ep=ep,
                        feature=camera,
                        frames=(picks[0], picks[-1] + 1),
                        statistic="max mean |frame - first frame|",
                        threshold=self.params["frozen_diff"],
                        measured=max(diffs),
                        expected=f"> {self.params['frozen_diff']:g}",
                    )


class CameraLayout(Check):
    """RDV601: decoded frames whose shape or dtype differ from the camera's declaration (height, width, channels)."""

    id = "RDV601"
    name = "camera.layout"
    severity = Severity.ERROR
    evidence = Evidence.DETERMINISTIC
    pixels = True
    description = "sampled decoded frames must be (height, width, channels) and the dtype the camera declares"
    hint = "the frames were stored at another size or layout (CHW? resized?): fix the camera's declaration or re-encode"
    defaults: ClassVar[Mapping[str, float]] = {"samples": 3.0}

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        picks = sample_indices(ep.length, int(self.params["samples"]))
        for camera, feature in self.ds.manifest.cameras.items():
            want = (feature.height, feature.width, feature.channels)
            for i, frame in zip(picks, ep.frames(camera, picks), strict=True):
                have = tuple(frame.shape) if frame.ndim == 3 else (*frame.shape, 1)
                if have != want or str(frame.dtype) != feature.dtype:
                    yield self.finding(
                        f"{camera}: frame {i} decodes to {have} {frame.dtype}, the camera declares {want} "
                        f"{feature.dtype}",
                        ep=ep,
                        feature=camera,
                        frames=(i, i + 1),
                        measured=f"{have} {frame.dtype}",
                        expected=f"{want} {feature.dtype}",
                    )
                    break

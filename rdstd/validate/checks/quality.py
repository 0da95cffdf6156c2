"""Episode quality at info level: idle segments, dead (repeated) actions, gripper chatter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rdstd.schema.vocabulary import GripperKind, Role
from rdstd.validate import segments
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView, list_frames
from rdstd.validate.model import Evidence, Finding, Severity

#: Roles of the robot's own state (idle means these do not move).
_ROBOT = {Role.JOINT_POSITION, Role.EEF_POSITION, Role.EEF_ROTATION, Role.GRIPPER, Role.HAND_JOINT_POSITION}


#: Whole-shard screens flag an episode below this fraction of a threshold already: the episode's own check decides.
_MARGIN = 0.9
#: Moving steps a mostly frozen action dim needs before its jumps are measured on them.
_MIN_MOVING = 10


def longest_run(mask: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of True in ``mask`` ((0, 0) when there is none)."""
    if not mask.any():
        return 0, 0
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, stops = edges[::2], edges[1::2]
    i = int(np.argmax(stops - starts))
    return int(starts[i]), int(stops[i] - starts[i])


class IdleSegments(Check):
    """RDV951: long stretches where the robot's state does not move."""

    id = "RDV951"
    name = "quality.idle"
    severity = Severity.INFO
    evidence = Evidence.STATISTICAL
    description = "fraction of frames whose state moves less than still_eps; reported above max_idle_fraction"
    hint = "trim idle starts and ends; long pauses teach a policy to wait"
    defaults: ClassVar[Mapping[str, float]] = {"still_eps": 1e-6, "max_idle_fraction": 0.3}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._robot = {
            key: dims
            for key, f in dataset.states().items()
            if (dims := [i for i, d in enumerate(f.dims) if d.role in _ROBOT])
        }
        self._scratch = segments.Scratch()
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        if not self._robot or not len(shard.timestamps):
            return
        # the fraction of still frames of every episode at once (exact: a count over the episode's intervals);
        # the check's own buffers, shard after shard (fresh temporaries fault in pages)
        moves = self._scratch.vector("moves", len(shard.timestamps) - 1)
        moves[:] = 0.0
        step = self._scratch.vector("step", len(moves))
        for key, dims in self._robot.items():
            for d in dims:
                column = shard.vectors[key][:, d]
                np.subtract(column[1:], column[:-1], out=step)
                np.maximum(moves, np.abs(step, out=step), out=moves)
        counts = np.maximum(shard.lengths - 1, 0)
        # the still frames as 1.0 / 0.0: their sums are exact counts
        still = segments.range_sum(
            np.less_equal(moves, self.params["still_eps"], out=step), shard.starts, shard.starts + counts
        )
        fraction = still / np.maximum(counts, 1)
        for ep, hit in zip(
            shard.episodes, ((fraction > self.params["max_idle_fraction"]) & (shard.lengths >= 3)).tolist(), strict=True
        ):
            if hit:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        states = [ep.vectors[k][:, dims] for k, dims in self._robot.items()]
        if not states or ep.length < 3:
            return
        moves = np.concatenate([np.abs(np.diff(s, axis=0)) for s in states], axis=1).max(axis=1)
        still = moves <= self.params["still_eps"]
        fraction = float(still.mean())
        if fraction > self.params["max_idle_fraction"]:
            start, run = longest_run(still)
            yield self.finding(
                f"state is still in {fraction:.0%} of frames (longest run frames {start}-{start + run})",
                ep=ep,
                frames=(start, start + run + 1),
                statistic="fraction of still frames",
                threshold=self.params["max_idle_fraction"],
                measured=fraction,
            )


class DeadActions(Check):
    """RDV952: actions repeated unchanged for many consecutive frames (a stuck teleop or a dropped stream)."""

    id = "RDV952"
    name = "quality.dead_actions"
    severity = Severity.INFO
    evidence = Evidence.STATISTICAL
    description = "longest run of identical consecutive actions over max_run_fraction of the episode"
    hint = "the command stream stalled here: trim or drop the segment"
    defaults: ClassVar[Mapping[str, float]] = {"max_run_fraction": 0.2, "min_run": 10.0}

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        if not len(shard.timestamps):
            return
        # the number of repeated frames bounds the longest run: only episodes where it could fire are looked at
        counts = np.maximum(shard.lengths - 1, 0)
        screen = np.zeros(len(shard.episodes), dtype=bool)
        for key in self.ds.actions():
            values = shard.vectors[key]
            same = np.all(values[1:] == values[:-1], axis=1).astype(np.intp)
            repeats = segments.range_sum(same, shard.starts, shard.starts + counts) + 1
            screen |= (repeats >= self.params["min_run"]) & (
                repeats / np.maximum(shard.lengths, 1) > self.params["max_run_fraction"]
            )
        for ep, hit in zip(shard.episodes, (screen & (shard.lengths >= 3)).tolist(), strict=True):
            if hit:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for key in self.ds.actions():
            values = ep.vectors[key]
            if len(values) < 3:
                continue
            same = np.all(values[1:] == values[:-1], axis=1)
            start, run = longest_run(same)
            if run + 1 >= self.params["min_run"] and (run + 1) / ep.length > self.params["max_run_fraction"]:
                yield self.finding(
                    f"{key} repeats the same value for {run + 1} frames ({start}-{start + run})",
                    ep=ep,
                    feature=key,
                    frames=(start, start + run + 1),
                    statistic="longest identical run / length",
                    threshold=self.params["max_run_fraction"],
                    measured=(run + 1) / ep.length,
                )


class GripperChatter(Check):
    """RDV953: an absolute gripper command switching open/closed many times a second."""

    id = "RDV953"
    name = "quality.gripper_chatter"
    severity = Severity.INFO
    evidence = Evidence.STATISTICAL
    description = "crossings of the gripper's mid-range per second above max_per_s"
    hint = "filter the gripper command (hysteresis), or check the teleop trigger"
    defaults: ClassVar[Mapping[str, float]] = {"max_per_s": 2.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._grippers = [
            (key, grip.dim)
            for key, feature in dataset.actions().items()
            for grip in feature.grippers
            if grip.kind == GripperKind.ABSOLUTE and feature.dims[grip.dim].role == Role.GRIPPER
        ]
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        # every episode's crossings at once (its mid-range from the shard's extents): episodes a little below the
        # rate already, or holding a non-finite gripper value, go to the episode's own count
        starts, n, ts = shard.starts, shard.lengths, shard.timestamps
        if not self._grippers or not len(ts):
            return
        duration = np.zeros(len(n))
        long = n > 1
        duration[long] = ts[(starts + n - 1)[long]]
        hit = np.zeros(len(n), dtype=bool)
        for key, dim in self._grippers:
            extent = shard.extent(key)
            mid = (extent.low[:, dim] + extent.high[:, dim]) / 2
            with np.errstate(invalid="ignore"):
                above = shard.vectors[key][:, dim] > np.repeat(mid, n)
            flips = segments.range_sum((above[1:] != above[:-1]).astype(np.intp), starts, starts + np.maximum(n - 1, 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                fast = flips / duration > self.params["max_per_s"] * _MARGIN
            hit |= (fast | extent.bad[:, dim]) & (duration > 0)
        for ep, h in zip(shard.episodes, hit.tolist(), strict=True):
            if h:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        duration = float(ep.timestamps[-1]) if ep.length > 1 else 0.0
        if duration <= 0:
            return
        for key, feature in self.ds.actions().items():
            for grip in feature.grippers:
                if grip.kind != GripperKind.ABSOLUTE or feature.dims[grip.dim].role != Role.GRIPPER:
                    continue
                col = ep.vectors[key][:, grip.dim]
                mid = (float(np.nanmin(col)) + float(np.nanmax(col))) / 2
                flips = np.flatnonzero(np.diff(col > mid))
                rate = flips.size / duration
                if rate > self.params["max_per_s"]:
                    yield self.finding(
                        f"{key}[{grip.dim}] crosses its mid-range {flips.size} times in {duration:.1f} s",
                        ep=ep,
                        feature=key,
                        dims=[grip.dim],
                        frames=(int(flips[0]), int(flips[-1]) + 2),
                        statistic="mid-range crossings per second",
                        threshold=self.params["max_per_s"],
                        measured=rate,
                    )


def _finite(shard: ShardView, key: str) -> bool:
    """Whether every value of the vector ``key`` in the shard is finite and below 1e300 in size (so that steps
    between them, and differences of those, are finite too), from the shard's extents."""
    extent, filled = shard.extent(key), shard.lengths > 0
    if bool(extent.bad[filled].any()):
        return False
    sizes = np.abs(np.concatenate([extent.low[filled].ravel(), extent.high[filled].ravel()]))
    return bool(np.all(sizes < 1e300))


def _deviations(step: npt.NDArray[np.float64], center: npt.NDArray[np.float64], n: npt.NDArray[np.intp]) -> None:
    """In place: each step's absolute deviation from its episode's median."""
    segments.apply_each(step, center, n, np.subtract)
    np.abs(step, out=step)


class ActionJumps(Check):
    """RDV954: sudden jumps in the actions, far beyond the episode's usual step."""

    id = "RDV954"
    name = "quality.action_jumps"
    severity = Severity.INFO
    evidence = Evidence.STATISTICAL
    description = "frames where the mean over dims of |Δa - median| / (1.4826 MAD) exceeds z_max (12)"
    hint = "a teleop glitch or a resumed stream: inspect the frames named, smooth or cut"
    defaults: ClassVar[Mapping[str, float]] = {"z_max": 12.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._scratch = segments.Scratch()
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        starts, n = shard.starts, shard.lengths
        counts, total = np.maximum(n - 1, 0), len(shard.timestamps)
        screen = np.zeros(len(starts), dtype=bool)
        for key in self.ds.actions():
            values = shard.vectors[key]
            if not total:
                break
            # steps and their offsets from the median are finite when the values are, far from overflow
            finite = _finite(shard, key)
            even = segments.step_deviations(values, starts, n, self._scratch, finite=finite)
            if even is None:
                offset = self._steps(values)
                center = segments.segment_medians(offset, starts, counts, self._scratch, finite=finite)
                _deviations(offset, center, n)
                deviation = segments.segment_medians(offset, starts, counts, self._scratch, finite=finite)
                largest = segments.segment_max(offset, starts, counts)
            else:  # episodes of one length: from one block of the steps, no step columns
                center, deviation, largest = even
            spread = 1.4826 * deviation
            usable = spread > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                # the mean over usable dims of offset / spread, as one weighted sum per frame
                weight = np.where(usable, 1.0 / spread, 0.0) / usable.sum(axis=1, keepdims=True)
                # no frame's weighted sum exceeds the weighted sum of each dim's largest offset in the episode:
                # only a shard where that bound reaches the threshold needs the sums frame by frame
                bound = (weight * largest).sum(axis=1)
                far = np.zeros(len(starts), dtype=bool)
                if bool(np.any(bound > self.params["z_max"] * _MARGIN)):
                    offset = self._steps(values)
                    _deviations(offset, center, n)
                    segments.apply_each(offset, weight, n, np.multiply)
                    z = offset.sum(axis=1)
                    far = segments.segment_any(z > self.params["z_max"] * _MARGIN, starts, counts)
            holes = np.isnan(center).any(axis=1) | np.isnan(spread).any(axis=1)  # NaN: let the episode decide
            frozen = (spread == 0).any(axis=1)  # mostly repeated steps: the episode measures the moving ones
            screen |= ((far & usable.any(axis=1)) | holes | frozen) & (counts >= 9)
        for ep, hit in zip(shard.episodes, screen.tolist(), strict=True):
            if hit:
                yield from self.episode(ep)

    def _steps(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The shard's steps in the check's buffer: row t is the step after frame t of its episode (an episode's
        last row steps into the next episode and is not counted)."""
        total = len(values)
        step = self._scratch.columns("step", total, values.shape[1])
        np.subtract(values[1:], values[:-1], out=step[: total - 1])
        step[total - 1 :] = 0.0
        return step

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for key in self.ds.actions():
            values = ep.vectors[key]
            if len(values) < 10:
                continue
            step = np.diff(values, axis=0)
            center = np.median(step, axis=0)
            spread = 1.4826 * np.median(np.abs(step - center), axis=0)  # robust: a spike does not hide itself
            counted = np.ones(step.shape, dtype=bool)
            for d in np.flatnonzero((spread == 0) & np.isfinite(center)).tolist():
                # over half the steps repeat (a frozen stretch): the dim is measured on its moving steps, so that
                # the jump out of the freeze (a resumed stream) is seen
                moving = step[:, d] != center[d]
                if moving.sum() >= _MIN_MOVING:
                    center[d] = np.median(step[moving, d])
                    spread[d] = 1.4826 * np.median(np.abs(step[moving, d] - center[d]))
                    counted[:, d] = moving
            usable = spread > 0
            if not usable.any():
                continue
            z = (np.where(counted, np.abs(step - center), 0.0)[:, usable] / spread[usable]).mean(axis=1)
            jumps = np.flatnonzero(z > self.params["z_max"])
            if jumps.size:
                yield self.finding(
                    f"{key} jumps {jumps.size} times (mean z up to {float(z.max()):.3g}) after frames "
                    f"{list_frames(jumps)}",
                    ep=ep,
                    feature=key,
                    frames=(int(jumps[0]), int(jumps[0]) + 2),
                    statistic="mean over dims of |Δa - median| / (1.4826 MAD)",
                    threshold=self.params["z_max"],
                    measured=float(z.max()),
                )

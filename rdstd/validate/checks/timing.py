"""Checks on time: monotonic timestamps from 0, intervals against the declared rate, the clock's provenance."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

import numpy as np

from rdstd.schema.vocabulary import ClockKind
from rdstd.validate import segments
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView, list_frames
from rdstd.validate.model import Evidence, Finding, Severity

#: Whole-shard screens flag an episode below this fraction of a threshold already: the episode's own check decides.
_MARGIN = 0.9


class TimestampsMonotonic(Check):
    """RDV201: timestamps start at 0 and strictly increase."""

    id = "RDV201"
    name = "time.monotonic"
    severity = Severity.ERROR
    evidence = Evidence.DETERMINISTIC
    description = "timestamps must start at 0.0 and strictly increase within an episode"
    hint = "reset t0 per episode; re-stamp frames from the source clock"

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        # every episode's first time and steps at once: only the episodes that break the rule are looked at
        starts, n, ts = shard.starts, shard.lengths, shard.timestamps
        hit = np.zeros(len(n), dtype=bool)
        filled = n > 0
        hit[filled] = ts[starts[filled]] != 0.0
        hit |= segments.segment_any(~(shard.intervals > 0), starts, np.maximum(n - 1, 0))
        for ep, h in zip(shard.episodes, hit.tolist(), strict=True):
            if h:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        ts = ep.timestamps
        if ts.size and ts[0] != 0.0:
            yield self.finding(
                f"first timestamp is {ts[0]:.6g} s, not 0", ep=ep, frames=(0, 1), measured=float(ts[0]), expected=0.0
            )
        back = np.flatnonzero(~(np.diff(ts) > 0))
        if back.size:
            yield self.finding(
                f"timestamps do not increase after frames {list_frames(back)}",
                ep=ep,
                frames=(int(back[0]), int(back[-1]) + 2),
                measured=int(back.size),
                expected=0,
            )


class TimestampRate(Check):
    """RDV202: frame intervals against the declared rate: the median, dropped frames, jitter."""

    id = "RDV202"
    name = "time.rate"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    description = (
        "median interval within median_tolerance of 1/rate; gaps over drop_factor/rate are dropped frames; "
        "jitter (CV) over max_jitter_cv is info; unverifiable without a rate or with synthesized times"
    )
    hint = "drops at the frames named: resample, mark the gaps, or fix the declared rate"
    defaults: ClassVar[Mapping[str, float]] = {"median_tolerance": 0.02, "drop_factor": 1.5, "max_jitter_cv": 0.1}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._rate = dataset.rate_hz
        self._synthesized = dataset.manifest.clock.kind == ClockKind.SYNTHESIZED
        self._scratch = segments.Scratch()
        if self._rate is None:
            yield self.finding(
                "no declared frame rate: intervals cannot be checked",
                severity=Severity.INFO,
                evidence=Evidence.UNVERIFIABLE,
                hint="declare rate_hz in the converter spec",
            )
        elif self._synthesized:
            yield self.finding(
                f"timestamps were synthesized from {self._rate:g} Hz: they cannot show drops or the real rate",
                severity=Severity.INFO,
                evidence=Evidence.UNVERIFIABLE,
                hint="map the source's measured timestamps if it has them",
            )

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        if self._rate is None or self._synthesized:
            return
        period = 1.0 / self._rate
        starts, counts = shard.starts, np.maximum(shard.lengths - 1, 0)
        dt = shard.intervals
        median = segments.segment_medians(dt, starts, counts, self._scratch)
        with np.errstate(invalid="ignore"):
            screen = np.abs(median - period) / period > self.params["median_tolerance"] * _MARGIN
            screen |= np.isnan(median) | segments.segment_any(dt > self.params["drop_factor"] * period, starts, counts)
            mean = segments.range_sum(dt, starts, starts + counts) / np.maximum(counts, 1)
            squares = np.multiply(dt, dt, out=self._scratch.vector("squares", len(dt)))
            square = segments.range_sum(squares, starts, starts + counts) / np.maximum(counts, 1)
            cv = np.sqrt(np.maximum(square - mean * mean, 0.0)) / mean
            screen |= ~(cv <= self.params["max_jitter_cv"] * _MARGIN)  # NaN (a zero mean) goes to the detail too
        for ep, hit in zip(shard.episodes, (screen & (shard.lengths >= 3)).tolist(), strict=True):
            if hit:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if self._rate is None or self._synthesized or ep.length < 3:
            return
        period = 1.0 / self._rate
        dt = np.diff(ep.timestamps)
        median = float(np.median(dt))
        error = abs(median - period) / period
        if error > self.params["median_tolerance"]:
            yield self.finding(
                f"median interval {median:.6g} s ({1 / median if median > 0 else float('inf'):.4g} Hz) vs declared "
                f"{period:.6g} s ({self._rate:g} Hz)",
                ep=ep,
                frames=(0, ep.length),
                statistic="relative error of the median interval",
                threshold=self.params["median_tolerance"],
                measured=median,
                expected=period,
                hint="the declared rate is wrong, or the clock is: fix rate_hz or the timestamps",
            )
        gaps = np.flatnonzero(dt > self.params["drop_factor"] * period)
        if gaps.size:
            missing = int(np.round(dt[gaps] / period).sum() - gaps.size)
            yield self.finding(
                f"{gaps.size} gaps over {self.params['drop_factor']:g}/rate (about {missing} dropped frames) after "
                f"frames {list_frames(gaps)}",
                ep=ep,
                frames=(int(gaps[0]), int(gaps[0]) + 2),
                statistic="interval / declared period",
                threshold=self.params["drop_factor"],
                measured=float(dt[gaps].max() / period),
                expected=1.0,
            )
        cv = float(np.std(dt) / np.mean(dt)) if np.mean(dt) > 0 else 0.0
        if cv > self.params["max_jitter_cv"] and not gaps.size:
            yield self.finding(
                f"interval jitter CV {cv:.3f}",
                ep=ep,
                frames=(0, ep.length),
                statistic="coefficient of variation of the intervals",
                threshold=self.params["max_jitter_cv"],
                measured=cv,
                severity=Severity.INFO,
            )


class ClockProvenance(Check):
    """RDV203: the clock says what it is; 'measured' times that are an exact grid look synthesized."""

    id = "RDV203"
    name = "time.clock"
    severity = Severity.INFO
    evidence = Evidence.STATISTICAL
    description = (
        "an unknown clock; a 'measured' clock whose intervals are all identical up to float32 rounding "
        "(looks synthesized)"
    )
    hint = "say in the converter spec whether timestamps are measured or synthesized"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._grid = 0
        self._seen = 0
        if dataset.manifest.clock.kind == ClockKind.UNKNOWN:
            yield self.finding(
                "the clock is unknown: timestamps may be measured or synthesized", evidence=Evidence.UNVERIFIABLE
            )

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        long = shard.lengths >= 3
        self._seen += int(long.sum())
        if self.ds.manifest.clock.kind != ClockKind.MEASURED or self._grid < self._seen - int(long.sum()):
            return ()  # no finding can come: only a measured clock with every episode on a grid reports
        starts, counts = shard.starts, np.maximum(shard.lengths - 1, 0)
        dt = shard.intervals
        median = segments.segment_medians(dt, starts, counts)
        off = segments.segment_max(np.abs(dt - segments.spread(median, shard.lengths)[: len(dt)]), starts, counts)
        last = shard.timestamps[np.maximum(starts + shard.lengths - 1, 0)] if len(dt) else np.zeros(len(starts))
        rounding = 2 * np.spacing(np.maximum(1.0, last).astype(np.float32)).astype(np.float64) + 1e-9
        self._grid += int((long & (off <= rounding)).sum())
        return ()

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if ep.length >= 3:
            dt = np.diff(ep.timestamps)
            self._seen += 1
            # an exact grid, up to the rounding of times stored as float32 (LeRobot writes frame_index / fps)
            rounding = 2 * float(np.spacing(np.float32(max(1.0, float(ep.timestamps[-1]))))) + 1e-9
            self._grid += int(float(np.abs(dt - np.median(dt)).max()) <= rounding)
        return ()

    def end(self) -> Iterable[Finding]:
        if self.ds.manifest.clock.kind == ClockKind.MEASURED and self._seen and self._grid == self._seen:
            yield self.finding(
                f"the clock is declared measured, but every interval of all {self._seen} episodes is identical "
                "up to float32 rounding: the times look synthesized from a rate (LeRobot writes frame_index / fps), "
                "so they cannot show drops or the real rate",
                statistic="episodes with identical intervals",
                measured=self._grid,
                expected=f"< {self._seen}",
            )

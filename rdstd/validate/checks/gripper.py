"""Gripper checks: the declared kind (absolute position vs relative command) and polarity (which end opens)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

import numpy as np

from rdstd.schema.features import GripperConvention
from rdstd.schema.vocabulary import GripperKind, GripperOpen
from rdstd.validate import segments
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView
from rdstd.validate.model import Evidence, Finding, Severity


def _grippers(dataset: DatasetView) -> list[tuple[str, GripperConvention]]:
    return [(k, g) for k, f in dataset.vectors.items() for g in f.grippers]


class GripperKindFit(Check):
    """RDV701: a gripper declared absolute whose values are relative commands (+1/0/-1, mostly 0), or the reverse."""

    id = "RDV701"
    name = "gripper.kind"
    severity = Severity.ERROR
    evidence = Evidence.STATISTICAL
    description = (
        "absolute gripper with values only in {-1, 0, 1} and 0 the most common (a relative command); relative "
        "gripper with values outside {-1, 0, 1}"
    )
    hint = "relative toggles are commands, not positions: declare kind relative (convert with to_absolute if needed)"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._counts = {(k, g.dim): np.zeros(5, dtype=np.int64) for k, g in _grippers(dataset)}
        self._first: dict[tuple[str, int], tuple[int, str]] = {}
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        for (key, dim), counts in self._counts.items():
            col = shard.vectors[key][:, dim]
            # the finite values (all of them, no copy, when the shard's extent says so)
            values = col[np.isfinite(col)] if shard.extent(key).bad[:, dim].any() else col
            neg, zero, pos = (int(np.count_nonzero(values == v)) for v in (-1.0, 0.0, 1.0))
            counts += [int(values.size), neg, zero, pos, 0]
            if (key, dim) not in self._first:
                other = np.isfinite(col) & ~np.isin(col, (-1.0, 0.0, 1.0))
                hit = np.flatnonzero(segments.segment_any(other, shard.starts, shard.lengths))
                if hit.size:
                    ep = shard.episodes[int(hit[0])]
                    self._first[(key, dim)] = (ep.index, ep.episode_id)
        return ()

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for (key, dim), counts in self._counts.items():
            col = ep.vectors[key][:, dim]
            col = col[np.isfinite(col)]
            ternary = np.isin(col, (-1.0, 0.0, 1.0))
            counts += [col.size, int((col == -1).sum()), int((col == 0).sum()), int((col == 1).sum()), 0]
            if not ternary.all() and (key, dim) not in self._first:
                self._first[(key, dim)] = (ep.index, ep.episode_id)
        return ()

    def end(self) -> Iterable[Finding]:
        kinds = {(k, g.dim): g.kind for k, g in _grippers(self.ds)}
        for (key, dim), (total, neg, zero, pos, _) in self._counts.items():
            if total == 0:
                continue
            ternary = neg + zero + pos == total
            kind = kinds[(key, dim)]
            looks_relative = ternary and neg > 0 and zero >= max(neg, pos)
            if kind != GripperKind.RELATIVE and looks_relative:
                yield self.finding(
                    f"{key}[{dim}] is declared {kind} but holds only -1/0/+1 with 0 most common ({zero / total:.0%} "
                    "zeros): it looks like a relative command",
                    feature=key,
                    dims=[dim],
                    statistic="fraction of values in {-1, 0, 1}",
                    threshold=1.0,
                    measured=1.0,
                    expected=f"a position ({kind})",
                    severity=None if kind == GripperKind.ABSOLUTE else Severity.INFO,
                )
            elif kind == GripperKind.RELATIVE and not ternary:
                first = self._first.get((key, dim))
                yield self.finding(
                    f"{key}[{dim}] is declared relative (+1/0/-1) but {total - neg - zero - pos} of {total} values are "
                    "other numbers: it looks like a position",
                    episode=first,
                    feature=key,
                    dims=[dim],
                    measured=float((neg + zero + pos) / total),
                    expected=1.0,
                    statistic="fraction of values in {-1, 0, 1}",
                    severity=Severity.WARNING,
                    hint="declare kind absolute with its range and polarity",
                )


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two series (0 when either is constant or not finite)."""
    xc, yc = x - x.mean(), y - y.mean()
    den = float(np.sqrt(np.dot(xc, xc) * np.dot(yc, yc)))
    c = float(np.dot(xc, yc)) / den if den > 0 else 0.0
    return c if np.isfinite(c) else 0.0


def _oriented(values: np.ndarray, grip: GripperConvention) -> np.ndarray:
    return values if grip.open == GripperOpen.HIGH else -values


class GripperPolarity(Check):
    """RDV702: an action gripper and a state gripper whose declared polarities disagree with their correlation."""

    id = "RDV702"
    name = "gripper.polarity"
    severity = Severity.ERROR
    evidence = Evidence.STATISTICAL
    description = (
        "corr(action gripper_t, state gripper_t+k) over k = 0..5, each oriented by its declared polarity: "
        "below -min_corr the polarities disagree (one of them is inverted)"
    )
    hint = "one gripper is inverted (1 = closed?): apply 1 - g to it, or fix its declared polarity (open)"
    defaults: ClassVar[Mapping[str, float]] = {"min_corr": 0.5, "max_lead": 5.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        known = [
            (k, g) for k, g in _grippers(dataset) if g.kind == GripperKind.ABSOLUTE and g.open != GripperOpen.UNKNOWN
        ]
        actions = dataset.actions()
        self._acts = [(k, g) for k, g in known if k in actions]
        self._states = [(k, g) for k, g in known if k in dataset.states()]
        self._scratch = segments.Scratch()
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        if not self._acts or not self._states:
            return
        starts, n, rows = shard.starts, shard.lengths, len(shard.timestamps)
        s_key, s_grip = self._states[0]
        high = GripperOpen.HIGH
        s = segments.centred_each(
            shard.vectors[s_key][:, s_grip.dim], starts, n, self._scratch.vector("s", rows), negated=s_grip.open != high
        )
        screen = np.zeros(len(n), dtype=bool)
        for a_key, a_grip in self._acts:
            a = segments.centred_each(
                shard.vectors[a_key][:, a_grip.dim],
                starts,
                n,
                self._scratch.vector("a", rows),
                negated=a_grip.open != high,
            )
            lagged = segments.LaggedMoments(a, s, starts, n, self._scratch, int(self.params["max_lead"]))
            for k in range(int(self.params["max_lead"]) + 1):
                sxx, syy, sxy = lagged.comoments(k)
                with np.errstate(divide="ignore", invalid="ignore"):
                    c = sxy / np.sqrt(sxx * syy)
                # screened in below a fraction of the threshold: the episode's own correlations decide
                screen |= (c < -self.params["min_corr"] * 0.9) & (k <= n - 3)
        for ep, hit in zip(shard.episodes, (screen & (n >= 10)).tolist(), strict=True):
            if hit:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if not self._acts or not self._states or ep.length < 10:
            return
        s_key, s_grip = self._states[0]
        s = _oriented(ep.vectors[s_key][:, s_grip.dim], s_grip)
        for a_key, a_grip in self._acts:
            a = _oriented(ep.vectors[a_key][:, a_grip.dim], a_grip)
            best, lag = 0.0, 0
            for k in range(min(int(self.params["max_lead"]), ep.length - 3) + 1):
                c = _corr(a[: ep.length - k], s[k:])
                if abs(c) > abs(best):
                    best, lag = c, k
            if best < -self.params["min_corr"]:
                yield self.finding(
                    f"{a_key}[{a_grip.dim}] (open {a_grip.open}) and {s_key}[{s_grip.dim}] (open {s_grip.open}) move "
                    f"against each other (corr {best:.2f} at a lead of {lag} frames): one polarity is inverted",
                    ep=ep,
                    feature=a_key,
                    dims=[a_grip.dim],
                    frames=(0, ep.length),
                    statistic="correlation of the oriented grippers",
                    threshold=-self.params["min_corr"],
                    measured=best,
                    expected=f"> {self.params['min_corr']:g}",
                )

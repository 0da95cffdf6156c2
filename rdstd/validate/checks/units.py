"""Checks that declared units fit the values: angles in rad, lengths in m, wrap-around at ±π."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rdstd.schema.embodiment import JointType
from rdstd.schema.vocabulary import Role, Unit
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView, frame_span
from rdstd.validate.model import Evidence, Finding, Severity

_ANGLE_ROLES = {Role.JOINT_POSITION, Role.EEF_ROTATION, Role.HAND_JOINT_POSITION, Role.BASE_POSE, Role.UNKNOWN}


def _continuous(dataset: DatasetView) -> set[str]:
    return {j.name for e in dataset.manifest.embodiments for j in e.joints if j.type == JointType.CONTINUOUS}


def _angle_dims(dataset: DatasetView) -> list[tuple[str, int]]:
    skip = _continuous(dataset)
    return [
        (key, d)
        for key, f in dataset.vectors.items()
        for d, dim in enumerate(f.dims)
        if dim.unit == Unit.RAD and dim.role in _ANGLE_ROLES and dim.name not in skip
    ]


def _over(ep: EpisodeView, dims: list[tuple[str, int]], limit: float) -> list[tuple[str, int]]:
    """The (feature, dim) of ``dims`` whose largest finite |value| in the episode is above ``limit`` (one pass per
    feature, so the common case, nothing above, costs one max)."""
    by_key: dict[str, list[int]] = {}
    for key, d in dims:
        by_key.setdefault(key, []).append(d)
    found = []
    for key, ds in by_key.items():
        block = np.abs(ep.vectors[key][:, ds])
        if block.size == 0:
            continue
        top = np.max(np.where(np.isfinite(block), block, 0.0), axis=0)
        found += [(key, d) for d, t in zip(ds, top, strict=True) if t > limit]
    return found


def _over_shard(shard: ShardView, dims: list[tuple[str, int]], limit: float) -> list[EpisodeView]:
    """The episodes of the shard for which :func:`_over` finds something (a per-episode max over the shard)."""
    hit = np.zeros(len(shard.episodes), dtype=bool)
    by_key: dict[str, list[int]] = {}
    for key, d in dims:
        by_key.setdefault(key, []).append(d)
    for key, ds in by_key.items():
        extent = shard.extent(key)
        top = np.maximum(np.maximum(extent.high[:, ds], -extent.low[:, ds]), 0.0)  # the largest finite |value|
        hit |= (top > limit).any(axis=1)
    return [ep for ep, h in zip(shard.episodes, hit.tolist(), strict=True) if h]


def classify_angles(values: np.ndarray) -> str:
    """What out-of-range angle values look like: encoder ticks, degrees, a 0-100 scale, or unknown."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "unknown"
    top = float(np.abs(finite).max())
    if np.all(finite == np.round(finite)) and finite.min() >= 0 and top <= 4096:
        return "encoder ticks"
    if top <= 100.5:
        return "degrees (or a ±100 normalized scale)"
    if top <= 360.5:
        return "degrees"
    return "an unknown scale"


class _Magnitude(Check):
    """A check that the magnitude of some dims (``self._dims``) stays below a limit: a high quantile of |value| per
    episode (RDV301, RDV302); the episodes are screened by their extents first."""

    _dims: list[tuple[str, int]]

    def limit(self) -> float:
        """The largest |value| the declared unit allows."""
        raise NotImplementedError

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        for ep in _over_shard(shard, self._dims, self.limit()):
            yield from self.episode(ep)

    def beyond(self, ep: EpisodeView) -> Iterator[tuple[str, int, npt.NDArray[np.float64], float]]:
        """(feature, dim, |values|, their ``quantile``) of the episode's dims whose quantile is above the limit."""
        limit = self.limit()
        for key, d in _over(ep, self._dims, limit):
            magnitude = np.abs(ep.vectors[key][:, d])
            stat = float(np.quantile(magnitude[np.isfinite(magnitude)], self.params["quantile"]))
            if stat > limit:
                yield key, d, magnitude, stat

    def too_large(
        self,
        ep: EpisodeView,
        key: str,
        d: int,
        magnitude: npt.NDArray[np.float64],
        stat: float,
        message: str,
        unit: str,
    ) -> Finding:
        """The finding of a dim whose |value| reaches ``stat`` (``message`` says what it looks like)."""
        limit = self.limit()
        return self.finding(
            message,
            ep=ep,
            feature=key,
            dims=[d],
            frames=frame_span(magnitude > limit),
            statistic=f"q{self.params['quantile']:g} of |value|",
            threshold=limit,
            measured=stat,
            expected=f"<= {limit:.4g} {unit}" if unit == "rad" else f"<= {limit:g} {unit}",
        )


class AngleUnits(_Magnitude):
    """RDV301: values of a dimension declared in radians that cannot be radians (degrees, ticks, percent)."""

    id = "RDV301"
    name = "units.angle"
    severity = Severity.ERROR
    evidence = Evidence.STATISTICAL
    description = "a rad dimension whose p99.9 |value| exceeds 2π + margin: degrees, ticks or a 0-100 scale"
    hint = "convert degrees to radians on the angle dims only (a gripper has its own encoding), or fix the unit"
    defaults: ClassVar[Mapping[str, float]] = {"margin_rad": 0.1, "quantile": 0.999}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._dims = _angle_dims(dataset)
        return ()

    def limit(self) -> float:
        return 2 * math.pi + self.params["margin_rad"]

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for key, d, magnitude, stat in self.beyond(ep):
            looks = classify_angles(ep.vectors[key][:, d])
            name = self.ds.vectors[key].dims[d].name
            message = f"{key}[{name}] is declared rad but reaches |{stat:.4g}| (beyond 2π): values look like {looks}"
            yield self.too_large(ep, key, d, magnitude, stat, message, "rad")


class LengthScale(_Magnitude):
    """RDV302: end-effector positions declared in metres whose magnitude looks like mm or cm."""

    id = "RDV302"
    name = "units.length"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    description = "an eef_position dimension in m whose p99 |value| exceeds max_abs_m (mm or cm labelled m)"
    hint = "values look like mm (or cm): convert to m, or declare the unit the source uses"
    defaults: ClassVar[Mapping[str, float]] = {"max_abs_m": 3.0, "quantile": 0.99}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._dims = [
            (key, d)
            for key, f in dataset.vectors.items()
            for d, dim in enumerate(f.dims)
            if dim.unit == Unit.M and dim.role == Role.EEF_POSITION
        ]
        return ()

    def limit(self) -> float:
        return self.params["max_abs_m"]

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for key, d, magnitude, stat in self.beyond(ep):
            guess = "mm" if stat > 100 * self.limit() / 3 else "cm"
            message = (
                f"{key}[{self.ds.vectors[key].dims[d].name}] is declared m but reaches {stat:.4g}: looks like {guess}"
            )
            yield self.too_large(ep, key, d, magnitude, stat, message, "m")


class AngleWrap(Check):
    """RDV303: jumps of more than π between frames next to ±π (a wrapped angle)."""

    id = "RDV303"
    name = "units.wrap"
    severity = Severity.WARNING
    evidence = Evidence.DETERMINISTIC
    description = "an angle in rad jumping by more than π where it is near ±π (wrap-around discontinuity)"
    hint = "np.unwrap the angle, or store a quaternion; wrap deltas to (-π, π]"
    defaults: ClassVar[Mapping[str, float]] = {"near_pi": 0.8}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._dims = _angle_dims(dataset)
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        for ep in _over_shard(shard, self._dims, self.params["near_pi"] * math.pi):
            yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        edge = self.params["near_pi"] * math.pi
        over = set(_over(ep, self._dims, 2 * math.pi + 0.1))  # not radians at all: RDV301 says so
        for key, d in _over(ep, self._dims, edge):
            col = ep.vectors[key][:, d]
            if col.size < 2 or (key, d) in over:
                continue
            jump = np.abs(np.diff(col)) > math.pi
            near = (np.abs(col[:-1]) > edge) & (np.abs(col[1:]) > edge)
            wraps = np.flatnonzero(jump & near)
            if wraps.size:
                yield self.finding(
                    f"{key}[{self.ds.vectors[key].dims[d].name}] wraps around ±π {wraps.size} times",
                    ep=ep,
                    feature=key,
                    dims=[d],
                    frames=(int(wraps[0]), int(wraps[0]) + 2),
                    measured=int(wraps.size),
                    expected=0,
                )

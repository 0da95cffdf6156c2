"""Checks on the values themselves: non-finite numbers, episode structure, joint limits, constant dimensions."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rdstd.schema.embodiment import JointType
from rdstd.schema.vocabulary import Role
from rdstd.validate import urdf
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView, frame_span, list_frames
from rdstd.validate.model import Evidence, Finding, Severity

#: Screens over whole shards flag an episode a little inside a threshold (their arithmetic differs from the
#: episode's own check by rounding); the episode's own check decides.
_SCREEN = 0.999


class NonFinite(Check):
    """RDV102: NaN or infinity in any vector feature."""

    id = "RDV102"
    name = "values.non_finite"
    severity = Severity.ERROR
    evidence = Evidence.DETERMINISTIC
    description = "NaN or ±inf in a vector feature (it poisons normalization statistics)"
    hint = "drop or mask these frames, or declare the sensor as optional; NaN poisons normalization stats"

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        hit = np.zeros(len(shard.episodes), dtype=bool)
        for key in shard.vectors:
            hit |= shard.extent(key).bad.any(axis=1)
        for ep, h in zip(shard.episodes, hit.tolist(), strict=True):
            if h:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for key, values in ep.vectors.items():
            bad: npt.NDArray[np.bool_] = ~np.isfinite(values)
            if not bad.any():
                continue
            dims = [int(d) for d in np.flatnonzero(bad.any(axis=0))]
            per_frame: npt.NDArray[np.bool_] = np.asarray(bad.any(axis=1))
            rows = np.flatnonzero(per_frame)
            yield self.finding(
                f"{int(bad.sum())} non-finite values in {key} dims {dims} at frames {list_frames(rows)}",
                ep=ep,
                feature=key,
                dims=dims,
                frames=frame_span(per_frame),
                measured=int(bad.sum()),
                expected=0,
            )


class EpisodeStructure(Check):
    """RDV103: episodes too short to learn from; a first action of all zeros (Bridge's placeholder)."""

    id = "RDV103"
    name = "structure.episode"
    severity = Severity.WARNING
    evidence = Evidence.DETERMINISTIC
    description = "episodes shorter than min_frames; an all-zero first action followed by non-zero ones"
    hint = "drop short episodes (or set min_frames); drop the first step when its action is a placeholder"
    defaults: ClassVar[Mapping[str, float]] = {"min_frames": 2.0}

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        # short episodes, and episodes whose first action is all zeros, at once: only those are looked at
        n = shard.lengths
        hit = n < self.params["min_frames"]
        longer = n > 1
        for key in self.ds.actions():
            hit[longer] |= ~(shard.vectors[key][shard.starts[longer]] != 0).any(axis=1)
        for ep, h in zip(shard.episodes, hit.tolist(), strict=True):
            if h:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if ep.length < self.params["min_frames"]:
            yield self.finding(
                f"episode has {ep.length} frames (fewer than {int(self.params['min_frames'])})",
                ep=ep,
                frames=(0, ep.length),
                measured=ep.length,
                expected=f">= {int(self.params['min_frames'])}",
            )
        for key in self.ds.actions():
            values = ep.vectors[key]
            if len(values) > 1 and not values[0].any() and values[1:].any():
                yield self.finding(
                    f"first action of {key} is all zeros while later ones are not (a placeholder?)",
                    ep=ep,
                    feature=key,
                    frames=(0, 1),
                    severity=Severity.INFO,
                    hint="drop the first step, or relabel actions from state differences",
                )


class JointLimits(Check):
    """RDV104: joint positions outside the embodiment's declared limits (with a margin)."""

    id = "RDV104"
    name = "values.joint_limits"
    severity = Severity.ERROR
    evidence = Evidence.DETERMINISTIC
    description = "joint positions outside the embodiment's joint limits (error above max_fraction, else warning)"
    hint = "the limits describe another representation (degrees? delta?) or are stale; fix the data or the limits"
    defaults: ClassVar[Mapping[str, float]] = {"margin_rad": 0.035, "max_fraction": 0.01}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._limits: dict[str, dict[str, tuple[float, float]]] = {}
        #: Per embodiment, the joints whose limits come from its URDF (the embodiment's own limits win).
        self._from_urdf: dict[str, str] = {}
        found: list[Finding] = []
        for emb in dataset.manifest.embodiments:
            declared = {
                j.name: (j.lower, j.upper)
                for j in emb.joints
                if j.lower is not None and j.upper is not None and j.type != JointType.CONTINUOUS
            }
            unlimited = {j.name for j in emb.joints if j.type == JointType.CONTINUOUS}
            if emb.urdf:
                try:
                    joints = urdf.parse(urdf.resolve(emb.urdf, dataset.path))
                except urdf.UrdfUnusable as exc:
                    found.append(
                        self.finding(
                            f"embodiment {emb.name} names the URDF {emb.urdf!r}, which cannot be used: {exc}; joint "
                            "limits are checked against the embodiment's own limits only",
                            severity=Severity.WARNING,
                            evidence=Evidence.UNVERIFIABLE,
                            hint="put the URDF in the dataset folder and name it by a relative path in the embodiment",
                        )
                    )
                    joints = {}
                for name, joint in joints.items():
                    if joint.type == "continuous":
                        unlimited.add(name)
                    elif joint.limited and name not in declared and joint.lower is not None and joint.upper is not None:
                        declared[name] = (joint.lower, joint.upper)
                        self._from_urdf[f"{emb.name}/{name}"] = emb.urdf
            self._limits[emb.name] = {name: span for name, span in declared.items() if name not in unlimited}
        return found

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        bounds = [lim for lim in self._limits.values() if lim]
        if not bounds:
            return
        margin = self.params["margin_rad"]
        hit = np.zeros(len(shard.episodes), dtype=bool)
        for key, feature in self.ds.vectors.items():
            for d, dim in enumerate(feature.dims):
                spans = [lim[dim.name] for lim in bounds if dim.name in lim]
                if dim.role != Role.JOINT_POSITION or not spans:
                    continue
                # the narrowest limits of any embodiment: every episode out of its own limits is screened in
                low, high = max(lo for lo, _ in spans), min(hi for _, hi in spans)
                extent = shard.extent(key)
                hit |= (extent.low[:, d] < low - margin) | (extent.high[:, d] > high + margin) | extent.bad[:, d]
        for ep, h in zip(shard.episodes, hit.tolist(), strict=True):
            if h:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        limits = self._limits.get(ep.embodiment) or (
            next(iter(self._limits.values())) if len(self._limits) == 1 else {}
        )
        if not limits or ep.length == 0:
            return
        margin = self.params["margin_rad"]
        for key, feature in self.ds.vectors.items():
            for d, dim in enumerate(feature.dims):
                if dim.role != Role.JOINT_POSITION or dim.name not in limits:
                    continue
                low, high = limits[dim.name]
                col = ep.vectors[key][:, d]
                out = (col < low - margin) | (col > high + margin)
                if not out.any():
                    continue
                fraction = float(out.mean())
                level = Severity.ERROR if fraction > self.params["max_fraction"] else Severity.WARNING
                origin = self._from_urdf.get(f"{ep.embodiment}/{dim.name}") or (
                    self._from_urdf.get(f"{next(iter(self._limits))}/{dim.name}") if len(self._limits) == 1 else None
                )
                where = f" (from the URDF {origin})" if origin else ""
                yield self.finding(
                    f"{key}[{dim.name}] is outside its limits [{low:.4g}, {high:.4g}]{where} in {fraction:.1%} of "
                    f"frames (range {np.nanmin(col):.4g} .. {np.nanmax(col):.4g})",
                    ep=ep,
                    feature=key,
                    dims=[d],
                    frames=frame_span(out),
                    statistic="fraction of frames outside the limits",
                    threshold=self.params["max_fraction"],
                    measured=fraction,
                    expected=f"[{low:.4g}, {high:.4g}]",
                    severity=level,
                )


class ConstantDimension(Check):
    """RDV105: a dimension with one value across the whole dataset (normalizing it divides by zero)."""

    id = "RDV105"
    name = "values.constant"
    severity = Severity.WARNING
    evidence = Evidence.DETERMINISTIC
    description = "dimensions whose value never changes across the dataset (zero variance: NaN after normalization)"
    hint = "drop the dimension, or keep it out of normalization (padding?)"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._low = {k: np.full(f.size, np.inf) for k, f in dataset.vectors.items()}
        self._high = {k: np.full(f.size, -np.inf) for k, f in dataset.vectors.items()}
        self._frames = 0
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        # the shard's rows are its episodes' rows: its finite min and max are theirs
        self._frames += len(shard.timestamps)
        if not len(shard.episodes):
            return ()
        for key in self._low:
            extent = shard.extent(key)
            self._low[key] = np.fmin(self._low[key], extent.low.min(axis=0))
            self._high[key] = np.fmax(self._high[key], extent.high.max(axis=0))
        return ()

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if ep.length == 0:
            return ()
        self._frames += ep.length
        for key, values in ep.vectors.items():
            low, high = values.min(axis=0), values.max(axis=0)
            if not (np.isfinite(low).all() and np.isfinite(high).all()):  # NaN or inf: RDV102 reports them
                finite = np.where(np.isfinite(values), values, np.nan)
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
                    low, high = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
            self._low[key] = np.fmin(self._low[key], low)
            self._high[key] = np.fmax(self._high[key], high)
        return ()

    def end(self) -> Iterable[Finding]:
        if self._frames < 2:
            return
        for key, low in self._low.items():
            dims = [int(d) for d in np.flatnonzero(np.isfinite(low) & (low == self._high[key]))]
            if dims:
                feature = self.ds.vectors[key]
                values = ", ".join(f"{low[d]:.6g}" for d in dims[:8])
                flags = all(feature.dims[d].role in (Role.FLAG, Role.REWARD) for d in dims)
                yield self.finding(
                    f"{key} dims {dims} never change over {self._frames} frames (values {values})",
                    feature=key,
                    dims=dims,
                    statistic="max - min over the dataset",
                    threshold=0.0,
                    measured=0.0,
                    expected="> 0",
                    severity=Severity.INFO if flags else None,
                )


class Outliers(Check):
    """RDV106: values more than ``z_max`` standard deviations from the dataset mean (from ``stats.json``)."""

    id = "RDV106"
    name = "values.outliers"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    description = "values over z_max (10) dataset standard deviations from the dataset mean (stats.json)"
    hint = "a unit or scale slip in these episodes (degrees?), a sensor glitch, or a spike: inspect and fix or drop"
    defaults: ClassVar[Mapping[str, float]] = {"z_max": 10.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._moments: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
        stats = dataset.stats()
        for key in dataset.vectors:
            entry = stats.get(key) if isinstance(stats, dict) else None
            if not isinstance(entry, dict) or "mean" not in entry or "std" not in entry:
                continue
            mean = np.array([np.nan if v is None else v for v in entry["mean"]], dtype=np.float64)
            std = np.array([np.nan if v is None else v for v in entry["std"]], dtype=np.float64)
            if mean.shape == std.shape == (dataset.vectors[key].size,):
                self._moments[key] = (mean, np.where(std > 0, std, np.nan))
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        limit = self.params["z_max"]
        hit = np.zeros(len(shard.episodes), dtype=bool)
        for key, (mean, std) in self._moments.items():
            extent = shard.extent(key)
            reach = _SCREEN * limit * std  # a little inside the limit: the episode's own check decides
            with np.errstate(invalid="ignore"):
                far = (extent.high - mean > reach) | (mean - extent.low > reach) | extent.bad
            hit |= far.any(axis=1)
        for ep, h in zip(shard.episodes, hit.tolist(), strict=True):
            if h:
                yield from self.episode(ep)

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        limit = self.params["z_max"]
        for key, (mean, std) in self._moments.items():
            with np.errstate(invalid="ignore"):
                far = np.abs(ep.vectors[key] - mean) > limit * std
            if not far.any():
                continue
            dims = [int(d) for d in np.flatnonzero(far.any(axis=0))]
            rows: npt.NDArray[np.bool_] = np.asarray(far.any(axis=1))
            with np.errstate(invalid="ignore"):
                z = float(np.nanmax(np.abs(ep.vectors[key][:, dims] - mean[dims]) / std[dims]))
            yield self.finding(
                f"{key} dims {dims}: {int(far.sum())} values over {limit:g} standard deviations from the dataset "
                f"mean (up to {z:.3g})",
                ep=ep,
                feature=key,
                dims=dims,
                frames=frame_span(rows),
                statistic="|value - mean| / std (dataset stats)",
                threshold=limit,
                measured=z,
            )

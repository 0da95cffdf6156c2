"""A transform buffer (static and dynamic edges) with ``lookup(target, source, t, max_extrapolation)``.

Edges are stored parent → child as in ROS TF: translation (x, y, z) and rotation quaternion (x, y, z, w), the pose
of the child frame in the parent frame. A lookup walks the tree from ``source`` up to the common ancestor and
down to ``target``; each dynamic edge is interpolated at ``t`` (linear translation, slerp rotation). Asking for a
time outside an edge's samples clamps to its first/last sample when that is within ``max_extrapolation_ns``,
else the lookup fails with the reason. Every lookup's extrapolation is returned so a report can state the largest.
Pure numpy; no ROS.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rdstd.streams.align import slerp

F64 = npt.NDArray[np.float64]


class TransformError(LookupError):
    """A lookup that cannot be answered (unknown frame, no path, too far outside an edge's samples)."""


@dataclass(frozen=True)
class Failure:
    """Lookups an edge could not answer: ``count`` times too far ``side`` (``before`` its first sample or
    ``after`` its last), the farthest ``worst_ns``. ``str()`` is the reason in words; failures of the same edge
    and side from lookups over parts of a recording merge (:meth:`merge`) into the failure of one lookup over all
    of it."""

    parent: str
    child: str
    side: str
    worst_ns: float
    count: int
    allowed_ns: int

    def __str__(self) -> str:
        where = "before its first" if self.side == "before" else "after its last"
        return (
            f"{self.parent}->{self.child}: up to {self.worst_ns / 1e6:.1f} ms {where} sample "
            f"(allowed {self.allowed_ns / 1e6:g} ms) at {self.count} time(s)"
        )

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies it: the edge and the side."""
        return (self.parent, self.child, self.side)

    def merge(self, other: Failure) -> Failure:
        """This failure and ``other`` (the same edge and side) as one."""
        return Failure(
            self.parent,
            self.child,
            self.side,
            max(self.worst_ns, other.worst_ns),
            self.count + other.count,
            self.allowed_ns,
        )


def quat_mul(a: F64, b: F64) -> F64:
    """Hamilton product of xyzw quaternions (rows)."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_rotate(q: F64, v: F64) -> F64:
    """``v`` rotated by unit quaternion ``q`` (xyzw)."""
    u = q[..., :3]
    w = q[..., 3:4]
    t = 2.0 * np.cross(u, v)
    return np.asarray(v + w * t + np.cross(u, t), dtype=np.float64)


def quat_inv(q: F64) -> F64:
    """Inverse of a unit quaternion."""
    return np.concatenate([-q[..., :3], q[..., 3:4]], axis=-1)


@dataclass
class Pose:
    """Translation and xyzw rotation (one pose, or rows of them)."""

    translation: F64
    rotation: F64

    def compose(self, other: Pose) -> Pose:
        """``self ∘ other``: other's pose expressed in self's parent frame."""
        return Pose(
            self.translation + quat_rotate(self.rotation, other.translation), quat_mul(self.rotation, other.rotation)
        )

    def inverse(self) -> Pose:
        """The inverse transform."""
        inv = quat_inv(self.rotation)
        return Pose(-quat_rotate(inv, self.translation), inv)


@dataclass
class Edge:
    """One parent → child edge: static (one sample) or dynamic (samples, sorted by time when looked up).

    Samples are stored compactly (8 bytes per number: ``array`` buffers, not Python objects per sample), so a long
    recording's TF costs 64 bytes a sample.
    """

    parent: str
    child: str
    static: bool
    times: array[int] = field(default_factory=lambda: array("q"))
    #: x y z per sample, flat.
    translation_values: array[float] = field(default_factory=lambda: array("d"))
    #: x y z w per sample, flat.
    rotation_values: array[float] = field(default_factory=lambda: array("d"))
    in_order: bool = True

    def add(self, t_ns: int, translation: list[float], rotation: list[float]) -> None:
        """One sample (any time order)."""
        if self.times and t_ns < self.times[-1]:
            self.in_order = False
        self.times.append(t_ns)
        self.translation_values.extend(translation)
        self.rotation_values.extend(rotation)

    def samples(self) -> tuple[npt.NDArray[np.int64], F64, F64]:
        """(times, translations (n, 3), rotations (n, 4)), sorted by time (stable: equal times keep their order)."""
        times = np.frombuffer(self.times, dtype=np.int64)
        trans = np.frombuffer(self.translation_values, dtype=np.float64).reshape(-1, 3)
        rots = np.frombuffer(self.rotation_values, dtype=np.float64).reshape(-1, 4)
        if not self.in_order:
            order = np.argsort(times, kind="stable")
            return times[order], trans[order], rots[order]
        return times, trans, rots

    def at(self, times_ns: npt.NDArray[np.int64], max_extrapolation_ns: int) -> tuple[Pose, F64, list[Failure]]:
        """The edge's poses at ``times_ns`` (rows), how far outside its samples each was (ns, NaN: beyond the
        allowed extrapolation, pose unusable), and the reason of each such failure."""
        n = len(times_ns)
        times, trans, rots = self.samples()
        if self.static:
            tr = np.repeat(trans[-1:], n, axis=0)
            rot = np.repeat(rots[-1:], n, axis=0)
            return Pose(tr, rot), np.zeros(n), []
        hi = np.clip(np.searchsorted(times, times_ns, side="left"), 0, len(times) - 1)
        lo = np.clip(hi - 1, 0, len(times) - 1)
        lo = np.where(times[hi] == times_ns, hi, lo)
        span = (times[hi] - times[lo]).astype(np.float64)
        w = np.clip(np.where(span > 0, (times_ns - times[lo]) / np.where(span > 0, span, 1.0), 0.0), 0.0, 1.0)
        before = times_ns < times[0]
        after = times_ns > times[-1]
        off = np.where(before, times[0] - times_ns, np.where(after, times_ns - times[-1], 0)).astype(np.float64)
        tr = trans[lo] + (trans[hi] - trans[lo]) * w[:, None]
        rot = slerp(rots[lo], rots[hi], w)
        reasons = []
        too_far = off > max_extrapolation_ns
        if too_far.any():
            for side, mask in (("before", before & too_far), ("after", after & too_far)):
                if mask.any():
                    reasons.append(
                        Failure(
                            self.parent, self.child, side, float(off[mask].max()), int(mask.sum()), max_extrapolation_ns
                        )
                    )
            off[too_far] = np.nan
        return Pose(tr, rot), off, reasons


def parent_conflict(child: str, kept: str, other: str) -> str:
    """The conflict a sample naming ``other`` as the parent of ``child`` makes, when ``kept`` came first (the first
    parent seen is kept: :meth:`TransformBuffer.add`, and a window's buffer, ``rosbag.window.TfWindows``)."""
    return f"frame {child} has two parents ({kept}, {other}); the first is kept"


class TransformBuffer:
    """Static and dynamic transforms of one recording."""

    def __init__(self) -> None:
        self.edges: dict[str, Edge] = {}  # by child frame: a TF tree gives every frame one parent
        self.conflicts: list[str] = []

    def add(
        self, parent: str, child: str, t_ns: int, translation: list[float], rotation: list[float], static: bool
    ) -> None:
        """Add one transform sample (``/tf_static`` ones with ``static=True``)."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        edge = self.edges.get(child)
        if edge is None:
            edge = self.edges[child] = Edge(parent, child, static)
        elif edge.parent != parent:
            self.conflicts.append(parent_conflict(child, edge.parent, parent))
            return
        if static:
            edge.static = True
            edge.times, edge.translation_values, edge.rotation_values = array("q"), array("d"), array("d")
            edge.in_order = True
        edge.add(t_ns, translation, rotation)

    @property
    def frames(self) -> list[str]:
        """Every frame named by an edge."""
        return sorted({e.child for e in self.edges.values()} | {e.parent for e in self.edges.values()})

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self.edges:
            nxt = self.edges[chain[-1]].parent
            if nxt in chain:
                raise TransformError(f"the TF tree has a loop through {nxt}")
            chain.append(nxt)
        return chain

    def _legs(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """The child frames of the edges from ``source`` up to the frames' common ancestor, and from ``target`` up
        to it (frames without their leading /). Unknown or unconnected frames raise :class:`TransformError`."""
        known = set(self.frames)
        for frame in (target, source):
            if frame not in known:
                raise TransformError(f"unknown frame {frame!r} (frames: {', '.join(sorted(known)) or 'none'})")
        up_source, up_target = self._chain(source), self._chain(target)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise TransformError(f"{source} and {target} are not connected in the TF tree")
        return up_source[: up_source.index(common)], up_target[: up_target.index(common)]

    def walk(self, target: str, source: str) -> list[str]:
        """The child frames of the edges a lookup of ``source`` in ``target`` walks, in order (source side first;
        empty when the frames are unknown or not connected)."""
        try:
            from_source, from_target = self._legs(target.lstrip("/"), source.lstrip("/"))
        except TransformError:
            return []
        return from_source + from_target

    def lookup_many(
        self, target: str, source: str, times_ns: npt.NDArray[np.int64], max_extrapolation_ns: int = 0
    ) -> tuple[Pose, F64, list[Failure]]:
        """Poses of ``source`` in ``target`` at each time, the extrapolation each used (ns; NaN where a lookup
        failed), and the failures (``str()``: the reason), per edge walked (source side first) and side. Unknown or
        unconnected frames raise :class:`TransformError`."""
        target, source = target.lstrip("/"), source.lstrip("/")
        from_source, from_target = self._legs(target, source)
        times = np.asarray(times_ns, dtype=np.int64).reshape(-1)
        worst = np.zeros(len(times))
        failed = np.zeros(len(times), dtype=bool)
        reasons: list[Failure] = []

        def to_ancestor(leg: list[str]) -> Pose:
            nonlocal worst, failed
            pose = Pose(np.zeros((len(times), 3)), np.tile([0.0, 0.0, 0.0, 1.0], (len(times), 1)))
            for frame in leg:
                edge_pose, off, why = self.edges[frame].at(times, max_extrapolation_ns)
                failed |= np.isnan(off)
                worst = np.fmax(worst, off)
                reasons.extend(why)
                pose = edge_pose.compose(pose)
            return pose

        source_in_common = to_ancestor(from_source)
        target_in_common = to_ancestor(from_target)
        worst[failed] = np.nan
        return target_in_common.inverse().compose(source_in_common), worst, reasons

    def lookup(self, target: str, source: str, t_ns: int, max_extrapolation_ns: int = 0) -> tuple[Pose, int]:
        """The pose of ``source`` in ``target`` at ``t_ns``, and the extrapolation used (ns)."""
        pose, off, reasons = self.lookup_many(target, source, np.array([t_ns], dtype=np.int64), max_extrapolation_ns)
        if np.isnan(off[0]):
            raise TransformError("; ".join(map(str, reasons)))
        return Pose(pose.translation[0], pose.rotation[0]), int(off[0])

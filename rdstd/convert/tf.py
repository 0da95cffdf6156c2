"""A transform buffer (static and dynamic edges) with ``lookup(target, source, t, max_extrapolation)``.

Edges are stored parent → child as in ROS TF: translation (x, y, z) and rotation quaternion (x, y, z, w), the pose
of the child frame in the parent frame. A lookup walks the tree from ``source`` up to the common ancestor and
down to ``target``; each dynamic edge is interpolated at ``t`` (linear translation, slerp rotation). Asking for a
time outside an edge's samples clamps to its first/last sample when that is within ``max_extrapolation_ns``,
else the lookup fails with the reason. Every lookup's extrapolation is returned so a report can state the largest.
Pure numpy; no ROS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rdstd.convert.align import slerp

F64 = npt.NDArray[np.float64]


class TransformError(LookupError):
    """A lookup that cannot be answered (unknown frame, no path, too far outside an edge's samples)."""


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
    """One parent → child edge: static (one sample) or dynamic (sorted samples)."""

    parent: str
    child: str
    static: bool
    times_ns: list[int] = field(default_factory=list)
    translations: list[list[float]] = field(default_factory=list)
    rotations: list[list[float]] = field(default_factory=list)

    def at(self, t_ns: int, max_extrapolation_ns: int) -> tuple[Pose, int]:
        """The edge's pose at ``t_ns`` and how far outside its samples that was (0 inside)."""
        if self.static:
            return Pose(np.array(self.translations[-1]), np.array(self.rotations[-1])), 0
        times = np.asarray(self.times_ns, dtype=np.int64)
        if t_ns <= times[0] or t_ns >= times[-1]:
            k = 0 if t_ns <= times[0] else len(times) - 1
            off = abs(int(times[k]) - t_ns)
            if off > max_extrapolation_ns:
                side = "before its first" if k == 0 else "after its last"
                allowed = max_extrapolation_ns / 1e6
                raise TransformError(
                    f"{self.parent}->{self.child}: {off / 1e6:.1f} ms {side} sample (allowed {allowed:g} ms)"
                )
            return Pose(np.array(self.translations[k]), np.array(self.rotations[k])), off
        hi = int(np.searchsorted(times, t_ns, side="left"))
        lo = hi - 1 if times[hi] != t_ns else hi
        if lo == hi:
            return Pose(np.array(self.translations[hi]), np.array(self.rotations[hi])), 0
        w = (t_ns - times[lo]) / (times[hi] - times[lo])
        t0, t1 = np.array(self.translations[lo]), np.array(self.translations[hi])
        q = slerp(np.array([self.rotations[lo]]), np.array([self.rotations[hi]]), np.array([w]))[0]
        return Pose(t0 + (t1 - t0) * w, q), 0


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
            self.conflicts.append(f"frame {child} has two parents ({edge.parent}, {parent}); the first is kept")
            return
        if static:
            edge.static = True
            edge.times_ns, edge.translations, edge.rotations = [t_ns], [translation], [rotation]
            return
        if edge.times_ns and t_ns < edge.times_ns[-1]:
            i = int(np.searchsorted(np.asarray(edge.times_ns), t_ns))
            edge.times_ns.insert(i, t_ns)
            edge.translations.insert(i, translation)
            edge.rotations.insert(i, rotation)
        else:
            edge.times_ns.append(t_ns)
            edge.translations.append(translation)
            edge.rotations.append(rotation)

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

    def lookup(self, target: str, source: str, t_ns: int, max_extrapolation_ns: int = 0) -> tuple[Pose, int]:
        """The pose of ``source`` in ``target`` at ``t_ns``, and the largest extrapolation used (ns)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        known = set(self.frames)
        for frame in (target, source):
            if frame not in known:
                raise TransformError(f"unknown frame {frame!r} (frames: {', '.join(sorted(known)) or 'none'})")
        up_source, up_target = self._chain(source), self._chain(target)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise TransformError(f"{source} and {target} are not connected in the TF tree")
        worst = 0

        def to_ancestor(chain: list[str]) -> Pose:
            nonlocal worst
            pose = Pose(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
            for frame in chain[: chain.index(common)]:
                edge_pose, off = self.edges[frame].at(t_ns, max_extrapolation_ns)
                worst = max(worst, off)
                pose = edge_pose.compose(pose)
            return pose

        source_in_common = to_ancestor(up_source)
        target_in_common = to_ancestor(up_target)
        return target_in_common.inverse().compose(source_in_common), worst

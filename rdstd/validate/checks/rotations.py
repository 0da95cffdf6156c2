"""Checks on rotation groups: valid rotations (unit quaternions, proper matrices) and the quaternion order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rdstd.schema.features import RotationGroup, VectorFeature
from rdstd.schema.vocabulary import ActionMode, DeltaFrame, RotationRepr, Unit
from rdstd.validate import segments
from rdstd.validate.check import Check, DatasetView, EpisodeView, ShardView, frame_span
from rdstd.validate.model import Evidence, Finding, Severity

_QUATS = {RotationRepr.QUAT_XYZW, RotationRepr.QUAT_WXYZ}


def _groups(dataset: DatasetView, *reprs: RotationRepr) -> Iterator[tuple[str, RotationGroup]]:
    for key, feature in dataset.vectors.items():
        for group in feature.rotations:
            if group.representation in reprs:
                yield key, group


class RotationValidity(Check):
    """RDV401: quaternions of unit norm; rotation matrices orthonormal with det +1; rot6d columns unit."""

    id = "RDV401"
    name = "rotation.valid"
    severity = Severity.ERROR
    evidence = Evidence.DETERMINISTIC
    description = (
        "quaternion norm within norm_tolerance of 1 (error above error_tolerance in more than error_fraction of "
        "frames); matrices with RᵀR = I and det = +1; rot6d vectors of unit norm"
    )
    hint = "normalize the quaternions, check the slice (is it a rotation?), or declare the right representation"
    defaults: ClassVar[Mapping[str, float]] = {"norm_tolerance": 1e-3, "error_tolerance": 1e-2, "error_fraction": 0.001}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._rotations = list(_groups(dataset, *_QUATS, RotationRepr.MATRIX, RotationRepr.ROT6D))
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        return super().shard(shard) if self._rotations else ()  # no rotation groups: nothing to look at

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        for key, group in self._rotations:
            block = ep.vectors[key][:, group.start : group.start + group.size]
            if len(block) == 0:
                continue
            dims = list(range(group.start, group.start + group.size))
            if group.representation in _QUATS:
                error = np.abs(np.linalg.norm(block, axis=1) - 1.0)
                what = "|‖q‖ - 1|"
            elif group.representation == RotationRepr.MATRIX:
                mats = block.reshape(-1, 3, 3)
                gram = np.einsum("nji,njk->nik", mats, mats) - np.eye(3)
                error = np.linalg.norm(gram, axis=(1, 2))
                dets = np.linalg.det(mats)
                flipped = dets < 0
                if flipped.any():
                    yield self.finding(
                        f"{key} rotation matrix at {group.start} has det ≈ -1 in {int(flipped.sum())} frames "
                        "(a reflection: axes swapped or a left-handed frame)",
                        ep=ep,
                        feature=key,
                        dims=dims,
                        frames=frame_span(flipped),
                        measured=float(dets[flipped][0]),
                        expected=1.0,
                    )
                what = "‖RᵀR - I‖"
            else:
                a, b = block[:, :3], block[:, 3:]
                error = np.maximum(np.abs(np.linalg.norm(a, axis=1) - 1), np.abs(np.linalg.norm(b, axis=1) - 1))
                what = "|‖a‖ - 1|, |‖b‖ - 1|"
            error = np.where(np.isfinite(error), error, 0.0)
            bad = error > self.params["norm_tolerance"]
            if not bad.any():
                continue
            big = float((error > self.params["error_tolerance"]).mean())
            level = Severity.ERROR if big > self.params["error_fraction"] else Severity.WARNING
            yield self.finding(
                f"{key} {group.representation} at dims {dims[0]}-{dims[-1]} is not a valid rotation in "
                f"{int(bad.sum())} of {len(bad)} frames (max {what} = {float(error.max()):.3g})",
                ep=ep,
                feature=key,
                dims=dims,
                frames=frame_span(bad),
                statistic=what,
                threshold=self.params["norm_tolerance"],
                measured=float(error.max()),
                expected=0.0,
                severity=level,
            )


class QuaternionOrder(Check):
    """RDV402: a quaternion whose declared scalar component does not behave like w while another one does.

    For orientations near the identity (small rotations) the scalar part w is the component near ±1. When the
    declared w is rarely near ±1 and the component at the other end of the group is near ±1 most of the time,
    the order is likely swapped (xyzw vs wxyz). A tool pointing along an axis (a 180° turn) also puts a vector
    component near ±1: the finding is statistical and a warning, not an error. When no component dominates the
    order cannot be told from the values alone: that is reported as unverifiable.
    """

    id = "RDV402"
    name = "rotation.quaternion_order"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    description = "declared w rarely near ±1 while the other end of the group is (xyzw vs wxyz swapped?)"
    hint = "data fits the other order: check xyzw vs wxyz (MuJoCo, Isaac Lab <= 2.x and transforms3d are wxyz)"
    defaults: ClassVar[Mapping[str, float]] = {"near_one": 0.9, "dominant_fraction": 0.5, "declared_fraction": 0.1}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._decided: dict[tuple[str, int], int] = {(k, g.start): 0 for k, g in _groups(dataset, *_QUATS)}
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        return super().shard(shard) if self._decided else ()  # no quaternions: nothing to look at

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        near = self.params["near_one"]
        for key, group in _groups(self.ds, *_QUATS):
            q = ep.vectors[key][:, group.start : group.start + 4]
            if len(q) == 0:
                continue
            w_at, other = (3, 0) if group.representation == RotationRepr.QUAT_XYZW else (0, 3)
            declared = float((np.abs(q[:, w_at]) > near).mean())
            alternative = float((np.abs(q[:, other]) > near).mean())
            if declared > self.params["dominant_fraction"] or alternative > self.params["dominant_fraction"]:
                self._decided[(key, group.start)] += 1
            if alternative > self.params["dominant_fraction"] and declared < self.params["declared_fraction"]:
                dims = list(range(group.start, group.start + 4))
                alt = "wxyz" if group.representation == RotationRepr.QUAT_XYZW else "xyzw"
                yield self.finding(
                    f"{key} is declared {group.representation} but component {group.start + other} is near ±1 in "
                    f"{alternative:.0%} of frames and the declared w in {declared:.0%}: the data fits {alt}",
                    ep=ep,
                    feature=key,
                    dims=dims,
                    frames=(0, ep.length),
                    statistic=f"fraction of frames with |q[{other}]| > {near:g}",
                    threshold=self.params["dominant_fraction"],
                    measured=alternative,
                    expected=f"declared w near ±1 (measured {declared:.2f})",
                )

    def end(self) -> Iterable[Finding]:
        for (key, start), decided in self._decided.items():
            if decided == 0:
                yield self.finding(
                    f"{key} quaternion at {start}: no component stays near ±1, so the order cannot be told from the "
                    "values (it needs delta-rotation actions or another orientation to compare with)",
                    feature=key,
                    dims=list(range(start, start + 4)),
                    severity=Severity.INFO,
                    evidence=Evidence.UNVERIFIABLE,
                    hint="",
                )


def quat_matrices(q: npt.NDArray[np.float64], scalar_last: bool) -> npt.NDArray[np.float64]:
    """Rotation matrices (N, 3, 3) of quaternions read as xyzw (``scalar_last``) or wxyz; normalized first."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x, y, z, w = q.T if scalar_last else q[:, [1, 2, 3, 0]].T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
        ],
        axis=1,
    )


def _axis(axis: str, angle: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    rows = {
        "x": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        "y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        "z": [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return np.stack([np.stack(r, axis=1) for r in rows], axis=1)


def group_matrices(values: npt.NDArray[np.float64], group: RotationGroup) -> npt.NDArray[np.float64] | None:
    """Rotation matrices of a rotation group's values (axis-angle, Euler, quaternion, matrix); None for others."""
    rep = group.representation
    if rep in _QUATS:
        return quat_matrices(values, rep == RotationRepr.QUAT_XYZW)
    if rep == RotationRepr.MATRIX:
        return values.reshape(-1, 3, 3)
    if rep == RotationRepr.AXIS_ANGLE:
        angle = np.linalg.norm(values, axis=1)
        axis = values / np.where(angle > 0, angle, 1.0)[:, None]
        k = np.zeros((len(values), 3, 3))
        k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
        k = k - k.transpose(0, 2, 1)
        eye = np.broadcast_to(np.eye(3), k.shape)
        rodrigues: npt.NDArray[np.float64] = (
            eye + np.sin(angle)[:, None, None] * k + (1 - np.cos(angle))[:, None, None] * (k @ k)
        )
        return rodrigues
    if rep == RotationRepr.EULER and group.euler_axes and len(group.euler_axes) == 3:
        axes = group.euler_axes.lower()
        mats = [_axis(a, values[:, i]) for i, a in enumerate(axes)]
        out: npt.NDArray[np.float64] = (
            mats[2] @ mats[1] @ mats[0] if group.euler_extrinsic else mats[0] @ mats[1] @ mats[2]
        )
        return out
    return None


def residual_deg(rot: npt.NDArray[np.float64], delta: npt.NDArray[np.float64], frame: DeltaFrame) -> float:
    """Median angle (degrees) between R_(t+1) and R_t composed with the delta of step t (base: Δ·R, tool: R·Δ)."""
    return composition_residual_deg(rot[:-1], rot[1:], delta[:-1], frame)


def composition_residual_deg(
    now: npt.NDArray[np.float64], nxt: npt.NDArray[np.float64], step: npt.NDArray[np.float64], frame: DeltaFrame
) -> float:
    """Median angle (degrees) between ``nxt`` and ``now`` composed with ``step``, row by row."""
    predicted = now @ step if frame == DeltaFrame.TOOL else step @ now
    trace = np.einsum("nij,nij->n", predicted, nxt)  # trace(predictedᵀ · next)
    return float(np.degrees(np.median(np.arccos(np.clip((trace - 1) / 2, -1.0, 1.0)))))


def delta_rotations(dataset: DatasetView) -> list[tuple[str, RotationGroup, list[DeltaFrame]]]:
    """The rotation groups of delta actions, with the frames to compose them in (both when the frame is unknown)."""
    found: list[tuple[str, RotationGroup, list[DeltaFrame]]] = []
    for key, feature in dataset.actions().items():
        sem = feature.action
        if sem is None or sem.mode != ActionMode.DELTA:
            continue
        frames: list[DeltaFrame] = list(_BOTH_FRAMES)  # unknown: try both
        if sem.rotation_frame == DeltaFrame.TOOL:
            frames = [DeltaFrame.TOOL]
        elif sem.rotation_frame in (DeltaFrame.BASE, DeltaFrame.WORLD):
            frames = [DeltaFrame.BASE]
        found += [(key, g, frames) for g in feature.rotations if g.representation != RotationRepr.UNKNOWN]
    return found


_BOTH_FRAMES = (DeltaFrame.BASE, DeltaFrame.TOOL)


def in_radians(
    values: npt.NDArray[np.float64], feature: VectorFeature, group: RotationGroup
) -> npt.NDArray[np.float64]:
    """A rotation group's values with its angles in radians: Euler and axis-angle dims declared in degrees are
    converted (the other representations hold no angles)."""
    if group.representation not in (RotationRepr.EULER, RotationRepr.AXIS_ANGLE):
        return values
    dims = feature.dims[group.start : group.start + values.shape[1]]
    if not any(d.unit == Unit.DEG for d in dims):
        return values
    scale = np.array([np.pi / 180.0 if d.unit == Unit.DEG else 1.0 for d in dims])
    converted: npt.NDArray[np.float64] = values * scale
    return converted


class _ByActions(Check):
    """A check of a state rotation composed with delta-rotation actions (RDV403, RDV404): the deltas of each
    episode as rotation matrices, and the finding when another reading of the state fits far better."""

    defaults: ClassVar[Mapping[str, float]] = {"min_ratio": 3.0, "min_residual_deg": 0.5}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._deltas = delta_rotations(dataset)
        return ()

    def action_deltas(
        self, ep: EpisodeView, rows: npt.NDArray[np.intp] | None = None
    ) -> Iterator[tuple[str, list[DeltaFrame], npt.NDArray[np.float64]]]:
        """(action key, frames to compose in, rotation matrices) of each delta-rotation action of ``ep`` whose
        values are finite (at ``rows`` only, when given)."""
        for a_key, a_group, frames in self._deltas:
            values = ep.vectors[a_key][:, a_group.start : a_group.start + a_group.size]
            if not np.isfinite(values).all():
                continue
            picked = values if rows is None else values[rows]
            delta = group_matrices(in_radians(picked, self.ds.vectors[a_key], a_group), a_group)
            if delta is not None:
                yield a_key, frames, delta

    def better_fit(
        self,
        ep: EpisodeView,
        s_key: str,
        dims: list[int],
        a_key: str,
        fits: str,
        best: float,
        declared: str,
        residual: float,
        what: str,
    ) -> Iterator[Finding]:
        """A warning when the ``declared`` reading's median ``residual`` is above ``min_residual_deg`` and
        ``min_ratio`` times the ``best`` one's (``fits`` names the readings that fit, ``what`` what is read)."""
        if residual > self.params["min_residual_deg"] and residual > self.params["min_ratio"] * best:
            yield self.finding(
                f"{s_key} composed with the rotation deltas of {a_key} fits {fits} (median residual {best:.3g}°) "
                f"far better than the declared {declared} ({residual:.3g}°)",
                ep=ep,
                feature=s_key,
                dims=dims,
                frames=(0, ep.length),
                statistic=f"median residual, declared {what} / {'other' if what == 'order' else 'best'} {what}",
                threshold=self.params["min_ratio"],
                measured=residual / max(best, 1e-9),
                expected=f"residual as declared <= {self.params['min_ratio']:g}x the "
                f"{'other' if what == 'order' else 'best'} {what}'s",
            )


class QuaternionOrderByActions(_ByActions):
    """RDV403: a state quaternion's order checked by composing it with delta-rotation actions.

    With an action that is a per-step rotation delta (mode delta, space eef, a rotation group), R(q_(t+1)) should
    equal R(q_t) composed with the action's rotation (in the declared rotation frame; both frames are tried when
    it is unknown). The quaternion is read in the declared order and in the other one; when the other order's
    median residual is below the declared one's by more than ``min_ratio`` and the declared residual is above
    ``min_residual_deg``, the order is likely swapped. Smoothness alone cannot tell (the dot product of two
    quaternions is the same in any order); the composition can.
    """

    id = "RDV403"
    name = "rotation.quaternion_order_by_actions"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    description = (
        "composes the state quaternion with delta-rotation actions in both orders (xyzw, wxyz): the other order "
        "fitting min_ratio (3) times better than the declared one (residual above min_residual_deg) is a warning"
    )
    hint = "data fits the other order: check xyzw vs wxyz (MuJoCo, Isaac Lab <= 2.x and transforms3d are wxyz)"

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._quats = [(k, g) for k, g in _groups(dataset, *_QUATS) if k in dataset.states()]
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        return super().shard(shard) if self._deltas and self._quats else ()  # nothing to compose

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if not self._deltas or ep.length < 5:
            return
        for s_key, group in self._quats:
            q = ep.vectors[s_key][:, group.start : group.start + 4]
            if not np.isfinite(q).all() or (np.linalg.norm(q, axis=1) == 0).any():
                continue
            declared_last = group.representation == RotationRepr.QUAT_XYZW
            as_declared, as_other = quat_matrices(q, declared_last), quat_matrices(q, not declared_last)
            for a_key, frames, delta in self.action_deltas(ep):
                declared = min(residual_deg(as_declared, delta, f) for f in frames)
                other = min(residual_deg(as_other, delta, f) for f in frames)
                alt = "wxyz" if declared_last else "xyzw"
                dims = list(range(group.start, group.start + 4))
                yield from self.better_fit(
                    ep, s_key, dims, a_key, alt, other, str(group.representation), declared, "order"
                )


#: Every Euler axis sequence: the six Tait-Bryan ones and the six proper Euler ones.
EULER_SEQUENCES = ("xyz", "xzy", "yxz", "yzx", "zxy", "zyx", "xyx", "xzx", "yxy", "yzy", "zxz", "zyz")


def euler_name(axes: str, extrinsic: bool | None) -> str:
    """A convention as people write it: ``extrinsic xyz`` (scipy ``'xyz'``), ``intrinsic XYZ`` (scipy ``'XYZ'``)."""
    if extrinsic is None:
        return f"{axes} (extrinsic or intrinsic unknown)"
    return f"extrinsic {axes.lower()}" if extrinsic else f"intrinsic {axes.upper()}"


def _frames_name(frames: Sequence[DeltaFrame]) -> str:
    return " or ".join(f"{f} frame" for f in frames)


class EulerConvention(_ByActions):
    """RDV404: a state's Euler convention checked by composing it with delta-rotation actions.

    As RDV403 for quaternions: R(e_(t+1)) should equal R(e_t) composed with the action's rotation. The Euler
    angles are read in each of the 24 conventions (12 axis sequences, extrinsic or intrinsic); when the best one's
    median residual is ``min_ratio`` times below the declared convention's (itself above ``min_residual_deg``), the
    declared convention is likely wrong. The finding names every convention that fits about as well as the best
    (without another anchor the data decides the convention only up to such a class). When no convention does,
    the search widens: the angles read in the other unit (degrees declared as radians, or the reverse) and the
    deltas composed in the other frame (tool instead of base, or the reverse), each with the 24 conventions; a
    reading that fits far better than the declared one is a warning naming its convention, unit and frame.
    Steps are sampled (at most ``max_steps`` per episode, evenly spread).
    """

    id = "RDV404"
    name = "rotation.euler_convention"
    severity = Severity.WARNING
    evidence = Evidence.STATISTICAL
    description = (
        "composes the Euler state with delta-rotation actions in all 24 conventions, then also in the other angle "
        "unit (deg/rad) and the other delta frame (base/tool): another reading fitting min_ratio (3) times better "
        "than the declared one (residual above min_residual_deg) is a warning"
    )
    hint = (
        "the angles follow another convention, unit or delta frame: fix euler_axes / euler_extrinsic (scipy 'xyz' "
        "is extrinsic, 'XYZ' intrinsic), the dims' unit (deg/rad) or the action's rotation_frame (base/tool)"
    )
    defaults: ClassVar[Mapping[str, float]] = {"min_ratio": 3.0, "min_residual_deg": 0.5, "max_steps": 200.0}

    def begin(self, dataset: DatasetView) -> Iterable[Finding]:
        super().begin(dataset)
        self._eulers = [(k, g) for k, g in _groups(dataset, RotationRepr.EULER) if k in dataset.states()]
        self._conventions = [
            RotationGroup(start=0, representation=RotationRepr.EULER, euler_axes=axes, euler_extrinsic=extrinsic)
            for axes in EULER_SEQUENCES
            for extrinsic in (True, False)
        ]
        #: For a declared convention that does not say extrinsic or intrinsic: the best fits seen, by feature.
        self._undecided: dict[tuple[str, int], dict[str, int]] = {}
        return ()

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        return super().shard(shard) if self._deltas and self._eulers else ()  # nothing to compose

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if not self._deltas or ep.length < 5:
            return
        steps = segments.distinct(
            np.linspace(0, ep.length - 2, int(min(self.params["max_steps"], ep.length - 1))).astype(int)
        )
        for s_key, group in self._eulers:
            raw = ep.vectors[s_key][:, group.start : group.start + 3]
            if not np.isfinite(raw).all():
                continue
            angles = in_radians(raw, self.ds.vectors[s_key], group)
            in_degrees = angles is not raw  # declared in degrees (converted)
            dims = list(range(group.start, group.start + 3))
            for a_key, frames, delta in self.action_deltas(ep, steps):
                scores = self._scores(angles, steps, delta, frames)
                best = min(scores.values())
                close = [name for name, r in scores.items() if r <= 1.5 * best + 0.05]
                axes = (group.euler_axes or "").lower()
                if group.euler_extrinsic is None:
                    tally = self._undecided.setdefault((s_key, group.start), {})
                    for name in close:
                        tally[name] = tally.get(name, 0) + 1
                    continue
                declared_name = euler_name(axes, group.euler_extrinsic)
                declared = scores[declared_name]
                if declared > self.params["min_residual_deg"]:
                    # another unit or another delta frame may explain it better than any convention does
                    reading = (angles, in_degrees, steps, delta, frames)
                    wider = self._wider(ep, s_key, dims, a_key, declared_name, declared, best, reading)
                    if wider is not None:
                        yield from wider
                        continue
                fits = ", ".join(close[:6])
                yield from self.better_fit(ep, s_key, dims, a_key, fits, best, declared_name, declared, "convention")

    def _scores(
        self,
        angles: npt.NDArray[np.float64],
        steps: npt.NDArray[np.intp],
        delta: npt.NDArray[np.float64],
        frames: Sequence[DeltaFrame],
    ) -> dict[str, float]:
        """The median residual of each convention (by name), the best of ``frames``."""
        return {
            euler_name(c.euler_axes or "", c.euler_extrinsic): min(
                _sampled_residual(angles, steps, c, delta, f) for f in frames
            )
            for c in self._conventions
        }

    def _wider(
        self,
        ep: EpisodeView,
        s_key: str,
        dims: list[int],
        a_key: str,
        declared_name: str,
        declared: float,
        best_declared: float,
        reading: tuple[npt.NDArray[np.float64], bool, npt.NDArray[np.intp], npt.NDArray[np.float64], list[DeltaFrame]],
    ) -> Iterator[Finding] | None:
        """The search over the other angle unit and the other delta frame, each with every convention, against the
        ``declared`` convention's residual as read (``reading``: angles in radians as declared, whether they were
        declared in degrees, the sampled steps, their deltas, the declared frames). None when its best reading
        fits no better than ``best_declared``, the best convention in the declared unit and frame, about does."""
        angles, in_degrees, steps, delta, frames = reading
        unit, other_unit = ("degrees", "radians") if in_degrees else ("radians", "degrees")
        other_angles = np.degrees(angles) if in_degrees else np.radians(angles)
        others = [f for f in _BOTH_FRAMES if f not in frames]
        readings = [(other_unit, other_angles, frames)] + [(unit, angles, [f]) for f in others]
        readings += [(other_unit, other_angles, [f]) for f in others]
        scores: dict[str, float] = {}
        for unit_name, values, chosen in readings:
            for name, residual in self._scores(values, steps, delta, chosen).items():
                scores[f"{name} in {unit_name}, {_frames_name(chosen)}"] = residual
        best = min(scores.values())
        if best_declared <= 1.5 * best + 0.05:
            return None
        close = [name for name, r in scores.items() if r <= 1.5 * best + 0.05]
        fits, as_declared = ", ".join(close[:6]), f"{declared_name} in {unit}, {_frames_name(frames)}"
        return self.better_fit(ep, s_key, dims, a_key, fits, best, as_declared, declared, "convention, unit and frame")

    def end(self) -> Iterable[Finding]:
        for (key, start), tally in self._undecided.items():
            ranked = sorted(tally, key=lambda name: -tally[name])
            yield self.finding(
                f"{key} Euler angles at {start}: extrinsic or intrinsic is not declared; the data fits "
                f"{', '.join(ranked[:6])}",
                feature=key,
                dims=list(range(start, start + 3)),
                severity=Severity.INFO,
                hint="declare euler_extrinsic for the rotation group",
            )


def _sampled_residual(
    angles: npt.NDArray[np.float64],
    steps: npt.NDArray[np.intp],
    convention: RotationGroup,
    delta: npt.NDArray[np.float64],
    frame: DeltaFrame,
) -> float:
    """:func:`residual_deg` over the sampled steps t -> t + 1 only, reading ``angles`` in ``convention``."""
    now = group_matrices(angles[steps], convention)
    nxt = group_matrices(angles[steps + 1], convention)
    if now is None or nxt is None:
        return float("inf")
    return composition_residual_deg(now, nxt, delta, frame)

"""Checks on rotation groups: valid rotations (unit quaternions, proper matrices) and the quaternion order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import ClassVar

import numpy as np

from rdstd.schema.features import RotationGroup
from rdstd.schema.vocabulary import RotationRepr
from rdstd.validate.check import Check, DatasetView, EpisodeView, frame_span
from rdstd.validate.model import Evidence, Finding, Severity

_QUATS = {RotationRepr.QUAT_XYZW, RotationRepr.QUAT_WXYZ}


def _groups(dataset: DatasetView, *reprs: RotationRepr) -> Iterator[tuple[str, RotationGroup]]:
    for key, feature in dataset.manifest.vectors.items():
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

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        reprs = (*_QUATS, RotationRepr.MATRIX, RotationRepr.ROT6D)
        for key, group in _groups(self.ds, *reprs):
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

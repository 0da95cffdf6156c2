"""Common action/state layouts across embodiments, built from the schema's per-dimension roles.

Two layouts:

- ``eef``: end-effector position (3 dims, role ``eef_position``), rotation (one group of role ``eef_rotation``
  in one representation, e.g. 3 for axis-angle or Euler deltas, 4 for a quaternion) and one gripper (role
  ``gripper``): the 7-d EEF-delta + gripper space (8-d with a quaternion).
- ``joints``: joint positions (role ``joint_position``) padded to the widest robot, then grippers padded the
  same way, with a mask saying which entries are real: a 7-DoF arm and a 14-DoF bimanual robot share a batch.

Every dataset must agree on what a slot means: the same unit per slot, the same rotation representation and, for
actions, the same action mode and space. What cannot be aligned is a :class:`~rdstd.errors.MappingError` when the
layout is built; dimensions a layout has no slot for (base velocity, rewards …) are listed in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rdstd.errors import MappingError, UsageError
from rdstd.schema.features import VectorFeature
from rdstd.schema.vocabulary import Role

Kind = Literal["eef", "joints"]


@dataclass(frozen=True)
class Placement:
    """Where one dataset's dimensions go in the common vector: ``source[i]`` -> ``target[i]``."""

    source: npt.NDArray[np.intp]
    target: npt.NDArray[np.intp]
    dropped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CommonLayout:
    """A common vector of ``width`` dims (named ``names``) and each dataset's :class:`Placement` into it."""

    kind: Kind
    names: list[str]
    placements: list[Placement]

    @property
    def width(self) -> int:
        """Dimensions of the common vector."""
        return len(self.names)

    def apply(self, source: int, values: npt.NDArray[Any]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """Dataset ``source``'s values (..., size) in the common layout (..., width) and the mask (width,)."""
        place = self.placements[source]
        out = np.zeros((*values.shape[:-1], self.width), dtype=np.float32)
        out[..., place.target] = values[..., place.source]
        mask = np.zeros(self.width, dtype=bool)
        mask[place.target] = True
        return out, mask


def _dims(feature: VectorFeature, role: Role) -> list[int]:
    return [i for i, d in enumerate(feature.dims) if d.role == role]


def build_layout(kind: Kind, key: str, features: Sequence[VectorFeature], names: Sequence[str]) -> CommonLayout:
    """The common layout of vector ``key`` over datasets (``names`` for messages); see the module doc."""
    if kind not in ("eef", "joints"):
        raise UsageError(f"layout {kind!r} for {key!r} is not 'eef' or 'joints'", situation="layout-unknown")
    _same_semantics(key, features, names)
    if kind == "eef":
        return _eef(key, features, names)
    return _joints(key, features, names)


def _same_semantics(key: str, features: Sequence[VectorFeature], names: Sequence[str]) -> None:
    """Actions mean the same thing in every dataset (mode and space), else they cannot share a vector."""
    kinds = {(f.action.mode, f.action.space) if f.action else None for f in features}
    if len(kinds) > 1:
        said = "; ".join(
            f"{n}: {f.action.mode}/{f.action.space}" if f.action else f"{n}: no action semantics"
            for n, f in zip(names, features, strict=True)
        )
        raise MappingError(
            f"{key!r} means different things across the mixture ({said})",
            hint="mix datasets whose actions share mode and space, or convert them to one (rdstd convert spec)",
            situation="action-semantics-differ",
        )


def _units(key: str, slot: str, per_dataset: list[list[str]], names: Sequence[str]) -> None:
    found = {u for units in per_dataset for u in units}
    if len(found) > 1:
        said = "; ".join(f"{n}: {', '.join(u)}" for n, u in zip(names, per_dataset, strict=True))
        raise MappingError(
            f"{key!r}: the {slot} dimensions have different units across the mixture ({said})",
            hint="canonicalize the units when converting (the converter spec's units)",
            situation="units-differ",
        )


def _eef(key: str, features: Sequence[VectorFeature], names: Sequence[str]) -> CommonLayout:
    reprs = []
    placements = []
    rotation_size = 0
    for name, f in zip(names, features, strict=True):
        pos, rot, grip = _dims(f, Role.EEF_POSITION), _dims(f, Role.EEF_ROTATION), _dims(f, Role.GRIPPER)
        groups = [g for g in f.rotations if g.start in rot]
        if len(pos) != 3 or len(groups) != 1 or len(grip) != 1:
            raise MappingError(
                f"{name}: {key!r} has {len(pos)} eef_position, {len(groups)} eef_rotation group(s) and {len(grip)} "
                "gripper dimension(s); the eef layout needs 3, 1 and 1",
                hint="use the joints layout for this mixture, or leave this dataset out",
                situation="eef-layout-unfit",
            )
        group = groups[0]
        reprs.append(str(group.representation))
        rotation_size = group.size
        rot = list(range(group.start, group.start + group.size))
        source = pos + rot + grip
        dropped = [d.name for i, d in enumerate(f.dims) if i not in source]
        placements.append(Placement(np.asarray(source, np.intp), np.arange(len(source), dtype=np.intp), dropped))
    if len(set(reprs)) > 1:
        said = "; ".join(f"{n}: {r}" for n, r in zip(names, reprs, strict=True))
        raise MappingError(
            f"{key!r}: rotations are in different representations across the mixture ({said})",
            hint="convert them to one representation (the converter spec's rotation options)",
            situation="rotations-differ",
        )
    for slot, role in (("eef_position", Role.EEF_POSITION), ("gripper", Role.GRIPPER)):
        _units(key, slot, [[str(f.dims[i].unit) for i in _dims(f, role)] for f in features], names)
    rot_units = [[str(f.dims[i].unit) for i in p.source[3:-1]] for f, p in zip(features, placements, strict=True)]
    _units(key, "eef_rotation", rot_units, names)
    labels = ["x", "y", "z", *(f"rot{i}" for i in range(rotation_size)), "gripper"]
    return CommonLayout("eef", labels, placements)


def _joints(key: str, features: Sequence[VectorFeature], names: Sequence[str]) -> CommonLayout:
    joints = [_dims(f, Role.JOINT_POSITION) for f in features]
    grips = [_dims(f, Role.GRIPPER) for f in features]
    for name, j in zip(names, joints, strict=True):
        if not j:
            raise MappingError(
                f"{name}: {key!r} has no joint_position dimension; the joints layout needs them",
                hint="use the eef layout for this mixture, or leave this dataset out",
                situation="joints-layout-unfit",
            )
    for slot, chosen in (("joint_position", joints), ("gripper", grips)):
        units = [[str(f.dims[i].unit) for i in dims] for f, dims in zip(features, chosen, strict=True)]
        _units(key, slot, units, names)
    width_j, width_g = max(map(len, joints)), max(map(len, grips))
    placements = []
    for f, j, g in zip(features, joints, grips, strict=True):
        target = list(range(len(j))) + [width_j + i for i in range(len(g))]
        dropped = [d.name for i, d in enumerate(f.dims) if i not in j and i not in g]
        placements.append(Placement(np.asarray(j + g, np.intp), np.asarray(target, np.intp), dropped))
    labels = [f"joint_{i}" for i in range(width_j)] + [f"gripper_{i}" for i in range(width_g)]
    return CommonLayout("joints", labels, placements)

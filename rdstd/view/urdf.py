"""The robot model in the 3D view: the embodiment's URDF through Rerun's URDF loader, its joints moved by the
episode's joint positions (matched to URDF joints by name, or in order when the counts agree)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rerun as rr

from rdstd.schema.features import VectorFeature
from rdstd.schema.vocabulary import Role
from rdstd.view import paths
from rdstd.view.episodes import DatasetFacts, Feature

MOVABLE = ("revolute", "continuous", "prismatic")


def urdf_file(facts: DatasetFacts) -> Path | None:
    """The first embodiment's URDF when it is a local file (a package reference cannot be loaded here)."""
    for e in facts.embodiments:
        if e.urdf and Path(e.urdf).is_file():
            return Path(e.urdf)
    return None


@dataclass
class Robot:
    """A loaded URDF and which joint-position dimension of which feature drives each movable joint."""

    prefix: str
    tree: Any  # rr.urdf.UrdfTree
    feature: str | None
    drives: list[tuple[Any, int]]  # (UrdfJoint, dimension)

    @classmethod
    def load(cls, rec: rr.RecordingStream, file: Path, features: dict[str, Feature], prefix: str = "") -> Robot:
        """Log the model (static) and work out the joint mapping."""
        entity = paths.join(prefix, paths.WORLD, "robot")
        rec.log_file_from_path(file, entity_path_prefix=entity, static=True)
        tree = rr.urdf.UrdfTree.from_file_path(file, entity_path_prefix=entity)
        movable = [j for j in tree.joints() if j.joint_type in MOVABLE]
        for name, f in features.items():
            if not isinstance(f, VectorFeature) or f.action is not None:
                continue
            dims = [i for i, d in enumerate(f.dims) if d.role == Role.JOINT_POSITION]
            if not dims:
                continue
            by_name = {f.dims[i].name: i for i in dims}
            drives = [(j, by_name[j.name]) for j in movable if j.name in by_name]
            if not drives and len(dims) == len(movable):
                drives = list(zip(movable, dims, strict=True))
            if drives:
                return cls(entity, tree, name, drives)
        return cls(entity, tree, None, [])

    def chunk(self, rec: rr.RecordingStream, vectors: dict[str, npt.NDArray[Any]], index: list[rr.TimeColumn]) -> None:
        """Move the joints over one chunk of frames."""
        if self.feature is None or self.feature not in vectors:
            return
        values = vectors[self.feature].reshape(len(vectors[self.feature]), -1).astype(np.float64)
        for joint, dim in self.drives:
            rec.send_columns(
                paths.join(self.prefix, "joint_transforms", joint.name),
                indexes=index,
                columns=joint.compute_transform_columns(values[:, dim].tolist()),
                strict=True,
            )

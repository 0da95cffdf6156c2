"""Joint limits from a URDF an embodiment names (``Embodiment.urdf``), read with the standard library's XML parser.

Only what the checks need is read: each ``<joint>``'s name, type and ``<limit lower upper>``. The reference is a
path relative to the dataset folder and must stay inside it (as every path written in metadata:
:func:`rdstd.paths.inside`); a ``package://`` reference or a URL cannot be resolved without the robot's ROS
package, so it is reported as such instead of guessed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from rdstd.errors import RdstdError
from rdstd.paths import inside

#: URDF joint types whose position has no limits.
_UNLIMITED = {"continuous", "floating", "planar", "fixed"}


@dataclass(frozen=True)
class UrdfJoint:
    """One joint of a URDF: its type and its position limits (None when the URDF gives none)."""

    name: str
    type: str
    lower: float | None
    upper: float | None

    @property
    def limited(self) -> bool:
        """Whether the joint has both position limits (revolute and prismatic joints with a ``<limit>``)."""
        return self.type not in _UNLIMITED and self.lower is not None and self.upper is not None


class UrdfUnusable(Exception):  # noqa: N818 -- never leaves this package: it becomes a finding
    """A URDF that cannot be used, with the reason (the caller turns it into a finding)."""


def resolve(reference: str, root: Path) -> Path:
    """The file a URDF reference names: a path relative to the dataset folder ``root``, inside it."""
    if "://" in reference:
        raise UrdfUnusable(f"{reference} is a package or URL reference, which rdstd cannot resolve")
    try:
        return inside(root, reference, "URDF")
    except RdstdError as exc:
        raise UrdfUnusable(exc.message) from exc


def parse(path: Path) -> dict[str, UrdfJoint]:
    """The joints of the URDF at ``path`` by name."""
    try:
        tree = ET.parse(path)
    except OSError as exc:
        raise UrdfUnusable(f"{path} cannot be read ({exc.strerror or exc})") from exc
    except ET.ParseError as exc:
        raise UrdfUnusable(f"{path} is not valid XML ({exc})") from exc
    robot = tree.getroot()
    if robot.tag != "robot":
        raise UrdfUnusable(f"{path} is not a URDF (its root element is <{robot.tag}>, not <robot>)")
    joints: dict[str, UrdfJoint] = {}
    for joint in robot.iter("joint"):
        name = joint.get("name")
        if not name:
            continue
        limit = joint.find("limit")
        lower = _number(limit.get("lower")) if limit is not None else None
        upper = _number(limit.get("upper")) if limit is not None else None
        joints[name] = UrdfJoint(name, joint.get("type", "unknown"), lower, upper)
    return joints


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None

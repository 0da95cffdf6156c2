"""Entity paths of the recording: one entity per stream, so the blueprint, the logger and the tests agree."""

from __future__ import annotations

from rdstd.schema.features import VectorFeature
from rdstd.schema.vocabulary import Role

#: Episode-wide text: the task, its other phrasings and language segments.
TASK = "task"
#: Findings not about one feature (episode- or dataset-wide).
FINDINGS = "findings"
#: State lanes showing, frame by frame, which findings cover each entity.
FINDING_RANGES = "finding_ranges"
#: The 3D scene: end-effector poses and their paths, the robot model.
WORLD = "world"


def join(prefix: str, *parts: str) -> str:
    """``parts`` under ``prefix`` (``""`` for none); parts are safe names (letters, digits, ``._-``)."""
    return "/".join(p.strip("/") for p in (prefix, *parts) if p.strip("/"))


def roles(feature: VectorFeature) -> dict[Role, list[int]]:
    """The feature's dimensions grouped by role, roles in order of their first dimension."""
    groups: dict[Role, list[int]] = {}
    for i, dim in enumerate(feature.dims):
        groups.setdefault(dim.role, []).append(i)
    return groups


def vector(prefix: str, feature: str, role: Role) -> str:
    """The entity of ``feature``'s dimensions of one role: a multi-series plot."""
    return join(prefix, feature, role.value)


def gripper(prefix: str, feature: str, dim: int) -> str:
    """The open/closed state lane of the gripper at dimension ``dim`` of ``feature``."""
    return join(prefix, feature, "gripper_state", str(dim))


def camera(prefix: str, feature: str) -> str:
    """The entity of one camera."""
    return join(prefix, feature)


def trajectory(prefix: str, feature: str) -> str:
    """The whole path of ``feature``'s end effector (beside the pose, not under its moving transform)."""
    return join(prefix, WORLD, "paths", feature)


def pose(prefix: str, feature: str) -> str:
    """The end-effector pose of ``feature`` in the 3D view."""
    return join(prefix, WORLD, feature)


def finding_lane(prefix: str, findings_entity: str) -> str:
    """The state lane over frames of the findings logged at ``findings_entity`` (a ``…/findings`` path under
    ``prefix``): ``<prefix>/finding_ranges/<feature>/<role>``, or ``…/episode`` for episode-wide findings."""
    rel = findings_entity[len(prefix) :].strip("/") if prefix else findings_entity.strip("/")
    rel = rel.removesuffix(FINDINGS).strip("/") or "episode"
    return join(prefix, FINDING_RANGES, rel)

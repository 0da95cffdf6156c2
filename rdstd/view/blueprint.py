"""The viewer's layout, generated from the canonical schema.

Cameras as 2D views; vector features plotted per role (joint positions, end-effector position, gripper …), the
state and the action of one role side by side; gripper dimensions as open/closed lanes; the task as a text document;
end-effector poses (and the robot model, when the embodiment names a URDF) in a 3D view; the validator's findings
as a text log at their frames and as state lanes over the frames they cover.
"""

from __future__ import annotations

from collections.abc import Sequence

import rerun.blueprint as rrb

from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import Role
from rdstd.view import paths
from rdstd.view.episodes import Feature
from rdstd.view.log import grippers, poses

#: The order roles are plotted in (others follow in the order the schema gives them).
ROLE_ORDER = [
    Role.JOINT_POSITION,
    Role.EEF_POSITION,
    Role.EEF_ROTATION,
    Role.GRIPPER,
    Role.HAND_JOINT_POSITION,
    Role.JOINT_VELOCITY,
    Role.EEF_VELOCITY,
    Role.JOINT_EFFORT,
    Role.BASE_VELOCITY,
    Role.BASE_POSE,
    Role.OBJECT_POSE,
]


def _plots(features: dict[str, Feature], prefix: str) -> list[rrb.View]:
    by_role: dict[Role, list[str]] = {}
    for name, f in features.items():
        if isinstance(f, VectorFeature):
            for role in paths.roles(f):
                by_role.setdefault(role, []).append(name)
    ordered = [r for r in ROLE_ORDER if r in by_role] + [r for r in by_role if r not in ROLE_ORDER]
    views: list[rrb.View] = []
    for role in ordered:
        views += [
            rrb.TimeSeriesView(origin="/" + paths.vector(prefix, name, role), name=f"{name} · {role.value}")
            for name in by_role[role]
        ]
    return views


def _lanes(features: dict[str, Feature], prefix: str) -> list[rrb.View]:
    return [
        rrb.StateTimelineView(origin="/" + paths.gripper(prefix, name, dim), name=f"{name} gripper {dim}")
        for name, f in features.items()
        if isinstance(f, VectorFeature)
        for dim in grippers(f)
    ]


def _column(features: dict[str, Feature], prefix: str, *, robot: bool, ranges: bool) -> rrb.Container:
    """One dataset's views: cameras and 3D on the left, plots, lanes, task and findings on the right (with the
    findings' frame ranges as lanes when ``ranges``)."""
    cams: list[rrb.View] = [
        rrb.Spatial2DView(origin="/" + paths.camera(prefix, name), name=name)
        for name, f in features.items()
        if isinstance(f, ImageFeature)
    ]
    left: list[rrb.Container | rrb.View] = []
    if poses(features) or robot:
        left.append(rrb.Spatial3DView(origin="/" + paths.join(prefix, paths.WORLD), name="end effector"))
    if cams:
        left.append(rrb.Grid(*cams) if len(cams) > 2 else rrb.Horizontal(*cams))
    plots = _plots(features, prefix)
    lanes = _lanes(features, prefix)
    right: list[rrb.Container | rrb.View] = []
    if plots:
        right.append(rrb.Tabs(*plots, name="signals") if len(plots) > 4 else rrb.Vertical(*plots, name="signals"))
    right += lanes
    if ranges:
        right.append(
            rrb.StateTimelineView(origin="/" + paths.join(prefix, paths.FINDING_RANGES), name="findings over frames")
        )
    right.append(
        rrb.Horizontal(
            rrb.TextDocumentView(origin="/" + paths.join(prefix, paths.TASK), name="task"),
            rrb.TextLogView(origin="/" + prefix if prefix else "/", name="findings"),
        )
    )
    columns: list[rrb.Container | rrb.View] = []
    if left:
        columns.append(rrb.Vertical(*left))
    columns.append(rrb.Vertical(*right))
    return rrb.Horizontal(*columns, name=prefix or None)


def blueprint(
    features: dict[str, Feature] | Sequence[tuple[str, dict[str, Feature]]],
    *,
    robot: bool = False,
    ranges: bool = False,
) -> rrb.Blueprint:
    """The layout for one dataset's ``features``, or for (prefix, features) pairs side by side (``--compare``);
    ``ranges`` adds the lanes of findings that cover frame ranges."""
    pairs = [("", features)] if isinstance(features, dict) else list(features)
    body = (
        _column(pairs[0][1], pairs[0][0], robot=robot, ranges=ranges)
        if len(pairs) == 1
        else rrb.Horizontal(*(_column(f, p, robot=robot, ranges=ranges) for p, f in pairs))
    )
    return rrb.Blueprint(body, rrb.TimePanel(timeline="time"), collapse_panels=True)

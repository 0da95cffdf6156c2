"""The layout of a flattened MuJoCo state (robosuite ``states``), read from the episode's MJCF model XML.

robosuite stores ``sim.get_state().flatten()`` = ``[time, qpos (nq), qvel (nv)]``. The model says how many
coordinates each joint has: free 7 position (x, y, z, then a **wxyz** quaternion) / 6 velocity, ball 4 (wxyz) / 3,
hinge and slide 1 / 1 (MuJoCo documentation, "mjModel": jnt_qposadr, jnt_dofadr). The layout is recorded only when
it accounts for every column of ``states``; otherwise the reason is said.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

_SIZES = {"free": (7, 6), "ball": (4, 3), "hinge": (1, 1), "slide": (1, 1)}


def joints(xml: str) -> list[tuple[str, str]]:
    """(name, type) of every joint in document order (``<freejoint>`` is a free joint; the default type is hinge)."""
    root = ET.fromstring(xml)
    worldbody = root.find("worldbody")
    found: list[tuple[str, str]] = []
    if worldbody is None:
        return found
    for element in worldbody.iter():
        if element.tag == "freejoint":
            found.append((element.get("name", ""), "free"))
        elif element.tag == "joint":
            found.append((element.get("name", ""), element.get("type", "hinge")))
    return found


def state_layout(xml: str, width: int) -> dict[str, Any]:
    """Column ranges of ``[time, qpos, qvel]`` and the wxyz quaternion columns, or ``{"unknown": why}``."""
    try:
        listed = joints(xml)
    except ET.ParseError as exc:
        return {"unknown": f"the model XML does not parse ({exc})"}
    if any(kind not in _SIZES for _, kind in listed):
        return {"unknown": "the model has a joint type rdstd does not know"}
    nq = sum(_SIZES[kind][0] for _, kind in listed)
    nv = sum(_SIZES[kind][1] for _, kind in listed)
    if 1 + nq + nv != width:
        return {"unknown": f"1 + nq ({nq}) + nv ({nv}) from the model is {1 + nq + nv}, states has {width} columns"}
    quats = []
    column = 1
    for name, kind in listed:
        if kind in ("free", "ball"):
            start = column + (3 if kind == "free" else 0)
            quats.append({"joint": name, "columns": [start, start + 4], "order": "wxyz"})
        column += _SIZES[kind][0]
    return {"time": [0, 1], "qpos": [1, 1 + nq], "qvel": [1 + nq, 1 + nq + nv], "quaternions_wxyz": quats}

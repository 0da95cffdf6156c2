"""What an HDF5 file states about its recording beyond its layout: simulation or real, and depth units.

The ALOHA family and RoboMIND write a root attribute ``sim`` (bool): it is read from every file and declared
(``simulated``: true, false, ``mixed`` with counts, or ``unknown`` when no file says). Depth images carry their
unit only when the file says so in an attribute of the depth dataset or its group (``depth_unit``/``unit``/
``units``, ``depth_scale``/``scale``); RoboMIND's public files state none, and its documented rule (millimetres,
or metres when an image's maximum is at most 100) is a property of each image, so it is quoted, never applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rdstd.formats.hdf5.h5 import text
from rdstd.schema.vocabulary import Unit

SIM_ATTR = "sim"
UNIT_ATTRS = ("depth_unit", "unit", "units")
SCALE_ATTRS = ("depth_scale", "scale")
#: RoboMIND's own words on its depth images (x-humanoid-robomind static/all_robot_h5_info_v1.2.md, read_h5.py).
ROBOMIND_DEPTH_RULE = (
    "RoboMIND's rule for their unit: millimetres, or metres when the maximum is at most 100 "
    "(x-humanoid-robomind static/read_h5.py); the file does not say which"
)
_UNIT_WORDS = {
    Unit.MM: {"mm", "millimeter", "millimeters", "millimetre", "millimetres"},
    Unit.M: {"m", "meter", "meters", "metre", "metres"},
    Unit.CM: {"cm", "centimeter", "centimeters", "centimetre", "centimetres"},
}


def simulated(file: Any) -> bool | None:
    """The file's ``@sim`` attribute as a bool; None when it is absent or not a yes/no value."""
    if SIM_ATTR not in file.attrs:
        return None
    value = text(file.attrs[SIM_ATTR])
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


def simulated_summary(values: Iterable[bool | None]) -> dict[str, Any]:
    """What the files' ``@sim`` attributes say together (declared in ``SourceInfo.extra["simulated"]``)."""
    found = list(values)
    sim, real = found.count(True), found.count(False)
    unknown = len(found) - sim - real
    if not sim and not real:
        return {"value": "unknown", "source": f"no file has a yes/no @{SIM_ATTR} attribute"}
    if unknown or (sim and real):
        counts = {"files_sim": sim, "files_real": real, "files_unknown": unknown}
        return {"value": "mixed", "source": f"@{SIM_ATTR}", **counts}
    return {"value": bool(sim), "source": f"@{SIM_ATTR} of every file ({len(found)})"}


def depth_declared(dataset: Any, key: str) -> dict[str, Any] | None:
    """The unit (and scale) the file states for a depth dataset, on it or on its group; None when it states none.

    ``unit`` is an rdstd unit (``mm``, ``cm``, ``m``) or ``unknown`` with the stated text kept as ``stated``.
    """
    for obj, where in ((dataset, key), (dataset.parent, key.rsplit("/", 1)[0] if "/" in key else "/")):
        unit_attr = next((a for a in UNIT_ATTRS if a in obj.attrs), None)
        scale_attr = next((a for a in SCALE_ATTRS if a in obj.attrs), None)
        if unit_attr is None and scale_attr is None:
            continue
        out: dict[str, Any] = {"unit": Unit.UNKNOWN.value}
        if unit_attr is not None:
            stated = str(text(obj.attrs[unit_attr])).strip()
            unit = next((u for u, words in _UNIT_WORDS.items() if stated.lower() in words), None)
            out["unit"] = unit.value if unit is not None else Unit.UNKNOWN.value
            if unit is None:
                out["stated"] = stated
        if scale_attr is not None:
            scale = text(obj.attrs[scale_attr])
            if isinstance(scale, int | float) and not isinstance(scale, bool) and scale > 0:
                out["scale"] = float(scale)
        out["from"] = f"{where}@{unit_attr or scale_attr}"
        return out
    return None

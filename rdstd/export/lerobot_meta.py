"""What a LeRobot export carries beyond frames, and what it says it cannot carry.

LeRobot has no place for per-dimension units, frames, roles, action semantics, gripper conventions, episode
success, episode splits that are not one range, or the source's metadata. The exporter puts each where LeRobot
keeps it without looking at it:

- per feature, ``info.rdstd`` in ``meta/info.json`` (units, roles, frames, rotation groups, grippers, action
  semantics, description); LeRobot keeps a feature's ``info`` dict as it is;
- per episode, extra columns of the v3.0 episodes table (``rdstd/episode_id``, ``rdstd/split``,
  ``rdstd/success``, ``rdstd/source_*``) or extra keys of the v2.1 ``episodes.jsonl`` lines;
- the whole canonical manifest as ``meta/rdstd_manifest.json`` (a file LeRobot never opens).

Splits: LeRobot's ``splits`` are half-open ranges of ``episode_index``, one per split name. Episodes are
written grouped by split (in order of each split's first episode; episodes of split ``unknown`` last, listed
in no split), so each split is one range; ``rdstd/source_position`` holds each episode's position in the
canonical dataset, and the report says when the order changed.

Everything else the target cannot hold is a warning in the :class:`~rdstd.export.lerobot.ExportReport`
(``warnings``: text -> how many episodes it concerns), never silence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.schema.episode import EpisodeMeta
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ColorOrder

#: Split names that mean "not in any split": such episodes are listed in no LeRobot split.
NO_SPLIT = frozenset({"", "unknown"})
#: Largest change (s) the float32 timestamps LeRobot stores may make before the export warns.
TIMESTAMP_TOLERANCE_S = 1e-6
#: Prefix of the extra columns (v3.0 episodes table) and keys (v2.1 episodes.jsonl) rdstd adds.
PREFIX = "rdstd/"
#: File (under meta/) holding the canonical manifest the export was made from.
MANIFEST_FILE = "rdstd_manifest.json"


def split_order(splits: Sequence[str]) -> tuple[list[int], dict[str, str]]:
    """The export order of episodes (canonical positions) and LeRobot's ``splits`` (name -> ``"start:end"``).

    Episodes keep their relative order within a split; splits come in order of their first episode; episodes in
    no split (``unknown`` or empty) come last and are listed in no range.
    """
    groups: dict[str, list[int]] = {}
    unlisted: list[int] = []
    for position, name in enumerate(splits):
        (unlisted if name in NO_SPLIT else groups.setdefault(name, [])).append(position)
    order: list[int] = []
    ranges: dict[str, str] = {}
    for name, members in groups.items():
        ranges[name] = f"{len(order)}:{len(order) + len(members)}"
        order += members
    return order + unlisted, ranges


def split_ranges(splits: Sequence[str]) -> dict[str, str]:
    """LeRobot's ``splits`` of episodes already in export order (each split one run): name -> ``"start:end"``."""
    ranges: dict[str, str] = {}
    for index, name in enumerate(splits):
        if name in NO_SPLIT:
            continue
        first = int(ranges[name].split(":")[0]) if name in ranges else index
        ranges[name] = f"{first}:{index + 1}"
    return ranges


def is_depth(feature: ImageFeature) -> bool:
    """Whether a camera holds depth (16-bit, or marked depth, or one channel): exported as a LeRobot depth image."""
    return feature.dtype == "uint16" or feature.color == ColorOrder.DEPTH or feature.channels == 1


def vector_info(feature: VectorFeature) -> dict[str, Any]:
    """The ``info`` dict of a vector feature: its semantics, which LeRobot's ``names`` cannot hold."""
    carried: dict[str, Any] = {
        "units": [str(d.unit) for d in feature.dims],
        "roles": [str(d.role) for d in feature.dims],
        "frames": [d.frame for d in feature.dims],
    }
    if feature.rotations:
        carried["rotations"] = [r.model_dump(mode="json") for r in feature.rotations]
    if feature.grippers:
        carried["grippers"] = [g.model_dump(mode="json") for g in feature.grippers]
    if feature.action is not None:
        carried["action"] = feature.action.model_dump(mode="json")
    if feature.description:
        carried["description"] = feature.description
    return {"rdstd": carried}


def depth_info(feature: ImageFeature) -> dict[str, Any]:
    """The ``info`` dict of a depth camera, in LeRobot's depth convention (``is_depth_map``; unit when known)."""
    info: dict[str, Any] = {"is_depth_map": True}
    unit = depth_unit(feature)
    if unit is not None:
        info["depth_unit"] = unit
    info["rdstd"] = {"description": feature.description, "codec": str(feature.codec), "dtype": feature.dtype}
    return info


def depth_unit(feature: ImageFeature) -> str | None:
    """LeRobot's ``depth_unit`` (``mm`` or ``m``) when the manifest states one, else None (LeRobot: not recorded)."""
    unit = str(getattr(feature, "unit", "") or "")
    return unit if unit in ("mm", "m") else None


def episode_columns(meta: EpisodeMeta, position: int) -> dict[str, Any]:
    """The episode facts LeRobot has no column for, as extra ``rdstd/*`` columns (JSON text for nested values)."""
    return {
        f"{PREFIX}episode_id": meta.episode_id,
        f"{PREFIX}source_position": position,
        f"{PREFIX}split": meta.split,
        f"{PREFIX}success": meta.success,
        f"{PREFIX}embodiment": meta.embodiment,
        f"{PREFIX}source_path": meta.source_path,
        f"{PREFIX}source_key": meta.source_key,
        f"{PREFIX}source_checksum": meta.source_checksum,
        f"{PREFIX}source_meta": json.dumps(meta.source_meta, sort_keys=True, default=str),
    }


def timestamp_change_s(stamps: npt.NDArray[np.float64]) -> float:
    """How far LeRobot's float32 timestamps are from the canonical float64 ones (s)."""
    if not stamps.size:
        return 0.0
    return float(np.abs(stamps.astype(np.float32).astype(np.float64) - stamps).max())


class Warnings:
    """What the target cannot hold: message -> number of episodes (or 1 for a dataset-level fact)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, message: str, count: int = 1) -> None:
        """Count ``message`` ``count`` more times."""
        if count > 0:
            self.counts[message] = self.counts.get(message, 0) + count


__all__ = [
    "MANIFEST_FILE",
    "NO_SPLIT",
    "PREFIX",
    "Warnings",
    "depth_info",
    "depth_unit",
    "episode_columns",
    "is_depth",
    "split_order",
    "split_ranges",
    "timestamp_change_s",
    "vector_info",
]

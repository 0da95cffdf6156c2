"""GR00T's ``meta/modality.json``: named slices of state and action, camera renames, annotation columns.

``{"state": {name: {"start": s, "end": e, ...}}, "action": {...}, "video": {name: {"original_key": key}},
"annotation": {"human.action.task_description": {}, ...}}``; slices are 0-based and half-open over the
concatenated ``observation.state`` / ``action`` (or the entry's ``original_key``). Where info.json's names are
placeholders (``motor_0`` …) the slices name the dimensions ``<group>.<i>``; the file itself is kept in the
source info, from which the exporter writes it back (or builds a new one from the features' semantics).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdstd.errors import CorruptSourceError
from rdstd.formats.lerobot.meta import read_json

MODALITY = "meta/modality.json"
#: Names that say nothing but a position (``motor_3``, ``joint3``, ``dim_0``, ``7``).
_PLACEHOLDER = re.compile(r"(?i)(motor|joint|dim|state|action|axis|q|value|v)?[_ ]?\d+")
#: Which LeRobot feature each modality section slices by default.
DEFAULT_KEYS = {"state": "observation.state", "action": "action"}


@dataclass(frozen=True)
class Group:
    """One named slice ``[start, end)`` of a vector feature, with GR00T's optional extras (rotation_type …)."""

    name: str
    start: int
    end: int
    key: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Modality:
    """A parsed modality.json."""

    groups: list[Group]
    videos: dict[str, str]
    annotations: list[str]
    raw: dict[str, Any]

    def groups_of(self, key: str) -> list[Group]:
        """The slices of feature ``key``, in start order."""
        return sorted((g for g in self.groups if g.key == key), key=lambda g: g.start)

    def dim_names(self, key: str, size: int, names: list[str] | None) -> list[str] | None:
        """Per-dimension names of ``key`` from its slices: ``<group>.<i>`` where info.json has no real names.

        Real names (not placeholders like ``motor_3``) are kept as they are; the groups then live in the
        source info (``modality``) and the key's note.
        """
        groups = self.groups_of(key)
        if not groups or (names is not None and not all(_PLACEHOLDER.fullmatch(n) for n in names)):
            return names
        out = list(names) if names is not None else [str(i) for i in range(size)]
        for g in groups:
            for i in range(g.start, g.end):
                out[i] = f"{g.name}.{i - g.start}"
        return out


def read_modality(root: Path, sizes: dict[str, int]) -> Modality | None:
    """Parse ``meta/modality.json`` if the dataset has one; ``sizes`` are the vector features' lengths."""
    file = root / MODALITY
    if not file.is_file():
        return None
    return parse_modality(read_json(file), sizes, str(file))


def parse_modality(raw: Any, sizes: dict[str, int], origin: str) -> Modality:
    """Check and parse modality.json content: slices inside their feature, not overlapping."""
    if not isinstance(raw, dict):
        raise CorruptSourceError(
            f"{origin}: expected a JSON object", hint="fix modality.json", situation="modality-json-invalid"
        )
    groups: list[Group] = []
    for section, default_key in DEFAULT_KEYS.items():
        entries = raw.get(section) or {}
        if not isinstance(entries, dict):
            raise CorruptSourceError(
                f"{origin}: {section} must be an object", hint="fix modality.json", situation="modality-json-invalid"
            )
        for name, entry in entries.items():
            try:
                start, end = int(entry["start"]), int(entry["end"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptSourceError(
                    f"{origin}: {section}.{name} needs integer start and end",
                    hint="fix modality.json",
                    situation="modality-json-invalid",
                ) from exc
            key = str(entry.get("original_key") or default_key)
            size = sizes.get(key)
            if size is None:
                raise CorruptSourceError(
                    f"{origin}: {section}.{name} slices {key!r}, which info.json does not declare",
                    hint="fix modality.json or meta/info.json",
                    situation="modality-json-invalid",
                )
            if not 0 <= start < end <= size:
                raise CorruptSourceError(
                    f"{origin}: {section}.{name} = [{start}, {end}) is outside {key} ({size} values)",
                    hint="fix modality.json (start/end are 0-based, end exclusive)",
                    situation="modality-json-invalid",
                )
            extra = {k: v for k, v in entry.items() if k not in ("start", "end", "original_key")}
            groups.append(Group(str(name), start, end, key, extra))
    for key in {g.key for g in groups}:
        spans = sorted((g.start, g.end, g.name) for g in groups if g.key == key)
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            if start < end:
                raise CorruptSourceError(
                    f"{origin}: {first} and {second} overlap in {key}",
                    hint="fix modality.json",
                    situation="modality-json-invalid",
                )
    videos_raw = raw.get("video") or {}
    videos = {
        str(name): str((entry or {}).get("original_key") or f"observation.images.{name}")
        for name, entry in (videos_raw.items() if isinstance(videos_raw, dict) else [])
    }
    annotations = [str(a) for a in (raw.get("annotation") or {})]
    return Modality(groups, videos, annotations, raw)


def build_modality(groups: dict[str, list[tuple[str, int, int]]], cameras: list[str]) -> dict[str, Any]:
    """A modality.json from slices per feature: ``{key: [(name, start, end), ...]}`` and the camera keys.

    ``action`` (and keys starting with ``action.``) go under "action", every other vector under "state";
    slices of features other than ``observation.state`` / ``action`` carry ``original_key``.
    """
    out: dict[str, Any] = {"state": {}, "action": {}, "video": {}}
    for key, slices in groups.items():
        section = "action" if key == "action" or key.startswith("action.") else "state"
        for name, start, end in slices:
            label, n = name, 2
            while label in out[section]:
                label, n = f"{name}_{n}", n + 1
            entry: dict[str, Any] = {"start": start, "end": end}
            if key != DEFAULT_KEYS[section]:
                entry["original_key"] = key
            out[section][label] = entry
    for camera in cameras:
        label, n = camera.rsplit(".", 1)[-1], 2
        while label in out["video"]:
            label, n = f"{camera.rsplit('.', 1)[-1]}_{n}", n + 1
        out["video"][label] = {"original_key": camera}
    return out

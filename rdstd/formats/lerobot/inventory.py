"""What the metadata says against what is there: splits per episode, files no one lists, files that are missing.

- ``splits`` in ``meta/info.json`` (``{"train": "0:80", "val": "80:100"}``, half-open ranges of
  ``episode_index``) give each episode its split; an episode in no range is ``unknown``. A split string that is
  not ``"start:end"``, or a range reaching past the episodes listed (GR00T's ``"0:100"`` for 5 episodes), is
  reported, never fatal.
- Parquet and mp4 files under ``data/`` and ``videos/`` that no episode references (v2.x: ``episodes.jsonl`` via
  the templates; v3.0: the episodes table) are listed, and so are the files episodes reference that are missing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdstd.formats.lerobot.episodes import EpisodeEntry

#: The split of an episode that no split range covers (or whose split strings are unreadable).
UNKNOWN_SPLIT = "unknown"
_RANGE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
#: How many unlisted files ``info()`` names (the count is always complete).
LISTED_FILES = 20


@dataclass
class Splits:
    """Each episode index's split, and what was wrong with the split strings."""

    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def of(self, episode_index: int) -> str:
        """The split holding ``episode_index`` (the first one when ranges overlap), else ``unknown``."""
        for name, (start, end) in self.ranges.items():
            if start <= episode_index < end:
                return name
        return UNKNOWN_SPLIT


def read_splits(raw: Any, episode_indices: Sequence[int]) -> Splits:
    """Parse info.json's ``splits`` against the episodes listed; problems are described, not raised."""
    out = Splits()
    if raw is None:
        return out
    if not isinstance(raw, dict):
        out.problems.append(f"splits is {raw!r}, not an object of 'start:end' ranges: every split is unknown")
        return out
    count = len(episode_indices)
    top = max(episode_indices) + 1 if episode_indices else 0
    for name, value in raw.items():
        match = _RANGE.match(value) if isinstance(value, str) else None
        if match is None:
            out.problems.append(f"splits.{name} is {value!r}, not 'start:end': its episodes' split is unknown")
            continue
        start, end = int(match.group(1)), int(match.group(2))
        if end < start:
            out.problems.append(f"splits.{name} is {value!r}, an empty range")
            continue
        if end > top:
            out.problems.append(f"splits.{name} is {value!r} for {count} episodes")
        for other, (s, e) in out.ranges.items():
            if start < e and s < end:
                out.problems.append(f"splits.{name} ({value!r}) overlaps splits.{other}: those episodes are {other}")
        out.ranges[str(name)] = (start, end)
    return out


@dataclass(frozen=True)
class Inventory:
    """Files under ``data/`` and ``videos/`` that no episode lists, and episodes whose files are missing."""

    unlisted: list[str]
    missing: dict[int, list[str]]

    def problems(self) -> list[str]:
        """One line per kind of disagreement (for ``info().extra["problems"]`` and the convert report's notes)."""
        found = []
        if self.unlisted:
            shown = ", ".join(self.unlisted[:3]) + (" …" if len(self.unlisted) > 3 else "")
            found.append(f"{len(self.unlisted)} data/video file(s) that no episode lists: {shown}")
        if self.missing:
            found.append(f"{len(self.missing)} episode(s) whose listed files are missing")
        return found

    def extra(self) -> dict[str, Any]:
        """What ``info()`` shows: the unlisted files (the first few) and, per episode, its missing files."""
        out: dict[str, Any] = {}
        if self.unlisted:
            out["unlisted_files"] = {"count": len(self.unlisted), "first": self.unlisted[:LISTED_FILES]}
        if self.missing:
            out["missing_files"] = {f"episode_{i:06d}": files for i, files in sorted(self.missing.items())}
        return out


def take_inventory(root: Path, entries: Sequence[EpisodeEntry]) -> Inventory:
    """Compare the files the episodes reference with the parquet and mp4 files present (names only, no reads)."""
    listed: set[Path] = set()
    missing: dict[int, list[str]] = {}
    for entry in entries:
        for path in (entry.data_file, *(seg.path for seg in entry.videos.values())):
            listed.add(path)
            if not path.is_file():
                missing.setdefault(entry.episode_index, []).append(_rel(path, root))
    present: list[Path] = []
    for folder, pattern in (("data", "*.parquet"), ("videos", "*.mp4")):
        if (root / folder).is_dir():
            present += sorted((root / folder).rglob(pattern))
    resolved = {p.resolve() for p in listed}
    unlisted = [_rel(p, root) for p in present if p.resolve() not in resolved]
    return Inventory(unlisted, missing)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)

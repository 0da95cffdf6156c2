"""LeRobot datasets: read v2.0, v2.1 and v3.0 (and GR00T's ``modality.json``); export v3.0 and v2.1.

Reading needs pyarrow and, for video features, PyAV (``pip install 'rdstd[lerobot]'``), imported on first use.
See ``docs/formats/lerobot.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rdstd.formats.base import FormatBackend, SourceDataset
from rdstd.formats.lerobot.meta import looks_like_lerobot


class LeRobotBackend(FormatBackend):
    """LeRobot v2.0 / v2.1 / v3.0 dataset folders (``meta/info.json`` with a ``codebase_version``)."""

    name: ClassVar[str] = "lerobot"
    extra: ClassVar[str | None] = "lerobot"
    priority: ClassVar[int] = 20

    def detect(self, path: Path) -> bool:
        """A folder with ``meta/info.json`` that names a ``codebase_version``."""
        return path.is_dir() and looks_like_lerobot(path)

    def open(self, path: Path) -> SourceDataset:
        """Open the dataset (reads the metadata; raises on dataset-level problems)."""
        from rdstd.formats.lerobot.source import LeRobotSource

        return LeRobotSource(path)


__all__ = ["LeRobotBackend"]

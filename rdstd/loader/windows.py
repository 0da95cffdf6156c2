"""Per-key windows: which frames around a sample each key reads, and which of them fall outside the episode.

A window is a sequence of offsets: integers are frame offsets (``range(0, 16)`` for a 16-step action chunk,
``[-1, 0]`` for the previous and the current image), floats are time offsets in seconds (``[-0.1, 0.0]``),
resolved against the episode's own timestamps (the frame nearest to ``t + dt``, within half a frame period).
Offsets that land outside the episode (or, for time offsets, on no frame) are padding: the mask says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rdstd.errors import UsageError


@dataclass(frozen=True)
class Window:
    """The offsets one key reads around a sample: frames (``seconds`` False) or seconds (True)."""

    offsets: tuple[float, ...]
    seconds: bool

    @classmethod
    def parse(cls, key: str, value: Iterable[float] | Window) -> Window:
        """A window from a user's offsets: all integers -> frame offsets; any float -> time offsets (s)."""
        if isinstance(value, Window):
            return value
        items = list(value)
        if not items:
            raise UsageError(
                f"window of {key!r} is empty", hint="give at least one offset, e.g. [0]", situation="window-invalid"
            )
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | float | np.integer | np.floating):
                raise UsageError(f"window of {key!r}: offset {item!r} is not a number", situation="window-invalid")
        seconds = any(isinstance(item, float | np.floating) for item in items)
        offsets = tuple(float(i) for i in items) if seconds else tuple(int(i) for i in items)
        if seconds and not all(np.isfinite(offsets)):
            raise UsageError(f"window of {key!r}: offsets must be finite", situation="window-invalid")
        return cls(offsets, seconds)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def span(self) -> float:
        """Frames (for frame offsets: max - min + 1) or seconds (max - min) the window covers."""
        extent = max(self.offsets) - min(self.offsets)
        return extent if self.seconds else extent + 1


def parse_windows(windows: Mapping[str, Iterable[float] | Window] | None) -> dict[str, Window]:
    """Every key's :class:`Window` (keys not given read the sample's own frame only)."""
    return {key: Window.parse(key, value) for key, value in (windows or {}).items()}


def frame_window(
    frame: npt.NDArray[np.int64], length: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """For samples at ``frame`` of episodes of ``length`` frames: the frame (within the episode) each offset reads,
    clipped into the episode, and the padding mask (True where the offset left the episode). Shapes (N, W)."""
    target = frame[:, None] + offsets[None, :]
    pad = (target < 0) | (target >= length[:, None])
    return np.clip(target, 0, length[:, None] - 1), pad


def time_window(
    times: npt.NDArray[np.float64], frame: int, offsets_s: npt.NDArray[np.float64], tolerance_s: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """For a sample at ``frame`` of an episode with timestamps ``times``: the frame nearest to each
    ``times[frame] + offset`` and the padding mask (True where no frame lies within ``tolerance_s``). The padded
    entries point at the nearest frame inside the episode (what ``pad="repeat"`` repeats)."""
    target = times[frame] + offsets_s
    right = np.clip(np.searchsorted(times, target), 0, len(times) - 1)
    left = np.clip(right - 1, 0, len(times) - 1)
    nearest = np.where(np.abs(times[left] - target) <= np.abs(times[right] - target), left, right)
    pad = np.abs(times[nearest] - target) > tolerance_s
    return nearest.astype(np.int64), pad

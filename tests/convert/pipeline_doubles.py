"""A format backend double for pipeline tests: a tiny source whose episode ``fail_at`` raises what a test chooses.

The source is a file ``*.double`` holding one line per episode length. Each episode has a 2-d float32 vector
``state`` (with NaN/inf where ``nonfinite`` says) and, unless ``timestamps`` is False, timestamps at 10 Hz.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np

from rdstd.errors import CorruptSourceError
from rdstd.formats import registry
from rdstd.formats.base import EpisodeRef, FormatBackend, SourceDataset, SourceEpisode, SourceInfo, SourceKey

NAME = "double"


class RecordingFrames:
    """A lazy per-step array (a :class:`FrameArray`) that records the slices asked of it and can fail at one."""

    def __init__(self, values: np.ndarray, log: list[tuple[int, int]], fail_from: int | None) -> None:
        self._values = values
        self._log = log
        self._fail_from = fail_from

    @property
    def shape(self) -> tuple[int, ...]:
        """The wrapped array's shape."""
        return tuple(self._values.shape)

    @property
    def dtype(self) -> np.dtype:  # type: ignore[type-arg]
        """The wrapped array's dtype."""
        return self._values.dtype

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, _ = index.indices(len(self._values))
        self._log.append((start, stop))
        if self._fail_from is not None and stop > self._fail_from:
            raise CorruptSourceError(f"{self._fail_from}: bytes of frame {self._fail_from} do not decode")
        return self._values[index]


class DoubleSource(SourceDataset):
    """Episodes of the lengths in the file; ``fault(ref)`` runs before each episode is returned."""

    format: ClassVar[str] = NAME

    def __init__(self, path: Path, backend: DoubleBackend) -> None:
        super().__init__(path)
        self.lengths = [int(x) for x in path.read_text().split()]
        self.backend = backend

    def info(self) -> SourceInfo:
        """Counts and the one key."""
        keys = [SourceKey("state", "vector", (2,), "float32", names=["x", "y"])]
        rate = 10.0 if self.backend.timestamps else None
        return SourceInfo(NAME, "1", str(self.path), len(self.lengths), sum(self.lengths), keys, rate_hz=rate)

    def episode_refs(self) -> Sequence[EpisodeRef]:
        """One ref per line."""
        return [EpisodeRef(i, f"ep{i}", f"{self.path}#{i}", n) for i, n in enumerate(self.lengths)]

    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """The episode, after running the test's fault hook."""
        if self.backend.fault is not None:
            self.backend.fault(ref)
        n = self.lengths[ref.index]
        state = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
        for index, row, col, value in self.backend.nonfinite:
            if index == ref.index:
                state[row, col] = value
        stamps = np.arange(n) / 10.0 if self.backend.timestamps else None
        values: np.ndarray | RecordingFrames = state
        if self.backend.lazy:
            fail_from = self.backend.fail_frames.get(ref.index)
            values = RecordingFrames(state, self.backend.slices.setdefault(ref.index, []), fail_from)
        return SourceEpisode(ref, n, vectors={"state": values}, timestamps_s=stamps)


class DoubleBackend(FormatBackend):
    """Recognises ``*.double`` files."""

    name: ClassVar[str] = NAME
    priority: ClassVar[int] = 10

    def __init__(self) -> None:
        self.fault: Callable[[EpisodeRef], None] | None = None
        self.nonfinite: list[tuple[int, int, int, float]] = []
        self.timestamps = True
        #: Serve ``state`` lazily (a FrameArray), recording the slices read per episode.
        self.lazy = False
        self.slices: dict[int, list[tuple[int, int]]] = {}
        #: Episode index -> first frame whose bytes "do not decode" (a fault in the middle of a lazy read).
        self.fail_frames: dict[int, int] = {}

    def detect(self, path: Path) -> bool:
        """A file named ``*.double``."""
        return path.suffix == ".double" and path.is_file()

    def open(self, path: Path) -> DoubleSource:
        """Open it."""
        return DoubleSource(path, self)


def fail_at(index: int, exc: BaseException) -> Callable[[EpisodeRef], None]:
    """A fault hook raising ``exc`` for episode ``index`` only."""

    def hook(ref: EpisodeRef) -> None:
        if ref.index == index:
            raise exc

    return hook


@contextmanager
def registered() -> Iterator[DoubleBackend]:
    """The double, registered for the duration of the block."""
    backend = DoubleBackend()
    registry.register(backend)
    try:
        yield backend
    finally:
        registry.unregister(NAME)


def write_source(path: Path, lengths: list[int]) -> Path:
    """A ``*.double`` source with episodes of these lengths."""
    path.write_text(" ".join(map(str, lengths)))
    return path

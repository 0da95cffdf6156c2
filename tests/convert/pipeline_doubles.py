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

from rdstd.formats import registry
from rdstd.formats.base import EpisodeRef, FormatBackend, SourceDataset, SourceEpisode, SourceInfo, SourceKey

NAME = "double"


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
        return SourceEpisode(ref, n, vectors={"state": state}, timestamps_s=stamps)


class DoubleBackend(FormatBackend):
    """Recognises ``*.double`` files."""

    name: ClassVar[str] = NAME
    priority: ClassVar[int] = 10

    def __init__(self) -> None:
        self.fault: Callable[[EpisodeRef], None] | None = None
        self.nonfinite: list[tuple[int, int, int, float]] = []
        self.timestamps = True

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

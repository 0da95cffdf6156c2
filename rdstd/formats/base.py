"""The format backend contract: detect a source, describe it, stream its episodes.

A backend turns files of one format into :class:`SourceEpisode` objects keyed by *source* names; the
converter spec (``rdstd.convert``) turns those into canonical episodes. Backends register under the
``rdstd.formats`` entry-point group; :mod:`rdstd.testing` holds the contract tests every backend runs.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rdstd.errors import MappingError
from rdstd.schema.episode import ImageFrames
from rdstd.schema.vocabulary import ImageCodec

KeyKind = Literal["vector", "image", "text", "timestamp"]


@runtime_checkable
class FrameArray(Protocol):
    """Per-frame values read on demand (a zarr or h5py array, a memory map): ``shape[0]`` is the frame count.

    Slicing along the first axis returns a numpy array holding only those frames, so a long episode can be
    converted a chunk of frames at a time (memory bounded by a chunk, not by the episode). A numpy array is one.
    """

    @property
    def shape(self) -> tuple[int, ...]:
        """(frames, *per-frame shape)."""
        ...

    @property
    def dtype(self) -> np.dtype[Any]:
        """The element type."""
        ...

    def __getitem__(self, index: slice, /) -> Any:
        """The frames ``index`` selects, as a numpy array."""
        ...


#: A source's per-step values: in memory, or read a chunk of frames at a time.
FrameValues = npt.NDArray[Any] | FrameArray


def read_frames(values: FrameValues, start: int = 0, stop: int | None = None) -> npt.NDArray[Any]:
    """Frames ``[start, stop)`` of ``values`` as a numpy array (the whole array when no bounds are given)."""
    if isinstance(values, np.ndarray) and start == 0 and stop is None:
        return values
    return np.asarray(values[start:stop])


@dataclass(frozen=True)
class SourceKey:
    """One per-step key a source holds, as the source says it (for ``rdstd spec`` and ``rdstd info``)."""

    key: str
    kind: KeyKind
    shape: tuple[int, ...]
    dtype: str
    names: list[str] | None = None
    note: str = ""
    #: For images: how the source stores them (jpeg, png, video); None for raw pixel arrays.
    codec: ImageCodec | None = None
    #: For encoded images: the most bytes one stored frame takes (ALOHA's padded row width), None when unknown.
    #: Chunks of frames whose encoded bytes pass through are sized by it instead of by the decoded pixels.
    frame_bytes: int | None = None


@dataclass(frozen=True)
class EpisodeRef:
    """A cheap handle on one source episode.

    ``index`` is its position in the source's own order; ``key`` is a stable id, unique within the source and
    derived from the source itself (file and key, never the position alone): it becomes the episode id.
    """

    index: int
    key: str
    path: str
    length: int | None = None


#: Episodes a work unit holds at most by default (a unit becomes one output shard in batch conversion).
UNIT_EPISODES = 32


@dataclass(frozen=True)
class WorkUnit:
    """A piece of a source converted on its own (batch conversion: one unit, one output shard set).

    ``name`` says what it is in the source's terms (a shard file, an episode range); ``refs`` are its episodes in
    source order. Units are fixed by the source and the episodes chosen, never by the number of workers.
    """

    index: int
    name: str
    refs: tuple[EpisodeRef, ...]


@dataclass
class SourceInfo:
    """What ``rdstd info`` shows about a source: format, version, counts, keys, and backend extras."""

    format: str
    version: str
    path: str
    episodes: int
    frames: int | None
    keys: list[SourceKey]
    rate_hz: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The name the dataset states about itself (an RLDS builder name, a LeRobot ``robot_type``), for matching
    #: shipped specs; "" when the source states none.
    name: str = ""


@dataclass
class SourceEpisode:
    """One episode as the source holds it: per-step arrays by source key, plus episode-level facts.

    ``vectors`` and raw-pixel ``images`` may be :class:`FrameArray` objects read on demand (read them with
    :func:`read_frames`); encoded images and video segments are already compact.
    ``meta`` holds episode-level source values (kept in the canonical ``source_meta``); a backend may put a list
    of human-readable observations about the data (quirks, not errors) under ``meta["notes"]``: the convert
    report counts them so they are visible, not hidden.
    """

    ref: EpisodeRef
    length: int
    vectors: Mapping[str, FrameValues] = field(default_factory=dict)
    images: Mapping[str, ImageFrames | FrameArray] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    timestamps_s: npt.NDArray[np.float64] | None = None
    task: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def keys(self) -> set[str]:
        """Every per-step key this episode holds."""
        return set(self.vectors) | set(self.images) | set(self.texts)


class SourceDataset(abc.ABC):
    """An opened source. Episodes stream one at a time; memory is bounded by one episode."""

    format: ClassVar[str]

    def __init__(self, path: Path) -> None:
        self.path = path

    @abc.abstractmethod
    def info(self) -> SourceInfo:
        """Describe the source without reading episode data."""

    @abc.abstractmethod
    def episode_refs(self) -> Sequence[EpisodeRef]:
        """Handles on every episode, in source order (used to split work across workers)."""

    @abc.abstractmethod
    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """Read one episode. Raises :class:`rdstd.errors.SourceError` naming the file when it cannot."""

    def work_units(self, refs: Sequence[EpisodeRef] | None = None, max_episodes: int = UNIT_EPISODES) -> list[WorkUnit]:
        """The source's natural work units over ``refs`` (default: every episode), in source order.

        The default follows the files episodes come from (``EpisodeRef.path``: an RLDS shard, a LeRobot episode
        file, an HDF5 file, a bag): consecutive files are packed into one unit while it stays within
        ``max_episodes``, and a file holding more is cut into ranges of ``max_episodes``. A backend whose natural
        unit is something else overrides this; the result must depend only on the source and ``refs``.
        """
        chosen = list(self.episode_refs() if refs is None else refs)
        runs: list[list[EpisodeRef]] = []
        for ref in chosen:
            if runs and runs[-1][-1].path == ref.path:
                runs[-1].append(ref)
            else:
                runs.append([ref])
        groups: list[list[EpisodeRef]] = []
        for run in runs:
            for start in range(0, len(run), max_episodes):
                piece = run[start : start + max_episodes]
                whole_file = len(run) <= max_episodes
                if whole_file and groups and groups[-1] and len(groups[-1]) + len(piece) <= max_episodes:
                    groups[-1].extend(piece)
                else:
                    groups.append(list(piece))
                if not whole_file:
                    groups.append([])  # a cut file's pieces are not packed with the next file
        groups = [g for g in groups if g]
        return [WorkUnit(i, _unit_name(g), tuple(g)) for i, g in enumerate(groups)]

    def configure(self, options: Mapping[str, Any], origin: str) -> None:
        """Apply a converter spec's ``source:`` block (backend options, validated here; ``origin`` names the spec
        in errors). Backends that take options override this; the default refuses any."""
        if options:
            raise MappingError(
                f"{origin}: the {self.format} backend takes no source: options (given: {', '.join(sorted(options))})",
                hint="remove the source: block from the spec",
                situation="spec-source-options-unsupported",
            )

    def episodes(self) -> Iterator[SourceEpisode]:
        """Stream every episode in source order."""
        for ref in self.episode_refs():
            yield self.read_episode(ref)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release open files."""

    def __enter__(self) -> SourceDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unit_name(refs: Sequence[EpisodeRef]) -> str:
    first, last = refs[0], refs[-1]
    files = Path(first.path).name if first.path == last.path else f"{Path(first.path).name}..{Path(last.path).name}"
    return f"{files} episodes {first.index}-{last.index}"


class FormatBackend(abc.ABC):
    """A source format: how to recognise it and how to open it."""

    #: Short name used by ``--format`` and in provenance.
    name: ClassVar[str]
    #: The pip extra that installs what this backend needs (named in errors).
    extra: ClassVar[str | None] = None
    #: Detection order: lower runs first (specific formats before generic ones).
    priority: ClassVar[int] = 100

    @abc.abstractmethod
    def detect(self, path: Path) -> bool:
        """Whether ``path`` is this format. Must be cheap, must not raise, and must not import heavy packages."""

    @abc.abstractmethod
    def open(self, path: Path) -> SourceDataset:
        """Open ``path``; raises :class:`rdstd.errors.SourceError` when it is not readable."""

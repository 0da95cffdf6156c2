"""What the viewer logs: episodes as chunks of canonical frames, from a canonical dataset or a source.

A canonical dataset (local or in object storage, through :func:`rdstd.open`) gives each episode as one chunk read
from its shard. Any other source rdstd can read is converted on the fly, a chunk of frames at a time, with the same
backend, spec and :class:`~rdstd.convert.mapper.EpisodeConverter` that ``rdstd convert`` uses: nothing is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rdstd.errors import UsageError
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.episode import EncodedFrames, EpisodeMeta, ImageFrames, VideoFrames
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ImageCodec

Feature = VectorFeature | ImageFeature


@dataclass(frozen=True)
class VideoRefs:
    """Frames that live in video files: per frame, the local file and the presentation time in it (seconds)."""

    files: list[Path]
    times_s: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class StoredFrames:
    """JPEG or PNG frames as a canonical dataset stores them: its Arrow binary column, not copied into Python."""

    codec: ImageCodec
    column: pa.Array

    def __len__(self) -> int:
        return len(self.column)


#: One camera's frames in a chunk: decoded pixels (T, H, W, C), encoded bytes (in Python or in Arrow), or
#: references into video files.
Frames = npt.NDArray[Any] | EncodedFrames | StoredFrames | VideoRefs


@dataclass
class Chunk:
    """Frames ``[start, start + len(timestamps))`` of an episode."""

    start: int
    timestamps: npt.NDArray[np.float64]
    vectors: dict[str, npt.NDArray[Any]]
    images: dict[str, Frames]

    @property
    def length(self) -> int:
        """Number of frames in the chunk."""
        return int(self.timestamps.shape[0])


@dataclass
class ViewEpisode:
    """One episode to show: its index and metadata, and its frames a chunk at a time."""

    index: int
    meta: EpisodeMeta
    chunks: Iterator[Chunk]


@dataclass
class DatasetFacts:
    """What the viewer shows about a whole dataset: its features, robots, rate and where it came from."""

    name: str
    location: str
    features: dict[str, Feature]
    embodiments: list[Embodiment] = field(default_factory=list)
    rate_hz: float | None = None
    #: Provenance as flat text values (source format, path, spec, rdstd version that wrote it …).
    provenance: dict[str, str] = field(default_factory=dict)


class ViewSource(contextlib.AbstractContextManager["ViewSource"]):
    """Episodes to view and the facts about their dataset; a context manager (a source holds files open)."""

    facts: DatasetFacts
    #: Whether the episodes are converted on the fly (the path is a source, not a canonical dataset).
    converted: bool = False
    #: What opened it, for running the validator on the same thing (format, spec, rate of a source).
    options: dict[str, Any]

    def indices(self) -> list[int]:
        """Every episode index, in order."""
        raise NotImplementedError

    def episode(self, index: int) -> ViewEpisode:
        """The episode with ``index``."""
        raise NotImplementedError

    def find(self, episode_id: str) -> ViewEpisode | None:
        """The episode whose stable id is ``episode_id``, or None."""
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        return None


# -- a canonical dataset ---------------------------------------------------------------------------------------


class DatasetView(ViewSource):
    """A canonical dataset, local or in object storage."""

    def __init__(self, location: str, storage_options: dict[str, Any] | None = None) -> None:
        import rdstd

        self.dataset = rdstd.open(location, storage_options=storage_options)
        self.options = {}
        m = self.dataset.manifest
        p = m.provenance
        self.facts = DatasetFacts(
            name=m.name or Path(str(location).rstrip("/")).name,
            location=str(location),
            features=dict(m.features),
            embodiments=list(m.embodiments),
            rate_hz=m.rate_hz,
            provenance={
                "source_format": p.source_format,
                "source_version": p.source_version,
                "source_path": p.source_path,
                "converter_spec": p.converter_spec or "unknown",
                "written_by_rdstd": p.rdstd_version,
                "license": p.license,
                "created_utc": p.created_utc,
                "clock": m.clock.kind.value,
            },
        )

    def indices(self) -> list[int]:
        return [int(i) for i in self.dataset.episodes["episode_index"].to_list()]

    def _position(self, index: int) -> int:
        where = np.flatnonzero(self.dataset.episodes["episode_index"].to_numpy() == index)
        if not len(where):
            known = self.indices()
            raise UsageError(
                f"{self.facts.location}: no episode {index} (episodes {_span(known)})",
                hint="pass an episode index the dataset has: rdstd info DATASET lists them",
                situation="episode-not-found",
            )
        return int(where[0])

    def episode(self, index: int) -> ViewEpisode:
        data = self.dataset.episode(self._position(index))
        cams: dict[str, Frames] = {}
        for key, frames in data.images.items():
            feature = self.facts.features[key]
            assert isinstance(feature, ImageFeature)
            if feature.codec == ImageCodec.VIDEO:
                cams[key] = self._video_refs(frames.refs)
            else:
                cams[key] = StoredFrames(feature.codec, frames.stored)
        chunk = Chunk(0, data.timestamps, data.vectors, cams)
        return ViewEpisode(data.index, data.meta, iter([chunk]))

    def _video_refs(self, refs: list[dict[str, Any]]) -> VideoRefs:
        from rdstd.store.reader import video_file

        files: dict[str, Path] = {}
        paths = [files.setdefault(r["path"], video_file(self.dataset.location, r["path"])) for r in refs]
        return VideoRefs(paths, np.array([float(r["timestamp_s"]) for r in refs], dtype=np.float64))

    def find(self, episode_id: str) -> ViewEpisode | None:
        where = np.flatnonzero(self.dataset.episodes["episode_id"].to_numpy() == episode_id)
        if not len(where):
            return None
        return self.episode(int(self.dataset.episodes["episode_index"][int(where[0])]))


# -- any other source, converted on the fly ----------------------------------------------------------------------


class SourceView(ViewSource):
    """A source rdstd can read, converted on the fly with its backend and spec (as ``rdstd convert`` would)."""

    converted = True

    def __init__(
        self, path: str | Path, *, format_name: str | None = None, spec: str | None = None, rate_hz: float | None = None
    ) -> None:
        from rdstd.convert.mapper import EpisodeConverter, resolve_spec
        from rdstd.convert.pipeline import frames_per_chunk, open_source

        self.options = {"format_name": format_name, "spec": spec, "rate_hz": rate_hz}
        self._source = open_source(path, format_name, spec=spec)
        try:
            self._source.__enter__()
            info = self._source.info()
            loaded, self.warnings = resolve_spec(info, spec)
            chosen = loaded.spec
            self._converter = EpisodeConverter(chosen, info, rate_hz=rate_hz)
            self._chunk_frames = frames_per_chunk(self._converter)
            self._refs = {r.index: r for r in self._source.episode_refs()}
            self._root = Path(path)
        except BaseException:
            self._source.__exit__(None, None, None)
            raise
        self.facts = DatasetFacts(
            name=chosen.name,
            location=str(path),
            features=dict(self._converter.features),
            embodiments=[chosen.embodiment] if chosen.embodiment else [],
            rate_hz=self._converter.rate_hz,
            provenance={
                "source_format": info.format,
                "source_version": info.version,
                "source_path": str(path),
                "converter_spec": chosen.name,
                "converted_on_the_fly": "true",
            },
        )

    def __exit__(self, *exc: object) -> None:
        self._source.__exit__(None, None, None)

    def indices(self) -> list[int]:
        return sorted(self._refs)

    def episode(self, index: int) -> ViewEpisode:
        ref = self._refs.get(index)
        if ref is None:
            raise UsageError(
                f"{self.facts.location}: no episode {index} (episodes {_span(self.indices())})",
                hint="pass an episode index the source has: rdstd info SOURCE lists them",
                situation="episode-not-found",
            )
        source = self._source.read_episode(ref)
        meta, episodes = self._converter.convert_chunks(source, self._chunk_frames)

        def chunks() -> Iterator[Chunk]:
            start = 0
            for ep in episodes:
                cams = {k: self._frames(f) for k, f in ep.images.items()}
                yield Chunk(start, ep.timestamps, ep.vectors, cams)
                start += ep.length

        return ViewEpisode(ref.index, meta, chunks())

    def _frames(self, frames: ImageFrames) -> Frames:
        if not isinstance(frames, VideoFrames):
            return frames
        file = Path(frames.path) if Path(frames.path).is_absolute() else self._root / frames.path
        if frames.frame_times_s is not None:
            times = np.asarray(frames.frame_times_s, dtype=np.float64)
        else:
            times = frames.from_s + (frames.to_s - frames.from_s) * np.arange(frames.count) / max(frames.count, 1)
        return VideoRefs([file] * frames.count, times)

    def find(self, episode_id: str) -> ViewEpisode | None:
        for index in self.indices():
            source = self._source.read_episode(self._refs[index])
            meta, _ = self._converter.convert_chunks(source, self._chunk_frames)
            if meta.episode_id == episode_id:
                return self.episode(index)
        return None


def open_view(
    path: str | Path,
    *,
    format_name: str | None = None,
    spec: str | None = None,
    rate_hz: float | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ViewSource:
    """A canonical dataset (a folder, or a URL such as ``s3://bucket/ds``) or any source rdstd reads (converted on
    the fly; ``format_name``, ``spec`` and ``rate_hz`` as for ``rdstd convert``)."""
    from rdstd.io.remote import is_url
    from rdstd.store import layout

    if is_url(str(path)):
        return DatasetView(str(path), storage_options)
    if format_name is None and spec is None and layout.is_dataset(Path(path)):
        return DatasetView(str(path))
    return SourceView(path, format_name=format_name, spec=spec, rate_hz=rate_hz)


def _span(indices: Sequence[int]) -> str:
    if not indices:
        return "none"
    return f"{indices[0]}..{indices[-1]}" if len(indices) > 1 else str(indices[0])

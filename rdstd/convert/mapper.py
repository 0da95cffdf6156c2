"""From a source episode to a canonical one: the spec's plans applied to the backend's arrays.

:func:`resolve_spec` picks the spec (given, matched or drafted); :class:`EpisodeConverter` builds the per-feature
plans once per dataset and applies them to every episode, whole (:meth:`EpisodeConverter.convert`) or a chunk of
frames at a time (:meth:`EpisodeConverter.convert_chunks`). The batch loop around it is
:mod:`rdstd.convert.pipeline`.

Lossless by default: a per-step source key the spec does not map is kept with ``unknown`` semantics (vectors
become features, images cameras, text language segments of the episode); only the spec's ``drop:`` list or
``drop_unmapped=True`` leaves keys out, and :attr:`EpisodeConverter.dropped` says which and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.convert.canonicalize import CameraPlan, VectorPlan, plan_camera, plan_vector
from rdstd.convert.specs import (
    LoadedSpec,
    canonical_name,
    draft_spec,
    drafted_camera,
    load_spec,
    match_spec,
    without_absent,
)
from rdstd.errors import EpisodeError, MappingError
from rdstd.formats.base import FrameArray, SourceEpisode, SourceInfo, SourceKey, read_frames
from rdstd.media.video import frame_times
from rdstd.paths import is_safe_component
from rdstd.schema.clock import Clock
from rdstd.schema.episode import (
    BinaryFrames,
    EncodedFrames,
    Episode,
    EpisodeMeta,
    ImageFrames,
    LanguageSegment,
    VideoFrames,
)
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.spec import ConverterSpec, VectorSpec
from rdstd.schema.vocabulary import UNIT_TO_SI, ClockKind, ImageCodec, Unit

#: Per-step keys a backend reports that only number the frames (the canonical format has its own).
BOOKKEEPING_KEYS = frozenset({"episode_index", "frame_index", "index", "task_index"})
#: Frames per chunk when :meth:`EpisodeConverter.convert_chunks` is not told.
DEFAULT_CHUNK_FRAMES = 256
#: Episode-level source values that have their own EpisodeMeta field (not repeated in ``source_meta``).
_META_FIELDS = frozenset({"split", "success", "checksum"})
_NUMERIC_KINDS = "biuf"


def resolve_spec(info: SourceInfo, spec: str | Path | ConverterSpec | None) -> tuple[LoadedSpec, list[str]]:
    """The spec to use: the one given, a shipped one that matches the source, or a draft (with a warning);
    its optional entries the source lacks are left out, with a warning saying which (:func:`without_absent`)."""
    loaded, warnings = _resolve_spec(info, spec)
    fitted, absent = without_absent(loaded, info)
    return fitted, warnings + absent


def _resolve_spec(info: SourceInfo, spec: str | Path | ConverterSpec | None) -> tuple[LoadedSpec, list[str]]:
    if isinstance(spec, ConverterSpec):
        return LoadedSpec(spec, "(in memory)", ""), []
    if spec is not None:
        loaded = load_spec(spec)
        if loaded.spec.format != info.format:
            raise MappingError(
                f"spec {loaded.spec.name!r} is for {loaded.spec.format}, the source is {info.format}",
                hint="pass a spec written for this format",
                situation="spec-format-mismatch",
            )
        return loaded, []
    matched = match_spec(info)
    if matched is not None:
        return matched, []  # not a warning: the plan says which spec was matched
    draft = draft_spec(info)
    warning = (
        "no converter spec given or matched: units, frames and semantics are recorded as unknown "
        "(draft one with `rdstd spec SRC > spec.yaml`, edit it, pass --spec)"
    )
    return LoadedSpec(draft, "(drafted)", ""), [warning]


def is_bookkeeping(key: SourceKey) -> bool:
    """Whether a source key only numbers frames or times them (used by the mapping, never a feature of its own)."""
    return key.kind == "timestamp" or key.key in BOOKKEEPING_KEYS


class EpisodeConverter:
    """Applies one spec to the episodes of one source (plans built once).

    ``images`` overrides how cameras are stored; ``drop_unmapped`` leaves out the source keys the spec does not
    map (they are kept, with unknown semantics, by default); ``rate_hz`` overrides the spec's and the source's
    rate (used when the source has no timestamps).
    """

    def __init__(
        self,
        spec: ConverterSpec,
        info: SourceInfo,
        *,
        images: ImageCodec | None = None,
        drop_unmapped: bool = False,
        rate_hz: float | None = None,
    ) -> None:
        if rate_hz is not None and not rate_hz > 0:
            raise MappingError(
                f"rate {rate_hz!r} Hz is not a positive number",
                hint="pass --rate HZ with HZ > 0",
                situation="rate-invalid",
            )
        self.spec = spec
        self.info = info
        self.rate_hz: float | None = rate_hz or spec.rate_hz or info.rate_hz
        keys = {k.key: k for k in info.keys}
        self._keys: dict[str, list[str]] = {}
        self.vectors: list[VectorPlan] = []
        self.cameras: list[CameraPlan] = []
        for name, vspec in spec.features.items():
            source_key = _joined([_need(keys, k, name, info) for k in vspec.source_keys])
            self._add_vector(name, vspec, source_key)
        for name, cspec in spec.cameras.items():
            source = _need(keys, cspec.key, name, info)
            self.cameras.append(plan_camera(name, cspec, source, store_as=images, source_codec=source.codec))
        if spec.timestamps is not None:
            _need(keys, spec.timestamps.key, "timestamps", info)
        if spec.all_task_keys:  # the task's key must exist; alternative phrasings are used where the source has them
            _need(keys, spec.all_task_keys[0], "the task", info)
        used = {k for v in spec.features.values() for k in v.source_keys} | {c.key for c in spec.cameras.values()}
        used |= {spec.timestamps.key} if spec.timestamps else set()
        used |= set(spec.all_task_keys)
        #: Source keys left out, with the reason ("spec drop: …", "--drop-unmapped: …", or why they cannot be kept).
        self.dropped: dict[str, str] = {}
        #: Source keys the spec does not map that are kept with unknown semantics (features, cameras, language).
        self.kept_unmapped: list[str] = []
        self._text_keys: list[str] = []
        for key in info.extra.get("ragged_keys") or []:
            self.dropped[str(key)] = "ragged per step: not a fixed-size feature (the backend does not read it)"
        for source_key in info.keys:
            if source_key.key not in used and not is_bookkeeping(source_key):
                self._keep_or_drop(source_key, images, drop_unmapped)
        self._clock_paths: set[tuple[ClockKind, str]] = set()
        self._clock = self._predicted_clock()

    # -- planning ------------------------------------------------------------------------------------------------
    def _add_vector(self, name: str, vspec: VectorSpec, source_key: SourceKey) -> None:
        self.vectors.append(plan_vector(name, vspec, source_key, keep_source=self.spec.keep_source_conventions))
        self._keys[name] = vspec.source_keys

    def _free_name(self, key: SourceKey) -> str:
        taken = set(self._keys) | {c.name for c in self.cameras}
        base = canonical_name(key.key, key.kind)
        name, n = base, 1
        while name in taken or not is_safe_component(name):
            name, n = f"{base}_{n}", n + 1
        return name

    def _keep_or_drop(self, key: SourceKey, images: ImageCodec | None, drop_unmapped: bool) -> None:
        if key.key in self.spec.drop:
            self.dropped[key.key] = "spec drop: the spec leaves it out"
            return
        if drop_unmapped:
            self.dropped[key.key] = "--drop-unmapped: the spec does not map it"
            return
        if key.kind == "text":
            self._text_keys.append(key.key)
        elif key.kind == "image":
            reason = _not_a_camera(key)
            if reason:
                self.dropped[key.key] = reason
                return
            cspec = drafted_camera(key, "not mapped by the spec: kept as the source stores it; mount and frame unknown")
            self.cameras.append(plan_camera(self._free_name(key), cspec, key, store_as=images, source_codec=key.codec))
        else:
            reason = _not_a_vector(key)
            if reason:
                self.dropped[key.key] = reason
                return
            vspec = VectorSpec(key=key.key, description="not mapped by the spec: semantics unknown")
            self._add_vector(self._free_name(key), vspec, key)
        self.kept_unmapped.append(key.key)

    @property
    def unmapped(self) -> list[str]:
        """The source keys left out (sorted): the keys of :attr:`dropped`."""
        return sorted(self.dropped)

    @property
    def features(self) -> dict[str, VectorFeature | ImageFeature]:
        """The canonical features this conversion produces."""
        out: dict[str, VectorFeature | ImageFeature] = {p.name: p.feature for p in self.vectors}
        out.update({c.name: c.feature for c in self.cameras})
        return out

    # -- the clock -----------------------------------------------------------------------------------------------
    def _predicted_clock(self) -> Clock:
        stated = self.spec.clock or Clock()
        if self.spec.timestamps is not None:
            kind, source = ClockKind.MEASURED, f"key:{self.spec.timestamps.key}"
        elif any(k.kind == "timestamp" for k in self.info.keys):
            kind, source = ClockKind.MEASURED, "source_timestamps"
        elif self.rate_hz:
            kind, source = ClockKind.SYNTHESIZED, "rate"
        else:
            raise MappingError(
                f"{self.info.path}: the source has no timestamps and no frame rate is known",
                hint="set rate_hz: in the spec, or pass --rate HZ",
                situation="rate-unknown",
            )
        return self._clock_of(kind, source, stated)

    def _clock_of(self, kind: ClockKind, source: str, stated: Clock) -> Clock:
        if kind == ClockKind.SYNTHESIZED:
            return Clock(
                kind=kind,
                source="none",
                rate_hz=self.rate_hz,
                resampling=stated.resampling,
                description=stated.description or f"frame i at i / {self.rate_hz:g} s: the source stores no times",
            )
        named = stated.source if stated.kind == ClockKind.MEASURED and stated.source != "unknown" else source
        return Clock(kind=kind, source=named, resampling=stated.resampling, description=stated.description)

    @property
    def clock_paths(self) -> frozenset[tuple[ClockKind, str]]:
        """How the episodes converted so far got their timestamps: (clock kind, source) pairs."""
        return frozenset(self._clock_paths)

    def add_clock_paths(self, paths: Iterable[tuple[ClockKind, str]]) -> None:
        """Count episodes converted elsewhere (another batch worker) in :attr:`clock`."""
        self._clock_paths.update(paths)

    @property
    def clock(self) -> Clock:
        """Where the timestamps come from (the manifest's ``clock``); reflects the episodes converted so far."""
        if len(self._clock_paths) > 1:
            paths = ", ".join(sorted(f"{k}:{s}" for k, s in self._clock_paths))
            return Clock(kind=ClockKind.UNKNOWN, source="mixed", description=f"episodes differ: {paths}")
        if self._clock_paths:
            kind, source = next(iter(self._clock_paths))
            return self._clock_of(kind, source, self.spec.clock or Clock())
        return self._clock

    # -- converting ----------------------------------------------------------------------------------------------
    def convert(self, source: SourceEpisode) -> Episode:
        """One canonical episode from one source episode (every frame in one chunk)."""
        _, chunks = self.convert_chunks(source, chunk_frames=max(source.length, 1))
        return next(chunks)

    def convert_chunks(
        self, source: SourceEpisode, chunk_frames: int = DEFAULT_CHUNK_FRAMES
    ) -> tuple[EpisodeMeta, Iterator[Episode]]:
        """The episode's metadata, and its frames as canonical :class:`Episode` chunks of ``chunk_frames``.

        Every chunk has the same ``meta``; its ``timestamps`` are relative to the episode's start (the first chunk
        starts at 0.0, later ones continue). Per-step source values are read a chunk at a time
        (:func:`read_frames`); only small whole-episode columns (timestamps, a gripper made absolute) are read
        whole. An empty episode yields one empty chunk. Errors in the data surface while iterating.
        """
        if chunk_frames < 1:
            raise MappingError(f"chunk_frames must be at least 1, not {chunk_frames}", situation="chunk-size-invalid")
        n = source.length
        self._check_rows(source)
        meta = self._meta(source)
        stamps = self._timestamps(source)
        whole = {
            plan.name: plan.finish_episode(self._vector(plan, source, 0, n))
            for plan in self.vectors
            if plan.relative_to_absolute
        }

        def chunks() -> Iterator[Episode]:
            for start in range(0, max(n, 1), chunk_frames):
                stop = min(start + chunk_frames, n)
                vectors = {
                    p.name: whole[p.name][start:stop] if p.name in whole else self._vector(p, source, start, stop)
                    for p in self.vectors
                }
                cams = {c.name: c.apply(_image_slice(source.images[c.spec.key], start, stop)) for c in self.cameras}
                yield Episode(meta, stamps[start:stop], vectors, cams)

        return meta, chunks()

    def _check_rows(self, source: SourceEpisode) -> None:
        for plan in self.vectors:
            for key in self._keys[plan.name]:
                values = source.vectors.get(key)
                if values is None:
                    raise EpisodeError(f"episode {source.ref.key}: has no {key}", situation="episode-key-missing")
                if values.shape[0] != source.length:
                    raise EpisodeError(
                        f"episode {source.ref.key}: {key} has {values.shape[0]} rows, not {source.length}",
                        situation="episode-length-mismatch",
                    )
        for cam in self.cameras:
            if cam.spec.key not in source.images:
                raise EpisodeError(
                    f"episode {source.ref.key}: has no images for {cam.spec.key}", situation="episode-key-missing"
                )

    def _vector(self, plan: VectorPlan, source: SourceEpisode, start: int, stop: int) -> npt.NDArray[Any]:
        keys = self._keys[plan.name]
        parts = [read_frames(source.vectors[k], start, stop) for k in keys]
        if len(parts) == 1:
            return plan.apply(parts[0])
        return plan.apply(np.concatenate([p.reshape(stop - start, -1) for p in parts], axis=1))

    def _meta(self, source: SourceEpisode) -> EpisodeMeta:
        task, instructions = self._task(source)
        return EpisodeMeta(
            episode_id=str(source.meta.get("episode_id") or source.ref.key),
            task=task,
            instructions=instructions,
            language=self._language(source),
            split=self.spec.split or str(source.meta.get("split") or "unknown"),
            success=source.meta.get("success"),
            embodiment=self.spec.embodiment.name if self.spec.embodiment else "",
            source_path=source.ref.path,
            source_key=source.ref.key,
            source_checksum=str(source.meta.get("checksum", "")),
            source_meta=self._source_meta(source.meta),
        )

    def _source_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        """What the episode keeps of the source's own metadata.

        ``image_stats`` (a source's statistics of its cameras, keyed by source key) is kept for the cameras that
        are stored as the source's video unchanged, under their canonical names: they describe those very frames.
        """
        out = {k: v for k, v in meta.items() if k not in _META_FIELDS and k != "image_stats"}
        carried = meta.get("image_stats")
        if isinstance(carried, dict):
            kept = {
                c.name: carried[c.spec.key]
                for c in self.cameras
                if c.feature.codec == ImageCodec.VIDEO and c.spec.key in carried
            }
            if kept:
                out["image_stats"] = kept
        return out

    def _task(self, source: SourceEpisode) -> tuple[str, list[str]]:
        texts = [_first_text(source.texts.get(k)) for k in self.spec.all_task_keys]
        task = texts[0] if texts and texts[0] else source.task or self.spec.task or ""
        others = [t for t in texts[1:] if t and t != task]
        return task, list(dict.fromkeys(others))

    def _language(self, source: SourceEpisode) -> list[LanguageSegment]:
        segments = []
        for key in self._text_keys:
            steps = source.texts.get(key) or []
            start = 0
            for i in range(1, len(steps) + 1):
                if i == len(steps) or steps[i] != steps[start]:
                    if steps[start]:
                        segments.append(
                            LanguageSegment(start_frame=start, end_frame=i, text=steps[start], source_key=key)
                        )
                    start = i
        return segments

    def _timestamps(self, source: SourceEpisode) -> npt.NDArray[np.float64]:
        n = source.length
        stamps: npt.NDArray[np.float64]
        mapped = self.spec.timestamps
        raw = source.vectors.get(mapped.key) if mapped is not None else None
        if mapped is not None and raw is None and not self._refused_clock(source, mapped.key):
            raise EpisodeError(f"episode {source.ref.key}: has no {mapped.key}", situation="episode-key-missing")
        if mapped is not None and raw is not None:
            factor = UNIT_TO_SI.get(mapped.unit, (Unit.S, 1.0))[1]
            stamps = read_frames(raw).reshape(n).astype(np.float64) * factor
            self._clock_paths.add((ClockKind.MEASURED, f"key:{mapped.key}"))
        elif source.timestamps_s is not None:
            stamps = source.timestamps_s.astype(np.float64)
            self._clock_paths.add((ClockKind.MEASURED, "source_timestamps"))
        elif self.rate_hz:
            self._clock_paths.add((ClockKind.SYNTHESIZED, "rate"))
            return np.arange(n, dtype=np.float64) / self.rate_hz
        else:
            raise MappingError(
                f"{self.info.path}: episode {source.ref.key} has no timestamps and no frame rate is known",
                hint="set rate_hz: in the spec, or pass --rate HZ",
                situation="rate-unknown",
            )
        return stamps - stamps[0] if n else stamps

    def _refused_clock(self, source: SourceEpisode, key: str) -> bool:
        """Whether the mapped timestamps ``key`` are a clock the backend derives and checks per episode (a key of kind
        ``timestamp``) and gives as None for this episode: it refused that episode's clock (its notes say why).
        Its frames are then at i / rate (or the rate is asked for), and the manifest's clock says the episodes
        differ. A key the episode lacks altogether is an error."""
        offered = any(k.key == key and k.kind == "timestamp" for k in self.info.keys)
        return offered and key in source.vectors and source.vectors[key] is None


def _first_text(texts: list[str] | None) -> str:
    return next((t for t in texts or [] if t), "")


def _not_a_vector(key: SourceKey) -> str:
    """Why a per-step key cannot be a vector feature ("" when it can)."""
    if any(d < 0 for d in key.shape):
        return f"ragged per step (shape {list(key.shape)}): not a fixed-size feature"
    if math.prod(key.shape) == 0:
        return "empty per step"
    try:
        if np.dtype(key.dtype).kind not in _NUMERIC_KINDS:
            return f"{key.dtype} values per step: not numeric"
    except TypeError:
        return f"{key.dtype} values per step: not numeric"
    return ""


def _not_a_camera(key: SourceKey) -> str:
    """Why an image key the spec does not map cannot be kept without knowing more ("" when it can)."""
    if len(key.shape) not in (2, 3) or any(d < 0 for d in key.shape):
        return f"image of shape {list(key.shape)}: map it in the spec's cameras"
    if key.codec is None and key.dtype not in {"uint8", "uint16"}:
        return f"raw {key.dtype} pixels of unknown range: map it in the spec's cameras (value_range, color)"
    return ""


def _image_slice(frames: ImageFrames | FrameArray, start: int, stop: int) -> ImageFrames:
    """Frames ``[start, stop)`` of one camera: a list slice, a video sub-segment, or raw pixels read lazily."""
    if isinstance(frames, EncodedFrames):
        if start == 0 and stop >= len(frames) and isinstance(frames.frames, list | BinaryFrames):
            return frames  # (a lazy sequence is sliced: its slice is what reads it, e.g. into one Arrow buffer)
        return EncodedFrames(frames.codec, frames.frames[start:stop])
    if isinstance(frames, VideoFrames):
        return video_slice(frames, start, stop)
    return read_frames(frames, start, stop)


def video_slice(frames: VideoFrames, start: int, stop: int) -> VideoFrames:
    """Frames ``[start, stop)`` of a video segment, with each frame's time in the file (computed when absent)."""
    if start == 0 and stop >= frames.count:
        return frames
    times = frame_times(frames)
    stop = min(stop, frames.count)
    to_s = float(times[stop]) if stop < frames.count else frames.to_s
    picked = tuple(float(t) for t in times[start:stop])
    return VideoFrames(frames.path, float(times[start]) if stop > start else to_s, to_s, stop - start, picked)


def _joined(parts: list[SourceKey]) -> SourceKey:
    """One source key standing for several concatenated per step (flattened, dtype promoted)."""
    if len(parts) == 1:
        return parts[0]
    size = sum(math.prod(p.shape) for p in parts)
    dtype = np.result_type(*[np.dtype(p.dtype) for p in parts]).name
    names = [n for p in parts for n in (p.names or [])]
    return SourceKey("+".join(p.key for p in parts), "vector", (size,), dtype, names if len(names) == size else None)


def _need(keys: dict[str, SourceKey], key: str, name: str, info: SourceInfo) -> SourceKey:
    if key not in keys:
        have = ", ".join(sorted(keys)) or "nothing"
        raise MappingError(
            f"{info.path}: the spec maps {name} from {key!r}, which the source does not have (it has: {have})",
            hint="fix the key in the spec, or draft a new one with: rdstd spec SRC",
            situation="spec-key-missing",
        )
    return keys[key]

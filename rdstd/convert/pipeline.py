"""The conversion pipeline: source backend -> converter spec -> canonical episodes -> store.

Episodes stream one at a time (memory bounded by one episode). The error policy decides what a bad episode
does: ``fail`` stops and removes the partial output; ``skip`` records the episode and its reason and goes on.
Errors in the spec itself (:class:`MappingError`) always stop, since every episode would fail the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

import rdstd
from rdstd.convert.canonicalize import CameraPlan, VectorPlan, plan_camera, plan_vector
from rdstd.convert.specs import LoadedSpec, draft_spec, load_spec, match_spec
from rdstd.errors import EpisodeError, MappingError, RdstdError, SourceError
from rdstd.formats.base import EpisodeRef, SourceDataset, SourceEpisode, SourceInfo, SourceKey
from rdstd.formats.registry import detect, get_backend
from rdstd.schema.episode import Episode, EpisodeMeta
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.manifest import Provenance
from rdstd.schema.spec import ConverterSpec
from rdstd.schema.vocabulary import UNIT_TO_SI, ImageCodec, Unit
from rdstd.store.writer import DEFAULT_ROW_GROUP_FRAMES, DatasetWriter

OnError = Literal["fail", "skip"]
#: Called after each episode with (episodes done, episodes in total).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SkippedEpisode:
    """An episode left out under ``--on-error skip``, and why."""

    index: int
    key: str
    reason: str


@dataclass
class ConvertReport:
    """What a conversion did."""

    source: str
    output: str
    format: str
    spec: str
    episodes_written: int = 0
    frames_written: int = 0
    skipped: list[SkippedEpisode] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: What the backend observed about the data (quirks, not errors), with the number of episodes showing each.
    source_notes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "source": self.source,
            "output": self.output,
            "format": self.format,
            "spec": self.spec,
            "episodes_written": self.episodes_written,
            "frames_written": self.frames_written,
            "skipped": [vars(s) for s in self.skipped],
            "warnings": self.warnings,
            "source_notes": self.source_notes,
            "seconds": round(self.seconds, 3),
        }


def open_source(path: Path, format_name: str | None = None) -> SourceDataset:
    """Open a source with the named backend, or the one that recognises it."""
    backend = get_backend(format_name) if format_name else detect(path)
    return backend.open(path)


def resolve_spec(info: SourceInfo, spec: str | Path | ConverterSpec | None) -> tuple[LoadedSpec, list[str]]:
    """The spec to use: the one given, a shipped one that matches the source, or a draft (with a warning)."""
    if isinstance(spec, ConverterSpec):
        return LoadedSpec(spec, "(in memory)", ""), []
    if spec is not None:
        loaded = load_spec(spec)
        if loaded.spec.format != info.format:
            raise MappingError(
                f"spec {loaded.spec.name!r} is for {loaded.spec.format}, the source is {info.format}",
                hint="pass a spec written for this format",
            )
        return loaded, []
    matched = match_spec(info)
    if matched is not None:
        return matched, [f"using shipped spec {matched.spec.name!r} (matched the source's keys)"]
    draft = draft_spec(info)
    warning = (
        "no converter spec given or matched: units, frames and semantics are recorded as unknown "
        "(draft one with `rdstd spec SRC > spec.yaml`, edit it, pass --spec)"
    )
    return LoadedSpec(draft, "(drafted)", ""), [warning]


class EpisodeConverter:
    """Applies one spec to the episodes of one source (plans built once)."""

    def __init__(self, spec: ConverterSpec, info: SourceInfo, *, images: ImageCodec | None = None) -> None:
        self.spec = spec
        self.info = info
        keys = {k.key: k for k in info.keys}
        self.vectors: list[VectorPlan] = []
        self.cameras: list[CameraPlan] = []
        for name, vspec in spec.features.items():
            source_key = _joined([_need(keys, k, name, info) for k in vspec.source_keys])
            self.vectors.append(plan_vector(name, vspec, source_key, keep_source=spec.keep_source_conventions))
        for name, cspec in spec.cameras.items():
            source = _need(keys, cspec.key, name, info)
            self.cameras.append(plan_camera(name, cspec, source, store_as=images, source_codec=source.codec))
        if spec.timestamps is not None:
            _need(keys, spec.timestamps.key, "timestamps", info)
        used = {k for v in spec.features.values() for k in v.source_keys} | {c.spec.key for c in self.cameras}
        used |= {spec.timestamps.key} if spec.timestamps else set()
        used |= {spec.task_key} if spec.task_key else set()
        self.unmapped = sorted(k for k in keys if k not in used)

    @property
    def features(self) -> dict[str, VectorFeature | ImageFeature]:
        """The canonical features this conversion produces."""
        out: dict[str, VectorFeature | ImageFeature] = {p.name: p.feature for p in self.vectors}
        out.update({c.name: c.feature for c in self.cameras})
        return out

    def convert(self, source: SourceEpisode) -> Episode:
        """One canonical episode from one source episode."""
        vectors = {}
        for plan, vspec in zip(self.vectors, self.spec.features.values(), strict=True):
            parts: list[npt.NDArray[Any]] = []
            for key in vspec.source_keys:
                values = source.vectors.get(key)
                if values is None:
                    raise EpisodeError(f"episode {source.ref.key}: has no {key}")
                if values.shape[0] != source.length:
                    raise EpisodeError(
                        f"episode {source.ref.key}: {key} has {values.shape[0]} rows, not {source.length}"
                    )
                parts.append(values.reshape(source.length, -1) if parts or len(vspec.source_keys) > 1 else values)
            vectors[plan.name] = plan.apply(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
        cams = {}
        for cam in self.cameras:
            frames = source.images.get(cam.spec.key)
            if frames is None:
                raise EpisodeError(f"episode {source.ref.key}: has no images for {cam.spec.key}")
            cams[cam.name] = cam.apply(frames)
        meta = EpisodeMeta(
            episode_id=str(source.meta.get("episode_id") or source.ref.key),
            task=self._task(source),
            split=self.spec.split or str(source.meta.get("split", "train")),
            success=source.meta.get("success"),
            embodiment=self.spec.embodiment.name if self.spec.embodiment else "",
            source_path=source.ref.path,
            source_key=source.ref.key,
            source_checksum=str(source.meta.get("checksum", "")),
            source_meta={k: v for k, v in source.meta.items() if k not in {"split", "success", "checksum"}},
        )
        return Episode(meta, self._timestamps(source), vectors, cams)

    def _task(self, source: SourceEpisode) -> str:
        if self.spec.task_key:
            texts = source.texts.get(self.spec.task_key)
            if texts:
                return texts[0]
        return source.task or self.spec.task or ""

    def _timestamps(self, source: SourceEpisode) -> npt.NDArray[np.float64]:
        n = source.length
        stamps: npt.NDArray[np.float64] | None = None
        if self.spec.timestamps is not None:
            raw = source.vectors.get(self.spec.timestamps.key)
            if raw is None:
                raise EpisodeError(f"episode {source.ref.key}: has no {self.spec.timestamps.key}")
            factor = UNIT_TO_SI.get(self.spec.timestamps.unit, (Unit.S, 1.0))[1]
            stamps = raw.reshape(n).astype(np.float64) * factor
        elif source.timestamps_s is not None:
            stamps = source.timestamps_s.astype(np.float64)
        elif self.spec.rate_hz:
            return np.arange(n, dtype=np.float64) / self.spec.rate_hz
        else:
            raise MappingError(
                f"{self.info.path}: the source has no timestamps and the spec no rate",
                hint="set rate_hz: in the converter spec",
            )
        return stamps - stamps[0] if n else stamps


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
        )
    return keys[key]


def convert(
    source: str | Path,
    output: str | Path,
    *,
    format_name: str | None = None,
    spec: str | Path | ConverterSpec | None = None,
    on_error: OnError = "fail",
    images: ImageCodec | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    row_group_frames: int = DEFAULT_ROW_GROUP_FRAMES,
    progress: Progress | None = None,
) -> ConvertReport:
    """Convert the dataset at ``source`` into a canonical dataset at ``output``.

    ``on_error="skip"`` writes the episodes that convert and lists the others with reasons in the report;
    ``"fail"`` stops at the first bad episode and leaves no output behind.
    """
    started = time.perf_counter()
    src, out = Path(source), Path(output)
    with open_source(src, format_name) as dataset:
        info = dataset.info()
        loaded, warnings = resolve_spec(info, spec)
        converter = EpisodeConverter(loaded.spec, info, images=images)
        if converter.unmapped:
            warnings.append(f"source keys not mapped by the spec (left out): {', '.join(converter.unmapped)}")
        report = ConvertReport(str(src), str(out), info.format, loaded.spec.name, warnings=warnings)
        refs = list(dataset.episode_refs())[:limit]
        provenance = Provenance(
            source_format=info.format,
            source_version=info.version,
            source_path=str(src.resolve()),
            converter_spec=loaded.spec.name,
            converter_spec_sha256=loaded.sha256 or None,
            rdstd_version=rdstd.__version__,
            license=loaded.spec.license,
            citation=loaded.spec.citation,
            created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        writer = DatasetWriter(
            out,
            converter.features,
            provenance,
            name=loaded.spec.name,
            description=loaded.spec.description,
            rate_hz=loaded.spec.rate_hz or info.rate_hz,
            embodiments=[loaded.spec.embodiment] if loaded.spec.embodiment else [],
            extra={"source_info": info.extra, "unmapped_source_keys": converter.unmapped},
            overwrite=overwrite,
            row_group_frames=row_group_frames,
        )
        with writer:
            for done, ref in enumerate(refs, start=1):
                _convert_one(dataset, converter, writer, ref, on_error, report)
                if progress is not None:
                    progress(done, len(refs))
            if report.episodes_written == 0:
                reasons = "; ".join(f"{s.key}: {s.reason}" for s in report.skipped[:3])
                raise EpisodeError(f"{src}: no episode could be converted ({reasons or 'the source has none'})")
    report.seconds = time.perf_counter() - started
    return report


def _convert_one(
    dataset: SourceDataset,
    converter: EpisodeConverter,
    writer: DatasetWriter,
    ref: EpisodeRef,
    on_error: OnError,
    report: ConvertReport,
) -> None:
    try:
        source = dataset.read_episode(ref)
        for note in source.meta.get("notes") or []:
            report.source_notes[str(note)] = report.source_notes.get(str(note), 0) + 1
        episode = converter.convert(source)
        writer.add(episode)
    except MappingError:
        raise
    except (SourceError, EpisodeError) as exc:
        if on_error == "fail":
            raise
        report.skipped.append(SkippedEpisode(ref.index, ref.key, exc.message))
        return
    except RdstdError:
        raise
    except Exception as exc:  # a backend or codec failing on bad bytes: name the episode, never a bare traceback
        error = EpisodeError(f"episode {ref.key} ({ref.path}): unexpected {type(exc).__name__}: {exc}")
        if on_error == "fail":
            raise error from exc
        report.skipped.append(SkippedEpisode(ref.index, ref.key, error.message))
        return
    report.episodes_written += 1
    report.frames_written += episode.length

"""From a source episode to a canonical one: the spec's plans applied to the backend's arrays.

:func:`resolve_spec` picks the spec (given, matched or drafted); :class:`EpisodeConverter` builds the per-feature
plans once per dataset and applies them to every episode. The batch loop around it is :mod:`rdstd.convert.pipeline`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.convert.canonicalize import CameraPlan, VectorPlan, plan_camera, plan_vector
from rdstd.convert.specs import LoadedSpec, draft_spec, load_spec, match_spec
from rdstd.errors import EpisodeError, MappingError
from rdstd.formats.base import SourceEpisode, SourceInfo, SourceKey, read_frames
from rdstd.schema.episode import EncodedFrames, Episode, EpisodeMeta, VideoFrames
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.spec import ConverterSpec
from rdstd.schema.vocabulary import UNIT_TO_SI, ImageCodec, Unit


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
                array = read_frames(values)
                parts.append(array.reshape(source.length, -1) if parts or len(vspec.source_keys) > 1 else array)
            vectors[plan.name] = plan.apply(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
        cams = {}
        for cam in self.cameras:
            frames = source.images.get(cam.spec.key)
            if frames is None:
                raise EpisodeError(f"episode {source.ref.key}: has no images for {cam.spec.key}")
            cams[cam.name] = cam.apply(
                frames if isinstance(frames, EncodedFrames | VideoFrames) else read_frames(frames)
            )
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
            stamps = read_frames(raw).reshape(n).astype(np.float64) * factor
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

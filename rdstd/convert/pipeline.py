"""The conversion pipeline: source backend -> converter spec -> canonical episodes -> store.

Episodes stream one at a time (memory bounded by one episode). The error policy decides what a bad episode
does: ``fail`` stops and removes the partial output; ``skip`` records the episode and its reason and goes on.
Errors in the spec itself (:class:`MappingError`) always stop, since every episode would fail the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import rdstd
from rdstd.convert.mapper import EpisodeConverter, resolve_spec
from rdstd.errors import EpisodeError, MappingError, RdstdError, SourceError
from rdstd.formats.base import EpisodeRef, SourceDataset
from rdstd.formats.registry import detect, get_backend
from rdstd.schema.manifest import Provenance
from rdstd.schema.spec import ConverterSpec
from rdstd.schema.vocabulary import ImageCodec
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

"""A source validated by streaming its episodes through the converter, nothing written (see
:mod:`rdstd.validate.source` for when and why).

The converter is the one ``rdstd convert`` builds for the source and spec; its camera plans are left out of the
read, so that no frame is decoded or encoded (the manifest the checks see still lists the cameras). Converted
low-dim values are cast to the features' stored dtypes, as the store would hold them, and batched into shards of
at most :data:`SHARD_FRAMES` frames.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

import rdstd
from rdstd.convert.mapper import EpisodeConverter, resolve_spec
from rdstd.convert.pipeline import ConvertReport, SkippedEpisode, frames_per_chunk, open_source
from rdstd.errors import EpisodeError, InternalError, RdstdError, SourceError
from rdstd.formats.base import EpisodeRef, SourceDataset
from rdstd.paths import normalized
from rdstd.schema.episode import EpisodeMeta
from rdstd.schema.features import VectorFeature
from rdstd.schema.manifest import Counts, Manifest, Provenance, StorageLayout
from rdstd.store.stats import RunningStats
from rdstd.store.writer import DEFAULT_ROW_GROUP_FRAMES, DEFAULT_SHARD_FRAMES
from rdstd.validate import stream
from rdstd.validate.check import DatasetView, ShardView
from rdstd.validate.config import Config
from rdstd.validate.model import Report
from rdstd.validate.source import conversion_findings

#: Converted low-dim values kept in memory between the two passes at most; above, the second pass reads again.
KEEP_BYTES = 256 * 1024 * 1024
#: Frames per shard handed to the checks (as the store's shards).
SHARD_FRAMES = DEFAULT_SHARD_FRAMES

_Columns = dict[str, npt.NDArray[Any]]


def validate_streamed(
    path: Path,
    config: Config,
    *,
    format_name: str | None = None,
    spec: str | None = None,
    limit: int | None = None,
    rate_hz: float | None = None,
) -> Report:
    """Validate the source at ``path`` by streaming it through the converter (two passes, nothing written)."""
    from rdstd.validate.runner import build_checks, report, run_shards

    started = time.perf_counter()
    src = normalized(path)
    with open_source(src, format_name, spec=spec) as dataset:
        info = dataset.info()
        loaded, warnings = resolve_spec(info, spec)
        warnings += [str(w) for w in info.extra.get("warnings") or []]
        chosen = loaded.spec
        converter = EpisodeConverter(chosen, info, rate_hz=rate_hz)
        features = converter.features  # every feature convert would write, cameras included
        converter.cameras = []  # ... but no frame is read: the checks here look at low-dim values only
        vectors = {k: f for k, f in features.items() if isinstance(f, VectorFeature)}
        kept = sorted(converter.kept_unmapped)
        if kept:
            warnings.append(f"source keys the spec does not map, kept with unknown semantics: {', '.join(kept)}")
        dropped = {key: converter.dropped[key] for key in converter.unmapped}
        if dropped:
            warnings.append("source keys left out: " + "; ".join(f"{k} ({why})" for k, why in dropped.items()))
        converted = ConvertReport(str(src), "", info.format, chosen.name, warnings=warnings)

        # pass 1: the episode table and the statistics (and the values, while they fit)
        refs: list[EpisodeRef] = []
        rows: list[dict[str, Any]] = []
        stats = {k: RunningStats(f.size) for k, f in vectors.items()}
        held: list[_Columns] | None = []
        size = 0
        for ref in list(dataset.episode_refs())[:limit]:
            got = _read(dataset, converter, ref, vectors, converted)
            if got is None:
                continue
            meta, columns = got
            rows.append(_row(meta, len(rows), len(columns["timestamp"])))
            refs.append(ref)
            for key in vectors:
                stats[key].update(columns[key])
            if held is not None:
                size += sum(a.nbytes for a in columns.values())
                held = [*held, columns] if size <= KEEP_BYTES else None
        if not rows:
            reasons = "; ".join(f"{s.key}: {s.reason}" for s in converted.skipped[:3])
            raise EpisodeError(
                f"{src}: no episode could be converted ({reasons or 'the source has none'})",
                hint="see the reasons in the message; fix the spec or the source and validate again",
                situation="no-episode-converted",
            )
        frames = sum(r["length"] for r in rows)
        manifest = Manifest(
            name=chosen.name,
            description=chosen.description,
            rate_hz=converter.rate_hz,
            clock=converter.clock,  # what the episodes actually had
            features=features,
            embodiments=[chosen.embodiment] if chosen.embodiment else [],
            provenance=Provenance(
                source_format=info.format,
                source_version=info.version,
                source_path=str(src),
                converter_spec=chosen.name,
                rdstd_version=rdstd.__version__,
                license=chosen.license,
                citation=chosen.citation,
            ),
            counts=Counts(episodes=len(rows), frames=frames, shards=-(-frames // SHARD_FRAMES)),
            storage=StorageLayout(row_group_frames=DEFAULT_ROW_GROUP_FRAMES),
            extra={"source_info": info.extra},
        )
        summary = {k: s.as_dict() for k, s in stats.items()}
        view = DatasetView(src, manifest, pl.DataFrame(rows), lambda: summary)
        table = {name: [r[name] for r in rows] for name in rows[0]}

        def episodes() -> Iterator[_Columns]:
            if held is not None:
                yield from held
                return
            for ref in refs:  # pass 2: read again (the values did not fit in memory)
                again = _read(dataset, converter, ref, vectors, ConvertReport(str(src), "", info.format, ""))
                if again is None:
                    raise SourceError(
                        f"{src}: episode {ref.key} could be read once but not twice",
                        hint="the source changed, or its storage failed, while it was validated: check it and "
                        "validate again",
                        situation="episode-not-rereadable",
                    )
                yield again[1]

        def shards() -> Iterator[ShardView]:
            batch: list[_Columns] = []
            first = 0
            for columns in episodes():
                batch.append(columns)
                if sum(len(c["timestamp"]) for c in batch) >= SHARD_FRAMES:
                    yield _shard(batch, first, table, vectors)
                    first += len(batch)
                    batch = []
            if batch:
                yield _shard(batch, first, table, vectors)

        checks, problems = build_checks(config)
        found = run_shards(view, shards, checks)
    recorded = {str(w) for w in info.extra.get("warnings") or []}
    return report(
        config,
        checks,
        problems,
        found,
        extra=conversion_findings(converted, recorded),
        dataset=str(path),
        source_format=info.format,
        episodes=len(rows),
        frames=frames,
        started=started,
    )


def _read(
    dataset: SourceDataset,
    converter: EpisodeConverter,
    ref: EpisodeRef,
    vectors: dict[str, VectorFeature],
    converted: ConvertReport,
) -> tuple[EpisodeMeta, _Columns] | None:
    """One episode's metadata and low-dim columns (timestamps, vectors as stored); None, with the episode and the
    reason added to ``converted.skipped``, when the source cannot give it (as ``convert --on-error skip``)."""
    try:
        source = dataset.read_episode(ref)
        meta, chunks = converter.convert_chunks(source, frames_per_chunk(converter))
        parts = list(chunks)
        columns: _Columns = {"timestamp": np.concatenate([c.timestamps for c in parts]).astype(np.float64)}
        for key, feature in vectors.items():
            values = np.concatenate([np.asarray(c.vectors[key]) for c in parts])
            columns[key] = values.reshape(len(values), feature.size).astype(np.dtype(feature.dtype), copy=False)
    except OSError as exc:
        reason = f"episode {ref.key}: cannot read {exc.filename}: {exc.strerror or exc}"
        converted.skipped.append(SkippedEpisode(ref.index, ref.key, reason))
        return None
    except (SourceError, EpisodeError) as exc:
        converted.skipped.append(SkippedEpisode(ref.index, ref.key, exc.message))
        return None
    except RdstdError:
        raise  # a spec that does not fit: every episode would fail the same way
    except Exception as exc:  # a fault in rdstd or a backend: stop, name the episode, keep the cause
        raise InternalError(
            f"episode {ref.key}: {type(exc).__name__}: {exc}",
            hint="this is a bug in rdstd or in the format backend, not in your data: re-run with --debug "
            "for the traceback and report it",
            situation="backend-fault",
        ) from exc
    return meta, columns


def _row(meta: EpisodeMeta, position: int, length: int) -> dict[str, Any]:
    """The episode table's row of a streamed episode (the columns the checks read)."""
    return {
        "episode_index": position,
        "episode_id": meta.episode_id,
        "source_key": meta.source_key,
        "split": meta.split,
        "task": meta.task,
        "embodiment": meta.embodiment,
        "source_meta": json.dumps(meta.source_meta, sort_keys=True, default=str),
        "shard_row": 0,
        "length": length,
    }


def _shard(
    batch: list[_Columns], first: int, table: dict[str, list[Any]], vectors: dict[str, VectorFeature]
) -> ShardView:
    """The episodes ``batch`` (positions ``first``, ``first + 1`` …) as one shard."""
    columns = {key: np.concatenate([c[key] for c in batch]) for key in ["timestamp", *vectors]}
    return stream.view(np.arange(first, first + len(batch), dtype=np.intp), table, columns, list(vectors))

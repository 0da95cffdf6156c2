"""One work unit: its episodes converted into a complete canonical dataset in the staging folder.

The same function runs in-process, in a process-pool worker, in a Ray task and in a SLURM array task. The unit's
dataset is written by :class:`~rdstd.store.writer.DatasetWriter` (built aside, renamed into place), then its
journal entry is written atomically: a unit killed half-way leaves no entry and is redone by ``--resume``.
"""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rdstd.batch.job import Job
from rdstd.convert.mapper import EpisodeConverter
from rdstd.convert.pipeline import ConvertReport, OnError, SkippedEpisode, convert_one, open_source
from rdstd.errors import EpisodeError, RdstdError, SourceError
from rdstd.formats.base import WorkUnit
from rdstd.io import atomic
from rdstd.schema.features import VectorFeature
from rdstd.store.stats import PartialStats
from rdstd.store.writer import DatasetWriter


def run_unit(job: Job, unit: WorkUnit) -> dict[str, Any]:
    """Convert ``unit`` of ``job``; returns its journal entry (also written to the staging folder).

    Under ``on_error="skip"`` a bad episode is left out with its reason, and a unit whose source cannot be
    opened at all is recorded with every episode skipped; under ``"fail"`` the error is raised.
    """
    started = time.perf_counter()
    report = ConvertReport(job.source, str(job.unit_dir(unit.index)), "", job.spec.name)
    stats: dict[str, PartialStats] = {}
    clock_paths: list[list[str]] = []
    try:
        dataset = open_source(job.source, job.format_name, salvage=job.salvage)
    except (SourceError, EpisodeError) as exc:  # the unit's source cannot be opened at all
        if job.on_error == "fail":
            raise
        report.skipped = [SkippedEpisode(r.index, r.key, f"unit {unit.name}: {exc.message}") for r in unit.refs]
        return _finish(job, unit, report, stats, clock_paths, started)
    with dataset:
        converter = EpisodeConverter(
            job.spec, dataset.info(), images=job.images, drop_unmapped=job.drop_unmapped, rate_hz=job.rate_hz
        )
        stats = {k: PartialStats(f.size) for k, f in converter.features.items() if isinstance(f, VectorFeature)}
        writer = DatasetWriter(
            job.unit_dir(unit.index),
            converter.features,
            job.provenance,
            name=job.spec.name,
            rate_hz=converter.rate_hz,
            overwrite=True,  # a unit killed after its rename but before its journal entry is redone
            row_group_frames=job.row_group_frames,
            sources=[Path(job.source)],
            clock=converter.clock,
        )
        on_error: OnError = "skip" if job.on_error == "skip" else "fail"
        with writer:
            for ref in unit.refs:
                convert_one(dataset, converter, writer, ref, on_error, report, stats)
            writer.clock = converter.clock
        clock_paths = sorted([str(kind), source] for kind, source in converter._clock_paths)
    return _finish(job, unit, report, stats, clock_paths, started)


def _finish(
    job: Job,
    unit: WorkUnit,
    report: ConvertReport,
    stats: dict[str, PartialStats],
    clock_paths: list[list[str]],
    started: float,
) -> dict[str, Any]:
    folder = job.unit_dir(unit.index)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
    entry: dict[str, Any] = {
        "unit": unit.index,
        "name": unit.name,
        "seconds": round(time.perf_counter() - started, 3),
        "episodes": report.episodes_written,
        "frames": report.frames_written,
        "bytes": size,
        "skipped": [asdict(s) for s in report.skipped],
        "non_finite": {k: asdict(v) for k, v in report.non_finite.items()},
        "source_notes": report.source_notes,
        "clock_paths": clock_paths,
        "worker_pid": os.getpid(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "stats": {k: s.to_json() for k, s in stats.items()},
    }
    atomic.write_bytes(job.journal_entry(unit.index), json.dumps(entry).encode())
    return entry


def run_unit_safely(job: Job, unit: WorkUnit) -> dict[str, Any]:
    """:func:`run_unit` for another process: the journal entry without its statistics, or an rdstd error as data
    (exceptions lose their hint when pickled), re-raised by the driver with :func:`raise_returned`."""
    try:
        entry = run_unit(job, unit)
    except RdstdError as exc:
        kind = type(exc)
        return {"error": {"module": kind.__module__, "type": kind.__name__, "message": exc.message, "hint": exc.hint}}
    entry.pop("stats")  # it is in the journal; the driver reads it back at assembly
    return entry


def raise_returned(entry: dict[str, Any]) -> dict[str, Any]:
    """Re-raise an error :func:`run_unit_safely` returned; else the entry."""
    error = entry.get("error")
    if error is None:
        return entry
    import importlib

    cls = getattr(importlib.import_module(error["module"]), error["type"])
    exc = cls.__new__(cls)  # subclasses may take other arguments: set what RdstdError holds
    RdstdError.__init__(exc, error["message"], hint=error["hint"])
    raise exc

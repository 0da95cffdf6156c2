"""One work unit: its episodes converted into a complete canonical dataset in the staging folder.

The same function runs in-process, in a process-pool worker, in a Ray task and in a SLURM array task. The unit's
dataset is written by :class:`~rdstd.store.writer.DatasetWriter` (built aside, renamed into place), then its
journal entry is written atomically: a unit killed half-way leaves no entry and is redone by ``--resume``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rdstd.batch.job import Job
from rdstd.batch.mirror import open_mirrored
from rdstd.convert.mapper import EpisodeConverter
from rdstd.convert.pipeline import ConvertReport, OnError, SkippedEpisode, convert_one, open_source
from rdstd.errors import EpisodeError, RdstdError, SourceError
from rdstd.formats.base import SourceDataset, WorkUnit
from rdstd.io.remote import is_url
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store import layout
from rdstd.store.stats import PartialStats, partials_to_bytes
from rdstd.store.writer import DatasetWriter


def run_unit(job: Job, unit: WorkUnit) -> dict[str, Any]:
    """Convert ``unit`` of ``job``; returns its journal entry (also written to the staging folder, last).

    Under ``on_error="skip"`` a bad episode is left out with its reason, and a unit whose source cannot be
    opened at all is recorded with every episode skipped; under ``"fail"`` the error is raised. With a staging
    folder in object storage the unit is written to a local temporary folder first, then uploaded file by file.
    """
    started = (time.perf_counter(), time.process_time(), time.time())
    staging = job.staging
    scratch = Path(tempfile.mkdtemp(prefix="rdstd-unit-")) if staging.remote else None
    folder = scratch / "unit" if scratch is not None else staging.path(job.unit_rel(unit.index))
    try:
        report = _convert_unit(job, unit, folder)
        if scratch is not None and folder.exists():
            staging.put_tree(folder, job.unit_rel(unit.index))
        return _finish(job, unit, folder, report, started)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _convert_unit(job: Job, unit: WorkUnit, folder: Path) -> _UnitReport:
    try:
        dataset = _open(job)
        report = _UnitReport(ConvertReport(str(dataset.path), str(folder), "", job.spec.name))  # a URL: the mirror
    except (SourceError, EpisodeError) as exc:  # the unit's source cannot be opened at all
        if job.on_error == "fail":
            raise
        report = _UnitReport(ConvertReport(job.source, str(folder), "", job.spec.name))
        reason = f"unit {unit.name}: {exc.message}"
        report.convert.skipped = [SkippedEpisode(r.index, r.key, reason) for r in unit.refs]
        return report
    try:
        converter = EpisodeConverter(
            job.spec, dataset.info(), images=job.images, drop_unmapped=job.drop_unmapped, rate_hz=job.rate_hz
        )
        report.stats = {k: PartialStats(f.size) for k, f in converter.features.items() if isinstance(f, VectorFeature)}
        report.first = numbered_from(job, unit, converter.features)
        writer = DatasetWriter(
            folder,
            converter.features,
            job.provenance,
            name=job.spec.name,
            rate_hz=converter.rate_hz,
            overwrite=True,  # a unit killed after its rename but before its journal entry is redone
            row_group_frames=job.row_group_frames,
            sources=[dataset.path],
            clock=converter.clock,
            first_episode=report.first[0],
            first_frame=report.first[1],
            stats=False,  # the assembly merges the partial statistics (report.stats), not the unit's own
        )
        on_error: OnError = "skip" if job.on_error == "skip" else "fail"
        with writer:
            for ref in unit.refs:
                convert_one(dataset, converter, writer, ref, on_error, report.convert, report.stats)
            writer.clock = converter.clock
        report.clock_paths = sorted([str(kind), source] for kind, source in converter.clock_paths)
    except BaseException:
        close_sources()  # a source that failed may hold a broken handle: the next unit opens it afresh
        raise
    return report


#: The source this process opened for its last unit, by job (opening a source can cost more than a unit: a zarr
#: store lists every chunk file). A worker process runs many units of one job; it opens the source once.
_OPEN: dict[str, SourceDataset] = {}


def _open(job: Job) -> SourceDataset:
    key = _key(job)
    dataset = _OPEN.get(key)
    if dataset is None:
        early = _early_for(job)  # before close_sources, which would close it
        close_sources()
        if early is not None:
            _OPEN[key] = early
            return early
        options: dict[str, Any] = {"salvage": job.salvage, "spec": job.spec if job.spec_named else None}
        if is_url(job.source):  # read from this machine's mirror of it
            dataset = open_mirrored(job.source, lambda root: open_source(root, job.format_name, **options))
        else:
            dataset = open_source(job.source, job.format_name, **options)
        _OPEN[key] = dataset
    return dataset


#: The source a pool process opened before its first unit (:func:`open_early`), while the driver planned.
_EARLY: list[tuple[SourceDataset, bool]] = []


def open_early(source: str, format_name: str | None, salvage: bool) -> None:
    """Open a local ``source`` now, as the job's units will (a pool process's warm-up while the driver plans: the
    backend's imports and the source's open are then done before its first unit). The first unit takes it if it
    is the job's source, format and salvage mode and the spec gives the backend no options; else it is closed."""
    if is_url(source) or _EARLY or _OPEN:
        return
    _EARLY.append((open_source(source, format_name, salvage=salvage), salvage))


def _early_for(job: Job) -> SourceDataset | None:
    """The source :func:`open_early` opened, if it is the one ``job``'s units read (else it is closed)."""
    while _EARLY:
        dataset, salvage = _EARLY.pop()
        same = (str(dataset.path), dataset.format, salvage) == (job.source, job.format_name, job.salvage)
        if same and (not job.spec_named or job.spec.source is None):
            return dataset
        dataset.close()
    return None


#: Keys of :data:`_OPEN` whose source the caller lent (:func:`lend_source`): dropped, never closed, here.
_LENT: set[str] = set()


def _key(job: Job) -> str:
    # the job's creation time too: a Ray worker outlives the job, and a later job may read a changed source
    what = [job.source, job.format_name, job.salvage, job.spec.model_dump(mode="json"), job.provenance.created_utc]
    return json.dumps(what, sort_keys=True, default=str)


def lend_source(job: Job, dataset: SourceDataset) -> None:
    """Let units of ``job`` run in this process read ``dataset``, the source as the driver opened it to plan (it
    must be opened as :func:`_open` would: same path, format, salvage and spec); the caller closes it, after
    :func:`close_sources`."""
    close_sources()
    key = _key(job)
    _OPEN[key] = dataset
    _LENT.add(key)


def close_sources() -> None:
    """Close the source this process keeps open between units (the driver calls it after a run in process); a
    lent source is only forgotten."""
    while _EARLY:
        _EARLY.pop()[0].close()
    while _OPEN:
        key, dataset = _OPEN.popitem()
        if key in _LENT:
            _LENT.discard(key)
        else:
            dataset.close()


@dataclass
class _UnitReport:
    convert: ConvertReport
    stats: dict[str, PartialStats] = field(default_factory=dict)
    clock_paths: list[list[str]] = field(default_factory=list)
    first: tuple[int, int] = (0, 0)  # the (episode, frame) numbers the unit's rows start at


def _finish(
    job: Job, unit: WorkUnit, folder: Path, result: _UnitReport, started: tuple[float, float, float]
) -> dict[str, Any]:
    report = result.convert
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    entry: dict[str, Any] = {
        "unit": unit.index,
        "name": unit.name,
        "seconds": round(time.perf_counter() - started[0], 3),
        "cpu_seconds": round(time.process_time() - started[1], 3),  # every thread of the worker
        "started_at": round(started[2], 3),  # wall clock (the driver's phases: when the workers began and ended)
        "episodes": report.episodes_written,
        "frames": report.frames_written,
        "bytes": sum(p.stat().st_size for p in files),
        "skipped": [asdict(s) for s in report.skipped],
        "non_finite": {k: asdict(v) for k, v in report.non_finite.items()},
        "source_notes": report.source_notes,
        "clock_paths": result.clock_paths,
        "shards": [p.relative_to(folder).as_posix() for p in files if p.match(f"{layout.DATA_DIR}/shard-*.parquet")],
        "videos": [p.relative_to(folder).as_posix() for p in files if p.is_relative_to(folder / layout.VIDEOS_DIR)],
        "worker_pid": os.getpid(),
        "peak_rss_mb": peak_rss_mb(),
        "stats": job.stats_rel(unit.index),
        "numbered_from": list(result.first),
    }
    job.staging.write_bytes(job.stats_rel(unit.index), partials_to_bytes(result.stats))  # before the entry (last)
    job.staging.write_bytes(job.journal_rel(unit.index), json.dumps(entry).encode())
    return entry


def numbered_from(job: Job, unit: WorkUnit, features: Mapping[str, VectorFeature | ImageFeature]) -> tuple[int, int]:
    """The (episode, frame) numbers a unit's rows start at: its planned place in the final dataset when the source
    states every length before it (:meth:`Job.planned_start`), so the assembly can link its shards into place
    instead of rewriting them; else (0, 0). Units with a camera kept as video start at (0, 0): their video file
    names are renamed at assembly anyway."""
    if any(isinstance(f, ImageFeature) and f.codec == ImageCodec.VIDEO for f in features.values()):
        return 0, 0
    return job.planned_start(unit.index) or (0, 0)


def peak_rss_mb() -> float:
    """This process's peak resident set in MB: ``VmHWM`` (its own memory's high-water mark) where Linux has it;
    ``ru_maxrss`` carries a parent's peak across fork and exec (a driver started by a process that once held
    1.2 GB reported 1.2 GB), so it is only the fallback."""
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_unit_safely(job: Job, unit: WorkUnit) -> dict[str, Any]:
    """:func:`run_unit` for another process: the journal entry without its statistics, or an rdstd error as data
    (exceptions lose their hint when pickled), re-raised by the driver with :func:`raise_returned`."""
    try:
        entry = run_unit(job, unit)
    except RdstdError as exc:
        return error_as_data(exc)
    entry.pop("stats")  # it is in the journal; the driver reads it back at assembly
    return entry


def error_as_data(exc: RdstdError) -> dict[str, Any]:
    """An rdstd error as data a worker returns (exceptions lose their hint when pickled); see
    :func:`raise_returned`."""
    kind = type(exc)
    return {"error": {"module": kind.__module__, "type": kind.__name__, "message": exc.message, "hint": exc.hint}}


def raise_returned(entry: dict[str, Any]) -> dict[str, Any]:
    """Re-raise an error :func:`error_as_data` made; else the entry."""
    error = entry.get("error")
    if error is None:
        return entry
    import importlib

    cls = getattr(importlib.import_module(error["module"]), error["type"])
    exc = cls.__new__(cls)  # subclasses may take other arguments: set what RdstdError holds
    RdstdError.__init__(exc, error["message"], hint=error["hint"])
    raise exc

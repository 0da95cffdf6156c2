"""The batch conversion driver: plan the units, run them on an executor, assemble, commit.

OUT is locked for the whole run (:class:`~rdstd.store.output.Output`: a second convert into the same OUT is
refused) and built in its hidden temporary sibling; the units live in the staging folder (:mod:`rdstd.batch.job`)
until the output is committed, so a killed run resumes with ``resume=True`` and redoes only unfinished units.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdstd.batch import assemble
from rdstd.batch.executors import Executor, ExecutorName, InProcess, LocalPool, RayTasks, make_executor
from rdstd.batch.job import JOURNAL_DIR, Job, stage
from rdstd.batch.place import Place
from rdstd.batch.slurm import write_slurm
from rdstd.batch.worker import close_sources, lend_source, raise_returned, run_unit_safely
from rdstd.convert.pipeline import (
    ConvertReport,
    NonFiniteCount,
    OnError,
    OnPlan,
    Plan,
    Progress,
    SkippedEpisode,
    convert,
    nothing_converted,
)
from rdstd.errors import RdstdError, UsageError
from rdstd.formats.base import SourceDataset, WorkUnit
from rdstd.io.remote import is_url
from rdstd.schema.features import VectorFeature
from rdstd.schema.manifest import Counts, Manifest, StorageLayout
from rdstd.schema.vocabulary import ClockKind, ImageCodec
from rdstd.store import layout
from rdstd.store.output import Output
from rdstd.store.stats import PartialStats, partials_from_bytes
from rdstd.store.writer import KIND

__all__ = ["WORKER_PRELOAD", "BatchOptions", "ExecutorName", "convert_batch", "run_batch"]

#: What a local pool's processes import before their first unit (in the fork server, once).
WORKER_PRELOAD = ("rdstd.batch.worker",)


def convert_batch(
    source: str | Path, output: str | Path, *, executor: ExecutorName = "local", **options: Any
) -> ConvertReport:
    """:func:`rdstd.convert.pipeline.convert` as a batch job on ``executor`` (its arguments; ``workers`` default:
    the machine's cores). The output is identical whatever the executor and the number of workers."""
    return convert(source, output, executor=executor, **options)


@dataclass(frozen=True)
class BatchOptions:
    """The options of a batch run beyond its plan (see :func:`rdstd.convert.pipeline.convert`)."""

    format_name: str | None
    on_error: OnError
    images: ImageCodec | None
    overwrite: bool
    row_group_frames: int
    rate_hz: float | None
    drop_unmapped: bool
    salvage: bool
    executor: ExecutorName
    workers: int
    ray_address: str | None
    resume: bool
    unit_episodes: int
    slurm_assemble: str | None
    #: Whether the user named the spec (see :attr:`Job.spec_named`).
    spec_named: bool = False


def run_batch(
    plan: Plan,
    units: list[WorkUnit],
    source: str | Path,
    output: str | Path,
    options: BatchOptions,
    progress: Progress | None,
    on_plan: OnPlan | None,
    *,
    pool: Executor | None = None,
    opened: SourceDataset | None = None,
) -> ConvertReport:
    """Run the planned conversion of ``units`` of ``source`` as a batch job into ``output`` (each a local path or a
    URL; workers read a source URL from their machine's mirror of it). ``pool``: a local pool already started
    (else one is made; it is closed either way); ``opened``: the source as this process opened it, which units
    run here read (the caller keeps and closes it)."""
    o = options
    src = Path(plan.report.source)  # the local source (or this machine's mirror of the URL)
    remote = is_url(str(output))
    out = Path(str(output))
    out_text = str(output)
    job = Job(
        source=str(source),
        output=out_text,
        format_name=o.format_name or plan.report.format,  # detected once: workers skip the detection
        spec=plan.spec,
        provenance=plan.provenance,
        units=units,
        images=o.images,
        drop_unmapped=o.drop_unmapped,
        rate_hz=o.rate_hz,
        row_group_frames=o.row_group_frames,
        salvage=o.salvage,
        on_error=o.on_error,
        extra=plan.extra,
        spec_named=o.spec_named,
    )
    report = plan.report
    report.output = out_text
    report.batch = {"executor": o.executor, "workers": o.workers, "units": len(units), "unit_episodes": o.unit_episodes}
    if o.executor == "slurm":
        if remote:
            stage(job, resume=o.resume)
        else:
            guard = Output.begin(out, is_kind=layout.is_dataset, kind=KIND, overwrite=o.overwrite, sources=[src])
            try:  # refused while a run into OUT holds its lock: its staging folder is not ours to replace
                stage(job, resume=o.resume)
            finally:
                guard.abort()
        assemble_with = o.slurm_assemble or f"rdstd convert {source} {out_text} --resume"
        report.batch["slurm_submit"] = str(write_slurm(job, assemble_with))
        return report
    run = _Run(job, plan, report, progress, on_plan, o.executor, o.workers, o.ray_address, o.resume, pool, opened)
    if remote:
        target = Place(out_text)
        if target.exists(layout.MANIFEST) and not o.overwrite:
            raise UsageError(
                f"{out_text}: a canonical rdstd dataset is already there",
                hint="choose a new URL, or pass --overwrite to replace it",
                situation="output-not-empty",
            )
        run.execute(target, before_assembly=target.remove if o.overwrite else None)
    else:
        output_dir = Output.begin(out, is_kind=layout.is_dataset, kind=KIND, overwrite=o.overwrite, sources=[src])
        try:
            with output_dir.guard():
                marker = json.dumps({"pid": os.getpid(), "output": out_text})
                (output_dir.tmp / layout.WRITING_MARKER).write_text(marker)
            run.execute(Place(str(output_dir.tmp)))
            committing = time.perf_counter()
            (output_dir.tmp / layout.WRITING_MARKER).unlink()
            output_dir.commit()
            report.batch["phases"]["commit_s"] = round(time.perf_counter() - committing, 3)
        except BaseException as exc:
            output_dir.abort()
            if output_dir.done:  # an interrupt after the output went into place: the units served their purpose
                with contextlib.suppress(OSError):
                    job.staging.remove()
                raise
            if not any(job.staging.path(JOURNAL_DIR).glob("*.json")):  # no unit finished: nothing to resume from
                with contextlib.suppress(OSError):
                    job.staging.remove()
                raise
            # the staging folder stays: --resume picks up the finished units
            kept = f"the finished work units are kept in {job.staging}: rerun with --resume to reuse them"
            if isinstance(exc, RdstdError):
                exc.hint = f"{exc.hint}; {kept}" if exc.hint else kept
            else:  # an interrupt: the CLI says what it left
                exc.add_note(kept)
            raise
    cleaning = time.perf_counter()
    job.staging.remove()
    report.batch["phases"]["cleanup_s"] = round(time.perf_counter() - cleaning, 3)
    return report


@dataclass
class _Run:
    """One execution of a staged job: units on the executor, then the assembly into ``target``."""

    job: Job
    plan: Plan
    report: ConvertReport
    progress: Progress | None
    on_plan: OnPlan | None
    executor: ExecutorName
    workers: int
    ray_address: str | None
    resume: bool
    pool: Executor | None = None
    opened: SourceDataset | None = None

    def execute(self, target: Place, before_assembly: Callable[[], None] | None = None) -> None:
        clock = _Phases(self.report.batch.setdefault("phases", {}))
        finished = stage(self.job, resume=self.resume)
        clock.lap("stage_s")
        self.report.batch["resumed_units"] = len(finished)
        if self.on_plan is not None:
            self.on_plan(self.report)
        pool = self.pool or make_executor(self.executor, self.workers, self.ray_address, preload=WORKER_PRELOAD)
        if self.opened is not None:
            lend_source(self.job, self.opened)
        try:
            self.report.batch["workers"] = getattr(pool, "workers", self.workers)
            if isinstance(pool, LocalPool):  # how its processes started (fork: at once, with rdstd imported)
                self.report.batch["processes_from"] = "fork" if pool.forked else "forkserver"
            assembly = _Assembly(self.job, self.plan, target, pool, early=before_assembly is None)
            units_began = time.time()
            try:
                entries = _run_units(self.job, pool, finished, self.progress, assembly)
            except BaseException:
                assembly.settle()
                raise
            clock.lap("units_s")
            clock.first_unit(units_began, entries.values())
            _fill_report(self.report, self.job, entries)
            if self.report.episodes_written == 0:
                raise nothing_converted(Path(self.job.source), self.report)
            if before_assembly is not None:
                before_assembly()
            assembly.finish(entries, pool, self.report)
            clock.lap("assemble_s")
        finally:
            pool.close()
            close_sources()  # units run in this process left the source open
            clock.lap("close_s")


class _Phases:
    """Wall seconds of a run's phases, into the report's ``batch["phases"]``: ``stage_s``; ``units_s`` (from the
    first submission to the last unit's entry, with what the assembly did meanwhile); ``first_unit_s`` (until
    the first unit began: the workers' start-up); ``assemble_s`` (the rest of it); ``close_s`` (stopping the
    workers). The callers add ``plan_s``, ``commit_s`` and ``cleanup_s`` (removing the staging folder)."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.mark = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the seconds since the last lap as ``name``."""
        now = time.perf_counter()
        self.into[name] = round(now - self.mark, 3)
        self.mark = now

    def first_unit(self, began: float, entries: Iterable[dict[str, Any]]) -> None:
        """Record when the first unit run here began, after ``began`` (wall clock)."""
        starts = [e["started_at"] for e in entries if e.get("started_at", 0.0) >= began]
        if starts:
            self.into["first_unit_s"] = round(min(starts) - began, 3)


def _run_units(
    job: Job, pool: Executor, finished: list[int], progress: Progress | None, assembly: _Assembly
) -> dict[int, dict[str, Any]]:
    """Run the unfinished units, the assembly taking each in as it can; every unit's journal entry by unit index."""
    entries = {i: _without_stats(job.read_entry(i)) for i in finished}
    todo = [u for u in job.units if u.index not in entries]
    total = sum(len(u.refs) for u in job.units)
    done = sum(len(job.units[i].refs) for i in entries)
    if progress is not None:
        progress(done, total)
    assembly.advance(entries)
    for position, entry in pool.run(run_unit_safely, [(job, unit) for unit in todo]):
        unit = todo[position]
        entries[unit.index] = _without_stats(raise_returned(entry))
        done += len(unit.refs)
        if progress is not None:
            progress(done, total)
        assembly.advance(entries)
    return entries


def _without_stats(entry: dict[str, Any]) -> dict[str, Any]:
    """A journal entry without its partial statistics (read back one unit at a time at assembly: the driver's
    memory stays bounded by one unit's, whatever the number of units)."""
    entry.pop("stats", None)
    return entry


def _fill_report(report: ConvertReport, job: Job, entries: dict[int, dict[str, Any]]) -> None:
    """The run's report from the units' journal entries, in unit order."""
    rss: dict[str, float] = {}
    for unit in job.units:
        entry = entries[unit.index]
        report.episodes_written += entry["episodes"]
        report.frames_written += entry["frames"]
        report.skipped += [SkippedEpisode(**s) for s in entry["skipped"]]
        for name, counts in entry["non_finite"].items():
            total = report.non_finite.setdefault(name, NonFiniteCount())
            total.nan += counts["nan"]
            total.inf += counts["inf"]
            total.episodes += counts["episodes"]
        for note, n in entry["source_notes"].items():
            report.source_notes[note] = report.source_notes.get(note, 0) + n
        pid = str(entry["worker_pid"])
        rss[pid] = max(rss.get(pid, 0.0), entry["peak_rss_mb"])
        report.units.append({k: v for k, v in entry.items() if k not in ("non_finite", "clock_paths")})
    report.batch["peak_rss_mb_per_worker"] = rss


class _Assembly:
    """The final dataset, built in unit order as the units finish.

    As soon as every unit before it is done, a unit gets its place (shard, episode and frame offsets), its episodes
    join the index and its statistics are merged (in unit order: the bytes never depend on timing). When the driver
    is one of the workers (a local pool, or one worker), the unit's shards are rewritten then too, between the
    driver's own units, while the other workers take more units; with Ray, a task rewriting them starts then. Only
    when an old output must be removed first (``--overwrite`` in object storage) are they rewritten on the
    executor once every unit is done.
    """

    def __init__(self, job: Job, plan: Plan, target: Place, pool: Executor, early: bool) -> None:
        """``early``: the target may be written before every unit is done (not when an old output there is
        removed first); shards are then placed inline by a local driver, or as Ray tasks started at once."""
        self.job, self.plan, self.target = job, plan, target
        self.inline = early and isinstance(pool, InProcess | LocalPool)
        self.tasks = pool if early and isinstance(pool, RayTasks) else None
        self.started: list[Any] = []  # Ray tasks placing units
        self.features = plan.converter.features
        self.index = assemble.EpisodeIndex()
        self.stats = {k: PartialStats(f.size) for k, f in self.features.items() if isinstance(f, VectorFeature)}
        self.later: list[assemble.Placement] = []  # placed on the executor at the end
        self.taken = 0  # units (in order) taken in so far
        self.shards = self.episodes = self.frames = 0

    def advance(self, entries: dict[int, dict[str, Any]]) -> None:
        """Take in every finished unit whose predecessors are all in."""
        job, staging, units = self.job, self.job.staging, self.job.units
        while self.taken < len(units) and units[self.taken].index in entries:
            unit = units[self.taken]
            entry = entries[unit.index]
            self.taken += 1
            for key, part in partials_from_bytes(staging.read_bytes(job.stats_rel(unit.index))).items():
                self.stats[key].merge(part)
            if not entry["episodes"]:
                continue
            placement = assemble.Placement(
                unit.index,
                job.unit_rel(unit.index),
                tuple(entry["shards"]),
                tuple(entry["videos"]),
                self.shards,
                self.episodes,
                self.frames,
                tuple(entry.get("numbered_from") or (0, 0)),
            )
            self.shards += len(entry["shards"])
            self.episodes += entry["episodes"]
            self.frames += entry["frames"]
            self.index.add(placement, staging)
            if self.inline or (self.tasks is not None and assemble.linked_as_is(placement, self.features)):
                # (a unit numbered right is linked, a metadata operation: a Ray task would cost more than it)
                assemble.place_unit(placement, staging, self.target, self.features)
            elif self.tasks is not None:
                task = self.tasks.start(assemble.place_unit, placement, staging, self.target, self.features)
                self.started.append(task)
            else:
                self.later.append(placement)

    def settle(self) -> None:
        """Wait for the Ray tasks placing units to end (a failed run removes the target: none may still write)."""
        if self.tasks is not None:
            self.tasks.wait_all(self.started)  # their outcome does not matter: the run's own error is raised

    def finish(self, entries: dict[int, dict[str, Any]], pool: Executor, report: ConvertReport) -> None:
        """Write the rest of the dataset into the target: shards not placed yet (on the executor), episodes,
        tasks, stats, and the manifest last."""
        self.advance(entries)
        staging, target, features = self.job.staging, self.target, self.features
        if self.tasks is not None:
            self.tasks.results(self.started)
        for _ in pool.run(assemble.place_unit, [(p, staging, target, features) for p in self.later]):
            pass
        episode_rows, tasks = self.index.tables()
        assemble.write_table(target, layout.EPISODES, episode_rows)
        assemble.write_table(target, layout.TASKS, tasks)
        assemble.write_json(target, layout.STATS, {k: s.as_dict() for k, s in self.stats.items()})
        converter = self.plan.converter
        for unit in self.job.units:  # the clock the episodes actually had, over every unit
            converter.add_clock_paths((ClockKind(k), s) for k, s in entries[unit.index]["clock_paths"])
        options = self.plan.writer_options()
        manifest = Manifest(
            features=features,
            clock=converter.clock,
            counts=Counts(episodes=self.episodes, frames=self.frames, shards=self.shards),
            storage=StorageLayout(row_group_frames=self.job.row_group_frames),
            name=options["name"],
            description=options["description"],
            rate_hz=options["rate_hz"],
            embodiments=options["embodiments"],
            provenance=self.job.provenance,
            extra=options["extra"],
        )
        target.write_bytes(layout.MANIFEST, manifest.model_dump_json(indent=2).encode())  # last: the dataset is there
        report.batch["shards"] = self.shards

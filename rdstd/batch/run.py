"""The batch conversion driver: plan the units, run them on an executor, assemble, commit.

OUT is locked for the whole run (:class:`~rdstd.store.output.Output`: a second convert into the same OUT is
refused) and built in its hidden temporary sibling; the units live in the staging folder (:mod:`rdstd.batch.job`)
until the output is committed, so a killed run resumes with ``resume=True`` and redoes only unfinished units.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rdstd.batch import assemble
from rdstd.batch.executors import Executor, ExecutorName, make_executor
from rdstd.batch.job import Job, stage
from rdstd.batch.slurm import write_slurm
from rdstd.batch.worker import raise_returned, run_unit_safely
from rdstd.convert.pipeline import (
    ConvertReport,
    NonFiniteCount,
    OnError,
    OnPlan,
    Progress,
    SkippedEpisode,
    check_rate,
    nothing_converted,
    open_source,
    plan_conversion,
)
from rdstd.formats.base import UNIT_EPISODES
from rdstd.paths import normalized
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.manifest import Counts, Manifest, StorageLayout
from rdstd.schema.spec import ConverterSpec
from rdstd.schema.vocabulary import ClockKind, ImageCodec
from rdstd.store import layout
from rdstd.store.output import Output, check_overlap
from rdstd.store.stats import PartialStats
from rdstd.store.writer import DEFAULT_ROW_GROUP_FRAMES, KIND

__all__ = ["ExecutorName", "convert_batch"]


def convert_batch(
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
    rate_hz: float | None = None,
    drop_unmapped: bool = False,
    exclude_episodes: Mapping[str, Sequence[str]] | None = None,
    progress: Progress | None = None,
    on_plan: OnPlan | None = None,
    salvage: bool = False,
    executor: ExecutorName = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    unit_episodes: int = UNIT_EPISODES,
    slurm_assemble: str | None = None,
) -> ConvertReport:
    """Convert ``source`` into a canonical dataset at ``output`` in work units run on ``executor``.

    Arguments as :func:`rdstd.convert.pipeline.convert`, plus: ``workers`` (default: the machine's cores),
    ``ray_address`` (``executor="ray"``), ``resume`` (reuse the units a killed run finished), ``unit_episodes``
    (episodes per unit at most). The output is identical whatever the executor and the number of workers.
    ``executor="slurm"`` stages the job and writes the array script (``slurm_assemble`` is the command that
    assembles afterwards); the report's ``batch["slurm_submit"]`` names the script to run.
    """
    started = time.perf_counter()
    check_rate(rate_hz)
    src, out = normalized(source), normalized(output)
    check_overlap(out, [src])
    with open_source(src, format_name, salvage=salvage) as dataset:
        plan = plan_conversion(
            dataset,
            src,
            out,
            spec=spec,
            images=images,
            limit=limit,
            rate_hz=rate_hz,
            drop_unmapped=drop_unmapped,
            exclude_episodes=exclude_episodes,
        )
        units = dataset.work_units(plan.refs, unit_episodes)
    job = Job(
        source=str(src),
        output=str(out),
        format_name=format_name,
        spec=plan.spec,
        provenance=plan.provenance,
        units=units,
        images=images,
        drop_unmapped=drop_unmapped,
        rate_hz=rate_hz,
        row_group_frames=row_group_frames,
        salvage=salvage,
        on_error=on_error,
        extra=plan.extra,
    )
    report = plan.report
    count = workers or os.cpu_count() or 1
    report.batch = {"executor": executor, "workers": count, "units": len(units), "unit_episodes": unit_episodes}
    if executor == "slurm":
        guard = Output.begin(out, is_kind=layout.is_dataset, kind=KIND, overwrite=overwrite, sources=[src])
        try:  # refused while a run into OUT holds its lock: its staging folder is not ours to replace
            stage(job, resume=resume)
        finally:
            guard.abort()
        report.batch["slurm_submit"] = str(write_slurm(job, slurm_assemble or f"rdstd convert {src} {out} --resume"))
        return report
    target = Output.begin(out, is_kind=layout.is_dataset, kind=KIND, overwrite=overwrite, sources=[src])
    try:
        with target.guard():
            (target.tmp / layout.WRITING_MARKER).write_text(json.dumps({"pid": os.getpid(), "output": str(out)}))
            finished = stage(job, resume=resume)
        report.batch["resumed_units"] = len(finished)
        if on_plan is not None:
            on_plan(report)
        pool = make_executor(executor, count, ray_address)
        try:
            report.batch["workers"] = getattr(pool, "workers", count)
            entries = _run_units(job, pool, finished, progress)
            _fill_report(report, job, entries)
            if report.episodes_written == 0:
                raise nothing_converted(src, report)
            _assemble(job, plan.converter.features, entries, target.tmp, pool, report, plan)
        finally:
            pool.close()
        (target.tmp / layout.WRITING_MARKER).unlink()
        target.commit()
    except BaseException:
        target.abort()  # the staging folder stays: --resume picks up the finished units
        raise
    shutil.rmtree(job.staging, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def _run_units(job: Job, pool: Executor, finished: list[int], progress: Progress | None) -> dict[int, dict[str, Any]]:
    """Run the unfinished units; every unit's journal entry by unit index."""
    entries = {i: _without_stats(json.loads(job.journal_entry(i).read_text(encoding="utf-8"))) for i in finished}
    todo = [u for u in job.units if u.index not in entries]
    total = sum(len(u.refs) for u in job.units)
    done = sum(len(job.units[i].refs) for i in entries)
    if progress is not None:
        progress(done, total)
    for position, entry in pool.run(run_unit_safely, [(job, unit) for unit in todo]):
        unit = todo[position]
        entries[unit.index] = _without_stats(raise_returned(entry))
        done += len(unit.refs)
        if progress is not None:
            progress(done, total)
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


def _assemble(
    job: Job,
    features: dict[str, VectorFeature | ImageFeature],
    entries: dict[int, dict[str, Any]],
    root: Path,
    pool: Executor,
    report: ConvertReport,
    plan: Any,
) -> None:
    """Write the final dataset into ``root``: shards (on the executor), episodes, tasks, stats, manifest last."""
    placements: list[assemble.Placement] = []
    shards = episodes = frames = 0
    for unit in job.units:
        entry = entries[unit.index]
        if not entry["episodes"]:
            continue
        folder = job.unit_dir(unit.index)
        placements.append(assemble.Placement(unit.index, str(folder), shards, episodes, frames))
        shards += len(assemble.unit_shards(folder))
        episodes += entry["episodes"]
        frames += entry["frames"]
    for _ in pool.run(assemble.place_unit, [(p, str(root), features) for p in placements]):
        pass
    episode_rows, tasks = assemble.episode_table(placements)
    assemble.write_table(root / layout.EPISODES, episode_rows)
    assemble.write_table(root / layout.TASKS, tasks)
    stats = {k: PartialStats(f.size) for k, f in features.items() if isinstance(f, VectorFeature)}
    for unit in job.units:
        partials = json.loads(job.journal_entry(unit.index).read_text(encoding="utf-8"))["stats"]
        for key, data in partials.items():
            stats[key].merge(PartialStats.from_json(data))
    assemble.write_json(root / layout.STATS, {k: s.as_dict() for k, s in stats.items()})
    converter = plan.converter
    for unit in job.units:  # the clock the episodes actually had, over every unit
        converter._clock_paths.update((ClockKind(k), s) for k, s in entries[unit.index]["clock_paths"])
    options = plan.writer_options()
    manifest = Manifest(
        features=features,
        clock=converter.clock,
        counts=Counts(episodes=episodes, frames=frames, shards=shards),
        storage=StorageLayout(row_group_frames=job.row_group_frames),
        name=options["name"],
        description=options["description"],
        rate_hz=options["rate_hz"],
        embodiments=options["embodiments"],
        provenance=job.provenance,
        extra=options["extra"],
    )
    from rdstd.io import atomic

    atomic.write_bytes(root / layout.MANIFEST, manifest.model_dump_json(indent=2).encode())
    report.batch["shards"] = shards

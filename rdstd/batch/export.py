"""Batch export: a canonical dataset written as LeRobot in work units on an executor, resumable.

A unit is a range of episodes in export order; it writes its LeRobot data and video files (v3.0: numbered from 0
within the unit; v2.1: one file per episode, named by its final episode index) into the staging folder beside OUT
(``.OUT.rdstd-export/units/unit-NNNNN``, built aside and renamed into place), then its journal entry (the
episode rows and statistics the metadata needs), last. The final step links the units' files into the output with
dataset-wide file numbers and writes the metadata; OUT is locked and built in its temporary sibling, as for every
export. Episode and frame indices, task numbers and file contents depend only on the dataset, the options and the
units, so the output is the same for any number of workers, any executor and a resumed run.

``on_error="skip"``: an episode whose data cannot be read is left out. Its unit stops and reports it; every unit
whose episodes or indices that changes is exported again (a unit's files carry dataset-wide indices), until no
unit reports a new one. The report lists the episodes left out with the reasons.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rdstd.batch.executors import Executor, ExecutorName, make_executor
from rdstd.batch.worker import error_as_data, raise_returned
from rdstd.convert.pipeline import OUTPUT_ERRNOS
from rdstd.errors import CorruptDatasetError, EpisodeError, RdstdError, SourceError, UsageError
from rdstd.export.lerobot import ExportReport, Part, Progress, Version, _Exporter, export_part, finish_export
from rdstd.formats.lerobot.meta import looks_like_lerobot
from rdstd.io import atomic
from rdstd.store import layout
from rdstd.store.output import Output
from rdstd.store.reader import Dataset

STAGING_MARK = ".rdstd-export"
#: OS errors that are the output's, never one episode's.


def staging_path(out: Path) -> Path:
    """The staging folder of a batch export into ``out``."""
    return out.parent / f".{out.name}{STAGING_MARK}"


def units_of(episodes: int, unit_episodes: int) -> list[tuple[int, int]]:
    """The units of an export of ``episodes`` episodes: slots (start, stop) of the export order."""
    if unit_episodes < 1:
        raise UsageError(
            f"--unit-episodes must be at least 1, not {unit_episodes}",
            hint="e.g. --unit-episodes 50",
            situation="unit-episodes-invalid",
        )
    return [(start, min(start + unit_episodes, episodes)) for start in range(0, episodes, unit_episodes)]


@dataclass(frozen=True)
class ExportJob:
    """What every unit of a batch export follows (``job.json`` in the staging folder)."""

    dataset: str
    staging: str
    version: Version
    codec: str
    exclude: tuple[str, ...]
    on_error: str
    units: tuple[tuple[int, int], ...]
    #: sha256 of the dataset's manifest and episode index: a resumed run must export the same dataset.
    dataset_sha256: str

    def fingerprint(self) -> str:
        """What must match for a resumed run to reuse finished units (all but the error policy)."""
        data = asdict(self)
        data.pop("on_error")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def unit_dir(self, index: int) -> Path:
        """Where unit ``index``'s files are."""
        return Path(self.staging) / "units" / f"unit-{index:05d}"

    def journal(self, index: int) -> Path:
        """Unit ``index``'s journal entry (present once the unit is finished)."""
        return Path(self.staging) / "journal" / f"unit-{index:05d}.json"

    def exporter(self, ds: Dataset, out: Path, skip: Sequence[int]) -> _Exporter:
        """The exporter of this job writing into ``out``, leaving out the episodes at positions ``skip``."""
        return _Exporter(ds, out, self.version, self.codec, self.exclude, skip=skip)


def export_unit(job: ExportJob, index: int, skip: list[int]) -> dict[str, Any]:
    """Export unit ``index`` (leaving out ``skip``); returns a summary, ``{"skip": ...}`` for an episode left out
    under ``on_error="skip"``, or an rdstd error as data. The unit's folder is renamed into place, then the
    journal entry is written: a unit killed half-way has no entry and is redone by a resumed run."""
    started = (time.perf_counter(), time.process_time())
    ds = Dataset.open(job.dataset)
    final = job.unit_dir(index)
    scratch = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        x = job.exporter(ds, scratch, skip)
        start, stop = job.units[index]
        first, last = x.range_of(start, stop)
        try:
            part = export_part(x, first, last)
        except (SourceError, EpisodeError, CorruptDatasetError, OSError) as exc:
            position = x.current_position
            if job.on_error != "skip" or position is None or _output_fault(exc):
                raise
            message = exc.message if isinstance(exc, RdstdError) else f"{exc.filename}: {exc.strerror or exc}"
            return {"skip": position, "reason": message}
        shutil.rmtree(final, ignore_errors=True)
        scratch.rename(final)
        entry = {"key": x.part_key(start, stop), "part": part.to_json()}
        atomic.write_bytes(job.journal(index), json.dumps(entry).encode())
    except RdstdError as exc:
        return error_as_data(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "unit": index,
        "episodes": len(part.rows),
        "frames": part.frames,
        "seconds": round(time.perf_counter() - started[0], 3),
        "cpu_seconds": round(time.process_time() - started[1], 3),
        "worker_pid": os.getpid(),
    }


def _output_fault(exc: Exception) -> bool:
    return isinstance(exc, OSError) and (exc.errno in OUTPUT_ERRNOS or not exc.filename)


def export_batch(
    ds: Dataset,
    out: Path,
    *,
    version: Version,
    codec: str,
    overwrite: bool,
    exclude: Sequence[str],
    progress: Progress | None,
    on_error: str,
    executor: ExecutorName,
    workers: int,
    ray_address: str | None,
    resume: bool,
    unit_episodes: int,
) -> ExportReport:
    """Export ``ds`` to ``out`` in units on ``executor`` (see the module docs); the report of the export."""
    if executor == "slurm":
        raise UsageError(
            "rdstd export does not write SLURM array scripts yet",
            hint="run it with --executor local or ray (a Ray cluster runs on SLURM too)",
            situation="export-slurm-unsupported",
        )
    started = time.perf_counter()
    digest = hashlib.sha256((ds.path / layout.MANIFEST).read_bytes() + (ds.path / layout.EPISODES).read_bytes())
    job = ExportJob(
        dataset=str(ds.path),
        staging=str(staging_path(out)),
        version=version,
        codec=codec,
        exclude=tuple(exclude),
        on_error=on_error,
        units=tuple(units_of(ds.num_episodes, unit_episodes)),
        dataset_sha256=digest.hexdigest(),
    )
    with (
        Output.begin(
            out, is_kind=looks_like_lerobot, kind="LeRobot dataset", overwrite=overwrite, sources=[ds.path]
        ) as target,
        target.guard(),
    ):
        skipped, resumed = _stage(job, resume)
        pool = make_executor(executor, workers, ray_address, preload=["rdstd.batch.export"])
        try:
            units = _run_units(job, ds, pool, skipped, progress)
        finally:
            pool.close()
        x = job.exporter(ds, target.tmp, sorted(skipped))
        parts = [
            (job.unit_dir(i), Part.from_json(json.loads(job.journal(i).read_bytes())["part"]))
            for i in range(len(job.units))
        ]
        episodes, frames = finish_export(x, [(folder, part) for folder, part in parts if part.rows])
    shutil.rmtree(job.staging, ignore_errors=True)
    report = ExportReport(str(out), f"v{version}", episodes, frames)
    report.cameras = {k: ", ".join(sorted(v)) for k, v in x.camera_modes.items()}
    report.cameras |= {k: "depth image (stored bytes)" for k in x.depth}
    report.splits = dict(x.splits)
    report.warnings = dict(x.warnings.counts)
    ids = ds.episodes["episode_id"].to_list()
    report.skipped = {str(ids[p]): reason for p, reason in sorted(skipped.items())}
    report.batch = {
        "executor": executor,
        "workers": getattr(pool, "workers", workers),
        "units": len(job.units),
        "resumed_units": resumed,
        "unit_episodes": unit_episodes,
    }
    report.units = units
    report.seconds = time.perf_counter() - started
    return report


def _stage(job: ExportJob, resume: bool) -> tuple[dict[int, str], int]:
    """Prepare the staging folder; returns the episodes left out so far and the units already finished."""
    staging = Path(job.staging)
    meta = staging / "job.json"
    if resume and meta.exists():
        previous = json.loads(meta.read_bytes())
        if previous.get("fingerprint") != job.fingerprint():
            raise UsageError(
                f"{staging}: the staged export was started with other options or another dataset",
                hint="resume with the same command line, or run without --resume to start over",
                situation="staged-job-differs",
            )
        skipped = {int(k): v for k, v in json.loads((staging / "skipped.json").read_bytes()).items()}
        if job.on_error == "fail":  # resumed without skip: the episodes a skipping run left out are tried again
            skipped = {}
            atomic.write_bytes(staging / "skipped.json", b"{}")
        return skipped, sum(1 for i in range(len(job.units)) if job.journal(i).exists())
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "journal").mkdir(parents=True)
    (staging / "units").mkdir()
    atomic.write_bytes(staging / "skipped.json", b"{}")
    atomic.write_bytes(meta, json.dumps(asdict(job) | {"fingerprint": job.fingerprint()}).encode())
    return {}, 0


def _run_units(
    job: ExportJob, ds: Dataset, pool: Executor, skipped: dict[int, str], progress: Progress | None
) -> list[dict[str, Any]]:
    """Run every unit whose journal entry is missing or stale, until no unit leaves out a new episode."""
    summaries: dict[int, dict[str, Any]] = {}
    while True:
        x = job.exporter(ds, Path(job.staging), sorted(skipped))
        todo = [i for i, (start, stop) in enumerate(job.units) if _stale(job, i, x.part_key(start, stop))]
        if not todo:
            return [summaries[i] for i in sorted(summaries)]
        total = len(x.order)
        done = total - sum(x.range_of(*job.units[i])[1] - x.range_of(*job.units[i])[0] for i in todo)
        if progress is not None:
            progress(done, total)
        new: dict[int, str] = {}
        items = [(job, i, sorted(skipped)) for i in todo]
        for position, returned in pool.run(export_unit, items):
            result = raise_returned(returned)
            if "skip" in result:
                new[int(result["skip"])] = str(result["reason"])
                continue
            summaries[todo[position]] = result
            done += result["episodes"]
            if progress is not None:
                progress(done, total)
        if not new:
            return [summaries[i] for i in sorted(summaries)]
        skipped |= new
        atomic.write_bytes(Path(job.staging) / "skipped.json", json.dumps(skipped).encode())


def _stale(job: ExportJob, index: int, key: str) -> bool:
    path = job.journal(index)
    return not path.exists() or json.loads(path.read_bytes())["key"] != key

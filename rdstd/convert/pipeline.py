"""The conversion pipeline: source backend -> converter spec -> canonical episodes -> store.

Episodes stream one at a time (memory bounded by one episode). The error policy decides what a failing episode
does, by what kind of failure it is:

- **bad data** (:class:`SourceError`, :class:`EpisodeError`, a source file the OS refuses to read): ``fail`` stops
  and removes the partial output; ``skip`` records the episode and the reason and goes on;
- **a spec that does not fit** (:class:`MappingError`): always stops, since every episode would fail the same way;
- **the output cannot be written** (disk full, quota, read-only or permission-denied output): always stops, naming
  the path; skipping would only fail again on the next episode;
- **a fault in rdstd or a backend** (TypeError, KeyError, an unexpected ValueError …): always stops as
  :class:`InternalError` naming the episode, with the original exception chained (``--debug`` shows it).

The report (:class:`ConvertReport`) says what was done and what was left out: skipped episodes with reasons,
source keys left out with the reason (``dropped_source_keys``, the same name in the manifest's ``extra``), source
keys the spec does not map but that were kept with unknown semantics (``kept_unmapped_keys``), and the count
of non-finite values (NaN, ±inf) per canonical feature. ``on_plan`` sees the report once the spec is chosen,
before any episode is read, so the caller can print the choice and the warnings first.
"""

from __future__ import annotations

import errno
import math
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

import rdstd
from rdstd.convert.mapper import EpisodeConverter, resolve_spec
from rdstd.convert.specs import LoadedSpec, load_spec
from rdstd.errors import (
    EpisodeError,
    InternalError,
    RdstdError,
    SourceError,
    UsageError,
)
from rdstd.formats.base import UNIT_EPISODES, EpisodeRef, SourceDataset, SourceEpisode, SourceInfo
from rdstd.formats.registry import detect, get_backend, require_exists
from rdstd.io.remote import is_url
from rdstd.io.write_errors import output_error
from rdstd.paths import normalized
from rdstd.schema.manifest import Provenance
from rdstd.schema.spec import ConverterSpec
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store.output import check_overlap
from rdstd.store.stats import PartialStats
from rdstd.store.writer import DEFAULT_ROW_GROUP_FRAMES, DatasetWriter

if TYPE_CHECKING:
    from rdstd.batch.executors import Executor, ExecutorName

OnError = Literal["fail", "skip"]
#: How the spec was chosen: passed by the caller, a shipped spec matched to the source, or drafted from it.
SpecChoice = Literal["given", "matched", "drafted"]
#: Called after each episode with (episodes done, episodes in total).
Progress = Callable[[int, int], None]
#: Called once with the report when the spec is chosen and the output is ready, before any episode is read.
OnPlan = Callable[["ConvertReport"], None]

#: OS errors that mean the *output* cannot be written, whichever episode hit them.
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
#: Permission errors: the source's when the file is inside the source folder, else the output's.
ACCESS_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


@dataclass(frozen=True)
class SkippedEpisode:
    """An episode left out under ``--on-error skip``, and why (the reason names the file, with its full path)."""

    index: int
    key: str
    reason: str


@dataclass
class NonFiniteCount:
    """Non-finite values written in one canonical feature."""

    nan: int = 0
    inf: int = 0
    #: Episodes holding at least one.
    episodes: int = 0


@dataclass
class ConvertReport:
    """What a conversion did, and what it left out."""

    source: str
    output: str
    format: str
    spec: str
    #: How the spec was chosen (see :data:`SpecChoice`).
    spec_choice: SpecChoice = "given"
    #: The rate given by the caller (``--rate``) for sources without timestamps, or None.
    rate_hz: float | None = None
    #: Episodes the run set out to convert (after ``limit``).
    episodes_planned: int = 0
    episodes_written: int = 0
    frames_written: int = 0
    skipped: list[SkippedEpisode] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Source keys not carried into the canonical dataset, with the reason (also the manifest's ``extra``).
    dropped_source_keys: dict[str, str] = field(default_factory=dict)
    #: Source keys the spec does not map, kept as features with unknown semantics (also the manifest's ``extra``).
    kept_unmapped_keys: list[str] = field(default_factory=list)
    #: Episodes left out because the caller excluded them (e.g. by validate findings), with the reasons.
    excluded_episodes: dict[str, list[str]] = field(default_factory=dict)
    #: NaN and ±inf counts per canonical feature, only for features that hold any.
    non_finite: dict[str, NonFiniteCount] = field(default_factory=dict)
    #: What the backend observed about the data (quirks, not errors), with the number of episodes showing each.
    source_notes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Batch conversion (:mod:`rdstd.batch`): the executor, workers and work units (empty for a plain run).
    batch: dict[str, Any] = field(default_factory=dict)
    #: Batch conversion: one entry per work unit (time, episodes, frames, bytes, skipped, peak RSS).
    units: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


def open_source(
    path: str | Path,
    format_name: str | None = None,
    *,
    salvage: bool = False,
    spec: str | Path | ConverterSpec | None = None,
) -> SourceDataset:
    """Open a source with the named backend, or the one that recognises it (``path`` normalised first);
    ``salvage`` opens it with the backend's ``open_salvaged`` (the readable prefix of a truncated file). A ``spec``
    whose ``source:`` block holds backend options (a ROS bag's alignment plan) hands them to the source."""
    src = normalized(path)
    require_exists(src)
    backend = get_backend(format_name) if format_name else detect(src)
    if not salvage:
        dataset: SourceDataset = backend.open(src)
    else:
        opener = getattr(backend, "open_salvaged", None)
        if opener is None:
            raise UsageError(
                f"{src}: --salvage is not available for {backend.name} sources",
                hint="salvage reads truncated ROS 1 bags and MCAP files; convert without --salvage",
                situation="salvage-unsupported",
            )
        dataset = opener(src)
    if spec is not None:
        try:
            _configure(dataset, spec)
        except BaseException:
            dataset.close()
            raise
    return dataset


def _configure(dataset: SourceDataset, spec: str | Path | ConverterSpec) -> None:
    """Give the source the spec's ``source:`` options (a spec for another format is refused later, by name)."""
    loaded = LoadedSpec(spec, "(in memory)", "") if isinstance(spec, ConverterSpec) else load_spec(spec)
    if loaded.spec.source is not None and loaded.spec.format == dataset.format:
        dataset.configure(loaded.spec.source, loaded.origin)


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
    rate_hz: float | None = None,
    drop_unmapped: bool = False,
    exclude_episodes: Mapping[str, Sequence[str]] | None = None,
    progress: Progress | None = None,
    on_plan: OnPlan | None = None,
    salvage: bool = False,
    executor: ExecutorName | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    unit_episodes: int = UNIT_EPISODES,
    slurm_assemble: str | None = None,
    auto_batch: bool = False,
) -> ConvertReport:
    """Convert the dataset at ``source`` into a canonical dataset at ``output``.

    ``on_error="skip"`` writes the episodes that convert and lists the others with reasons in the report;
    ``"fail"`` stops at the first bad episode and leaves no output behind. Faults that are not about one
    episode's data stop the run either way (see the module docs). ``rate_hz`` gives the rate of a source
    without timestamps (it overrides the spec's ``rate_hz``). Source keys the spec does not map are kept with
    unknown semantics unless ``drop_unmapped`` (the manifest records either). ``exclude_episodes`` maps source
    episode keys to the reasons they are left out (``rdstd convert --exclude-findings``); the manifest records them.
    ``on_plan`` is called once before the work. ``salvage`` recovers the readable prefix of a truncated source
    (ROS bags: the episode is marked partial in ``source_meta["partial"]`` and the report warns).

    Batch conversion (:mod:`rdstd.batch`, ``docs/batch.md``): with ``executor`` (``local``, ``ray``, ``slurm``),
    ``workers`` (default: the machine's cores), ``resume`` or an ``output`` URL, the episodes are converted in
    work units of at most ``unit_episodes`` on that executor and assembled; the output is the same whatever the
    executor and worker count. A source of a single work unit is converted here, in this process, either way.
    ``ray_address``: the Ray cluster; ``slurm_assemble``: the command the SLURM script assembles with.
    Without any of these the conversion runs in this process. ``auto_batch`` (what ``rdstd convert`` passes when no
    batch option is given) runs it as a batch on the machine's cores when the source has several units and the
    estimated work (:func:`estimated_seconds`) is over :data:`POOL_MIN_S`; below that a pool costs more than it
    saves.
    """
    started = time.perf_counter()
    check_rate(rate_hz)
    remote = is_url(str(output))
    asked = executor is not None or workers is not None or resume or remote
    batch = asked or auto_batch
    n_workers = workers or os.cpu_count() or 1
    # the pool's processes start while this process opens the source and plans (see _early_pool)
    pool = None
    if asked and executor in (None, "local") and n_workers > 1:
        pool = _early_pool(n_workers, None if is_url(str(source)) else (str(source), format_name, salvage))
    if executor == "ray" and n_workers >= 1:  # its workers import the unit code while this process plans
        pool = _early_ray(ray_address, n_workers, None if is_url(str(source)) else (str(source), format_name, salvage))
    try:
        source_url = str(source).rstrip("/") if is_url(str(source)) else None
        if source_url is not None:  # the backends read files: a local mirror in the cache (rdstd.batch.mirror)
            from rdstd.batch.mirror import open_mirrored

            dataset = open_mirrored(source_url, lambda root: open_source(root, format_name, salvage=salvage, spec=spec))
        src = dataset.path if source_url is not None else normalized(source)
        out = Path(str(output)) if remote else normalized(output)
        if not remote:
            check_overlap(out, [src])  # before anything is read: a mistyped OUT must never touch the source
        if source_url is None:
            dataset = open_source(src, format_name, salvage=salvage, spec=spec)
        with dataset:
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
            if source_url is not None:  # the manifest and the report name the source, not this machine's mirror
                plan.provenance = plan.provenance.model_copy(update={"source_path": source_url})
            if batch and not asked and estimated_seconds(plan) < POOL_MIN_S:
                batch = False  # a pool's start and the assembly would cost more than they save
            units = dataset.work_units(plan.refs, unit_episodes) if batch else []
            if not batch or (len(units) <= 1 and executor in (None, "local") and not resume and not remote):
                _convert_here(dataset, plan, out, overwrite, row_group_frames, on_error, progress, on_plan)
                plan.report.source = source_url or plan.report.source
                plan.report.seconds = time.perf_counter() - started
                return plan.report
            planned = time.perf_counter()
            from rdstd.batch.run import BatchOptions, run_batch

            options = BatchOptions(
                format_name=format_name,
                on_error=on_error,
                images=images,
                overwrite=overwrite,
                row_group_frames=row_group_frames,
                rate_hz=rate_hz,
                drop_unmapped=drop_unmapped,
                salvage=salvage,
                executor=executor or "local",
                workers=n_workers,
                ray_address=ray_address,
                resume=resume,
                unit_episodes=unit_episodes,
                slurm_assemble=slurm_assemble,
                spec_named=spec is not None,
            )
            # units run in this process read the source opened here (the workers open it alike: configured by
            # the spec only when the user named it)
            lend = source_url is None
            report = run_batch(
                plan,
                units,
                source_url or src,
                str(output).rstrip("/") if remote else out,
                options,
                progress,
                on_plan,
                pool=pool,
                opened=dataset if lend else None,
            )
    finally:
        if pool is not None:
            pool.close()
    report.source = source_url or report.source
    report.seconds = time.perf_counter() - started
    report.batch.setdefault("phases", {})["plan_s"] = round(planned - started, 3)
    return report


def _early_pool(workers: int, source: tuple[str, str | None, bool] | None) -> Executor:
    """A local pool of ``workers`` whose processes start now, before the source is opened: forked from this
    process with the unit code already imported when it may fork (:func:`rdstd.batch.executors.fork_is_safe`: no
    other thread yet; no start-up cost at all), else from a fork server starting in the background (it imports
    the unit code: a fraction of a CPU second, while this process plans). A local ``source`` (path, format,
    salvage) is opened by each process meanwhile (:func:`rdstd.batch.worker.open_early`)."""
    from rdstd.batch import worker  # imported before the fork: the workers start with it
    from rdstd.batch.executors import LocalPool, fork_is_safe
    from rdstd.batch.run import WORKER_PRELOAD

    pool = LocalPool(workers, WORKER_PRELOAD, fork=fork_is_safe())
    if source is None:
        pool.warm()
    else:
        pool.warm(worker.open_early, *source)
    return pool


def _early_ray(address: str | None, workers: int, source: tuple[str, str | None, bool] | None) -> Executor:
    """Ray tasks on the cluster at ``address`` (or a local Ray of ``workers`` CPUs), its workers importing the unit
    code now, and opening a local ``source`` (path, format, salvage) as the pool's processes do."""
    from rdstd.batch import worker
    from rdstd.batch.executors import RayTasks
    from rdstd.batch.run import WORKER_PRELOAD

    tasks = RayTasks(address, workers)
    if source is None:
        tasks.warm(WORKER_PRELOAD)
    else:
        tasks.warm(WORKER_PRELOAD, worker.open_early, *source)
    return tasks


def _convert_here(
    dataset: SourceDataset,
    plan: Plan,
    out: Path,
    overwrite: bool,
    row_group_frames: int,
    on_error: OnError,
    progress: Progress | None,
    on_plan: OnPlan | None,
) -> None:
    """The conversion in this process, one episode at a time, into ``out``."""
    src = Path(plan.report.source)
    report, converter, refs = plan.report, plan.converter, plan.refs
    writer = DatasetWriter(
        out,
        converter.features,
        plan.provenance,
        **plan.writer_options(),
        overwrite=overwrite,
        row_group_frames=row_group_frames,
        sources=[src],
    )
    with writer:
        if on_plan is not None:
            on_plan(report)
        for done, ref in enumerate(refs, start=1):
            convert_one(dataset, converter, writer, ref, on_error, report)
            if progress is not None:
                progress(done, len(refs))
        writer.clock = converter.clock  # what the episodes actually had (measured, synthesized or mixed)
        if report.episodes_written == 0:
            raise nothing_converted(src, report)


def check_rate(rate_hz: float | None) -> None:
    """Refuse a rate that is not positive (``--rate``)."""
    if rate_hz is not None and not rate_hz > 0:
        raise UsageError(
            f"the rate must be positive, not {rate_hz}", hint="pass --rate HZ, e.g. --rate 10", situation="rate-invalid"
        )


def nothing_converted(src: Path, report: ConvertReport) -> EpisodeError:
    """The error of a run that wrote no episode (with the first reasons)."""
    reasons = "; ".join(f"{s.key}: {s.reason}" for s in report.skipped[:3])
    return EpisodeError(
        f"{src}: no episode could be converted ({reasons or 'the source has none'})", situation="no-episode-converted"
    )


@dataclass
class Plan:
    """What a conversion will do, decided before any episode is read: the spec, the converter, the episodes."""

    report: ConvertReport
    converter: EpisodeConverter
    refs: list[EpisodeRef]
    provenance: Provenance
    spec: ConverterSpec
    #: The manifest's ``extra``.
    extra: dict[str, Any]

    def writer_options(self) -> dict[str, Any]:
        """The :class:`DatasetWriter` arguments that come from the plan (name, description, rate, ...)."""
        return {
            "name": self.spec.name,
            "description": self.spec.description,
            "rate_hz": self.converter.rate_hz,
            "embodiments": [self.spec.embodiment] if self.spec.embodiment else [],
            "extra": self.extra,
            "clock": self.converter.clock,
        }


def plan_conversion(
    dataset: SourceDataset,
    src: Path,
    out: Path,
    *,
    spec: str | Path | ConverterSpec | None = None,
    images: ImageCodec | None = None,
    limit: int | None = None,
    rate_hz: float | None = None,
    drop_unmapped: bool = False,
    exclude_episodes: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Choose the spec, build the converter and pick the episodes of an opened source (nothing is read yet).

    ``out`` is checked not to overlap ``src`` first: a mistyped OUT must never touch the source.
    """
    check_rate(rate_hz)
    check_overlap(out, [src])
    info = dataset.info()
    loaded, warnings = resolve_spec(info, spec)
    warnings += [str(w) for w in info.extra.get("warnings") or []]  # dataset-level facts the backend found
    chosen = loaded.spec
    converter = EpisodeConverter(chosen, info, images=images, drop_unmapped=drop_unmapped, rate_hz=rate_hz)
    dropped = {key: converter.dropped[key] for key in converter.unmapped}
    kept = sorted(converter.kept_unmapped)
    if kept:
        warnings.append(
            f"source keys the spec does not map, kept with unknown semantics: {', '.join(kept)} "
            "(map them in a spec, or leave them out with --drop-unmapped)"
        )
    if dropped:
        warnings.append("source keys left out: " + "; ".join(f"{key} ({reason})" for key, reason in dropped.items()))
    refs = list(dataset.episode_refs())
    excluded = {r.key: list((exclude_episodes or {})[r.key]) for r in refs if r.key in (exclude_episodes or {})}
    unmatched = len(exclude_episodes or {}) - len(excluded)
    if unmatched:
        warnings.append(
            f"{unmatched} excluded episode key(s) match no episode of this source (findings of another dataset?)"
        )
    refs = [r for r in refs if r.key not in excluded][:limit]
    report = ConvertReport(
        str(src),
        str(out),
        info.format,
        chosen.name,
        spec_choice=_spec_choice(spec, loaded.origin),
        rate_hz=rate_hz,
        episodes_planned=len(refs),
        warnings=warnings,
        dropped_source_keys=dropped,
        kept_unmapped_keys=kept,
        excluded_episodes=excluded,
    )
    extra = _manifest_extra(info, dropped, kept, rate_hz) | ({"excluded_episodes": excluded} if excluded else {})
    provenance = _provenance(src, info, chosen, loaded.sha256)
    return Plan(report, converter, refs, provenance, chosen, extra)


def _spec_choice(given: object, origin: str) -> SpecChoice:
    if given is not None:
        return "given"
    return "drafted" if origin == "(drafted)" else "matched"


def _provenance(src: Path, info: SourceInfo, spec: ConverterSpec, sha256: str) -> Provenance:
    return Provenance(
        source_format=info.format,
        source_version=info.version,
        source_path=str(src),
        converter_spec=spec.name,
        converter_spec_sha256=sha256 or None,
        rdstd_version=rdstd.__version__,
        license=spec.license,
        citation=spec.citation,
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def _manifest_extra(
    info: SourceInfo, dropped: dict[str, str], kept: list[str], rate_hz: float | None
) -> dict[str, Any]:
    extra: dict[str, Any] = {"source_info": info.extra, "dropped_source_keys": dropped, "kept_unmapped_keys": kept}
    if rate_hz is not None:
        extra["rate_hz_given"] = rate_hz
    return extra


def convert_one(
    dataset: SourceDataset,
    converter: EpisodeConverter,
    writer: DatasetWriter,
    ref: EpisodeRef,
    on_error: OnError,
    report: ConvertReport,
    stats: dict[str, PartialStats] | None = None,
) -> None:
    """Read, convert and write one episode, applying the error policy (the only place it is applied).

    ``stats`` (batch conversion) gets the episode's vectors once it is written whole; a failed episode adds nothing.
    """
    episode_stats = None if stats is None else {k: PartialStats(s.size) for k, s in stats.items()}
    try:
        source = dataset.read_episode(ref)
        non_finite, frames = write_episode(converter, writer, source, episode_stats)
    except OSError as exc:
        writer.abort_episode()
        fault = _os_fault(exc, report.source)
        if fault == "output":
            refused = output_error(exc, Path(report.output))
            if refused is None:
                raise
            raise refused from exc
        if fault == "internal":
            raise _internal(ref, exc) from exc
        error = SourceError(
            f"episode {ref.key}: cannot read {exc.filename}: {exc.strerror or exc}", situation="source-file-unreadable"
        )
        if on_error == "fail":
            raise error from exc
        report.skipped.append(SkippedEpisode(ref.index, ref.key, error.message))
        return
    except (SourceError, EpisodeError) as exc:
        writer.abort_episode()
        if on_error == "fail":
            raise
        report.skipped.append(SkippedEpisode(ref.index, ref.key, exc.message))
        return
    except RdstdError:
        raise  # a spec that does not fit, an output that cannot be written: the whole run stops
    except Exception as exc:  # a bug in rdstd or a backend: stop whatever the policy, name the episode, chain it
        raise _internal(ref, exc) from exc
    if stats is not None and episode_stats is not None:
        for key, partial in episode_stats.items():
            stats[key].merge(partial)
    for note in source.meta.get("notes") or []:
        report.source_notes[str(note)] = report.source_notes.get(str(note), 0) + 1
    add_episode_non_finite(report.non_finite, non_finite)
    report.episodes_written += 1
    report.frames_written += frames


def write_episode(
    converter: EpisodeConverter,
    writer: DatasetWriter,
    source: SourceEpisode,
    stats: dict[str, PartialStats] | None = None,
) -> tuple[dict[str, tuple[int, int]], int]:
    """Convert and write one episode a chunk of frames at a time; returns its non-finite counts and its length.

    Memory is bounded by one chunk (plus one row group in the writer), not by the episode. A failure leaves the
    episode open; the caller aborts it.
    """
    meta, chunks = converter.convert_chunks(source, frames_per_chunk(converter))
    writer.begin_episode(meta)
    totals: dict[str, tuple[int, int]] = {}
    frames = 0
    feed = StatsFeed(stats) if stats else None
    for chunk in chunks:
        writer.append(chunk)
        frames += chunk.length
        if feed is not None:
            feed.add(chunk.vectors, chunk.length)
        for name, (nan, inf) in count_non_finite(chunk.vectors).items():
            old_nan, old_inf = totals.get(name, (0, 0))
            totals[name] = (old_nan + nan, old_inf + inf)
    if feed is not None:
        feed.finish()
    writer.end_episode()
    return totals, frames


#: Rows of an episode given to its :class:`~rdstd.store.stats.PartialStats` at once (the last block may be shorter).
STATS_BLOCK_ROWS = 4096


class StatsFeed:
    """An episode's vectors handed to per-feature :class:`~rdstd.store.stats.PartialStats` in fixed blocks of
    :data:`STATS_BLOCK_ROWS` rows, whatever chunks they were read in.

    A partial statistic folds its moments and fills its quantile sketch per update, so the rounding of the mean and
    std and the points where a sketch compacts depended on the chunk size; fixed blocks make ``stats.json``
    independent of it (and one update per block costs less than one per chunk). Memory: at most one block plus one
    chunk of rows per feature.
    """

    def __init__(self, stats: Mapping[str, PartialStats]) -> None:
        self._stats = stats
        self._held: dict[str, list[npt.NDArray[Any]]] = {key: [] for key in stats}
        self._rows = 0

    def add(self, vectors: Mapping[str, npt.NDArray[Any]], length: int) -> None:
        """Take the next ``length`` rows of every feature; full blocks go to the statistics."""
        if not length:
            return
        for key, held in self._held.items():
            held.append(vectors[key].reshape(length, -1))
        self._rows += length
        if self._rows >= STATS_BLOCK_ROWS:
            self._give(self._rows - self._rows % STATS_BLOCK_ROWS)

    def finish(self) -> None:
        """Give the episode's last rows (fewer than a block)."""
        if self._rows:
            self._give(self._rows)

    def _give(self, rows: int) -> None:
        for key, held in self._held.items():
            values = held[0] if len(held) == 1 else np.concatenate(held)
            for start in range(0, rows, STATS_BLOCK_ROWS):
                self._stats[key].update(values[start : min(start + STATS_BLOCK_ROWS, rows)])
            self._held[key] = [values[rows:]] if rows < len(values) else []
        self._rows -= rows


#: Raw bytes of source frames one chunk may hold (pixels before encoding dominate).
CHUNK_BYTES = 64 * 1024 * 1024
#: Frames per chunk at most (small frames: fewer, larger chunks cost less per frame).
MAX_CHUNK_FRAMES = 1024


#: Bytes a camera kept as video holds per frame in a chunk: a reference (file, timestamp), not pixels.
VIDEO_REF_BYTES = 64
#: Encoded bytes of passed-through cameras one chunk may hold: the writer keeps a chunk's frames until their rows
#: are written while the next chunk is read, so this bounds what a chunk adds to peak RSS (ALOHA's four cameras:
#: ~120 frames; whole 400-frame episodes cost ~20 MB more RSS and no less CPU).
PASSED_CHUNK_BYTES = 4 * 1024 * 1024


def chunk_frames(info: SourceInfo, kept_video: Collection[str] = (), passed: Collection[str] = ()) -> int:
    """Frames per chunk for this source: as many as fit in :data:`CHUNK_BYTES` of raw per-step values (the source
    keys in ``kept_video`` are cameras whose video is kept: frame references, never decoded; those in ``passed`` are
    cameras whose encoded frames pass through, counted at the key's ``frame_bytes`` when the source states it, and
    those at most :data:`PASSED_CHUNK_BYTES` a chunk)."""
    per_frame = passed_bytes = 0
    for key in info.keys:
        if key.key in kept_video:
            per_frame += VIDEO_REF_BYTES
            continue
        if key.key in passed and key.frame_bytes is not None:
            per_frame += key.frame_bytes
            passed_bytes += key.frame_bytes
            continue
        size = math.prod(key.shape) if key.shape else 1
        try:
            per_frame += size * np.dtype(key.dtype).itemsize
        except TypeError:  # a dtype numpy does not name (text, encoded bytes): count a byte per element
            per_frame += size
    frames = min(MAX_CHUNK_FRAMES, CHUNK_BYTES // max(per_frame, 1))
    if passed_bytes:
        frames = min(frames, PASSED_CHUNK_BYTES // passed_bytes)
    return max(1, frames)


#: Estimated CPU seconds of work under which ``rdstd convert`` without batch options runs in one process.
POOL_MIN_S = 2.0
#: Rough CPU cost of converting one frame whose images pass through (read, canonicalize, write, stats).
FRAME_S = 25e-6
#: Rough CPU cost per pixel of a camera frame that is encoded (raw pixels or decoded video to PNG/JPEG).
PIXEL_S = 12e-9
#: Rough CPU cost per episode (open, metadata, writer bookkeeping).
EPISODE_S = 2e-3


def estimated_seconds(plan: Plan) -> float:
    """CPU seconds the conversion of ``plan`` would take in one process, roughly (measured on PushT, G1 and
    Bridge): every frame, the pixels of every camera it encodes, and a cost per episode. Frames a source does not
    count are taken as 100 per episode."""
    info = plan.converter.info
    lengths = [r.length for r in plan.refs]
    frames = sum(n for n in lengths if n is not None) + 100 * sum(1 for n in lengths if n is None)
    if info.frames is not None and all(n is None for n in lengths) and info.episodes:
        frames = int(info.frames * len(plan.refs) / info.episodes)
    codecs = {k.key: k.codec for k in info.keys}
    encoded = sum(
        c.feature.height * c.feature.width
        for c in plan.converter.cameras
        if codecs.get(c.spec.key) != c.feature.codec  # passthrough (same codec) costs no pixels
    )
    return frames * (FRAME_S + encoded * PIXEL_S) + len(plan.refs) * EPISODE_S


def frames_per_chunk(converter: EpisodeConverter) -> int:
    """:func:`chunk_frames` for what ``converter`` reads (the cameras whose video it keeps count as references, those
    whose encoded frames it keeps as they are count at the bytes the source says a frame takes)."""
    codecs = {k.key: k.codec for k in converter.info.keys}
    video = {c.spec.key for c in converter.cameras if c.feature.codec == ImageCodec.VIDEO}
    passed = {c.spec.key for c in converter.cameras if codecs.get(c.spec.key) == c.feature.codec}
    return chunk_frames(converter.info, video, passed - video)


def _os_fault(exc: OSError, source: str) -> Literal["output", "source", "internal"]:
    """Whose an OS error met while converting one episode is.

    Disk full, quota, read-only file system and file-too-large only ever come from writing: the output's. Any
    other error naming a file inside the source folder is the source's (that episode is skipped under ``skip``).
    A permission error on a file outside it is the output's. Anything else (no file named) is a backend that
    let a decoder's error through: internal.
    """
    in_source = bool(exc.filename) and normalized(str(exc.filename)).is_relative_to(source)
    if exc.errno in OUTPUT_ERRNOS or (exc.errno in ACCESS_ERRNOS and not in_source):
        return "output"
    return "source" if in_source else "internal"


def _internal(ref: EpisodeRef, exc: BaseException) -> InternalError:
    return InternalError(
        f"converting episode {ref.key} ({ref.path}) failed on an unexpected {type(exc).__name__}: {exc}",
        hint="this is a bug in rdstd or in the format backend, not in your data: re-run with --debug "
        "for the traceback and report it",
        situation="backend-fault",
    )


def count_non_finite(vectors: Mapping[str, npt.NDArray[Any]]) -> dict[str, tuple[int, int]]:
    """(NaN, ±inf) counts per feature in ``vectors`` (one episode, or one chunk of it); clean features left out."""
    counts: dict[str, tuple[int, int]] = {}
    for name, values in vectors.items():
        if values.dtype.kind not in "fc" or np.isfinite(values).all():  # the usual case: one pass
            continue
        nan = int(np.count_nonzero(np.isnan(values)))
        inf = int(np.count_nonzero(np.isinf(values)))
        if nan or inf:
            counts[name] = (nan, inf)
    return counts


def add_episode_non_finite(totals: dict[str, NonFiniteCount], episode: Mapping[str, tuple[int, int]]) -> None:
    """Add one episode's counts (summed over its chunks when it was written in chunks) to the run's totals."""
    for name, (nan, inf) in episode.items():
        entry = totals.setdefault(name, NonFiniteCount())
        entry.nan += nan
        entry.inf += inf
        entry.episodes += 1

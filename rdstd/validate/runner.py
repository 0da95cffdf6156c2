"""The runner: builds the configured checks, streams the dataset through them once, collects every finding.

Findings are data: one run lists all of them (pandera's lazy validation). Memory is bounded by one shard's
low-dim columns plus each check's small accumulators; pixels are decoded only for sampled frames of checks that
ask for them, and only when the configuration turns pixels on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl

import rdstd
from rdstd.errors import UsageError
from rdstd.store import merged
from rdstd.store.reader import Dataset
from rdstd.validate import stream
from rdstd.validate.check import Check, DatasetView, ShardView
from rdstd.validate.config import Config
from rdstd.validate.model import CheckInfo, Finding, Report, Severity, Suppressed, Suppression
from rdstd.validate.registry import matches, registry


def build_checks(config: Config) -> tuple[list[Check], list[str]]:
    """The checks ``config`` selects, constructed with its thresholds and severities; plus plugin problems."""
    reg = registry()
    problems = list(reg.problems)
    unknown = [p for p in config.params if p not in reg.checks]
    if unknown:
        raise UsageError(
            f"thresholds given for unknown checks: {', '.join(unknown)}",
            hint="see rdstd validate --list",
            situation="threshold-check-unknown",
        )
    checks: list[Check] = []
    for ident in sorted(reg.checks):
        cls = reg.checks[ident]
        if not matches(ident, config.select) or matches(ident, config.ignore):
            continue
        if cls.pixels and not config.pixels:
            continue
        params = config.params.get(ident, {})
        bad = sorted(set(params) - set(cls.defaults))
        if bad:
            known = ", ".join(sorted(cls.defaults)) or "none"
            raise UsageError(
                f"check {ident} has no threshold {', '.join(bad)} (it has: {known})", situation="threshold-unknown"
            )
        checks.append(cls(params, config.severity.get(ident)))
    return checks, problems


def run(
    ds: Dataset, checks: list[Check], *, pixels: bool = False, ahead: stream.ReadAhead | None = None
) -> list[Finding]:
    """Every finding of ``checks`` on ``ds`` (begin, every shard's episodes, end), in that order; ``ahead``: the
    shards of ``ds`` already being read (:func:`read_ahead`).

    A merged dataset whose inputs had different features is checked one group of episodes at a time, each group
    with the features its episodes have (:func:`partitions`; new instances of the same checks per group): the null
    rows of a feature an input lacked are not data. A dataset-wide finding that several groups give is kept once.
    """
    parts = partitions(ds)
    if len(parts) == 1:
        return _run(parts[0], checks, pixels=pixels, ahead=ahead)
    found: list[Finding] = []
    seen: set[str] = set()
    for part in parts:
        for finding in _run(part, [type(c)(c.params, c.level) for c in checks], pixels=pixels):
            if finding.episode_index is None and finding.episode_id is None:
                key = finding.model_dump_json()
                if key in seen:
                    continue
                seen.add(key)
            found.append(finding)
    return found


def read_ahead(ds: Dataset) -> stream.ReadAhead | None:
    """The shards of ``ds`` read ahead from now on, for :func:`run`; None for a merged dataset checked in groups
    (:func:`partitions`), whose groups are read when they are checked."""
    return None if ds.partial_features else stream.ReadAhead(ds)


def partitions(ds: Dataset) -> list[Dataset]:
    """``ds`` itself, or for a merged dataset with features some inputs lacked, its episodes grouped by the features
    they have (in order of each group's first episode), each group reading only those features."""
    if not ds.partial_features:
        return [ds]
    extra = ds.manifest.extra
    groups: dict[frozenset[str] | None, list[int]] = {}
    for pos, text in enumerate(ds.episodes["source_meta"].to_list()):
        groups.setdefault(merged.episode_features(extra, json.loads(text or "{}")), []).append(pos)
    parts = []
    for have, positions in groups.items():
        part = ds.select(pl.int_range(pl.len()).is_in(positions))
        parts.append(part if have is None else part.with_features(have))
    return parts


def _run(ds: Dataset, checks: list[Check], *, pixels: bool, ahead: stream.ReadAhead | None = None) -> list[Finding]:
    view = DatasetView(ds.path, ds.manifest, ds.episodes, lambda: ds.stats, stored=stream.StoredRows(ds))
    wants_pixels = pixels and any(c.pixels for c in checks)
    reader = ahead or stream.ReadAhead(ds)
    return run_shards(view, lambda: reader.views(pixels=wants_pixels, prepare=preparing(checks)), checks)


def preparing(checks: list[Check]) -> list[Callable[[ShardView], None]]:
    """The :meth:`Check.prepare` of each check that has one (to run on the shard reader's thread)."""
    return [c.prepare for c in checks if type(c).prepare is not Check.prepare]


def run_shards(view: DatasetView, shards: Callable[[], Iterable[ShardView]], checks: list[Check]) -> list[Finding]:
    """Every finding of ``checks`` on the dataset ``view`` describes, whose episodes ``shards()`` gives a shard at a
    time (called once, after every check's begin)."""
    found: list[Finding] = []
    for check in checks:
        found.extend(check.begin(view))
    # checks with a prepare last: theirs runs on the reader's thread meanwhile; a check with neither shard() nor
    # episode() of its own (metadata checks: begin and end) finds nothing in a shard and is not called
    order = sorted(
        (n for n in range(len(checks)) if _per_shard(checks[n])),
        key=lambda n: type(checks[n]).prepare is not Check.prepare,
    )
    for shard in shards():
        rank: dict[int | None, int] = {ep.index: n for n, ep in enumerate(shard.episodes)}
        batch = [(n, f) for n in order for f in checks[n].shard(shard)]
        # as if every check ran episode by episode: by episode, then by check
        batch.sort(key=lambda item: (rank.get(item[1].episode_index, len(rank)), item[0]))
        found.extend(f for _, f in batch)
    for check in checks:
        found.extend(check.end())
    return found


def _per_shard(check: Check) -> bool:
    """Whether ``check`` does anything per shard (it overrides :meth:`Check.shard` or :meth:`Check.episode`)."""
    return type(check).shard is not Check.shard or type(check).episode is not Check.episode


def _suppressed_by(finding: Finding, rules: Iterable[Suppression]) -> Suppression | None:
    for rule in rules:
        if not finding.check.startswith(rule.check.upper()):
            continue
        if rule.feature is not None and finding.feature != rule.feature:
            continue
        if rule.episodes is not None and finding.episode_index not in rule.episodes:
            continue
        return rule
    return None


def validate_dataset(
    ds: Dataset,
    config: Config,
    *,
    dataset: str | None = None,
    source_format: str = "rdstd",
    extra: Iterable[Finding] = (),
) -> Report:
    """Validate an open canonical dataset with ``config``; ``extra`` are findings found before (source checks)."""
    started = time.perf_counter()
    ahead = read_ahead(ds)  # the first shard is read while the checks are built
    checks, problems = build_checks(config)
    found = run(ds, checks, pixels=config.pixels, ahead=ahead)
    return report(
        config,
        checks,
        problems,
        found,
        extra=extra,
        dataset=dataset or str(ds.path),
        source_format=source_format,
        episodes=ds.num_episodes,
        frames=len(ds),
        started=started,
    )


def report(
    config: Config,
    checks: list[Check],
    problems: list[str],
    found: list[Finding],
    *,
    extra: Iterable[Finding],
    dataset: str,
    source_format: str,
    episodes: int,
    frames: int,
    started: float,
) -> Report:
    """The report of a run: ``extra`` (findings found before, e.g. by a conversion) then ``found``, after the
    configured severities and suppressions."""
    levels = {c.id: c.level for c in checks}
    chosen = [  # findings found before (source checks) follow the selection and the configured severities
        f if levels[f.check].rank >= f.severity.rank else f.model_copy(update={"severity": levels[f.check]})
        for f in extra
        if f.check in levels
    ]
    findings = [*chosen, *found]
    kept: list[Finding] = []
    silenced: list[Suppressed] = []
    for finding in findings:
        rule = _suppressed_by(finding, config.suppress)
        if rule is None:
            kept.append(finding)
        else:
            silenced.append(Suppressed(finding=finding, reason=rule.reason, origin=rule.origin))
    infos = [
        CheckInfo(
            id=c.id,
            name=c.name,
            severity=c.level,
            evidence=c.evidence,
            description=c.description,
            pixels=c.pixels,
            params=c.params,
        )
        for c in checks
    ]
    return Report(
        rdstd_version=rdstd.__version__,
        dataset=dataset,
        source_format=source_format,
        profile=config.profile,
        episodes=episodes,
        frames=frames,
        checks=infos,
        findings=kept,
        suppressed=silenced,
        plugin_errors=problems,
        counts={s: sum(1 for f in kept if f.severity == s) for s in Severity},
        seconds=round(time.perf_counter() - started, 3),
    )


def validate_path(path: Path, config: Config) -> Report:
    """Validate the canonical dataset at ``path`` (see :mod:`rdstd.validate.source` for sources)."""
    return validate_dataset(Dataset.open(path), config, dataset=str(path))

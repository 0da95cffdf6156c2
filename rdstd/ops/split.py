"""``rdstd split``: assign every episode a split, deterministically, duplicates always together.

The output is a copy of the dataset whose episode table has the new ``split`` column (shards and videos are
hard-linked when nothing else changes: zero-copy). Duplicate episodes (the same content hash:
:mod:`rdstd.ops.content_hash`) form one group that goes to one split; groups are shuffled with ``seed`` and each
goes to the split furthest below its target share (``by_task``: per task), so the assignment depends only on the
content, the fractions and the seed. Explicit lists (``assign``: split -> episode ids) take precedence; a listed
episode's duplicates follow it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rdstd.errors import UsageError
from rdstd.ops.assemble import Progress
from rdstd.ops.content_hash import content_hash
from rdstd.ops.subset import write_subset
from rdstd.paths import normalized
from rdstd.store.reader import Dataset


@dataclass
class SplitReport:
    """Episodes per split and the duplicates found."""

    output: str
    splits: dict[str, int]
    duplicate_groups: int
    duplicate_episodes: int
    groups: list[list[str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return self.__dict__.copy()


def parse_fractions(text: str) -> dict[str, float]:
    """``train=0.9,val=0.1`` as a map (fractions positive, summing to 1 within 1e-6)."""
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            out[name] = -1.0
        if not sep or not name or out[name] <= 0:
            raise UsageError(
                f"--fractions {text!r}: expected NAME=FRACTION,…",
                hint="e.g. --fractions train=0.9,val=0.1",
                situation="fractions-invalid",
            )
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise UsageError(
            f"--fractions {text!r}: the fractions sum to {sum(out.values())}, not 1",
            hint="make them add up to 1, e.g. --fractions train=0.9,val=0.1",
            situation="fractions-sum-not-one",
        )
    return out


def split(
    dataset: str | Path,
    output: str | Path,
    *,
    fractions: Mapping[str, float] | None = None,
    assign: Mapping[str, Sequence[str]] | None = None,
    by_task: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> SplitReport:
    """Write ``dataset`` to ``output`` with every episode assigned a split (see the module docs)."""
    started = time.perf_counter()
    if not fractions and not assign:
        raise UsageError(
            "give --fractions or --assign",
            hint="e.g. rdstd split DS OUT --fractions train=0.9,val=0.1",
            situation="split-rule-missing",
        )
    src, out = normalized(dataset), normalized(output)
    ds = Dataset.open(src)
    hashes = [content_hash(e.timestamps, e.vectors) for e in ds.iter_episodes()]
    ids = ds.episodes["episode_id"].to_list()
    groups: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        groups.setdefault(h, []).append(i)
    chosen = _explicit(assign or {}, ids, groups, hashes)
    if fractions:
        tasks = ds.episodes["task"].to_list() if by_task else [""] * len(ids)
        _by_fractions(fractions, groups, chosen, tasks, seed)
    missing = [ids[i] for i in range(len(ids)) if i not in chosen]
    if missing:
        raise UsageError(
            f"{src}: {len(missing)} episode(s) are in no list (e.g. {missing[0]!r})",
            hint="list every episode in --assign, or add --fractions for the rest",
            situation="episodes-unassigned",
        )
    where = {e: i for i, e in enumerate(ids)}
    rows = []
    for row in ds.episodes.sort(["shard", "shard_row"]).iter_rows(named=True):
        row["split"] = chosen[where[row["episode_id"]]]
        rows.append(row)
    dupes = [g for g in groups.values() if len(g) > 1]
    extra = dict(ds.manifest.extra)
    extra["split"] = {"fractions": dict(fractions or {}), "by_task": by_task, "seed": seed, "lists": bool(assign)}
    manifest = ds.manifest.model_copy(update={"extra": extra})
    write_subset(ds, rows, out, manifest, overwrite=overwrite, whole=True, progress=progress)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    return SplitReport(
        output=str(out),
        splits=counts,
        duplicate_groups=len(dupes),
        duplicate_episodes=sum(len(g) for g in dupes),
        groups=[[ids[i] for i in g] for g in dupes],
        seconds=time.perf_counter() - started,
    )


def _explicit(
    assign: Mapping[str, Sequence[str]], ids: list[str], groups: dict[str, list[int]], hashes: list[str]
) -> dict[int, str]:
    where = {e: i for i, e in enumerate(ids)}
    chosen: dict[int, str] = {}
    for name, listed in assign.items():
        for episode_id in listed:
            if episode_id not in where:
                raise UsageError(
                    f"--assign: episode {episode_id!r} is not in the dataset",
                    hint="check the ids",
                    situation="assigned-episode-unknown",
                )
            for j in groups[hashes[where[episode_id]]]:
                if chosen.get(j, name) != name:
                    raise UsageError(
                        f"--assign: {episode_id!r} (in {name}) and its duplicate {ids[j]!r} (in {chosen[j]}) are in "
                        "different splits; duplicates must stay together",
                        hint="put both in the same list",
                        situation="duplicates-split-apart",
                    )
                chosen[j] = name
    return chosen


def _by_fractions(
    fractions: Mapping[str, float], groups: dict[str, list[int]], chosen: dict[int, str], tasks: list[str], seed: int
) -> None:
    names = list(fractions)
    open_groups = [(h, g) for h, g in sorted(groups.items()) if not any(i in chosen for i in g)]
    by_task: dict[str, list[list[int]]] = {}
    for _, g in open_groups:
        by_task.setdefault(tasks[g[0]], []).append(g)
    rng = np.random.default_rng(seed)
    for task in sorted(by_task):
        members = by_task[task]
        order = rng.permutation(len(members))
        total = sum(len(g) for g in members)
        filled = dict.fromkeys(names, 0)
        for k in order:
            group = members[int(k)]
            target = max(names, key=lambda n: (fractions[n] * total - filled[n], -names.index(n)))
            filled[target] += len(group)
            for i in group:
                chosen[i] = target

"""``rdstd.merge``: one canonical dataset from several, whatever their source format, embodiment, rate or cameras.

Features line up by name and meaning (:mod:`rdstd.ops.compat`); several embodiments and rates live side by side
(each episode names its embodiment; the manifest's ``rate_hz`` is set only when every input has the same, and
``extra["merge"]["inputs"]`` keeps each input's rate, clock, provenance and feature map). Nothing is re-encoded
(:mod:`rdstd.ops.assemble`). Episode ids must stay unique (``prefix_ids`` prefixes them with the input's label);
each episode keeps its source file and records its input dataset in ``source_meta["rdstd.merge"]``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdstd.errors import MergeConflictError, UsageError
from rdstd.ops import compat
from rdstd.ops.assemble import Part, Progress, assemble
from rdstd.paths import normalized
from rdstd.schema.clock import Clock
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.features import CameraCalibration, ImageFeature
from rdstd.schema.manifest import Counts, Manifest, Provenance, StorageLayout
from rdstd.store.merged import MERGE_KEY
from rdstd.store.output import check_overlap
from rdstd.store.reader import Dataset


@dataclass
class MergeReport:
    """What a merge did: inputs, conflicts (resolved or not), counts, time."""

    output: str
    inputs: list[dict[str, Any]]
    conflicts: list[compat.Conflict]
    episodes: int = 0
    frames: int = 0
    seconds: float = 0.0
    features: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "output": self.output,
            "inputs": self.inputs,
            "conflicts": [c.as_dict() for c in self.conflicts],
            "episodes": self.episodes,
            "frames": self.frames,
            "seconds": self.seconds,
            "features": self.features,
        }


def labels_for(paths: Sequence[Path], given: Sequence[str] = ()) -> list[str]:
    """One unique label per input: the given ones, else the folder names (made safe, numbered when repeated)."""
    if given and len(given) != len(paths):
        raise UsageError(
            f"{len(given)} labels for {len(paths)} inputs",
            hint="give one --label per input, in order",
            situation="labels-count-mismatch",
        )
    raw = [compat.safe_label(g) for g in given] if given else [compat.safe_label(p.name) for p in paths]
    out: list[str] = []
    for label in raw:
        candidate, n = label, 2
        while candidate in out:
            candidate, n = f"{label}-{n}", n + 1
        out.append(candidate)
    return out


def merge(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    labels: Sequence[str] = (),
    rename: Sequence[str] = (),
    mapping: str | Path | None = None,
    convert: Sequence[str] = (),
    separate: Sequence[str] = (),
    prefix_ids: bool = False,
    overwrite: bool = False,
    dry_run: bool = False,
    rate_hz: float | None = None,
    progress: Progress | None = None,
) -> MergeReport:
    """Merge the canonical datasets ``inputs`` into ``output`` (see the module docs).

        ``rename``: ``[LABEL:]OLD=NEW`` feature renames (``mapping``: a YAML/JSON file of the same, ``{OLD: NEW}`` for
        every input or ``{LABEL: {OLD: NEW}}``); ``convert``: ``LABEL:FEATURE`` unit conversions to the first input's
        units; ``separate``: features whose differing meanings are kept as separate features; ``rate_hz``: a common
    rate imposed on every episode (each input resampled first, :mod:`rdstd.ops.resample`; else rates stay). Raises
        :class:`~rdstd.errors.MergeConflictError` (with the report) when a conflict is left; ``dry_run`` only reports.
    """
    started = time.perf_counter()
    paths = [normalized(p) for p in inputs]
    out = normalized(output)
    if len(paths) < 2:
        raise UsageError(
            "merge needs at least two datasets", hint="rdstd merge A B OUT", situation="merge-needs-two-datasets"
        )
    _refuse_same(paths)
    check_overlap(out, paths)  # before anything is read
    datasets = [Dataset.open(p) for p in paths]
    names = labels_for(paths, labels)
    renames = compat.parse_renames([*_mapping_items(mapping), *rename], names)
    features = [compat.renamed(ds.manifest, r) for ds, r in zip(datasets, renames, strict=True)]
    plan = compat.plan(features, names, convert=_pairs(convert, names), separate=separate)
    _refuse_colliding_ids(datasets, names, prefix_ids)
    report = MergeReport(
        output=str(out),
        inputs=[{"label": n, "path": str(p)} for n, p in zip(names, paths, strict=True)],
        conflicts=plan.conflicts,
        features=list(plan.features),
    )
    if plan.unresolved:
        error = MergeConflictError(
            f"{out}: the inputs disagree on what {len(plan.unresolved)} feature(s) mean: "
            + "; ".join(c.summary() for c in plan.unresolved),
            hint="apply the fix named for each conflict and run again (rdstd merge --dry-run prints the whole report)",
            situation="features-disagree",
        )
        error.report = report
        raise error
    if dry_run:
        return report

    def write(inputs: list[Dataset]) -> None:
        _write(inputs, names, paths, out, plan, renames, prefix_ids, overwrite, progress, report)

    if rate_hz is None:
        write(datasets)
    else:
        _write_at_rate(datasets, names, out, rate_hz, write)
    report.seconds = time.perf_counter() - started
    return report


def _write_at_rate(
    datasets: list[Dataset],
    names: list[str],
    out: Path,
    rate_hz: float,
    write: Callable[[list[Dataset]], None],
) -> None:
    """Resample every input to ``rate_hz`` into a hidden sibling of OUT (removed after), then ``write`` those."""
    from rdstd.ops.resample import resample

    if not rate_hz > 0:
        raise UsageError(f"the rate must be positive, not {rate_hz}", hint="e.g. --rate 10", situation="rate-invalid")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.rdstd-resample-") as scratch:
        resampled = []
        for ds, label in zip(datasets, names, strict=True):
            resample(ds.path, Path(scratch) / label, rate_hz=rate_hz)
            resampled.append(Dataset.open(Path(scratch) / label))
        write(resampled)


def _write(
    datasets: list[Dataset],
    names: list[str],
    paths: list[Path],
    out: Path,
    plan: compat.FeaturePlan,
    renames: list[dict[str, str]],
    prefix_ids: bool,
    overwrite: bool,
    progress: Progress | None,
    report: MergeReport,
) -> None:
    embodiments, embodiment_names = _embodiments(datasets, names)
    parts = [
        _part(ds, label, _original(plan.columns[i], renames[i]), plan.factors[i], embodiment_names[i], prefix_ids)
        for i, (ds, label) in enumerate(zip(datasets, names, strict=True))
    ]
    for part in parts:
        _calibrations(part, plan)
    features = [compat.renamed(ds.manifest, r) for ds, r in zip(datasets, renames, strict=True)]
    manifest = _manifest(datasets, names, paths, plan, embodiments, renames, features)
    written = assemble(out, parts, manifest, sources=paths, overwrite=overwrite, progress=progress)
    report.episodes, report.frames = written.counts.episodes, written.counts.frames


def _original(columns: dict[str, str], renames: dict[str, str]) -> dict[str, str]:
    """Merged feature -> the input's column as stored (before its renames)."""
    back = {new: old for old, new in renames.items()}
    return {out: back.get(name, name) for out, name in columns.items()}


def _refuse_same(paths: list[Path]) -> None:
    seen: dict[Path, Path] = {}
    for p in paths:
        real = p.resolve()
        if real in seen:
            raise UsageError(
                f"{p}: merging a dataset with itself (it is also given as {seen[real]})",
                hint="give each dataset once",
                situation="merge-with-itself",
            )
        seen[real] = p


def _refuse_colliding_ids(datasets: list[Dataset], names: list[str], prefix_ids: bool) -> None:
    if prefix_ids:
        return
    owner: dict[str, str] = {}
    for ds, label in zip(datasets, names, strict=True):
        ids = ds.episodes["episode_id"].to_list()
        clash = [i for i in ids if i in owner]
        if not clash:
            owner.update(dict.fromkeys(ids, label))
            continue
        first = owner[clash[0]]
        if len(clash) == len(ids) and _same_content(ds, datasets[names.index(first)]):
            raise UsageError(
                f"{ds.location}: holds the same episodes as input {first} (ids and source checksums): merging a "
                "dataset with a copy of itself",
                hint="give each dataset once",
                situation="merge-with-itself",
            )
        shown = ", ".join(repr(i) for i in clash[:3])
        raise UsageError(
            f"{ds.location}: {len(clash)} episode id(s) of {label} are also in {first} ({shown}); ids must stay unique",
            hint="pass --prefix-ids to prefix every id with its input's label (e.g. "
            f"{label}:{clash[0]}), or --label to choose the labels",
            situation="episode-ids-clash",
        )


def _same_content(a: Dataset, b: Dataset) -> bool:
    """Whether two datasets with the same episode ids hold the same content (every episode's content hash)."""
    from rdstd.ops.content_hash import content_hash

    if a.num_episodes != b.num_episodes:
        return False
    where = {e: i for i, e in enumerate(b.episodes["episode_id"].to_list())}
    for i, episode_id in enumerate(a.episodes["episode_id"].to_list()):
        ea, eb = a.episode(i), b.episode(where[episode_id])
        if content_hash(ea.timestamps, ea.vectors) != content_hash(eb.timestamps, eb.vectors):
            return False
    return True


def _pairs(items: Sequence[str], names: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        label, sep, feature = item.partition(":")
        if not sep or label not in names or not feature:
            raise UsageError(
                f"--convert {item!r}: expected LABEL:FEATURE with one of the labels {', '.join(names)}",
                hint="the conflict report names the exact option",
                situation="convert-option-invalid",
            )
        out.append((label, feature))
    return out


def _mapping_items(mapping: str | Path | None) -> list[str]:
    """A mapping file as ``[LABEL:]OLD=NEW`` items."""
    if mapping is None:
        return []
    import yaml

    path = Path(mapping)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(
            f"{path}: cannot read the mapping file ({exc})",
            hint="a YAML map of OLD: NEW",
            situation="mapping-file-unreadable",
        ) from exc
    if not isinstance(raw, dict):
        raise UsageError(
            f"{path}: the mapping file must be a map",
            hint="OLD: NEW, or LABEL: {OLD: NEW}",
            situation="mapping-file-not-a-map",
        )
    items: list[str] = []
    for key, value in raw.items():
        if isinstance(value, dict):
            items.extend(f"{key}:{old}={new}" for old, new in value.items())
        else:
            items.append(f"{key}={value}")
    return items


def _embodiments(datasets: list[Dataset], names: list[str]) -> tuple[list[Embodiment], list[dict[str, str]]]:
    """The union of embodiments; a name two inputs define differently becomes ``<name>.<label>`` for the later one."""
    out: dict[str, Embodiment] = {}
    maps: list[dict[str, str]] = []
    for ds, label in zip(datasets, names, strict=True):
        renames: dict[str, str] = {}
        for e in ds.manifest.embodiments:
            target = e.name if out.get(e.name, e) == e else f"{e.name}.{label}"
            out[target] = e if target == e.name else e.model_copy(update={"name": target})
            renames[e.name] = target
        maps.append(renames)
    return list(out.values()), maps


def _part(
    ds: Dataset,
    label: str,
    columns: dict[str, str],
    factors: dict[str, Any],
    embodiments: dict[str, str],
    prefix_ids: bool,
) -> Part:
    rows = []
    for row in ds.episodes.sort(["shard", "shard_row"]).iter_rows(named=True):
        meta = json.loads(row["source_meta"] or "{}")
        entry = {"input": label, "dataset": str(ds.location), "episode_index": row["episode_index"]}
        if MERGE_KEY in meta:  # an input that was itself merged: keep where the episode came from before
            entry["from"] = meta[MERGE_KEY]
        meta[MERGE_KEY] = entry
        row["source_meta"] = json.dumps(meta, sort_keys=True)
        if prefix_ids:
            row["episode_id"] = f"{label}:{row['episode_id']}"
        row["embodiment"] = embodiments.get(row["embodiment"] or "", row["embodiment"])
        rows.append(row)
    return Part(ds, rows, columns, factors, video_prefix=label, whole=True)


def _calibrations(part: Part, plan: compat.FeaturePlan) -> None:
    """Per-episode camera calibration under the merged camera names; where an input's camera intrinsics or
    extrinsics differ from the merged feature's (the first input's), each episode carries its own."""
    cameras = {out: src for out, src in part.columns.items() if isinstance(plan.features[out], ImageFeature)}
    own: dict[str, dict[str, Any]] = {}
    for out, src in cameras.items():
        mine, merged = part.dataset.manifest.features[src], plan.features[out]
        assert isinstance(mine, ImageFeature) and isinstance(merged, ImageFeature)
        if (mine.intrinsics, mine.extrinsics) != (merged.intrinsics, merged.extrinsics):
            own[out] = CameraCalibration(intrinsics=mine.intrinsics, extrinsics=mine.extrinsics).model_dump(mode="json")
    back = {src: out for out, src in cameras.items()}
    for row in part.rows:
        stored = json.loads(row.get("cameras") or "{}")
        calibration = {**own, **{back.get(k, k): v for k, v in stored.items() if k in back}}
        row["cameras"] = json.dumps(calibration, sort_keys=True)


def _manifest(
    datasets: list[Dataset],
    names: list[str],
    paths: list[Path],
    plan: compat.FeaturePlan,
    embodiments: list[Embodiment],
    renames: list[dict[str, str]],
    features: list[dict[str, compat.Feature]],
) -> Manifest:
    from rdstd import __version__

    manifests = [ds.manifest for ds in datasets]
    rates = {m.rate_hz for m in manifests}
    clocks = {m.clock.model_dump_json() for m in manifests}
    licenses = list(dict.fromkeys(m.provenance.license for m in manifests))
    citations = [m.provenance.citation for m in manifests if m.provenance.citation]
    clock = (
        manifests[0].clock
        if len(clocks) == 1
        else Clock(description="differs per input: see extra.merge.inputs[].clock")
    )
    inputs = [
        {
            "label": label,
            "path": str(path),
            "name": m.name,
            "episodes": m.counts.episodes,
            "frames": m.counts.frames,
            "rate_hz": m.rate_hz,
            "clock": m.clock.model_dump(mode="json"),
            "provenance": m.provenance.model_dump(mode="json"),
            "renamed": renames[i],
            "features": plan.columns[i],
            # the input's own definition of each feature that differs from the merged one (nothing is lost)
            "definitions": {
                out: features[i][name].model_dump(mode="json")
                for out, name in plan.columns[i].items()
                if features[i][name] != plan.features[out]
            },
            "converted": {k: v.tolist() for k, v in plan.factors[i].items()},
            "extra": m.extra,
        }
        for i, (label, path, m) in enumerate(zip(names, paths, manifests, strict=True))
    ]
    return Manifest(
        name="",
        description="merged from " + ", ".join(names),
        rate_hz=manifests[0].rate_hz if len(rates) == 1 else None,
        clock=clock,
        features=plan.features,
        embodiments=embodiments,
        provenance=Provenance(
            source_format="rdstd",
            source_version="merge",
            source_path=";".join(str(p) for p in paths),
            rdstd_version=__version__,
            license=licenses[0] if len(licenses) == 1 else "mixed: " + "; ".join(licenses),
            citation="\n\n".join(dict.fromkeys(citations)),
            created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        ),
        counts=Counts(episodes=0, frames=0, shards=0),
        storage=StorageLayout(row_group_frames=8),
        extra={"merge": {"inputs": inputs, "conflicts": [c.as_dict() for c in plan.conflicts]}},
    )

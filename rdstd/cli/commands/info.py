"""``rdstd info PATH``: what a canonical dataset or any recognised source holds; ``--format markdown`` writes a
canonical dataset's card (a README for the Hugging Face Hub or a repository), generated from its manifest."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rdstd.cli.output import emit, emit_json
from rdstd.convert.pipeline import open_source
from rdstd.errors import UsageError
from rdstd.formats.base import SourceInfo
from rdstd.paths import normalized
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.store import layout

if TYPE_CHECKING:
    from rdstd.store.reader import Dataset

EXAMPLES = """
Examples:

\b
  rdstd info pusht-canonical
  rdstd info pusht_cchi_v7_replay.zarr --format json
  rdstd info pusht-canonical --format markdown > README.md
  rdstd info pusht-canonical --format markdown --findings findings.json
"""

#: Findings files looked for when ``--findings`` is not given: inside the dataset folder, then beside it.
FINDINGS_NAMES = ("findings.json",)


class InfoFormat(StrEnum):
    """How ``rdstd info`` prints: text, JSON, or (canonical datasets) a Markdown dataset card."""

    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="info", epilog=EXAMPLES)(info_command)


def info_command(
    path: Path = typer.Argument(..., help="A canonical rdstd dataset or a source dataset."),
    source_format: str | None = typer.Option(
        None, "--source-format", "-f", help="Source format (see `rdstd formats`); detected if omitted."
    ),
    output_format: InfoFormat = typer.Option(
        InfoFormat.TEXT, "--format", help="text, json, or markdown (a dataset card of a canonical dataset)."
    ),
    findings: Path | None = typer.Option(
        None,
        "--findings",
        help="An `rdstd validate --format json` report for the card's validation summary "
        "(default: findings.json in the dataset folder, or DATASET.findings.json beside it).",
    ),
) -> None:
    """Describe a canonical dataset (features with units and frames, episodes, provenance) or a source."""
    path = normalized(path)
    if layout.is_dataset(path) and source_format is None:
        from rdstd.store.reader import Dataset  # polars: only when a dataset is read (a faster CLI start)

        ds = Dataset.open(path)
        if output_format == InfoFormat.MARKDOWN:
            emit(dataset_card(ds, _findings(path, findings)))
            return
        data = dataset_summary(ds)
        emit_json(data) if output_format == InfoFormat.JSON else emit(_dataset_text(data))
        return
    if output_format == InfoFormat.MARKDOWN:
        raise UsageError(
            f"{path}: a dataset card is written for canonical datasets; this is a source",
            hint=f"convert it first: rdstd convert {path} OUT, then rdstd info OUT --format markdown",
            situation="card-needs-dataset",
        )
    with open_source(path, source_format) as source:
        info = source.info()
    data = source_summary(info)
    if output_format == InfoFormat.JSON:
        emit_json(data)
    else:
        emit(_source_text(data))
        emit(f"next: rdstd spec {path} > spec.yaml   (or convert it: rdstd convert {path} OUT)")


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    """A canonical dataset's facts as JSON-ready data."""
    m = ds.manifest
    features: dict[str, Any] = {}
    for key, f in m.features.items():
        if isinstance(f, VectorFeature):
            features[key] = {
                "kind": "vector",
                "dtype": f.dtype,
                "shape": list(f.shape),
                "dims": [d.model_dump(mode="json") for d in f.dims],
                "action": f.action.model_dump(mode="json") if f.action else None,
            }
        elif isinstance(f, ImageFeature):
            features[key] = {
                "kind": "image",
                "size": [f.height, f.width, f.channels],
                "dtype": f.dtype,
                "codec": f.codec.value,
                "color": f.color.value,
                "frame": f.frame,
            }
    eps = ds.episodes
    return {
        "path": str(ds.path),
        "kind": "rdstd dataset",
        "schema_version": m.schema_version,
        "name": m.name,
        "episodes": m.counts.episodes,
        "frames": m.counts.frames,
        "shards": m.counts.shards,
        "duration_s": float(eps["duration_s"].sum() or 0.0),
        "rate_hz": m.rate_hz,
        "clock": m.clock.model_dump(mode="json"),
        "tasks": int(eps["task"].n_unique()) if len(eps) else 0,
        "splits": {str(k): int(v) for k, v in eps["split"].value_counts().iter_rows()} if len(eps) else {},
        "features": features,
        "embodiments": [e.model_dump(mode="json", exclude_defaults=True) for e in m.embodiments],
        "provenance": m.provenance.model_dump(mode="json"),
    }


def _dataset_text(d: dict[str, Any]) -> str:
    lines = [
        f"{d['path']}: rdstd dataset (schema {d['schema_version']}) {d['name']}",
        f"  episodes {d['episodes']}, frames {d['frames']}, {d['duration_s']:.1f} s, rate {_rate(d['rate_hz'])}, "
        f"tasks {d['tasks']}, splits {d['splits']}",
        f"  source: {d['provenance']['source_format']} ({d['provenance']['source_version']}), "
        f"spec {d['provenance']['converter_spec']}",
        f"  clock: {_clock(d['clock'])}",
        "  features:",
    ]
    for key, f in d["features"].items():
        if f["kind"] == "vector":
            dims = ", ".join(f"{x['name']}[{x['unit']}]" for x in f["dims"][:8])
            more = f" … +{len(f['dims']) - 8}" if len(f["dims"]) > 8 else ""
            lines.append(f"    {key}: {f['dtype']}{f['shape']} {dims}{more}")
        else:
            lines.append(
                f"    {key}: image {'×'.join(map(str, f['size']))} {f['dtype']} "
                f"{f['codec']} {f['color']} ({f['frame']})"
            )
    for e in d["embodiments"]:
        lines.append(
            f"  embodiment: {e.get('name')} ({e.get('robot_type', 'unknown')}), {e.get('control_rate_hz', '?')} Hz"
        )
    return "\n".join(lines)


def source_summary(info: SourceInfo) -> dict[str, Any]:
    """A source's facts as JSON-ready data."""
    return {
        "path": info.path,
        "kind": "source",
        "format": info.format,
        "version": info.version,
        "episodes": info.episodes,
        "frames": info.frames,
        "rate_hz": info.rate_hz,
        "keys": [
            {"key": k.key, "kind": k.kind, "shape": list(k.shape), "dtype": k.dtype, "codec": k.codec, "names": k.names}
            for k in info.keys
        ],
        "extra": info.extra,
    }


def _source_text(d: dict[str, Any]) -> str:
    lines = [
        f"{d['path']}: {d['format']} source ({d['version']})",
        f"  episodes {d['episodes']}, frames {d['frames']}, rate {_rate(d['rate_hz'])}",
        "  keys:",
    ]
    for k in d["keys"]:
        codec = f" {k['codec']}" if k["codec"] else ""
        lines.append(f"    {k['key']}: {k['kind']} {k['dtype']}{k['shape']}{codec}")
    for name, value in d["extra"].items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            lines.append(f"  {name}:" + "".join(f"\n    - {v}" for v in value) if value else f"  {name}: none")
        elif not isinstance(value, dict | list):
            lines.append(f"  {name}: {value}")
    return "\n".join(lines)


def _clock(clock: dict[str, Any]) -> str:
    """Where the timestamps came from, in a few words."""
    if clock["kind"] == "synthesized":
        return f"synthesized from a rate ({clock.get('rate_hz') or '?'} Hz): the source stores no times"
    if clock["kind"] == "measured":
        how = clock.get("resampling")
        resampled = "" if how in (None, "none") else (", resampling unknown" if how == "unknown" else f", {how}")
        return f"measured ({clock.get('source', 'unknown')}){resampled}"
    return "unknown" + (f" ({clock['description']})" if clock.get("description") else "")


def _rate(rate_hz: float | None) -> str:
    return f"{rate_hz:g} Hz" if rate_hz else "unknown"


# -- the dataset card ----------------------------------------------------------------------------------------------


def _findings(dataset: Path, given: Path | None) -> Any:
    """The validate report for the card: the one given, else one found in or beside the dataset, else None."""
    from rdstd.validate.exclude import read_report

    if given is not None:
        return read_report(normalized(given))
    for candidate in (
        *(dataset / name for name in FINDINGS_NAMES),
        dataset.with_name(f"{dataset.name}.findings.json"),
    ):
        if candidate.is_file():
            return read_report(candidate)
    return None


def _cell(value: Any) -> str:
    text = "unknown" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def dataset_card(ds: Dataset, report: Any = None) -> str:
    """A Markdown dataset card generated from the manifest (and a validate report when there is one).

    What a person needs before training on the data: counts and rates, every feature with the unit and frame of
    each dimension, action semantics, grippers, rotations, cameras, embodiments, splits, tasks, provenance,
    license and citation. What the manifest does not know is written ``unknown``, never left out.
    """
    m = ds.manifest
    eps = ds.episodes
    prov = m.provenance
    summary = dataset_summary(ds)
    name = m.name or ds.path.name
    lines = [
        "---",
        f"license: {prov.license.lower() if prov.license != 'unknown' else 'other'}",
        "task_categories:",
        "- robotics",
        "tags:",
        "- rdstd",
        f"- {prov.source_format}",
        "---",
        "",
        f"# {name}",
        "",
        m.description or "_No description in the manifest._",
        "",
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| episodes | {m.counts.episodes} |",
        f"| frames | {m.counts.frames} |",
        f"| duration | {summary['duration_s']:.1f} s |",
        f"| frame rate | {_rate(m.rate_hz)} |",
        f"| clock | {_cell(_clock(summary['clock']))} |",
        f"| tasks | {summary['tasks']} |",
        f"| splits | {_cell(', '.join(f'{k}: {v}' for k, v in summary['splits'].items()))} |",
        f"| format | rdstd canonical dataset, schema {m.schema_version} ({m.counts.shards} shard(s)) |",
        "",
    ]
    lines += _card_features(m)
    lines += _card_embodiments(m)
    lines += _card_tasks(eps)
    lines += [
        "## Provenance",
        "",
        "| | |",
        "|---|---|",
        f"| source format | {_cell(prov.source_format)} ({_cell(prov.source_version)}) |",
        f"| source | {_cell(prov.source_path)} |",
        f"| converter spec | {_cell(prov.converter_spec)} (sha256 {_cell(prov.converter_spec_sha256)}) |",
        f"| converted with | rdstd {_cell(prov.rdstd_version)}, {_cell(prov.created_utc)} |",
        "",
        "Each episode keeps its source path and key in `episodes.parquet` (`source_path`, `source_key`).",
        "",
    ]
    lines += _card_validation(report)
    lines += ["## License", "", prov.license if prov.license != "unknown" else "unknown (the source declares none)"]
    lines += ["", "## Citation", ""]
    citation = prov.citation.strip()
    if citation.startswith("@"):
        lines += ["```bibtex", citation, "```"]
    else:
        lines += [citation or "unknown (none declared)"]
    lines += ["", f"_Generated by `rdstd info {ds.path.name} --format markdown` from the dataset's manifest._"]
    return "\n".join(lines)


def _card_features(m: Any) -> list[str]:
    lines = ["## Features", ""]
    for key, f in m.vectors.items():
        lines += [f"### `{key}` — vector {f.dtype}{list(f.shape)}", ""]
        if f.description:
            lines += [f.description, ""]
        if f.action is not None:
            a = f.action
            lines += [
                f"Action: mode {a.mode.value}, space {a.space.value}, reference {a.reference.value}, "
                f"timing {a.timing.value}.",
                "",
            ]
        for group in f.rotations:
            order = f", axes {group.euler_axes}" if group.euler_axes else ""
            lines += [f"Rotation from dimension {group.start}: {group.representation.value}{order}.", ""]
        for grip in f.grippers:
            span = f"range {list(grip.range)}" if grip.range else "range unknown"
            lines += [f"Gripper at dimension {grip.dim}: {grip.kind.value}, {span}, open is {grip.open.value}.", ""]
        lines += ["| dim | name | role | unit | frame |", "|---|---|---|---|---|"]
        lines += [
            f"| {i} | {_cell(d.name)} | {_cell(d.role.value)} | {_cell(d.unit.value)} | {_cell(d.frame)} |"
            for i, d in enumerate(f.dims)
        ]
        lines.append("")
    for key, c in m.cameras.items():
        depth = f", depth: value × {c.depth_scale} = {c.depth_unit.value}" if c.depth_unit and c.depth_scale else ""
        lines += [
            f"### `{key}` — camera {c.height}×{c.width}×{c.channels} {c.dtype}",
            "",
            f"Stored as {c.codec.value}, {c.color.value}; frame {_cell(c.frame)}; mount {c.mount.value}; "
            f"intrinsics {'given' if c.intrinsics else 'unknown'}{depth}.",
            "",
        ]
    return lines


def _card_embodiments(m: Any) -> list[str]:
    lines = ["## Embodiments", ""]
    if not m.embodiments:
        return [*lines, "unknown (the manifest names none)", ""]
    lines += ["| name | robot type | control | rate | gripper | joints | base frame | URDF |", "|---" * 8 + "|"]
    for e in m.embodiments:
        lines.append(
            f"| {_cell(e.name)} | {_cell(e.robot_type.value)} | {_cell(e.control_mode.value)} | "
            f"{_rate(e.control_rate_hz)} | {_cell(e.gripper)} | {len(e.joints) or 'unknown'} | "
            f"{_cell(e.base_frame)} | {_cell(e.urdf)} |"
        )
    return [*lines, ""]


def _card_tasks(eps: Any, shown: int = 20) -> list[str]:
    if not len(eps) or eps["task"].null_count() == len(eps):
        return ["## Tasks", "", "unknown (no task text)", ""]
    counts = eps["task"].value_counts(sort=True)
    lines = ["## Tasks", "", "| task | episodes |", "|---|---|"]
    lines += [f"| {_cell(task)} | {n} |" for task, n in counts.head(shown).iter_rows()]
    if len(counts) > shown:
        lines.append(f"| … {len(counts) - shown} more | |")
    return [*lines, ""]


def _card_validation(report: Any) -> list[str]:
    lines = ["## Validation", ""]
    if report is None:
        return [
            *lines,
            "Not validated (no findings file). Run: `rdstd validate DATASET --format json --output "
            "DATASET/findings.json`, then write the card again.",
            "",
        ]
    counts = ", ".join(f"{n} {sev.value}" for sev, n in report.counts.items() if n) or "no findings"
    lines += [
        f"`rdstd validate` {report.rdstd_version}, profile {report.profile}: {counts} "
        f"({len(report.checks)} checks run).",
        "",
    ]
    by_check: dict[str, list[Any]] = {}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    if by_check:
        lines += ["| check | severity | findings | example |", "|---|---|---|---|"]
        for check, found in sorted(by_check.items()):
            lines.append(
                f"| {check} {found[0].name} | {found[0].severity.value} | {len(found)} | {_cell(found[0].message)} |"
            )
    return [*lines, ""]

"""``rdstd info PATH``: what a canonical dataset or any recognised source holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rdstd.cli.output import FORMAT_OPTION, OutputFormat, emit, emit_json
from rdstd.convert.pipeline import open_source
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
"""


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""
    app.command(name="info", epilog=EXAMPLES)(info_command)


def info_command(
    path: Path = typer.Argument(..., help="A canonical rdstd dataset or a source dataset."),
    source_format: str | None = typer.Option(
        None, "--source-format", "-f", help="Source format (see `rdstd formats`); detected if omitted."
    ),
    output_format: OutputFormat = FORMAT_OPTION,
) -> None:
    """Describe a canonical dataset (features with units and frames, episodes, provenance) or a source."""
    path = normalized(path)
    if layout.is_dataset(path) and source_format is None:
        from rdstd.store.reader import Dataset  # polars: only when a dataset is read (a faster CLI start)

        data = dataset_summary(Dataset.open(path))
        emit_json(data) if output_format == OutputFormat.JSON else emit(_dataset_text(data))
        return
    with open_source(path, source_format) as source:
        info = source.info()
    data = source_summary(info)
    if output_format == OutputFormat.JSON:
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

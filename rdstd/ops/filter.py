"""``rdstd filter``: the episodes for which a polars expression holds, minus those with validation findings.

The expression is SQL over the episode table (``pl.sql_expr``: ``length > 100 AND task LIKE '%cup%'``), with
these episode-quality columns added: ``rate_hz`` (frames per second of the episode) and, when findings are given
or computed, ``findings_error`` / ``findings_warning`` (how many the episode has). ``exclude_findings`` (a severity)
drops the episodes with a finding at or above it, from ``findings`` (a ``rdstd validate --format json`` report) or
from running the default validation profile. Kept episodes are renumbered; the manifest records the filter.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rdstd.errors import UsageError
from rdstd.ops.assemble import Progress
from rdstd.ops.subset import write_subset
from rdstd.paths import normalized
from rdstd.schema.clock import Clock
from rdstd.schema.manifest import Manifest
from rdstd.store.merged import MERGE_KEY
from rdstd.store.reader import Dataset


@dataclass
class FilterReport:
    """How many episodes were kept and dropped, and why."""

    output: str
    kept: int
    dropped: int
    dropped_by_findings: int
    where: str | None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return self.__dict__.copy()


def filter_episodes(
    dataset: str | Path,
    output: str | Path,
    *,
    where: str | None = None,
    exclude_findings: str | None = None,
    findings: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> FilterReport:
    """Write the episodes of ``dataset`` that pass ``where`` and ``exclude_findings`` to ``output``."""
    started = time.perf_counter()
    src, out = normalized(dataset), normalized(output)
    ds = Dataset.open(src)
    table = ds.episodes.with_columns(
        pl.when(pl.col("duration_s") > 0)
        .then((pl.col("length") - 1) / pl.col("duration_s"))
        .otherwise(None)
        .alias("rate_hz")
    )
    dropped_by_findings = 0
    if exclude_findings is not None or findings is not None:
        counts = _finding_counts(src, findings)
        table = table.join(counts, on="episode_index", how="left").with_columns(
            pl.col("findings_error").fill_null(0),
            pl.col("findings_warning").fill_null(0),
            pl.col("findings_any").fill_null(0),
        )
    keep = pl.lit(True)
    if where:
        try:
            keep = pl.sql_expr(where)
            table.select(keep)
        except pl.exceptions.PolarsError as exc:
            raise UsageError(
                f"--where {where!r}: not a valid expression over the episode table ({exc})".splitlines()[0],
                hint="columns: " + ", ".join(table.columns),
                situation="where-invalid",
            ) from exc
    selected = table.filter(keep)
    if exclude_findings is not None:
        column = _severity_column(exclude_findings)
        before = len(selected)
        selected = selected.filter(pl.col(column) == 0)
        dropped_by_findings = before - len(selected)
    kept_ids = set(selected["episode_index"].to_list())
    if not kept_ids:
        raise UsageError(
            f"{src}: no episode passes the filter; nothing to write",
            hint="loosen --where",
            situation="filter-keeps-nothing",
        )
    rows = [r for r in ds.episodes.sort(["shard", "shard_row"]).iter_rows(named=True) if r["episode_index"] in kept_ids]
    extra = dict(ds.manifest.extra)
    extra["filter"] = {
        "source": str(src),
        "where": where,
        "exclude_findings": exclude_findings,
        "kept": len(rows),
        "dropped": ds.num_episodes - len(rows),
        "dropped_ids": [r for r in ds.episodes["episode_id"].to_list() if r not in {x["episode_id"] for x in rows}],
    }
    manifest = _narrowed(ds.manifest.model_copy(update={"extra": extra}), rows)
    write_subset(ds, rows, out, manifest, overwrite=overwrite, whole=len(rows) == ds.num_episodes, progress=progress)
    return FilterReport(
        str(out), len(rows), ds.num_episodes - len(rows), dropped_by_findings, where, time.perf_counter() - started
    )


def _narrowed(manifest: Manifest, rows: list[dict[str, Any]]) -> Manifest:
    """For a merged dataset: only the features, merge inputs and embodiments of the inputs whose episodes are kept,
    and their rate and clock when those agree again."""
    merged = manifest.extra.get("merge")
    if not isinstance(merged, dict) or not merged.get("inputs"):
        return manifest
    kept = {json.loads(r["source_meta"] or "{}").get(MERGE_KEY, {}).get("input") for r in rows}
    inputs = [i for i in merged["inputs"] if i.get("label") in kept]
    names = {name for i in inputs for name in i.get("features", {})}
    features = {k: f for k, f in manifest.features.items() if k in names}
    if not inputs or not features:
        return manifest
    extra = {**manifest.extra, "merge": {**merged, "inputs": inputs}}
    used = {r["embodiment"] for r in rows}
    update: dict[str, Any] = {
        "features": features,
        "extra": extra,
        "embodiments": [e for e in manifest.embodiments if e.name in used] or manifest.embodiments,
    }
    rates = {i.get("rate_hz") for i in inputs}
    clocks = {json.dumps(i.get("clock"), sort_keys=True) for i in inputs}
    if manifest.rate_hz is None and len(rates) == 1 and None not in rates:  # the kept inputs agree again
        update["rate_hz"] = rates.pop()
    if len(clocks) == 1 and inputs[0].get("clock") is not None:
        update["clock"] = Clock.model_validate(inputs[0]["clock"])
    return manifest.model_copy(update=update)


def _severity_column(severity: str) -> str:
    if severity not in {"error", "warning"}:
        raise UsageError(
            f"--exclude-findings {severity!r}: use error or warning",
            hint="--exclude-findings error drops episodes with errors; warning also drops those with warnings",
            situation="findings-severity-unknown",
        )
    return "findings_error" if severity == "error" else "findings_any"


def _finding_counts(src: Path, findings: str | Path | None) -> pl.DataFrame:
    from rdstd.validate import Severity, validate
    from rdstd.validate.exclude import read_report

    report = read_report(Path(findings)) if findings is not None else validate(src)
    rows: dict[int, list[int]] = {}
    for f in report.findings:
        if f.episode_index is None:
            continue
        counts = rows.setdefault(f.episode_index, [0, 0])
        if f.severity.rank >= Severity.ERROR.rank:
            counts[0] += 1
        elif f.severity.rank >= Severity.WARNING.rank:
            counts[1] += 1
    return pl.DataFrame(
        {
            "episode_index": pl.Series(list(rows), dtype=pl.Int64),
            "findings_error": pl.Series([c[0] for c in rows.values()], dtype=pl.Int64),
            "findings_warning": pl.Series([c[1] for c in rows.values()], dtype=pl.Int64),
        }
    ).with_columns((pl.col("findings_error") + pl.col("findings_warning")).alias("findings_any"))

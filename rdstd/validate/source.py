"""Validating a source (LeRobot, RLDS, zarr …) rather than a canonical dataset.

By default (no pixel checks) the source streams through the converter (:meth:`EpisodeConverter.convert_chunks`,
the spec ``rdstd convert`` would use, cameras left out so that no frame is decoded or encoded) and nothing is
written: the checks see the low-dim values ``rdstd convert`` would store, batched into shards as the store
batches them. Two passes over the source: the first gathers the episode table and the statistics (the outlier
check needs the dataset's mean and spread before its first episode) and keeps the converted values in memory
when they fit :data:`KEEP_BYTES`; the second, only when they did not, reads the source again. Memory is bounded
by one shard's low-dim columns either way.

With pixel checks (the ``strict`` profile), or ``stream=False``, the source is converted into a canonical dataset
in a temporary folder (removed afterwards, whatever happens; the source is only read) and validated there.

What only the conversion sees becomes findings too: episodes the source could not give (RDV904, with the reason,
e.g. a LeRobot video cut short or an RLDS shard count that disagrees), and the backend's dataset-level warnings
and per-episode notes (RDV903, through the manifest's ``extra`` and the episodes' ``source_meta``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rdstd.convert.pipeline import ConvertReport, convert
from rdstd.store.reader import Dataset
from rdstd.validate.checks.metadata import SourceEpisodes
from rdstd.validate.config import Config
from rdstd.validate.model import Evidence, Finding, Report, Severity

SOURCE_CHECK_ID = SourceEpisodes.id
SOURCE_CHECK_NAME = SourceEpisodes.name


def conversion_findings(report: ConvertReport, recorded: set[str] | frozenset[str] = frozenset()) -> list[Finding]:
    """Episodes the conversion had to leave out, and its warnings (but those in ``recorded``, which the manifest
    keeps and RDV903 reports), as findings."""
    found = [
        Finding(
            check=SOURCE_CHECK_ID,
            name=SOURCE_CHECK_NAME,
            severity=Severity.ERROR,
            evidence=Evidence.DETERMINISTIC,
            message=f"source episode {s.key} cannot be read: {s.reason}",
            episode_index=s.index,
            episode_id=s.key,
            source_key=s.key,
            hint=SourceEpisodes.hint,
        )
        for s in report.skipped
    ]
    found += [
        Finding(
            check=SOURCE_CHECK_ID,
            name=SOURCE_CHECK_NAME,
            severity=Severity.INFO,
            evidence=Evidence.DETERMINISTIC,
            message=f"conversion: {w}",
        )
        for w in report.warnings
        if w not in recorded
    ]
    return found


def validate_source(
    path: Path,
    config: Config,
    *,
    format_name: str | None = None,
    spec: str | None = None,
    limit: int | None = None,
    rate_hz: float | None = None,
    stream: bool | None = None,
) -> Report:
    """Validate the source at ``path``: streamed through the converter (the default without pixel checks), or
    converted into a temporary canonical dataset (``stream=False``, or pixel checks on); plus conversion findings.

    ``rate_hz`` is the rate of a source without timestamps, as for ``rdstd convert --rate``.
    """
    if stream is None:
        stream = not config.pixels
    if stream:
        from rdstd.validate.streaming import validate_streamed

        return validate_streamed(path, config, format_name=format_name, spec=spec, limit=limit, rate_hz=rate_hz)
    from rdstd.validate.runner import validate_dataset

    with tempfile.TemporaryDirectory(prefix="rdstd-validate-") as tmp:
        out = Path(tmp) / "dataset"
        converted = convert(
            path, out, format_name=format_name, spec=spec, on_error="skip", limit=limit, rate_hz=rate_hz
        )
        ds = Dataset.open(out)
        info = ds.manifest.extra.get("source_info") or {}
        recorded = {str(w) for w in info.get("warnings") or []} if isinstance(info, dict) else set()
        return validate_dataset(
            ds,
            config,
            dataset=str(path),
            source_format=converted.format,
            extra=conversion_findings(converted, recorded),
        )

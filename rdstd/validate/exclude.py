"""Which episodes a report's findings exclude: the validate side of ``rdstd convert --exclude-findings``.

:func:`exclusions` maps each episode with a finding at or above a severity to the reasons (check, name, message);
episodes are keyed by their source key (what ``rdstd convert`` reads them by), else by their episode id. A
converter filters its episode references with it and records the map in the manifest (what was left out and why).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from rdstd.errors import UsageError
from rdstd.validate.model import Report, Severity


def exclusions(report: Report, at_or_above: Severity = Severity.ERROR) -> dict[str, list[str]]:
    """Episode (source key, else episode id) -> the reasons its findings at or above ``at_or_above`` give."""
    found: dict[str, list[str]] = {}
    for f in report.findings:
        key = f.source_key or f.episode_id
        if key is None or f.severity.rank < at_or_above.rank:
            continue
        found.setdefault(key, []).append(f"{f.check} {f.name}: {f.message}")
    return found


def read_report(path: Path) -> Report:
    """A report written by ``rdstd validate --format json`` (a usage error, naming the file, when it is not one)."""
    try:
        return Report.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read the findings ({exc.strerror or exc})", situation="findings-unreadable"
        ) from exc
    except ValidationError as exc:
        raise UsageError(
            f"{path}: not an rdstd validate JSON report ({exc.errors()[0]['msg']})",
            hint="write one with: rdstd validate DATASET --format json --output findings.json",
            situation="findings-invalid",
        ) from exc

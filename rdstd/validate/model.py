"""What ``rdstd validate`` reports: findings (data, not exceptions) and the report that holds them.

The JSON form of :class:`Report` is a stable, documented interface (``schemas/validate-report.schema.json``,
generated from these models: ``python -m rdstd.validate.model schemas``; a test fails when it drifts).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

#: Version of the report's JSON layout; bumped on any incompatible change.
REPORT_VERSION = "1.0"


class Severity(StrEnum):
    """How much a finding matters: error (the data is wrong), warning (likely wrong), info (worth knowing)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """2 for error, 1 for warning, 0 for info (higher is worse)."""
        return {Severity.ERROR: 2, Severity.WARNING: 1, Severity.INFO: 0}[self]


class Evidence(StrEnum):
    """How a finding was reached.

    ``deterministic``: a rule on the values (a NaN is a NaN). ``statistical``: a statistic passed a threshold
    (both are in the finding). ``unverifiable``: the data cannot decide; the finding says what is missing.
    """

    DETERMINISTIC = "deterministic"
    STATISTICAL = "statistical"
    UNVERIFIABLE = "unverifiable"


Value = str | float | int | bool | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Finding(_Model):
    """One problem (or fact) found in the data: which check, where (episode, feature, dims, frames), how sure."""

    check: str = Field(description="stable id of the check, e.g. RDV301")
    name: str = Field(description="dotted name of the check, e.g. units.angle")
    severity: Severity
    evidence: Evidence
    message: str = Field(description="one line for a person")
    episode_index: int | None = Field(default=None, description="episode_index of the episode; None: dataset-wide")
    episode_id: str | None = Field(default=None, description="the episode's stable id")
    source_key: str | None = Field(
        default=None, description="the episode's key in its source (what rdstd convert reads it by), when known"
    )
    feature: str | None = None
    dims: list[int] = Field(default_factory=list, description="dimension indices inside the feature")
    dim_names: list[str] = Field(default_factory=list)
    frames: tuple[int, int] | None = Field(default=None, description="frame range [start, stop) in the episode")
    statistic: str | None = Field(default=None, description="for statistical evidence: what was measured")
    threshold: float | None = Field(default=None, description="the threshold the statistic was held against")
    measured: Value = None
    expected: Value = None
    hint: str = Field(default="", description="what to do about it")


class CheckInfo(_Model):
    """A check as it ran: id, dotted name, severity used, evidence kind, what it looks at."""

    id: str
    name: str
    severity: Severity
    evidence: Evidence
    description: str
    pixels: bool = False
    params: dict[str, float] = Field(default_factory=dict)


class Suppression(_Model):
    """A finding silenced on purpose, with the reason (from a profile, pyproject.toml or rdstd-validate.yaml)."""

    check: str = Field(description="check id or id prefix")
    reason: str = Field(min_length=1)
    episodes: list[int] | None = Field(default=None, description="episode indices; None: every episode")
    feature: str | None = None
    origin: str = Field(default="", description="the file that declared it")


class Suppressed(_Model):
    """A finding that matched a suppression: kept in the report, not counted."""

    finding: Finding
    reason: str
    origin: str = ""


class Report(_Model):
    """Everything one ``rdstd validate`` run found."""

    report_version: str = REPORT_VERSION
    rdstd_version: str
    dataset: str = Field(description="the path validated")
    source_format: str = Field(description="'rdstd' for a canonical dataset, else the source's format")
    profile: str
    episodes: int
    frames: int
    checks: list[CheckInfo]
    findings: list[Finding]
    suppressed: list[Suppressed] = Field(default_factory=list)
    plugin_errors: list[str] = Field(default_factory=list, description="checks that could not be loaded, and why")
    counts: dict[Severity, int] = Field(description="findings per severity (suppressed ones not counted)")
    seconds: float = 0.0

    def worst(self) -> Severity | None:
        """The highest severity among the findings, or None when there are none."""
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def fails(self, fail_on: Severity | None) -> bool:
        """Whether any finding is at or above ``fail_on`` (None: never fails)."""
        return fail_on is not None and any(f.severity.rank >= fail_on.rank for f in self.findings)


def render_schema() -> str:
    """The JSON Schema of :class:`Report` as stable, pretty text."""
    return json.dumps(Report.model_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


SCHEMA_FILE = "validate-report.schema.json"

if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "schemas") / SCHEMA_FILE
    target.write_text(render_schema(), encoding="utf-8")
    print(target)

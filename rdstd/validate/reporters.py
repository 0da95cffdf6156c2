"""Reporters: a :class:`~rdstd.validate.model.Report` as text, JSON, JUnit XML, SARIF 2.1.0, GitHub annotations or
Markdown. Each is a pure function from the report to a string (the GitHub one also returns its step summary)."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from enum import StrEnum

from rdstd.validate.model import CheckInfo, Finding, Report, Severity

#: Findings shown per check in text and Markdown (all of them are in JSON, JUnit and SARIF).
SHOWN_PER_CHECK = 10
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/rdstd/rdstd/blob/main/docs/validate.md"


class ReportFormat(StrEnum):
    """Output formats of ``rdstd validate``."""

    TEXT = "text"
    JSON = "json"
    JUNIT = "junit"
    SARIF = "sarif"
    GITHUB = "github"
    MARKDOWN = "markdown"


def where(f: Finding) -> str:
    """Where a finding is, as short text: ``episode 3 (ep003) observation.state[j0] frames 10-40``."""
    parts = []
    if f.episode_index is not None:
        parts.append(f"episode {f.episode_index}" + (f" ({f.episode_id})" if f.episode_id else ""))
    if f.feature:
        labels = f.dim_names or [str(d) for d in f.dims]
        names = ",".join(labels) if len(labels) <= 6 else f"{len(labels)} dims"
        parts.append(f"{f.feature}[{names}]" if names else f.feature)
    if f.frames is not None:
        parts.append(f"frames {f.frames[0]}-{f.frames[1]}")
    return " ".join(parts) or "dataset"


def _by_check(report: Report) -> list[tuple[str, list[Finding]]]:
    """Findings grouped by check (worst first inside a group), groups ordered by their worst finding, then id."""
    groups: dict[str, list[Finding]] = {}
    for f in report.findings:
        groups.setdefault(f.check, []).append(f)
    for found in groups.values():
        found.sort(key=lambda f: -f.severity.rank)
    return sorted(groups.items(), key=lambda item: (-item[1][0].severity.rank, item[0]))


def _summary(report: Report) -> str:
    c = report.counts
    text = (
        f"{c.get(Severity.ERROR, 0)} errors, {c.get(Severity.WARNING, 0)} warnings, {c.get(Severity.INFO, 0)} info "
        f"from {len(report.checks)} checks over {report.episodes} episodes, {report.frames} frames "
        f"(profile {report.profile}, {report.seconds:.2f} s)"
    )
    if report.suppressed:
        text += f"; {len(report.suppressed)} suppressed"
    return text


def render_text(report: Report) -> str:
    """Grouped by check, worst first; at most :data:`SHOWN_PER_CHECK` findings each."""
    lines = [f"rdstd validate {report.dataset} ({report.source_format})", ""]
    for ident, found in _by_check(report):
        head = found[0]
        lines.append(f"{ident} {head.name} [{head.severity}] {len(found)} finding{'s' * (len(found) != 1)}")
        for f in found[:SHOWN_PER_CHECK]:
            mark = " (unverifiable)" if f.evidence == "unverifiable" else ""
            place = where(f)
            lines.append(f"  {f.message}{mark}" if f.message.startswith(place) else f"  {place}: {f.message}{mark}")
        if len(found) > SHOWN_PER_CHECK:
            lines.append(f"  … and {len(found) - SHOWN_PER_CHECK} more (--format json lists all)")
        hints = {f.hint for f in found if f.hint}
        for hint in sorted(hints)[:2]:
            lines.append(f"  fix: {hint}")
        lines.append("")
    for s in report.suppressed[:SHOWN_PER_CHECK]:
        lines.append(f"suppressed {s.finding.check} {where(s.finding)}: {s.reason}")
    for problem in report.plugin_errors:
        lines.append(f"plugin problem: {problem}")
    lines.append(_summary(report))
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    """The report as JSON (schema: ``schemas/validate-report.schema.json``)."""
    return report.model_dump_json(indent=2) + "\n"


def render_junit(report: Report, fail_on: Severity | None = Severity.ERROR) -> str:
    """JUnit XML: one testcase per check that ran; it fails when it has findings at or above ``fail_on``."""
    found = dict(_by_check(report))
    suite = ET.Element("testsuite", name=f"rdstd validate {report.dataset}", tests=str(len(report.checks)))
    failures = 0
    for check in report.checks:
        case = ET.SubElement(suite, "testcase", classname="rdstd.validate", name=f"{check.id} {check.name}")
        mine = found.get(check.id, [])
        failing = [f for f in mine if fail_on is not None and f.severity.rank >= fail_on.rank]
        details = "\n".join(f"[{f.severity}] {where(f)}: {f.message}" for f in mine)
        if failing:
            failures += 1
            worst = max((f.severity for f in failing), key=lambda s: s.rank)
            failure = ET.SubElement(
                case, "failure", message=f"{len(failing)} findings: {failing[0].message}", type=str(worst)
            )
            failure.text = details
        elif mine:
            ET.SubElement(case, "system-out").text = details
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("time", f"{report.seconds:.3f}")
    root = ET.Element("testsuites", name="rdstd validate", tests=str(len(report.checks)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _fingerprint(f: Finding) -> str:
    key = json.dumps([f.check, f.episode_id, f.feature, f.dims, f.message], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _rule(check: CheckInfo) -> dict[str, object]:
    return {
        "id": check.id,
        "name": check.name,
        "shortDescription": {"text": check.name},
        "fullDescription": {"text": check.description},
        "defaultConfiguration": {"level": _SARIF_LEVEL[check.severity]},
        "helpUri": f"{INFORMATION_URI}#{check.id.lower()}",
        "properties": {"evidence": str(check.evidence), "params": check.params},
    }


def render_sarif(report: Report, artifact: str = "rdstd.json") -> str:
    """SARIF 2.1.0: one run, a rule per check that ran, a result per finding located at ``artifact``
    (a path relative to the repository root, for GitHub code scanning) and logically at the episode/feature."""
    rules = [_rule(c) for c in report.checks]
    index = {c.id: i for i, c in enumerate(report.checks)}
    results = []
    for f in report.findings:
        logical = [{"name": where(f), "fullyQualifiedName": "/".join(str(p) for p in (f.episode_id, f.feature) if p)}]
        result: dict[str, object] = {
            "ruleId": f.check,
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{where(f)}: {f.message}" + (f" Fix: {f.hint}" if f.hint else "")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact}}, "logicalLocations": logical}],
            "partialFingerprints": {"rdstdFinding/v1": _fingerprint(f)},
            "properties": f.model_dump(mode="json", exclude={"message", "check", "hint"}),
        }
        if f.check in index:
            result["ruleIndex"] = index[f.check]
        results.append(result)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "rdstd",
                        "version": report.rdstd_version,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": {"dataset": report.dataset, "profile": report.profile},
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def render_github(report: Report, artifact: str = "rdstd.json") -> tuple[str, str]:
    """GitHub workflow commands, one annotation per check (GitHub shows at most 10 per type and step), and the
    Markdown details for ``$GITHUB_STEP_SUMMARY``."""
    lines = []
    for ident, found in _by_check(report):
        head = found[0]
        title = f"{ident} {head.name}"
        more = f" (+{len(found) - 1} more: see the step summary)" if len(found) > 1 else ""
        lines.append(
            f"::{_GITHUB_LEVEL[head.severity]} file={_escape_property(artifact)},title={_escape_property(title)}::"
            + _escape_data(f"{where(head)}: {head.message}{more}")
        )
    lines.append(_summary(report))
    return "\n".join(lines) + "\n", render_markdown(report)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """Markdown for a dataset card or a PR comment: a summary, then a table per check."""
    lines = [f"## rdstd validate: `{report.dataset}`", "", _summary(report), ""]
    if not report.findings:
        lines.append("No findings.")
    for ident, found in _by_check(report):
        head = found[0]
        lines += [f"### {ident} `{head.name}` ({head.severity}, {len(found)})", ""]
        if head.hint:
            lines += [f"Fix: {head.hint}", ""]
        lines += ["| where | finding |", "|---|---|"]
        for f in found[:SHOWN_PER_CHECK]:
            lines.append(f"| {_cell(where(f))} | {_cell(f.message)} |")
        if len(found) > SHOWN_PER_CHECK:
            lines.append(f"| … | {len(found) - SHOWN_PER_CHECK} more |")
        lines.append("")
    if report.suppressed:
        lines += ["### Suppressed", "", "| check | where | reason |", "|---|---|---|"]
        lines += [f"| {s.finding.check} | {_cell(where(s.finding))} | {_cell(s.reason)} |" for s in report.suppressed]
    return "\n".join(lines) + "\n"


#: Single-string renderers by format (GitHub also writes a step summary: see :func:`render_github`).
RENDERERS: dict[ReportFormat, Callable[[Report], str]] = {
    ReportFormat.TEXT: render_text,
    ReportFormat.JSON: render_json,
    ReportFormat.JUNIT: render_junit,
    ReportFormat.SARIF: render_sarif,
    ReportFormat.MARKDOWN: render_markdown,
}

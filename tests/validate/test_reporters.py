"""Reporters and the command line: every format parses back, exit codes follow --fail-on."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rdstd.cli.app import main
from rdstd.validate import Report, Severity, validate
from rdstd.validate.reporters import (
    SHOWN_PER_CHECK,
    render_github,
    render_junit,
    render_markdown,
    render_sarif,
    render_text,
)
from tests.conftest import sample
from tests.validate.fixtures import make


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make(tmp_path_factory.mktemp("planted"), "duplicate", "nan", "empty_task", "absolute_labelled_delta")


@pytest.fixture(scope="module")
def report(planted: Path) -> Report:
    return validate(planted)


def test_text_groups_findings_by_check_worst_first(report: Report) -> None:
    text = render_text(report)
    heads = [line.split()[0] for line in text.splitlines() if line.startswith("RDV")]
    assert len(heads) == len(set(heads)), "one group per check, whatever the severities in it"
    assert heads.index("RDV501") < heads.index("RDV801"), "a group ranks by its worst finding (RDV501 has an error)"
    assert "episode 1 (ep001) observation.state[j0] frames 10-13" in text
    assert text.rstrip().endswith(f"(profile default, {report.seconds:.2f} s)")


def test_junit_has_one_testcase_per_check_and_fails_those_with_errors(report: Report) -> None:
    root = ET.fromstring(render_junit(report, Severity.ERROR))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(report.checks) == int(suite.get("tests", "0"))
    failed = {c.get("name", "").split()[0] for c in cases if c.find("failure") is not None}
    assert failed == {"RDV102", "RDV501", "RDV802"}
    assert int(suite.get("failures", "0")) == 3
    warned = next(c for c in cases if c.get("name", "").startswith("RDV801"))
    assert warned.find("failure") is None and "task text is empty" in (warned.findtext("system-out") or "")


def test_sarif_has_the_fields_the_2_1_0_spec_requires(report: Report) -> None:
    doc = json.loads(render_sarif(report, "data/set/rdstd.json"))
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "rdstd" and driver["rules"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(run["results"]) == len(report.findings)
    for result in run["results"]:
        assert result["message"]["text"]
        assert result["level"] in {"error", "warning", "note"}
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "data/set/rdstd.json"
        assert location["logicalLocations"][0]["name"]
        assert result["partialFingerprints"]["rdstdFinding/v1"]
    prints = [r["partialFingerprints"]["rdstdFinding/v1"] for r in run["results"]]
    assert len(set(prints)) == len(prints)


def test_github_annotates_once_per_check_with_details_in_the_summary(report: Report) -> None:
    text, summary = render_github(report, "ds/rdstd.json")
    annotations = [line for line in text.splitlines() if line.startswith("::")]
    assert len(annotations) == len({f.check for f in report.findings})
    assert any(a.startswith("::error file=ds/rdstd.json,title=RDV802 episodes.duplicate::") for a in annotations)
    assert any(a.startswith("::warning file=ds/rdstd.json,title=RDV801 task.text::") for a in annotations)
    assert "| where | finding |" in summary


def test_markdown_is_a_table_per_check(report: Report) -> None:
    text = render_markdown(report)
    assert text.startswith("## rdstd validate:")
    assert "### RDV802 `episodes.duplicate` (error, 1)" in text
    rows = [line for line in text.splitlines() if line.startswith("| episode")]
    assert 0 < len(rows) <= SHOWN_PER_CHECK * len({f.check for f in report.findings})


def test_the_cli_exit_codes_follow_fail_on(planted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = make(tmp_path)
    assert main(["validate", str(clean)]) == 0
    assert main(["validate", str(planted)]) == 1
    assert main(["validate", str(planted), "--fail-on", "never"]) == 0
    assert main(["validate", str(planted), "--select", "RDV8", "--ignore", "RDV802", "--fail-on", "warning"]) == 1
    assert main(["validate", str(planted), "--select", "RDV8", "--ignore", "RDV802"]) == 0
    assert main(["validate", str(planted), "--fail-on", "sometimes"]) == 2
    assert main(["validate", str(tmp_path / "missing")]) == 3
    assert "no such" in capsys.readouterr().err


def test_the_cli_writes_each_format(planted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report.json"
    assert main(["validate", str(planted), "--format", "json", "--output", str(out), "--fail-on", "never"]) == 0
    assert Report.model_validate_json(out.read_text(encoding="utf-8")).findings
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["validate", str(planted), "--format", "github", "--output", str(tmp_path / "gh.txt")]) == 1
    assert "| where | finding |" in summary.read_text(encoding="utf-8")
    for fmt in ("junit", "sarif", "markdown", "text"):
        target = tmp_path / f"r.{fmt}"
        assert main(["validate", str(planted), "--format", fmt, "--output", str(target), "--fail-on", "never"]) == 0
        assert target.stat().st_size > 0
    assert main(["validate", "--list"]) == 0


def test_the_cli_validates_a_source_by_converting_it_in_a_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tempfile

    source = sample("lerobot/v30_small")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = main(["validate", str(source), "--format", "json", "--fail-on", "never"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["source_format"], data["episodes"], data["frames"]) == ("lerobot", 3, 152)
    assert list(tmp_path.iterdir()) == [], "the temporary dataset is removed"

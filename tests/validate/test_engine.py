"""The engine: registry and plugins, profiles and configuration layers, suppressions, the report's schema."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from rdstd.errors import UsageError
from rdstd.store.reader import Dataset
from rdstd.validate import Evidence, Finding, Severity, validate
from rdstd.validate.check import Check, EpisodeView
from rdstd.validate.config import Config, load, shipped_profiles
from rdstd.validate.model import SCHEMA_FILE, Report, render_schema
from rdstd.validate.registry import Registry, _load, registry
from rdstd.validate.runner import build_checks, validate_dataset
from tests.validate.fixtures import make

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make(tmp_path_factory.mktemp("clean"))


def test_the_committed_report_schema_matches_the_model() -> None:
    committed = (ROOT / "schemas" / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == render_schema(), "run `python -m rdstd.validate.model schemas` and commit it"


def test_check_ids_are_unique_stable_and_apart_from_the_error_codes() -> None:
    from rdstd.errors import ERROR_CODES

    ids = list(registry().checks)
    assert len(ids) == len(set(ids)) >= 24
    assert all(i.startswith("RDV") and len(i) == 6 for i in ids)
    assert not set(ids) & set(ERROR_CODES)
    for cls in registry().checks.values():
        assert cls.name.count(".") >= 1 and cls.description and cls.__doc__


class LongEpisodes(Check):
    """A plugin check used by the tests: flags episodes longer than a threshold."""

    id = "ACME1"
    name = "acme.long"
    severity = Severity.WARNING
    evidence = Evidence.DETERMINISTIC
    description = "episodes longer than max_frames"
    defaults = {"max_frames": 10.0}  # noqa: RUF012 - a plain dict is what a plugin author writes

    def episode(self, ep: EpisodeView) -> Iterable[Finding]:
        if ep.length > self.params["max_frames"]:
            yield self.finding("long", ep=ep, measured=ep.length)


def test_a_plugin_that_fails_to_load_is_reported_not_raised() -> None:
    found = Registry()
    _load(EntryPoint(name="broken", value="rdstd_no_such_module:Check", group="rdstd.checks"), found)
    _load(EntryPoint(name="notacheck", value="pathlib:Path", group="rdstd.checks"), found)
    assert not found.checks
    assert "failed to load" in found.problems[0] and "ModuleNotFoundError" in found.problems[0]
    assert "not an rdstd.validate.check.Check" in found.problems[1]


def test_a_plugin_check_loads_by_entry_point_and_runs(clean: Path) -> None:
    found = Registry()
    _load(EntryPoint(name="acme", value=f"{__name__}:LongEpisodes", group="rdstd.checks"), found)
    assert found.checks == {"ACME1": LongEpisodes}
    check = LongEpisodes({"max_frames": 50})
    from rdstd.validate.runner import run

    findings = run(Dataset.open(clean), [check])
    assert [f.episode_index for f in findings] == list(range(6))
    found.add(LongEpisodes, "again")
    assert "taken" in found.problems[0]


def test_every_shipped_profile_loads_and_selects_checks(clean: Path) -> None:
    assert set(shipped_profiles()) >= {"default", "strict", "oxe", "training"}
    for name in shipped_profiles():
        config = load(name, clean)
        checks, _ = build_checks(config)
        assert checks, name
    strict, default = load("strict", clean), load("default", clean)
    assert strict.pixels and not default.pixels
    assert strict.fail_on == Severity.WARNING and default.fail_on == Severity.ERROR
    training = {c.id for c in build_checks(load("training", clean))[0]}
    assert "RDV901" not in training and "RDV102" in training


def test_pyproject_and_a_local_file_configure_a_dataset(tmp_path: Path) -> None:
    path = make(tmp_path, "duplicate", "empty_task")
    (path / "pyproject.toml").write_text(
        '[tool.rdstd.validate]\nignore = ["RDV801"]\nparams = { RDV202 = { drop_factor = 3.0 } }\n', encoding="utf-8"
    )
    (path / "rdstd-validate.yaml").write_text(
        "suppress:\n  - check: RDV802\n    episodes: [5]\n    reason: val copy kept on purpose for a smoke test\n",
        encoding="utf-8",
    )
    report = validate(path)
    assert not [f for f in report.findings if f.check in {"RDV801", "RDV802"}]
    assert [(s.finding.check, s.finding.episode_index, s.reason) for s in report.suppressed] == [
        ("RDV802", 5, "val copy kept on purpose for a smoke test")
    ]
    assert report.suppressed[0].origin.endswith("rdstd-validate.yaml")
    rate = next(c for c in report.checks if c.id == "RDV202")
    assert rate.params["drop_factor"] == 3.0


def test_bad_configuration_is_a_usage_error_naming_the_file(tmp_path: Path, clean: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("selec: [RDV1]\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"bad.yaml: invalid validation settings at selec"):
        load(str(bad), clean)
    with pytest.raises(UsageError, match="no validation profile 'nope'"):
        load("nope", clean)
    with pytest.raises(UsageError, match="RDV202 has no threshold speed"):
        build_checks(Config(params={"RDV202": {"speed": 1.0}}))
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"extends: {loop}\n", encoding="utf-8")
    with pytest.raises(UsageError, match="loop"):
        load(str(loop), clean)


def test_a_suppression_needs_a_reason(tmp_path: Path) -> None:
    path = make(tmp_path)
    (path / "rdstd-validate.yaml").write_text("suppress:\n  - check: RDV802\n    reason: ''\n", encoding="utf-8")
    with pytest.raises(UsageError, match="suppress"):
        validate(path)


def test_select_and_ignore_take_prefixes(clean: Path) -> None:
    report = validate(clean, select=["RDV3", "RDV102"], ignore=["RDV303"])
    assert sorted(c.id for c in report.checks) == ["RDV102", "RDV301", "RDV302"]


def test_the_report_round_trips_through_json(tmp_path: Path) -> None:
    report = validate(make(tmp_path, "nan", "duplicate"))
    again = Report.model_validate_json(report.model_dump_json())
    assert again == report
    assert report.counts[Severity.ERROR] == sum(1 for f in report.findings if f.severity == Severity.ERROR) >= 2
    assert report.fails(Severity.ERROR) and not report.fails(None)


def test_extra_findings_follow_select_and_ignore(clean: Path) -> None:
    extra = Finding(check="RDV904", name="source.episodes", severity="error", evidence="deterministic", message="x")
    ds = Dataset.open(clean)
    kept = validate_dataset(ds, Config(), extra=[extra])
    dropped = validate_dataset(ds, Config(ignore=["RDV904"]), extra=[extra])
    assert extra in kept.findings and extra not in dropped.findings


def test_exclusions_name_each_failing_episode_with_its_reasons(tmp_path: Path) -> None:
    from rdstd.validate.exclude import exclusions, read_report

    report = validate(make(tmp_path, "duplicate", "nan", "empty_task"))
    assert set(exclusions(report)) == {"ep001", "ep005"}
    assert exclusions(report)["ep005"][0].startswith("RDV802 episodes.duplicate: episode is a copy of episode 0")
    assert set(exclusions(report, Severity.WARNING)) == {"ep001", "ep003", "ep005"}
    saved = tmp_path / "findings.json"
    saved.write_text(report.model_dump_json(), encoding="utf-8")
    assert read_report(saved) == report
    saved.write_text("{}", encoding="utf-8")
    with pytest.raises(UsageError, match="not an rdstd validate JSON report"):
        read_report(saved)


def test_configure_takes_a_path_given_as_text(tmp_path: Path) -> None:
    from rdstd.validate import configure

    assert configure(str(tmp_path), select=["RDV1"]).select == configure(tmp_path, select=["RDV1"]).select == ["RDV1"]

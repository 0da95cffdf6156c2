"""The ``rdstd view`` command: files it writes, what it says without a display, and without Rerun."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rerun")

from rdstd.cli.app import main
from rdstd.validate.model import Evidence, Finding, Report, Severity
from tests.view.helpers import STATE, rows, write


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("cli") / "ds", [12, 9, 7])


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_save_writes_one_rrd_per_episode_into_a_folder(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "view", ds, "-e", 0, "-e", 2, "--save", tmp_path / "recs", "--no-validate")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "recs").iterdir()) == [
        "lab_x_episode_000000.rrd",
        "lab_x_episode_000002.rrd",
    ]
    assert "2 recording(s)" in out and "rerun " in out
    frame, _, _ = rows(tmp_path / "recs" / "lab_x_episode_000002.rrd", f"/{STATE}/joint_position", "Scalars:scalars")
    assert len(frame) == 7


def test_the_first_episode_is_shown_by_default_and_validation_runs_unless_told_not_to(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "view", ds, "--save", tmp_path / "ep.rrd")
    assert code == 0, err
    assert "validating" in err
    assert len(rows(tmp_path / "ep.rrd", f"/{STATE}/joint_position", "Scalars:scalars")[0]) == 12


def test_a_findings_report_is_read_instead_of_validating(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    finding = Finding(
        check="RDV500",
        name="x.y",
        severity=Severity.WARNING,
        evidence=Evidence.DETERMINISTIC,
        message="from the file",
        episode_index=1,
        feature=STATE,
        dims=[0],
        frames=(4, 6),
    )
    report = Report(
        rdstd_version="t",
        dataset=str(ds),
        source_format="rdstd",
        profile="default",
        episodes=3,
        frames=28,
        checks=[],
        findings=[finding],
        counts={Severity.WARNING: 1},
    )
    file = tmp_path / "report.json"
    file.write_text(report.model_dump_json(), encoding="utf-8")
    code, _, err = run(capsys, "view", ds, "-e", 1, "--findings", file, "--save", tmp_path / "ep.rrd")
    assert code == 0, err
    assert "validating" not in err
    frame, _, text = rows(tmp_path / "ep.rrd", f"/{STATE}/joint_position/findings", "TextLog:text")
    assert frame.tolist() == [4] and "from the file" in text[0]


def test_without_a_display_it_says_what_to_do_in_one_line(
    ds: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    code, out, err = run(capsys, "view", ds)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "no display" in err and "--save" in err and "--serve" in err


def test_without_rerun_it_names_the_extra(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = builtins.__import__

    def no_rerun(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "rerun" or name.startswith("rerun."):
            raise ImportError("No module named 'rerun'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rerun)
    code, _, err = run(capsys, "view", ds, "--save", tmp_path / "x.rrd")
    assert code == 3
    assert "rdstd[viewer]" in err
    assert not (tmp_path / "x.rrd").exists()


def test_an_unknown_episode_is_a_usage_error_and_nothing_is_written(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "view", ds, "-e", 9, "--save", tmp_path / "ep.rrd", "--no-validate")
    assert code == 2 and "no episode 9 (episodes 0..2)" in err
    assert list(tmp_path.iterdir()) == []


def test_the_json_report_of_rdstd_validate_is_what_findings_reads(ds: Path, tmp_path: Path) -> None:
    from rdstd.validate import validate
    from rdstd.view.findings import read_findings

    report = validate(ds)
    file = tmp_path / "r.json"
    file.write_text(json.dumps(report.model_dump(mode="json")), encoding="utf-8")
    assert read_findings(file) == list(report.findings)

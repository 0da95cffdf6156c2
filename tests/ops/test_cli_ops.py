"""The merge, split, filter and resample commands: text and JSON output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rdstd
from rdstd.cli.app import main
from tests.ops.helpers import make


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_merge_dry_run_prints_the_report_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make(tmp_path / "a", prefix="a")
    b = make(tmp_path / "b", prefix="b", camera="observation.images.wrist")
    code, out, _ = run(capsys, "merge", a, b, tmp_path / "out", "--dry-run")
    assert code == 0 and "dry run" in out
    assert not (tmp_path / "out").exists()
    code, out, _ = run(capsys, "merge", a, b, tmp_path / "out", "--report", tmp_path / "r.json")
    assert code == 0 and "6 episodes" in out and "next: rdstd info" in out
    assert json.loads((tmp_path / "r.json").read_text())["episodes"] == 6


def test_merge_with_colliding_ids_exits_2_naming_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make(tmp_path / "a"), make(tmp_path / "b", seed=3)
    code, _, err = run(capsys, "merge", a, b, tmp_path / "out")
    assert code == 2 and "--prefix-ids" in err


def test_split_filter_resample_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make(tmp_path / "ds", episodes=10, frames=6)
    code, out, _ = run(capsys, "split", src, tmp_path / "s", "--fractions", "train=0.8,val=0.2", "--format", "json")
    assert code == 0 and json.loads(out)["splits"] == {"train": 8, "val": 2}
    code, out, _ = run(capsys, "filter", tmp_path / "s", tmp_path / "f", "--where", "split = 'val'")
    assert code == 0 and "kept 2" in out
    code, out, _ = run(capsys, "resample", tmp_path / "f", tmp_path / "r", "--rate", "20", "--method", "action=hold")
    assert code == 0 and "action: hold" in out
    assert rdstd.open(tmp_path / "r").manifest.extra["resample"]["methods"]["action"] == "hold"
    code, _, err = run(capsys, "split", src, tmp_path / "bad", "--fractions", "train=0.5")
    assert code == 2 and "sum" in err

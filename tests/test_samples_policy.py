"""The real-sample policy: a missing ../shared/samples skips on a developer's machine and fails under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import in_ci, sample

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_sample_skips_with_the_reason_outside_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="absent"):
        sample("zarr/pusht", root=tmp_path / "no-samples", ci=False)


def test_a_missing_sample_fails_under_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="CI must run the real-sample tests"):
        sample("zarr/pusht", root=tmp_path / "no-samples", ci=True)


def test_a_present_sample_is_returned_in_either_mode(tmp_path: Path) -> None:
    (tmp_path / "zarr").mkdir()
    assert sample("zarr", root=tmp_path, ci=True) == tmp_path / "zarr"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("", False), ("false", False)])
def test_ci_is_read_from_the_environment(value: str, expected: bool) -> None:
    assert in_ci({"CI": value}) is expected
    assert in_ci({}) is False


def test_a_test_run_under_ci_without_samples_fails_and_says_why(tmp_path: Path) -> None:
    # a copy of the test layout with no shared/ beside it: conftest's real logic in a real pytest run
    tests = tmp_path / "repo" / "tests"
    tests.mkdir(parents=True)
    (tests / "__init__.py").write_text("")
    (tests / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tests / "test_uses_a_sample.py").write_text(
        "from tests.conftest import sample\n\ndef test_it():\n    sample('zarr/pusht')\n"
    )
    for ci, outcome in [("true", "1 failed"), ("", "1 skipped")]:
        env = {**os.environ, "CI": ci, "PYTHONPATH": str(tmp_path / "repo")}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(tests)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path / "repo",
            check=False,
        )
        assert outcome in done.stdout, done.stdout + done.stderr


def test_ci_run_sets_ci_and_runs_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "export CI=true" in script and "make test" in script

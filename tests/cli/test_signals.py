"""Every exit cleans up: SIGTERM (what SLURM and Kubernetes send) like Ctrl-C, SIGKILL recovered by a rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rdstd
from rdstd.cli.app import main
from rdstd.testing.fixtures import make_zarr_replay_buffer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source that takes a few seconds to convert (noise images do not compress)."""
    path = tmp_path_factory.mktemp("src") / "rb.zarr"
    make_zarr_replay_buffer(path, [100] * 12, image_hw=(96, 96), chunk_rows=100)
    return path


def start_convert(source: Path, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "rdstd", "convert", str(source), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_temp_dir(proc: subprocess.Popen[str], out: Path) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [p for p in out.parent.glob(f".{out.name}.rdstd-tmp-*") if (p / "data").is_dir()]
        if found:
            return found[0]
        assert proc.poll() is None, f"convert ended before it began writing: {proc.communicate()}"
        time.sleep(0.02)
    raise AssertionError("the temporary output never appeared")


def test_sigterm_mid_write_exits_143_and_leaves_nothing(big_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_convert(big_source, out)
    wait_for_temp_dir(proc, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], "no temporary folder, shard, marker or lock is left"


def test_sigterm_after_a_batch_unit_finished_says_where_the_units_are_kept(big_source: Path, tmp_path: Path) -> None:
    from rdstd.batch.job import staging_path

    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["convert", str(big_source), str(out), "--workers", "1", "--unit-episodes", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdstd", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    journal = staging_path(out) / "journal"
    deadline = time.monotonic() + 120
    while not list(journal.glob("*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, f"no unit finished: {proc.communicate()}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "rerun with --resume" in err and "nothing of this run was left behind" not in err
    assert list(journal.glob("*.json")) and not out.exists()


def test_sigterm_during_an_overwrite_keeps_the_old_dataset(big_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["convert", str(big_source), str(out), "--limit", "1"]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdstd", "convert", str(big_source), str(out), "--overwrite"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    wait_for_temp_dir(proc, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_after_sigkill_a_rerun_without_overwrite_replaces_the_leftover(big_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_convert(big_source, out)
    aside = wait_for_temp_dir(proc, out)
    proc.kill()
    proc.communicate(timeout=60)
    assert aside.exists() and not out.exists(), "SIGKILL cannot be handled: the leftover stays, OUT was never made"
    with pytest.raises(rdstd.errors.IncompleteDatasetError, match="did not finish"):
        rdstd.open(out)
    rerun = start_convert(big_source, out)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert rdstd.open(out).num_episodes == 12
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_internal_error_prints_its_traceback_to_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.cli import app as cli
    from rdstd.cli.commands import info

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(info, "normalized", broken)  # the first thing `rdstd info` calls
    assert cli.main(["info", "x"]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "please report it" in err

"""Batch export (``rdstd export --workers/--executor/--resume/--on-error``): identical output for any worker count,
resume after SIGKILL, the lock, episodes left out under skip, and a LeRobot dataset that reads back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rdstd.batch.export import staging_path
from rdstd.cli.app import main
from rdstd.convert.pipeline import convert
from rdstd.errors import OutputLockedError, RdstdError
from rdstd.export.lerobot import export_lerobot
from rdstd.formats.lerobot.meta import looks_like_lerobot
from rdstd.store.output import Output
from rdstd.store.reader import Dataset
from rdstd.testing.lerobot import Spec, make_dataset
from tests.batch.helpers import EXPORT_LENGTHS, file_digests, video_kept_canonical
from tests.conftest import sample
from tests.formats.test_lerobot_export import expected_v30_small, lerobot_pythons, require_lerobot

REPO = Path(__file__).resolve().parents[2]
LENGTHS = EXPORT_LENGTHS


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A canonical dataset with its camera kept as video (one mp4 per episode, from a v2.1 source)."""
    return video_kept_canonical(tmp_path_factory.mktemp("export-batch"))


@pytest.mark.parametrize("version", ["3.0", "2.1"])
def test_two_workers_export_the_same_bytes_as_one_and_the_export_reads_back(
    canonical: Path, tmp_path: Path, version: str
) -> None:
    one = export_lerobot(canonical, tmp_path / "one", version=version, workers=1, unit_episodes=2)  # type: ignore[arg-type]
    two = export_lerobot(canonical, tmp_path / "two", version=version, workers=2, unit_episodes=2)  # type: ignore[arg-type]
    assert one.batch["units"] == two.batch["units"] == 5 and two.batch["workers"] == 2
    assert len({u["worker_pid"] for u in two.units}) == 2
    assert file_digests(tmp_path / "one") == file_digests(tmp_path / "two")
    assert not staging_path(tmp_path / "two").exists()
    assert one.episodes == len(LENGTHS) and one.frames == sum(LENGTHS)
    info = json.loads((tmp_path / "one" / "meta" / "info.json").read_text())
    assert info["total_episodes"] == len(LENGTHS) and info["total_frames"] == sum(LENGTHS)
    convert(tmp_path / "one", tmp_path / "back")  # rdstd's LeRobot reader finds every episode across the files
    before, after = Dataset.open(canonical), Dataset.open(tmp_path / "back")
    assert after.num_episodes == before.num_episodes
    for i in range(before.num_episodes):
        a, b = before.episode(i), after.episode(i)
        assert a.meta.task == b.meta.task
        for key in a.vectors:
            assert np.array_equal(a.vectors[key], b.vectors[key]), key
    for i in (0, len(before) - 1):
        cam = "observation.images.front"
        assert np.array_equal(before.frame(i)[cam], after.frame(i)[cam])  # stream copy: the very same pixels


def test_a_v21_batch_export_equals_the_export_in_one_process(canonical: Path, tmp_path: Path) -> None:
    export_lerobot(canonical, tmp_path / "plain", version="2.1")
    export_lerobot(canonical, tmp_path / "batch", version="2.1", workers=2, unit_episodes=3)
    assert file_digests(tmp_path / "plain") == file_digests(tmp_path / "batch")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rdstd", "export", *args]


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_an_export_killed_partway_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    source = make_dataset(tmp_path / "src", Spec(version="v2.1", lengths=[8] * 60))
    canonical = tmp_path / "canonical"
    convert(source, canonical)
    whole = tmp_path / "whole"
    export_lerobot(canonical, whole, workers=1, unit_episodes=2)
    out = tmp_path / "out"
    journal = staging_path(out) / "journal"
    args = [str(canonical), str(out), "--to", "lerobot", "--workers", "2", "--unit-episodes", "2"]
    run = subprocess.Popen(_cli(*args), env=_env(), start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None and len(list(journal.glob("*.json"))) < 3:
        time.sleep(0.02)
    assert run.poll() is None, "the export finished before it could be killed: make the dataset bigger"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    finished = len(list(journal.glob("*.json")))
    assert 3 <= finished < 30 and not out.exists()
    resumed = subprocess.run(
        _cli(*args, "--resume", "--format", "json"), env=_env(), check=False, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["batch"]["resumed_units"] >= finished
    assert file_digests(out) == file_digests(whole)


def test_a_second_export_into_the_same_output_is_refused(canonical: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = Output.begin(out, is_kind=looks_like_lerobot, kind="LeRobot dataset")
    try:
        with pytest.raises(OutputLockedError, match="another rdstd process is writing this output"):
            export_lerobot(canonical, out, workers=2, unit_episodes=2)
    finally:
        holder.abort()
    assert not out.exists()


@pytest.fixture
def one_bad_video(canonical: Path, tmp_path: Path) -> Path:
    """The canonical dataset with episode 3's video file cut short."""
    copy = tmp_path / "bad"
    shutil.copytree(canonical, copy)
    ds = Dataset.open(copy)
    refs = ds.episode(3).images["observation.images.front"].refs
    video = copy / str(refs[0]["path"])
    data = video.read_bytes()
    video.unlink()
    video.write_bytes(data[: len(data) // 3])
    return copy


def test_an_episode_that_cannot_be_read_is_left_out_and_reported_with_skip(one_bad_video: Path, tmp_path: Path) -> None:
    report = export_lerobot(one_bad_video, tmp_path / "out", on_error="skip", workers=2, unit_episodes=2)
    bad_id = Dataset.open(one_bad_video).episodes["episode_id"][3]
    assert list(report.skipped) == [bad_id] and report.episodes == len(LENGTHS) - 1
    assert report.frames == sum(LENGTHS) - LENGTHS[3]
    convert(tmp_path / "out", tmp_path / "back")  # indices stay contiguous: LeRobot's layout holds
    back = Dataset.open(tmp_path / "back")
    assert back.num_episodes == len(LENGTHS) - 1
    assert list(back.episodes["length"]) == LENGTHS[:3] + LENGTHS[4:]


def test_a_resume_without_skip_tries_the_episodes_a_skipping_run_left_out(one_bad_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):  # a skipping export stopped after its units, before the final step
        _interrupted_export(one_bad_video, out)
    with pytest.raises(RdstdError):
        export_lerobot(one_bad_video, out, workers=1, unit_episodes=2, resume=True)  # on_error="fail"
    report = export_lerobot(one_bad_video, out, workers=1, unit_episodes=2, resume=True, on_error="skip")
    assert report.episodes == len(LENGTHS) - 1 and len(report.skipped) == 1


def _interrupted_export(dataset: Path, out: Path) -> None:
    from rdstd.batch import export as batch_export

    real = batch_export.finish_export

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    batch_export.finish_export = stop  # type: ignore[assignment]
    try:
        export_lerobot(dataset, out, workers=1, unit_episodes=2, on_error="skip")
    finally:
        batch_export.finish_export = real


@pytest.mark.slow
def test_ray_tasks_export_the_same_bytes_as_one_worker(canonical: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    export_lerobot(canonical, tmp_path / "one", workers=1, unit_episodes=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = export_lerobot(canonical, tmp_path / "ray", executor="ray", unit_episodes=2)
    finally:
        ray.shutdown()
    assert report.batch["executor"] == "ray" and report.batch["units"] == 5
    assert file_digests(tmp_path / "ray") == file_digests(tmp_path / "one")


def test_an_episode_that_cannot_be_read_fails_the_export_with_fail(one_bad_video: Path, tmp_path: Path) -> None:
    with pytest.raises(RdstdError):
        export_lerobot(one_bad_video, tmp_path / "out", workers=2, unit_episodes=2)
    assert not (tmp_path / "out").exists()
    assert list((staging_path(tmp_path / "out") / "journal").glob("*.json"))  # finished units stay for --resume


def test_the_export_command_runs_units_on_every_core_and_lists_what_it_left_out(
    one_bad_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["export", str(one_bad_video), str(tmp_path / "out"), "--to", "lerobot", "--unit-episodes", "2",
                 "--on-error", "skip"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert f"work units: 5 on local with {os.cpu_count()} worker(s), 0 resumed" in out
    assert "episodes left out: 1" in out


@pytest.mark.parametrize("python", lerobot_pythons() or [None], ids=lambda p: Path(p).parents[1].name if p else "none")
def test_lerobot_itself_loads_a_batch_export_in_several_files_with_identical_values_and_frames(
    tmp_path: Path, python: str | None
) -> None:
    python = require_lerobot(python)
    expected = expected_v30_small()
    convert(sample("lerobot/v30_small"), tmp_path / "canon")
    report = export_lerobot(tmp_path / "canon", tmp_path / "lerobot", workers=2, unit_episodes=1)
    assert report.batch["units"] > 1
    assert len(list((tmp_path / "lerobot" / "data").rglob("*.parquet"))) == report.batch["units"]
    script = REPO / "tests" / "formats" / "lerobot_load_check.py"
    subprocess.run([python, str(script), str(tmp_path / "lerobot"), str(tmp_path / "got.npz")], check=True)
    got = np.load(tmp_path / "got.npz")
    for key in ("observation.state", "action", "timestamp", "index", "episode_index", "frame_index", "task_index"):
        assert np.array_equal(got[key].reshape(expected[key].shape), expected[key]), key
    assert list(got["task"]) == list(expected["task"])
    for cam in ("observation.images.front", "observation.images.wrist"):
        assert list(got[f"{cam}/sha256"]) == list(expected[f"{cam}/sha256"])

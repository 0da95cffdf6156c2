"""Batch conversion: identical output for any worker count and executor, resume after SIGKILL, the lock, the
error policy, the report, and the SLURM array script."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rdstd
from rdstd.batch import convert_batch
from rdstd.batch.job import staging_path
from rdstd.cli.app import main
from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, OutputLockedError, UsageError
from rdstd.store import layout
from rdstd.store.output import Output
from tests.batch.helpers import LENGTHS, digest, make_source
from tests.conftest import in_ci
from tests.formats import hdf5_fixtures as fx

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("batch"))


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source converted in one process (1 worker), the output every other run must equal."""
    out = tmp_path_factory.mktemp("reference") / "out"
    convert_batch(source, out, workers=1, unit_episodes=6)
    return out


def _frames(dataset: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(f) for f in sorted((dataset / layout.DATA_DIR).glob("*.parquet")))


def test_units_assemble_into_the_dataset_a_plain_conversion_writes(
    source: Path, reference: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    convert(source, plain)
    assert _frames(reference).equals(_frames(plain))
    ours, theirs = pq.read_table(reference / layout.EPISODES), pq.read_table(plain / layout.EPISODES)
    for column in ("episode_index", "episode_id", "length", "frame_start", "task_index", "source_key"):
        assert ours.column(column).equals(theirs.column(column)), column
    manifest = json.loads((reference / layout.MANIFEST).read_text())
    assert manifest["counts"] == {"episodes": len(LENGTHS), "frames": sum(LENGTHS), "shards": 7}
    dataset = rdstd.open(str(reference))
    assert len(dataset.episodes) == len(LENGTHS)
    stats = json.loads((reference / layout.STATS).read_text())
    plain_stats = json.loads((plain / layout.STATS).read_text())
    for name, values in stats.items():
        assert values["count"] == plain_stats[name]["count"]
        assert values["q01"] == plain_stats[name]["q01"] and values["q99"] == plain_stats[name]["q99"]
        assert values["mean"] == pytest.approx(plain_stats[name]["mean"], rel=1e-12)


def test_two_workers_give_the_same_bytes_as_one(source: Path, reference: Path, tmp_path: Path) -> None:
    report = convert_batch(source, tmp_path / "out", workers=2, unit_episodes=6)
    assert digest(tmp_path / "out") == digest(reference)
    assert report.batch["workers"] == 2 and report.batch["units"] == 7
    assert len(report.batch["peak_rss_mb_per_worker"]) == 2  # two processes did the work
    assert not staging_path(tmp_path / "out").exists()  # the staging folder goes once the output is in place


def test_a_worker_opens_the_source_once_for_all_its_units(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.batch import worker
    from rdstd.batch.job import load_job

    opened: list[str] = []
    real = worker.open_source

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(worker, "open_source", counting)
    convert_batch(source, tmp_path / "out", executor="slurm", unit_episodes=6)  # stages the job, runs nothing
    job = load_job(str(tmp_path / "out"))
    try:
        for unit in job.units[:3]:  # as a pool process or a SLURM task runs them
            assert worker.run_unit(job, unit)["episodes"] == len(unit.refs)
    finally:
        worker.close_sources()
    assert opened == [str(source)]  # not once per unit (a zarr open lists every chunk)
    assert not worker._OPEN


def test_units_run_in_the_driver_read_the_source_it_planned_with(
    source: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.batch import worker
    from rdstd.convert import pipeline

    opened: list[str] = []
    closed: list[str] = []
    real_open = pipeline.open_source

    def counting(*args: Any, **kwargs: Any) -> Any:
        dataset = real_open(*args, **kwargs)
        opened.append(str(dataset.path))
        real_close = dataset.close
        monkeypatch.setattr(dataset, "close", lambda: closed.append(str(dataset.path)) or real_close())
        return dataset

    monkeypatch.setattr(pipeline, "open_source", counting)
    monkeypatch.setattr(worker, "open_source", counting)
    report = convert_batch(source, tmp_path / "out", workers=1, unit_episodes=6)
    assert report.batch["units"] == 7
    assert opened == [str(source)] and closed == [str(source)]  # opened once to plan, read by the units, closed once
    assert not worker._OPEN
    assert digest(tmp_path / "out") == digest(reference)


def _cli_report(capsys: pytest.CaptureFixture[str], *args: object) -> dict[str, Any]:
    code = main(["convert", *(str(a) for a in args), "--progress", "none", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def test_a_plain_cli_convert_runs_the_units_on_every_core_and_gives_the_one_worker_bytes(
    source: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.convert import pipeline

    small = _cli_report(capsys, source, tmp_path / "small", "--unit-episodes", "6")
    assert small["batch"] == {}, "a few seconds of work: a pool would cost more than it saves"
    monkeypatch.setattr(pipeline, "POOL_MIN_S", 0.0)  # as if the source were large
    report = _cli_report(capsys, source, tmp_path / "out", "--unit-episodes", "6")
    assert report["batch"]["executor"] == "local" and report["batch"]["units"] == 7
    assert report["batch"]["workers"] == (os.cpu_count() or 1)
    assert digest(tmp_path / "out") == digest(reference)
    convert(source, tmp_path / "plain")  # the small default run is the one-process conversion
    assert digest(tmp_path / "small") == digest(tmp_path / "plain")


def test_a_source_of_one_unit_converts_in_process_the_same_whatever_the_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_source(tmp_path, [10] * 5)
    plain = tmp_path / "plain"
    convert(src, plain)
    default = _cli_report(capsys, src, tmp_path / "default")
    two = _cli_report(capsys, src, tmp_path / "two", "--workers", "2")
    assert default["batch"] == {} and two["batch"] == {}  # one unit: no staging, no pool
    assert digest(tmp_path / "default") == digest(plain) == digest(tmp_path / "two")


@pytest.mark.slow
def test_ray_tasks_give_the_same_bytes_as_one_worker(source: Path, reference: Path, tmp_path: Path) -> None:
    try:
        import ray
    except ImportError:
        if in_ci():
            pytest.fail("ray is not installed; CI must run the Ray executor test (make installs the ray extra)")
        pytest.skip("ray is not installed (pip install 'rdstd[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = convert_batch(source, tmp_path / "out", executor="ray", unit_episodes=6)
    finally:
        ray.shutdown()
    assert digest(tmp_path / "out") == digest(reference)
    assert report.batch["executor"] == "ray" and report.batch["workers"] == 2


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rdstd", "convert", *args, "--progress", "none"]


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_a_run_killed_partway_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    src = make_source(tmp_path, [40] * 120)
    whole = tmp_path / "whole"
    convert_batch(src, whole, workers=1, unit_episodes=4)
    out = tmp_path / "out"
    journal = staging_path(out) / "journal"
    run = subprocess.Popen(
        _cli(str(src), str(out), "--workers", "2", "--unit-episodes", "4"), env=_env(), start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None and len(list(journal.glob("*.json"))) < 3:
        time.sleep(0.02)
    assert run.poll() is None, "the run finished before it could be killed: make the source bigger"
    os.killpg(run.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    run.wait()
    finished = len(list(journal.glob("*.json")))
    assert 3 <= finished < 30 and not out.exists()
    report_file = tmp_path / "report.json"
    resumed = subprocess.run(
        _cli(str(src), str(out), "--workers", "2", "--unit-episodes", "4", "--resume", "--report", str(report_file)),
        env=_env(),
        check=False,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(report_file.read_text())
    assert report["batch"]["resumed_units"] >= finished  # units finished before the kill were not redone
    assert digest(out) == digest(whole)


def test_a_second_convert_into_the_same_output_is_refused(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = Output.begin(out, is_kind=layout.is_dataset, kind="canonical rdstd dataset")
    try:
        with pytest.raises(OutputLockedError, match="another rdstd process is writing this output"):
            convert_batch(source, out, workers=2, unit_episodes=6)
    finally:
        holder.abort()
    assert not out.exists()


def test_an_interrupt_once_the_dataset_is_in_place_removes_the_staging_folder_and_says_it_is_complete(
    source: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.store import output

    out = tmp_path / "out"
    real = output.fsync_dir

    def interrupted(path: Path) -> None:  # the sync right after the swap into place (units sync their own parent)
        if path == out.parent:
            signal.raise_signal(signal.SIGINT)
        real(path)

    monkeypatch.setattr(output, "fsync_dir", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught:
        convert_batch(source, out, workers=1, unit_episodes=6)
    assert caught.value.__notes__ == [f"{out} was complete before the signal came and is in place"]
    assert digest(out) == digest(reference)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no staging folder, no lock"


def test_resume_refuses_a_job_staged_with_other_options(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert_batch(source, out, executor="slurm", unit_episodes=6)  # stages the job without running it
    with pytest.raises(UsageError, match="started with other options"):
        convert_batch(source, out, workers=1, unit_episodes=5, resume=True)


@pytest.fixture
def aloha_with_a_bad_file(tmp_path: Path) -> Path:
    folder = tmp_path / "episodes"
    folder.mkdir()
    for i in range(6):  # equal lengths: the drafted spec fits every file
        fx.write_aloha_episode(folder / f"episode_{i}.hdf5", 4, seed=i)
    (folder / "episode_3.hdf5").write_bytes((folder / "episode_0.hdf5").read_bytes()[:96])
    return folder


def test_a_job_failing_before_any_unit_finished_leaves_no_staging_folder(
    aloha_with_a_bad_file: Path, tmp_path: Path
) -> None:
    (aloha_with_a_bad_file / "episode_0.hdf5").write_bytes(b"not HDF5")  # the first unit fails, one worker
    out = tmp_path / "out"
    with pytest.raises(CorruptSourceError, match=r"episode_0\.hdf5") as raised:
        convert_batch(aloha_with_a_bad_file, out, workers=1, unit_episodes=2)
    assert "--resume" not in raised.value.hint
    assert not out.exists() and not staging_path(out).exists()


def test_a_bad_unit_is_skipped_and_reported_with_skip(aloha_with_a_bad_file: Path, tmp_path: Path) -> None:
    report = convert_batch(aloha_with_a_bad_file, tmp_path / "out", workers=2, unit_episodes=2, on_error="skip")
    assert report.episodes_written == 5
    assert [s.key for s in report.skipped] and "episode_3.hdf5" in report.skipped[0].reason
    unit = next(u for u in report.units if u["skipped"])
    assert unit["episodes"] == 1 and "episode_3.hdf5" in unit["skipped"][0]["reason"]
    for entry in report.units:
        assert {"seconds", "episodes", "frames", "bytes", "peak_rss_mb"} <= set(entry)
        assert entry["bytes"] > 0
    assert rdstd.open(str(tmp_path / "out")).episodes.height == 5


def test_a_bad_unit_fails_the_job_with_fail(aloha_with_a_bad_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(CorruptSourceError, match=r"episode_3\.hdf5") as raised:
        convert_batch(aloha_with_a_bad_file, out, workers=2, unit_episodes=2)
    assert "rerun with --resume to reuse them" in raised.value.hint
    assert not out.exists()
    assert list((staging_path(out) / "journal").glob("*.json"))  # finished units stay for --resume


def test_slurm_writes_an_array_script_whose_tasks_and_assembly_give_the_same_bytes(
    source: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    staged = subprocess.run(
        _cli(str(source), str(out), "--executor", "slurm", "--unit-episodes", "6"),
        env=_env(),
        check=False,
        capture_output=True,
        text=True,
    )
    assert staged.returncode == 0, staged.stderr
    submit = staging_path(out) / "slurm" / "submit.sh"
    assert f"bash {submit}" in staged.stderr
    array = (staging_path(out) / "slurm" / "units.sbatch").read_text()
    directives = dict(
        line.removeprefix("#SBATCH ").split("=", 1) for line in array.splitlines() if line.startswith("#SBATCH")
    )
    assert directives["--array"] == "0-6"
    command = shlex.split(array.strip().splitlines()[-1])
    assert command[1:4] == ["-m", "rdstd", "convert"] and command[-2:] == ["--run-unit", "$SLURM_ARRAY_TASK_ID"]
    final = shlex.split(submit.read_text().strip().splitlines()[-1])
    assert final[:2] == ["sbatch", "--dependency=afterok:${units%%;*}"]
    assemble = shlex.split(final[final.index("--wrap") + 1])
    assert assemble[-3:] == ["--executor", "local", "--resume"]
    for task in range(7):  # what the array tasks run, one unit each
        ran = subprocess.run([*command[:-1], str(task)], env=_env(), capture_output=True, text=True, check=False)
        assert ran.returncode == 0, ran.stderr
    assert assemble[:4] == [sys.executable, "-m", "rdstd", "convert"]
    done = subprocess.run(assemble, env=_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert digest(out) == digest(reference)


def test_units_are_placed_in_order_while_later_units_still_run(
    source: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.batch import assemble

    out = tmp_path / "out"
    placed: list[tuple[int, int]] = []  # (unit, units finished when it was placed)
    real = assemble.place_unit

    def recording(placement: assemble.Placement, *args: Any) -> dict[str, Any]:
        finished = len(list((staging_path(out) / "journal").glob("unit-*.json")))
        placed.append((placement.unit, finished))
        return real(placement, *args)

    monkeypatch.setattr(assemble, "place_unit", recording)
    report = convert_batch(source, out, workers=1, unit_episodes=6)
    assert [unit for unit, _ in placed] == list(range(report.batch["units"]))
    assert placed[0][1] < report.batch["units"]  # the first unit went in before the last one was converted
    assert digest(out) == digest(reference)


def test_the_cli_forks_its_workers_when_it_may_and_gives_the_one_worker_bytes(
    source: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ran = subprocess.run(
        [*_cli(str(source), str(out), "--workers", "2", "--unit-episodes", "6"), "--format", "json"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["batch"]["processes_from"] == "fork"  # a fresh CLI has no other thread: no fork server to start
    assert len(report["batch"]["peak_rss_mb_per_worker"]) == 2
    assert digest(out) == digest(reference)


def test_a_process_with_another_thread_starts_its_workers_from_a_fork_server(
    source: Path, reference: Path, tmp_path: Path
) -> None:
    import threading

    from rdstd.batch.executors import fork_is_safe

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert not fork_is_safe()
        report = convert_batch(source, tmp_path / "out", workers=2, unit_episodes=6)
    finally:
        stop.set()
        other.join()
    assert report.batch["processes_from"] == "forkserver"
    assert digest(tmp_path / "out") == digest(reference)


def test_peak_rss_is_this_processs_own_not_a_parents(tmp_path: Path) -> None:
    code = (
        "import numpy as np, subprocess, sys\n"
        "block = np.ones(100_000_000); del block\n"  # 800 MB once held by the parent
        "child = 'from rdstd.batch.worker import peak_rss_mb; print(peak_rss_mb())'\n"
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True, check=True).stdout)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    assert float(ran.stdout) < 500  # ru_maxrss would say ~800 MB here


def test_a_pool_process_takes_the_source_it_opened_while_the_driver_planned(source: Path, tmp_path: Path) -> None:
    from rdstd.batch import worker
    from rdstd.batch.job import load_job

    convert_batch(source, tmp_path / "out", executor="slurm", unit_episodes=6)  # stages the job, runs nothing
    job = load_job(str(tmp_path / "out"))
    try:
        worker.open_early(str(source), None, False)  # what a pool process runs first
        early = worker._EARLY[0][0]
        assert worker._open(job) is early and not worker._EARLY  # the units read it: no second open
        worker.close_sources()
        worker.open_early(str(make_source(tmp_path, [5, 5])), None, False)  # another source: not the job's
        other = worker._EARLY[0][0]
        assert worker._open(job) is not other and not worker._EARLY
    finally:
        worker.close_sources()
    assert not worker._OPEN

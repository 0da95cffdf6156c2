"""The Ray executor's error path without a cluster: a task's own exception comes back as itself; one Ray could not
carry back becomes an InternalError naming the failure (never ``raise None``)."""

from __future__ import annotations

import os
import signal
import time
import types
from pathlib import Path
from typing import Any

import pytest

import rdstd
from rdstd.batch.executors import RayTasks
from rdstd.errors import InternalError, SourceError


class _RayError(Exception):
    pass


class _RayTaskError(_RayError):
    def __init__(self, cause: BaseException | None) -> None:
        super().__init__("task failed\nTraceback ...")
        self.cause = cause


class _WorkerCrashedError(_RayError):
    pass


def _fake_ray(failure: _RayError) -> Any:
    def actor(*args: Any) -> Any:
        return types.SimpleNamespace(call=types.SimpleNamespace(remote=lambda *args: object()))

    def remote(**_: Any) -> Any:  # a task's remote gives a result; a slot's, an actor (both only waited for)
        return lambda target: types.SimpleNamespace(remote=actor)

    def get(ref: object) -> Any:
        raise failure

    return types.SimpleNamespace(
        remote=remote,
        wait=lambda pending, num_returns, timeout=None: (pending[:num_returns], pending[num_returns:]),
        get=get,
        cancel=lambda ref: None,
        kill=lambda actor: None,
        exceptions=types.SimpleNamespace(RayTaskError=_RayTaskError, RayError=_RayError),
    )


def _tasks(failure: _RayError) -> RayTasks:
    tasks = object.__new__(RayTasks)
    tasks.ray = _fake_ray(failure)  # a Ray stand-in: no cluster in a unit test
    tasks._remotes, tasks._actors, tasks._driver = {}, [], None
    tasks.slots, tasks.workers = 1, 2  # a local Ray of 2 CPUs: one task at a time and the driver
    return tasks


def test_a_tasks_own_exception_is_raised_as_itself() -> None:
    cause = SourceError("a.zarr: chunk does not decode", situation="corrupt-source")
    with pytest.raises(SourceError, match="chunk does not decode") as caught:
        list(_tasks(_RayTaskError(cause)).run(print, [(1,)]))
    assert isinstance(caught.value.__cause__, _RayTaskError)


def test_a_failure_ray_could_not_carry_back_is_an_internal_error() -> None:
    with pytest.raises(InternalError, match=r"a Ray task of the batch failed: task failed") as caught:
        list(_tasks(_RayTaskError(None)).run(print, [(1,)]))
    assert "Traceback" not in caught.value.message and caught.value.situation == "ray-task-failed"


def test_a_ray_worker_that_died_is_a_lost_worker_error() -> None:
    with pytest.raises(InternalError, match=r"a Ray worker of the batch ended without finishing") as caught:
        list(_tasks(_WorkerCrashedError("The worker died unexpectedly\n...")).run(print, [(1,)]))
    assert caught.value.situation == "batch-worker-lost" and "The worker died unexpectedly" in caught.value.message


def _item(value: int, seconds: float) -> tuple[int, int]:
    if value < 0:
        raise ValueError(f"item {value} fails")
    time.sleep(seconds)
    return value, os.getpid()


def test_a_local_pool_runs_items_in_the_driver_and_its_processes_each_once() -> None:
    from rdstd.batch.executors import LocalPool

    pool = LocalPool(2)
    try:
        got = list(pool.run(_item, [(i, 0.02) for i in range(30)]))
    finally:
        pool.close()
    assert sorted(position for position, _ in got) == list(range(30))
    assert all(value == position for position, (value, _) in got)
    pids = {pid for _, (_, pid) in got}
    assert os.getpid() in pids and len(pids) == 2  # the driver is a worker; the process always gets the first item


def test_a_failing_item_stops_a_local_pool_and_is_raised() -> None:
    from rdstd.batch.executors import LocalPool

    pool = LocalPool(2)
    try:
        with pytest.raises(ValueError, match="item -1 fails"):
            list(pool.run(_item, [(i, 0.01) for i in range(5)] + [(-1, 0.0)] + [(i, 0.01) for i in range(5)]))
        assert [v for _, (v, _) in pool.run(_item, [(7, 0.0)])] == [7]  # the pool still works for the next run
    finally:
        pool.close()


def _encoder_threads() -> tuple[int, int]:
    from rdstd.media.images import encode_threads

    return encode_threads(), os.getpid()


def test_each_worker_of_a_local_pool_encodes_on_its_share_of_the_cores() -> None:
    from rdstd.batch.executors import LocalPool
    from rdstd.media.images import MAX_ENCODE_THREADS, encode_threads

    cores = len(os.sched_getaffinity(0))
    alone = encode_threads()
    assert alone == max(1, min(MAX_ENCODE_THREADS, cores))
    pool = LocalPool(2)
    try:
        got = [result for _, result in pool.run(_encoder_threads, [()] * 4)]
    finally:
        pool.close()
    assert {threads for threads, _ in got} == {max(1, min(MAX_ENCODE_THREADS, cores // 2))}
    assert len({pid for _, pid in got}) == 2  # the driver and the process alike
    assert encode_threads() == alone  # the driver has its cores back once the run is over


def test_a_task_started_on_its_own_raises_its_error_when_its_result_is_taken() -> None:
    cause = SourceError("a.zarr: chunk does not decode", situation="corrupt-source")
    tasks = _tasks(_RayTaskError(cause))
    started = [tasks.start(print, 1), tasks.start(print, 2)]
    tasks.wait_all(started)  # waits, raises nothing (a failed run settles its tasks this way)
    with pytest.raises(SourceError, match="chunk does not decode"):
        tasks.results(started)


def _die_unless_in(driver: int, value: int) -> int:
    """``value``, in the driver; any other worker kills itself (as the out-of-memory killer would)."""
    if os.getpid() != driver:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return value


def test_a_local_pool_process_killed_mid_item_stops_the_run_with_a_lost_worker_error() -> None:
    from rdstd.batch.executors import LocalPool

    pool = LocalPool(2)
    try:
        with pytest.raises(InternalError, match="a worker process of the batch ended without finishing") as caught:
            list(pool.run(_die_unless_in, [(os.getpid(), i) for i in range(6)]))
    finally:
        pool.close()
    assert caught.value.situation == "batch-worker-lost"


_ORPHAN_DRIVER = """
import os, sys, time
from rdstd.batch.executors import LocalPool
if __name__ == "__main__":
    pool = LocalPool(2, fork=sys.argv[1] == "fork")
    pool.warm()
    print(pool._pool.submit(os.getpid).result(), flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_a_local_pool_process_ends_when_its_driver_is_killed(start: str, tmp_path: Path) -> None:
    """A driver killed with SIGKILL cannot stop its pool: its processes must end on their own (a forked one holds
    both ends of the task pipe and waited forever, holding its unit's lock, so ``--resume`` found OUT locked)."""
    import subprocess
    import sys

    script = tmp_path / "driver.py"
    script.write_text(_ORPHAN_DRIVER)
    env = {**os.environ, "PYTHONPATH": str(Path(rdstd.__file__).parents[1])}
    driver = subprocess.Popen([sys.executable, str(script), start], stdout=subprocess.PIPE, text=True, env=env)
    worker = 0
    try:
        assert driver.stdout is not None
        worker = int(driver.stdout.readline())
        driver.kill()
        driver.wait()
        for _ in range(300):  # a liveness bound (30 s), not a speed check
            if not _alive(worker):
                break
            time.sleep(0.1)
        assert not _alive(worker), "the pool process outlived its killed driver"
    finally:
        driver.kill()
        driver.wait()
        if worker and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

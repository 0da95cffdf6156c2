"""The Ray executor on a local Ray (2 CPUs, started here): the driver is a worker beside one Ray slot, every item
runs once, a slot is one process for the whole run, and a Ray worker killed mid-unit stops the run with its error
(no hang) and leaves a job that ``resume`` finishes to the bytes of one worker."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from rdstd.batch import convert_batch
from rdstd.batch.executors import RayTasks
from rdstd.errors import InternalError
from tests.batch.helpers import digest, make_source
from tests.conftest import in_ci

pytestmark = pytest.mark.slow

#: Seconds a run that should stop may take before the test calls it a hang.
HANG_S = 120.0


@pytest.fixture(scope="module")
def ray() -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        if in_ci():
            pytest.fail("ray is not installed; CI must run the Ray executor tests (make installs the ray extra)")
        pytest.skip("ray is not installed (pip install 'rdstd[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _where(value: int, seconds: float) -> tuple[int, int]:
    time.sleep(seconds)
    return value, os.getpid()


def _die_unless_in(driver: int, value: int) -> int:
    """``value``, in the driver; a Ray worker kills itself (as the out-of-memory killer would)."""
    if os.getpid() != driver:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return value


def _within(seconds: float, fn: Any) -> Any:
    """``fn()`` on a thread; its result or exception, or a failure if it has not returned after ``seconds``."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no result after {seconds:.0f} s: a hang"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_the_driver_and_one_ray_slot_run_every_item_once(ray: Any) -> None:
    tasks = RayTasks(None, None)
    try:
        assert (tasks.slots, tasks.workers) == (1, 2)  # 2 CPUs: one slot, and the driver
        got = list(tasks.run(_where, [(i, 0.02) for i in range(40)]))
        again = list(tasks.run(_where, [(i, 0.0) for i in range(4)]))  # the slot serves the next run too
    finally:
        tasks.close()
    assert sorted(position for position, _ in got) == list(range(40))
    assert all(value == position for position, (value, _) in got)
    pids = {pid for _, (_, pid) in got + again}
    assert os.getpid() in pids and len(pids) == 2  # the driver, and one process for every item of the slot
    assert dict(got)[0][1] != os.getpid()  # item 0 went to the slot (given it before the driver took any)


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def _may_raise_priority() -> bool:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    return os.geteuid() == 0 or soft == resource.RLIM_INFINITY or 20 - soft <= _niceness()


def test_a_slot_on_the_drivers_node_runs_at_the_drivers_priority(ray: Any) -> None:
    if not _may_raise_priority():
        pytest.skip("this user may not raise a process's priority (no CAP_SYS_NICE, RLIMIT_NICE too low)")
    tasks = RayTasks(None, None)
    try:
        got = dict(tasks.run(_niceness, [()] * 3))
        idle = ray.get(tasks.start(_niceness))  # a plain Ray task keeps Ray's worker niceness
    finally:
        tasks.close()
    assert got[0] == _niceness()  # item 0 ran on the slot (Ray starts its workers at niceness 15)
    assert idle > _niceness()


def test_a_ray_worker_killed_mid_item_stops_the_run_with_a_lost_worker_error(ray: Any) -> None:
    tasks = RayTasks(None, None)
    try:
        with pytest.raises(InternalError, match="a Ray worker of the batch ended without finishing") as caught:
            _within(HANG_S, lambda: list(tasks.run(_die_unless_in, [(os.getpid(), i) for i in range(8)])))
    finally:
        tasks.close()
    assert caught.value.situation == "batch-worker-lost"


def _kill_a_slot_mid_unit(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker seen running an item (its process title is ``ray::_Slot.call`` then)."""
    me = psutil.Process()
    while not stop.is_set() and not killed:
        for proc in me.children(recursive=True):
            try:
                if proc.name().startswith("ray::_Slot.call"):
                    proc.kill()
                    killed.append(proc.pid)
                    return
            except psutil.Error:
                continue
        time.sleep(0.002)


def test_a_ray_worker_killed_mid_unit_fails_the_run_and_resume_gives_the_bytes_of_one_worker(
    ray: Any, tmp_path: Path
) -> None:
    src = make_source(tmp_path, [30 + i % 7 for i in range(48)])
    reference = tmp_path / "one"
    convert_batch(src, reference, workers=1, unit_episodes=2)
    out = tmp_path / "out"
    stop, killed = threading.Event(), list[int]()
    killer = threading.Thread(target=_kill_a_slot_mid_unit, args=(stop, killed), daemon=True)
    killer.start()
    try:
        with pytest.raises(InternalError) as caught:
            _within(HANG_S, lambda: convert_batch(src, out, executor="ray", unit_episodes=2))
    finally:
        stop.set()
        killer.join()
    assert killed, "no Ray worker was seen running a unit"
    assert caught.value.situation == "batch-worker-lost"
    assert "--resume" in (caught.value.hint or "")  # the finished units are kept
    assert not (out / "rdstd.json").exists()
    report = _within(HANG_S, lambda: convert_batch(src, out, executor="ray", unit_episodes=2, resume=True))
    assert report.batch["resumed_units"] > 0
    assert digest(out) == digest(reference)

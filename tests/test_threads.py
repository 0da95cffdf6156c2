"""rdstd's shared helper pools run on daemon threads: results and errors come back through futures, and a process
whose pool is still busy exits at once (a stopped run used to hang in the interpreter's join of pool threads)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from rdstd.io.threads import shared_pool


def test_results_and_errors_come_back_through_futures_in_submission_order() -> None:
    pool = shared_pool("test-pool", 2)
    assert shared_pool("test-pool", 5) is pool, "one pool per name and process"
    futures = [pool.submit(pow, 2, n) for n in range(10)]
    assert [f.result(timeout=10) for f in futures] == [2**n for n in range(10)]
    with pytest.raises(ZeroDivisionError):
        pool.submit(divmod, 1, 0).result(timeout=10)
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("test-pool_"))


def test_a_process_with_a_busy_pool_exits_without_waiting_for_it() -> None:
    code = (
        "import time\n"
        "from rdstd.io.threads import shared_pool\n"
        "pool = shared_pool('busy', 1)\n"
        "pool.submit(time.sleep, 600)\n"
        "pool.submit(time.sleep, 600)\n"
        "print('leaving')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "leaving", done.stderr


def test_an_idle_pool_thread_keeps_no_reference_to_its_last_calls_arguments() -> None:
    import gc
    import time
    import weakref

    class Payload:  # a row group handed to the writing thread, say
        pass

    payload = Payload()
    gone = weakref.ref(payload)
    shared_pool("test-idle", 1).submit(id, payload).result(timeout=10)
    del payload
    for _ in range(100):  # the thread drops its references right after setting the result
        gc.collect()
        if gone() is None:
            break
        time.sleep(0.01)
    assert gone() is None

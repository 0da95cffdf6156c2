"""Process-wide helper thread pools that never hold the interpreter's exit.

``concurrent.futures.ThreadPoolExecutor`` threads are not daemons: at exit the interpreter joins them, and a run
stopped by SIGTERM (raised as an exception in the main thread at any bytecode, even inside the executor's own
locking) was seen to hang there forever. The pools here run on daemon threads, take work from a lock-free
``queue.SimpleQueue`` and hand results back through ordinary :class:`~concurrent.futures.Future` objects; work still
queued at exit is dropped (it is read-ahead or encoding whose result nobody waits for any more). A forked child
gets pools of its own.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_Item = tuple[Callable[..., Any], tuple[Any, ...], "Future[Any]"]


class DaemonPool:
    """``workers`` daemon threads running submitted calls in order of submission."""

    def __init__(self, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        for i in range(max(1, workers)):
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True).start()

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on a pool thread; its result (or exception) comes through the returned future."""
        future: Future[T] = Future()
        self._queue.put((fn, args, future))
        return future

    def _work(self) -> None:
        while True:
            fn, args, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future, with its traceback
                future.set_exception(exc)
            del fn, args, future  # an idle thread must not keep the last call's arguments alive


_pools: dict[tuple[int, str], DaemonPool] = {}
_lock = threading.Lock()


def shared_pool(name: str, workers: int) -> DaemonPool:
    """The process's pool called ``name`` (made on first use with ``workers`` threads)."""
    key = (os.getpid(), name)
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = DaemonPool(workers, name)
        return pool

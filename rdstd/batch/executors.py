"""Where work units run: in this process, a local process pool, or Ray core tasks.

Every executor runs the same function per item and yields ``(position, result)`` as items finish; the driver
orders what it keeps by position, so results never depend on which worker finished first.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, Protocol

from rdstd.errors import InternalError, MissingDependencyError, UsageError
from rdstd.media.images import share_cores

ExecutorName = Literal["local", "ray", "slurm"]


class Executor(Protocol):
    """Runs ``fn(*args)`` for each args tuple, yielding (position, result) as they finish."""

    def run(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """Run every item; an exception stops the rest and is raised."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


class InProcess:
    """One worker: this process (the same code path as the pools, without pickling)."""

    workers = 1

    def run(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """Run the items in order."""
        for position, args in enumerate(items):
            yield position, fn(*args)

    def close(self) -> None:
        """Nothing to release."""


def fork_is_safe() -> bool:
    """Whether this process may fork pool workers from itself: on Linux, with no other Python thread (one holding
    a lock at the fork would leave it held forever in the child) and without polars loaded (its thread pool is not
    fork-safe). Native helper threads of jemalloc and BLAS handle a fork themselves."""
    return sys.platform == "linux" and threading.active_count() == 1 and "polars" not in sys.modules


class LocalPool:
    """``workers`` workers: this process and ``workers - 1`` pool processes, forked from a fork server (they never
    inherit the driver's threads), or, with ``fork`` (only when :func:`fork_is_safe`), from this process itself:
    they start at once with everything it imported.

    The driver is a worker too: it runs items inline (as :class:`InProcess` does) while the processes start and
    run the others, so a pool of 2 needs one process start-up, and the driver's own imports and open source are
    not wasted. Each process is given one item at a time, the next as soon as it returns one (from the pool's
    result thread), so no item waits queued behind a busy process while another worker is idle, and both sides
    finish within one item of each other.
    """

    def __init__(self, workers: int, preload: Sequence[str] = (), *, fork: bool = False) -> None:
        self.workers = workers
        self.forked = fork
        self._processes = max(1, workers - 1)
        context = multiprocessing.get_context("fork" if fork else "forkserver")
        if not fork:
            # the fork server imports these once; every worker forked from it starts with them (a no-op once the
            # process's fork server is running)
            context.set_forkserver_preload(list(preload))
        self._pool = ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=context,
            initializer=_start_worker,
            initargs=(dict(os.environ), workers),
        )

    def warm(self, prepare: Callable[..., Any] = os.getpid, *args: Any) -> None:
        """Start the processes now: forked from this thread at once (``fork``: the only thread, see
        :func:`fork_is_safe`), or in the background (the fork server's imports take a fraction of a second); each
        is given ``prepare(*args)`` to run first (its outcome is not waited for: a unit meets any error again)."""
        if self.forked:  # a fork pool forks all its processes at its first submit, here
            for _ in range(self._processes):
                self._pool.submit(prepare, *args)
        else:
            threading.Thread(target=self._warm, args=(prepare, *args), name="rdstd-pool-warm", daemon=True).start()

    def _warm(self, prepare: Callable[..., Any], *args: Any) -> None:
        try:
            for _ in range(self._processes):
                self._pool.submit(prepare, *args)
        except (RuntimeError, BrokenProcessPool):  # closed meanwhile; a broken pool fails the first real item
            pass

    def run(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """Run every item (in order of position, on whichever worker is free); yield each as it finishes. When
        one fails, items not yet started are dropped."""
        share = _Share(self._pool, fn, items)
        # the processes start (the fork server's imports, the source opened) while this process runs items
        threading.Thread(target=share.start, args=(self._processes,), name="rdstd-pool-start", daemon=True).start()
        alone = share_cores(self.workers)  # this process is one of the workers: its share of the cores
        try:
            while True:
                while share.has_result():  # results already in
                    yield share.take()
                position, waiting = share.next_here()
                if position >= 0:
                    yield position, fn(*items[position])
                elif waiting:
                    yield share.take()  # nothing left to start: wait for the processes
                else:
                    return
        finally:
            share.stop()
            share_cores(alone)

    def close(self) -> None:
        """Stop the workers (queued work is dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Share:
    """The items of one :meth:`LocalPool.run` shared between the driver and the pool's processes: each process
    has one item at a time, and is given the next (from the pool's result thread) as soon as it returns one."""

    def __init__(self, pool: ProcessPoolExecutor, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> None:
        self._pool, self._fn, self._items = pool, fn, items
        self._todo: deque[int] = deque(range(len(items)))
        self._finished: queue.SimpleQueue[tuple[int, Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[int, Future[Any]] = {}
        self._handed = 0  # items given to the processes (submitted, or being submitted)
        self._taken = 0  # their results taken by the driver
        self._stopped = False

    def start(self, processes: int) -> None:
        """Give each process its first item (the first submit waits while the fork server imports rdstd)."""
        for _ in range(processes):
            self._feed()

    def _feed(self) -> None:
        with self._lock:
            if self._stopped or not self._todo:
                return
            position = self._todo.popleft()
            self._handed += 1
        try:
            future = self._pool.submit(self._fn, *self._items[position])
        except (RuntimeError, BrokenProcessPool) as exc:  # the pool broke: raised where its result is taken
            future = Future()
            future.set_exception(exc)
        with self._lock:
            self._running[position] = future
            if self._stopped:
                future.cancel()
        future.add_done_callback(lambda done: self._returned(position, done))

    def _returned(self, position: int, future: Future[Any]) -> None:
        self._finished.put((position, future))
        self._feed()

    def has_result(self) -> bool:
        """Whether a process's result is waiting."""
        return not self._finished.empty()

    def take(self) -> tuple[int, Any]:
        """The next result of a process (waits for one); its exception is raised here."""
        position, future = self._finished.get()
        with self._lock:
            self._taken += 1
            self._running.pop(position)
        return position, future.result()

    def next_here(self) -> tuple[int, int]:
        """The next item for the driver (-1 when none is left) and how many the processes still owe."""
        with self._lock:
            return (self._todo.popleft() if self._todo else -1), self._handed - self._taken

    def stop(self) -> None:
        """Start nothing more; cancel what the processes have not begun."""
        with self._lock:
            self._stopped = True
            for future in self._running.values():
                future.cancel()


def _start_worker(environ: dict[str, str], workers: int) -> None:
    """Give a pool worker the driver's environment as it is now (object-storage credentials and endpoints: the
    fork server was started with the environment of the pool that started it first), and its share of the cores
    (encoder threads: with 2 workers on 2 cores each encodes inline, not on threads that compete with the other)."""
    os.environ.clear()
    os.environ.update(environ)
    share_cores(workers)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a worker forked from the CLI: not its cleanup handler


def _import(modules: list[str]) -> None:
    """Import ``modules`` (a Ray worker's warm-up task)."""
    for name in modules:
        importlib.import_module(name)


def _on_one_core(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a Ray task, which holds one CPU: encoder threads on that one core (inline)."""
    share_cores(os.cpu_count() or 1)
    return fn(*args)


class RayTasks:
    """Ray core tasks (one CPU each) on the cluster at ``address`` (or a Ray already initialised, or a local one)."""

    def __init__(self, address: str | None, workers: int | None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError("ray", "ray", purpose="run --executor ray") from exc
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=workers if address is None else None, log_to_driver=False)
        resources: dict[str, float] = getattr(ray, "cluster_resources")()  # noqa: B009 - untyped in some ray versions
        self.workers = int(resources.get("CPU", 1))
        self._remotes: dict[Callable[..., Any], Any] = {}

    def warm(self, modules: Sequence[str]) -> None:
        """Have each worker import ``modules`` now (a task each), while the driver plans: a Ray worker imports the
        unit code at its first task, a fraction of a CPU second before any unit could start."""
        ray = self._ray
        remote = self._remotes.setdefault(_import, ray.remote(num_cpus=1, max_retries=0)(_import))
        self._warming = [remote.remote(list(modules)) for _ in range(self.workers)]  # kept: not cancelled

    def run(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """Submit every item as a task; yield each as it finishes (the driver shows progress)."""
        ray = self._ray
        refs = {self.start(fn, *args): i for i, args in enumerate(items)}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield refs[ref], self._get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref)

    def start(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)`` as a task now; its result (or error, as :meth:`run` raises it) comes from
        :meth:`results`."""
        ray = self._ray
        remote = self._remotes.setdefault(_on_one_core, ray.remote(num_cpus=1, max_retries=0)(_on_one_core))
        return remote.remote(fn, *args)

    def results(self, refs: Sequence[Any]) -> list[Any]:
        """The results of tasks :meth:`start` submitted, in order (the first error is raised, after every task has
        ended: none is left writing)."""
        self.wait_all(refs)
        return [self._get(ref) for ref in refs]

    def wait_all(self, refs: Sequence[Any]) -> None:
        """Wait until every task of ``refs`` has ended (whatever its outcome)."""
        if refs:
            self._ray.wait(list(refs), num_returns=len(refs))

    def _get(self, ref: Any) -> Any:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, BaseException):  # the task's own exception, when Ray kept it
                raise exc.cause from exc
            first = (str(exc).splitlines() or [repr(exc)])[0]
            raise InternalError(
                f"a Ray task of the batch failed: {first}",
                hint="run again with --debug for the task's traceback, or with --executor local",
                situation="ray-task-failed",
            ) from exc

    def close(self) -> None:
        """Leave Ray running (the caller or the cluster owns it)."""


def make_executor(name: ExecutorName, workers: int, ray_address: str | None, preload: Sequence[str] = ()) -> Executor:
    """The executor ``name`` with ``workers`` workers (``slurm`` does not execute here: it writes a script);
    ``preload``: modules a local pool's workers start with."""
    if workers < 1:
        raise UsageError(
            f"--workers must be at least 1, not {workers}", hint="e.g. --workers 4", situation="workers-invalid"
        )
    if name == "ray":
        return RayTasks(ray_address, workers)
    if name != "local":
        raise UsageError(
            f"executor {name!r} does not run units in this process",
            hint="use local or ray (--executor slurm writes a script for sbatch instead)",
            situation="executor-not-in-process",
        )
    return InProcess() if workers == 1 else LocalPool(workers, preload)

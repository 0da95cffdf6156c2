"""Where work units run: in this process, a local process pool, or Ray core tasks.

Every executor runs the same function per item and yields ``(position, result)`` as items finish; the driver
orders what it keeps by position, so results never depend on which worker finished first.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import queue
import select
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, Protocol

from rdstd.errors import InternalError, MissingDependencyError, RdstdError, UsageError
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
            initargs=(dict(os.environ), workers, os.getpid()),
        )

    def warm(self, prepare: Callable[..., Any] = os.getpid, *args: Any) -> None:
        """Start the processes now: forked from this thread at once (``fork``: the only thread, see
        :func:`fork_is_safe`), or in the background (the fork server's imports take a fraction of a second); each
        is given ``prepare(*args)`` to run first (its outcome is not waited for: a unit meets any error again)."""
        if self.forked:  # a fork pool forks all its processes at its first submit, here
            self._warm(prepare, *args)
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
        yield from _with_driver(share, fn, items, self.workers)

    def close(self) -> None:
        """Stop the workers (queued work is dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Shared(Protocol):
    """The items of one run shared between the driver (which runs items inline) and other workers."""

    def has_result(self) -> bool:
        """Whether another worker's result is waiting."""
        ...

    def take(self) -> tuple[int, Any]:
        """The next result of another worker (waits for one); its exception is raised here."""
        ...

    def next_here(self) -> tuple[int, int]:
        """The next item for the driver (-1 when none is left) and how many the other workers still owe."""
        ...

    def stop(self) -> None:
        """Start nothing more; cancel what the other workers have not finished."""
        ...


def _with_driver(
    share: _Shared, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], workers: int
) -> Iterator[tuple[int, Any]]:
    """The driver's side of a run shared with other workers: it runs items inline (its share of the cores:
    ``workers`` share them), taking the other workers' results whenever it is between items; when no item is
    left to start, it waits for what they still owe. Every result is yielded as (position, result)."""
    alone = share_cores(workers)
    try:
        while True:
            while share.has_result():  # results already in
                yield share.take()
            position, waiting = share.next_here()
            if position >= 0:
                yield position, fn(*items[position])
            elif waiting:
                yield share.take()  # nothing left to start: wait for the other workers
            else:
                return
    finally:
        share.stop()
        share_cores(alone)


class _Items:
    """What the driver and its helpers (a process pool, Ray's slots) share of one run's items: those not yet
    started, the results waiting for the driver, and how many items the helpers still owe."""

    def __init__(self, count: int) -> None:
        self._todo: deque[int] = deque(range(count))
        self._finished: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._handed = 0  # items given to the helpers
        self._taken = 0  # their results taken by the driver
        self._stopped = False

    def has_result(self) -> bool:
        """Whether a helper's result is waiting."""
        return not self._finished.empty()

    def next_here(self) -> tuple[int, int]:
        """The next item for the driver (-1 when none is left) and how many the helpers still owe."""
        with self._lock:
            return (self._todo.popleft() if self._todo else -1), self._handed - self._taken


class _Share(_Items):
    """The items of one :meth:`LocalPool.run` shared between the driver and the pool's processes: each process
    has one item at a time, and is given the next (from the pool's result thread) as soon as it returns one."""

    def __init__(self, pool: ProcessPoolExecutor, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> None:
        super().__init__(len(items))
        self._pool, self._fn, self._items = pool, fn, items
        self._running: dict[int, Future[Any]] = {}

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

    def take(self) -> tuple[int, Any]:
        """The next result of a process (waits for one); its exception is raised here."""
        position, future = self._finished.get()
        with self._lock:
            self._taken += 1
            self._running.pop(position)
        try:
            return position, future.result()
        except BrokenProcessPool as exc:  # a process died (killed, out of memory): its unit has no result
            raise worker_lost(f"a worker process of the batch ended without finishing its unit ({exc})") from exc

    def stop(self) -> None:
        """Start nothing more; cancel what the processes have not begun."""
        with self._lock:
            self._stopped = True
            for future in self._running.values():
                future.cancel()


def worker_lost(message: str) -> InternalError:
    """The error of a unit whose worker died before returning (a kill, the kernel's out-of-memory killer, a lost
    Ray node); the run stops, and its finished units are kept for ``--resume``."""
    return InternalError(
        message,
        hint="the worker was killed: by a signal, by the out-of-memory killer (see dmesg; fewer --workers use less "
        "memory), or with its node",
        situation="batch-worker-lost",
    )


def _start_worker(environ: dict[str, str], workers: int, driver: int) -> None:
    """Give a pool worker the driver's environment as it is now (object-storage credentials and endpoints: the
    fork server was started with the environment of the pool that started it first), and its share of the cores
    (encoder threads: with 2 workers on 2 cores each encodes inline, not on threads that compete with the other);
    it ends when the driver (pid ``driver``) does (:func:`_exit_with_driver`)."""
    os.environ.clear()
    os.environ.update(environ)
    share_cores(workers)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a worker forked from the CLI: not its cleanup handler
    try:
        watch = os.pidfd_open(driver)
    except ProcessLookupError:
        os._exit(128 + signal.SIGKILL)  # the driver is gone already
    except (AttributeError, OSError):  # not Linux, or a kernel before 5.3: the pool's pipes are all there is
        return
    threading.Thread(target=_exit_with_driver, args=(watch,), name="rdstd-driver-watch", daemon=True).start()


def _exit_with_driver(watch: int) -> None:
    """End this pool process as soon as the driver (the process ``watch``, a pidfd, stands for) has ended.

    A driver killed with SIGKILL cannot stop its pool, and a pool process holds both ends of the pool's task pipe
    (and a fork server's, its parent, outlives the driver), so it would wait for its next task forever, holding
    its unit's lock: a ``--resume`` then found the output locked by the dead run."""
    select.select([watch], [], [])  # a pidfd turns readable when its process ends
    os._exit(128 + signal.SIGKILL)


def _import(modules: Sequence[str], prepare: Callable[..., Any] | None = None, *args: Any) -> None:
    """Import ``modules``, then run ``prepare(*args)`` (a Ray worker's warm-up; an rdstd error of ``prepare`` is
    dropped: the unit meets it again, where it is reported)."""
    for name in modules:
        importlib.import_module(name)
    if prepare is not None:
        with contextlib.suppress(RdstdError):
            prepare(*args)


def _on_one_core(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a Ray task, which holds one CPU: encoder threads on that one core (inline)."""
    share_cores(os.cpu_count() or 1)
    return fn(*args)


class _Slot:
    """A Ray actor holding one CPU for a run: one worker process that runs items one at a time, with the unit
    code imported and the source opened once, before its first item (a task would be leased whichever idle
    worker Ray has, each importing and opening anew).

    On the driver's node a slot takes the driver's scheduling priority when the OS lets it (:func:`_peer_of`):
    Ray starts its workers at niceness 15, and the driver, a worker too, would otherwise take most of a shared
    core whenever its own helper threads (the writer's) run."""

    def __init__(
        self,
        driver: tuple[str, int] | None,
        modules: Sequence[str],
        prepare: Callable[..., Any] | None,
        *args: Any,
    ) -> None:
        if driver is not None:
            _peer_of(*driver)
        share_cores(os.cpu_count() or 1)  # one CPU: encode inline
        _import(modules, prepare, *args)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in this worker."""
        return fn(*args)


def _peer_of(node: str, niceness: int) -> None:
    """Run at the driver's ``niceness`` if this Ray worker is on the driver's ``node`` and the OS allows it
    (raising a priority needs CAP_SYS_NICE or RLIMIT_NICE; without, the worker keeps Ray's niceness)."""
    import ray

    if ray.get_runtime_context().get_node_id() != node or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)


#: Seconds a Ray wait lasts at most before the feeding thread looks whether the run was stopped.
RAY_POLL_S = 0.5


class _RayShare(_Items):
    """The items of one :meth:`RayTasks.run` shared between the driver and Ray's slots: a thread of the driver
    gives each slot (actor) the next item as soon as it returns one (every wait bounded by :data:`RAY_POLL_S`),
    and the driver takes the other items inline. A result is taken (``ray.get``, where its error is raised) on
    the driver's thread, never on Ray's."""

    def __init__(self, tasks: RayTasks, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> None:
        super().__init__(len(items))
        self._tasks, self._fn, self._items = tasks, fn, items
        self._idle: deque[Any] = deque(tasks.actors())
        self._running: dict[Any, tuple[int, Any]] = {}  # Ray result -> (position, actor)
        self._fed = threading.Event()  # set when the feeding thread ends

    def feed(self) -> None:
        """Keep the slots busy until every item is started and ended, or the run is stopped (the feeding
        thread); a failure of Ray itself is handed to the driver as a result."""
        try:
            self._feed()
        except BaseException as exc:  # the driver's boundary: raised there, where it takes results
            self._finished.put((-1, exc))
        finally:
            self._cancel()
            self._fed.set()

    def fill(self) -> None:
        """Give every idle slot the next item (the first call, on the driver's thread before it takes any item:
        Ray's slots get the first items)."""
        with self._lock:
            if self._stopped:
                return
            starting: list[tuple[int, Any]] = []
            while self._idle and self._todo:
                starting.append((self._todo.popleft(), self._idle.popleft()))
            self._handed += len(starting)
        for position, actor in starting:
            ref = actor.call.remote(self._fn, *self._items[position])
            with self._lock:
                self._running[ref] = (position, actor)

    def _feed(self) -> None:
        while True:
            self.fill()
            with self._lock:
                if self._stopped:
                    return
                running = list(self._running)
            if not running:
                return  # nothing runs on Ray and nothing is left to start
            done, _ = self._tasks.ray.wait(running, num_returns=1, timeout=RAY_POLL_S)
            for ref in done:
                with self._lock:
                    position, actor = self._running.pop(ref)
                    self._idle.append(actor)
                self._finished.put((position, ref))

    def _cancel(self) -> None:
        with self._lock:
            running, self._running = list(self._running), {}
        for ref in running:  # a pending item is dropped; a running one ends with its actor (RayTasks.close)
            self._tasks.ray.cancel(ref)

    def take(self) -> tuple[int, Any]:
        """The next result of a slot (waits for one, looking every :data:`RAY_POLL_S` that the feeding thread
        still runs); its error is raised here."""
        while True:
            try:
                position, ref = self._finished.get(timeout=RAY_POLL_S)
                break
            except queue.Empty:
                if self._fed.is_set() and self._finished.empty():
                    raise InternalError(
                        "the Ray tasks of the batch stopped without a result",
                        hint="run again with --debug, or with --executor local",
                        situation="ray-task-failed",
                    ) from None
        if position < 0:
            raise ref
        with self._lock:
            self._taken += 1
        return position, self._tasks.get(ref)

    def stop(self) -> None:
        """Start nothing more; the feeding thread cancels what has not started."""
        with self._lock:
            self._stopped = True


class RayTasks:
    """Ray on the cluster at ``address`` (or a Ray already initialised, or a local one): the items of a run on
    ``slots`` actors of one CPU each, and the driver.

    The driver is a worker too, as with :class:`LocalPool`: it runs items inline while the slots run the others,
    one at a time each. There are the cluster's CPUs but one (at least 1): one CPU is the driver's (a driver runs
    on a node of the cluster, whose CPUs Ray counts). So a job's first units start at once, without waiting for
    Ray to start worker processes and for them to import the unit code, and a local Ray of 2 CPUs needs one such
    worker, not two. The slots live until :meth:`close`; tasks :meth:`start` submits run beside them.
    """

    def __init__(self, address: str | None, workers: int | None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError("ray", "ray", purpose="run --executor ray") from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=workers if address is None else None, log_to_driver=False)
        resources: dict[str, float] = getattr(ray, "cluster_resources")()  # noqa: B009 - untyped in some ray versions
        #: Ray actors running items at once: the cluster's CPUs but the driver's.
        self.slots = max(1, int(resources.get("CPU", 1)) - 1)
        #: Workers running items: the slots and the driver.
        self.workers = self.slots + 1
        self._remotes: dict[Any, Any] = {}
        self._actors: list[Any] = []
        #: The driver's node and niceness (its slots there run at the same priority, see :class:`_Slot`).
        self._driver: tuple[str, int] | None = None
        if hasattr(os, "getpriority"):
            self._driver = (ray.get_runtime_context().get_node_id(), os.getpriority(os.PRIO_PROCESS, 0))

    def warm(self, modules: Sequence[str], prepare: Callable[..., Any] | None = None, *args: Any) -> None:
        """Start the slots now, each importing ``modules`` and running ``prepare(*args)`` before its first item,
        while the driver plans (a Ray worker's imports take a fraction of a CPU second)."""
        if not self._actors:
            slot = self._remote(_Slot, max_restarts=0, max_task_retries=0)
            self._actors = [slot.remote(self._driver, list(modules), prepare, *args) for _ in range(self.slots)]

    def actors(self) -> list[Any]:
        """The slots (started now if :meth:`warm` was not called)."""
        self.warm(())
        return self._actors

    def run(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """Run every item, on the driver (inline) and on the slots (each given the next item as soon as it returns
        one); yield each as it finishes. When one fails, items not started are dropped."""
        share = _RayShare(self, fn, items)
        share.fill()
        feeder = threading.Thread(target=share.feed, name="rdstd-ray-feed", daemon=True)
        feeder.start()
        try:
            yield from _with_driver(share, fn, items, os.cpu_count() or 1)  # the driver's node is all Ray's too
        finally:
            share.stop()
            feeder.join(timeout=2 * RAY_POLL_S)  # it cancels what has not started, within one poll

    def _remote(self, target: Any, **options: Any) -> Any:
        remote = self._remotes.get(target)
        if remote is None:
            remote = self._remotes[target] = self.ray.remote(num_cpus=1, **options)(target)
        return remote

    def start(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)`` as a task now (one CPU, beside the slots); its result (or error, as :meth:`run`
        raises it) comes from :meth:`results`."""
        return self._remote(_on_one_core, max_retries=0).remote(fn, *args)

    def results(self, refs: Sequence[Any]) -> list[Any]:
        """The results of tasks :meth:`start` submitted, in order (the first error is raised, after every task has
        ended: none is left writing)."""
        self.wait_all(refs)
        return [self.get(ref) for ref in refs]

    def wait_all(self, refs: Sequence[Any]) -> None:
        """Wait until every task of ``refs`` has ended (whatever its outcome)."""
        if refs:
            self.ray.wait(list(refs), num_returns=len(refs))

    def get(self, ref: Any) -> Any:
        """The result of a task or slot; its exception raised as itself when Ray kept it."""
        ray = self.ray
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
        except ray.exceptions.RayError as exc:  # no result: the worker or its node is gone
            first = (str(exc).splitlines() or [repr(exc)])[0]
            raise worker_lost(f"a Ray worker of the batch ended without finishing its unit ({first})") from exc

    def close(self) -> None:
        """End the slots (an item still running on one is interrupted: its unit has no journal entry and is
        redone by ``--resume``); Ray itself is left running (the caller or the cluster owns it)."""
        actors, self._actors = self._actors, []
        for actor in actors:
            self.ray.kill(actor)


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

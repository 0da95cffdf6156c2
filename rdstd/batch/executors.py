"""Where work units run: in this process, a local process pool, or Ray core tasks.

Every executor runs the same function per item and yields ``(position, result)`` as items finish; the driver
orders what it keeps by position, so results never depend on which worker finished first.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Literal, Protocol

from rdstd.errors import InternalError, MissingDependencyError, UsageError

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


class LocalPool:
    """A pool of ``workers`` processes (``forkserver``: workers never inherit the driver's threads)."""

    def __init__(self, workers: int, preload: Sequence[str] = ()) -> None:
        self.workers = workers
        context = multiprocessing.get_context("forkserver")
        # the fork server imports these once; every worker forked from it starts with them (a no-op once the
        # process's fork server is running)
        context.set_forkserver_preload(list(preload))
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_environment,
            initargs=(dict(os.environ),),
        )

    def run(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """Submit every item; yield each as it finishes. Queued items are cancelled when one fails."""
        futures: dict[Future[Any], int] = {self._pool.submit(fn, *args): i for i, args in enumerate(items)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=futures.__getitem__):
                    yield futures[future], future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Stop the workers (queued work is dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _environment(environ: dict[str, str]) -> None:
    """Give a pool worker the driver's environment as it is now (object-storage credentials and endpoints): the
    fork server was started with the environment of the pool that started it first."""
    os.environ.clear()
    os.environ.update(environ)


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

    def run(self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """Submit every item as a task; yield each as it finishes (the driver shows progress)."""
        ray = self._ray
        remote = self._remotes.setdefault(fn, ray.remote(num_cpus=1, max_retries=0)(fn))
        refs = {remote.remote(*args): i for i, args in enumerate(items)}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        yield refs[ref], ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        if isinstance(exc.cause, BaseException):  # the task's own exception, when Ray kept it
                            raise exc.cause from exc
                        first = (str(exc).splitlines() or [repr(exc)])[0]
                        raise InternalError(
                            f"a Ray task of the batch failed: {first}",
                            hint="run again with --debug for the task's traceback, or with --executor local",
                            situation="ray-task-failed",
                        ) from exc
        finally:
            for ref in pending:
                ray.cancel(ref)

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

"""The Ray executor's error path without a cluster: a task's own exception comes back as itself; one Ray could not
carry back becomes an InternalError naming the failure (never ``raise None``)."""

from __future__ import annotations

import types
from typing import Any

import pytest

from rdstd.batch.executors import RayTasks
from rdstd.errors import InternalError, SourceError


class _RayTaskError(Exception):
    def __init__(self, cause: BaseException | None) -> None:
        super().__init__("task failed\nTraceback ...")
        self.cause = cause


def _fake_ray(failure: _RayTaskError) -> Any:
    def remote(**_: Any) -> Any:
        return lambda fn: types.SimpleNamespace(remote=lambda *args: object())

    def get(ref: object) -> Any:
        raise failure

    return types.SimpleNamespace(
        remote=remote,
        wait=lambda pending, num_returns: (pending[:1], pending[1:]),
        get=get,
        cancel=lambda ref: None,
        exceptions=types.SimpleNamespace(RayTaskError=_RayTaskError),
    )


def _tasks(failure: _RayTaskError) -> RayTasks:
    tasks = object.__new__(RayTasks)
    tasks._ray = _fake_ray(failure)  # a Ray stand-in: no cluster in a unit test
    tasks._remotes = {}
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

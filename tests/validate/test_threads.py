"""The runner's threads: a shard's checks split between the calling thread and a helper, the shards read ahead
from the moment a run starts, and what checks share across those threads (extents, stored rows)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from rdstd.errors import CorruptDatasetError
from rdstd.schema import Episode, Provenance
from rdstd.schema.clock import Clock
from rdstd.schema.vocabulary import ClockKind
from rdstd.store.reader import Dataset
from rdstd.store.writer import DatasetWriter
from rdstd.validate import Evidence, Finding, Severity, stream
from rdstd.validate import runner as runner_module
from rdstd.validate.check import Check, DatasetView, Extent, ShardView
from rdstd.validate.config import load
from rdstd.validate.runner import _Balance, build_checks, run, run_shards, validate_dataset
from tests.validate import fixtures

PLANTS = ("degrees", "dropped_frame", "duplicate", "constant", "delta")


def _sharded(root: Path, *plants: str) -> Path:
    """The fixture dataset with ``plants``, one episode per shard (so that the checks are balanced again after
    every shard)."""
    chosen = set(plants)
    path = root / ("-".join(sorted(chosen)) or "clean")
    episodes = [fixtures._episode(i, chosen) for i in range(fixtures.EPISODES)]
    if "duplicate" in chosen:
        first = episodes[0]
        meta = first.meta.model_copy(update={"episode_id": "ep005", "split": "val"})
        episodes[5] = Episode(meta, first.timestamps, first.vectors, first.images)
    with DatasetWriter(
        path,
        fixtures._features(chosen),
        Provenance(source_format="generated", rdstd_version="test"),
        rate_hz=fixtures.RATE_HZ,
        embodiments=[fixtures._embodiment(chosen)],
        clock=Clock(kind=ClockKind.MEASURED, source="source_timestamps", resampling="none"),
        shard_bytes=1,
    ) as writer:
        for episode in episodes:
            writer.add(episode)
    return path


def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check on the calling thread, as before the helper."""
    split = _Balance.split

    def one(self: _Balance) -> tuple[list[int], list[int]]:
        mine, theirs = split(self)
        return sorted(mine + theirs), []

    monkeypatch.setattr(_Balance, "split", one)


@pytest.mark.parametrize("plants", [(), PLANTS])
def test_findings_are_the_same_on_one_thread_and_on_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plants: tuple[str, ...]
) -> None:
    """Whichever thread runs a check on a shard, the run gives the same findings in the same order; the checks
    ran on both threads."""
    root = _sharded(tmp_path, *plants)
    ds = Dataset.open(root)
    assert ds.manifest.counts.shards > 3
    threads: set[str] = set()
    run_side = _Balance.run

    def watched(self: _Balance, positions: list[int], shard: ShardView) -> list[tuple[int, Finding]]:
        if positions:
            threads.add(threading.current_thread().name)
        return run_side(self, positions, shard)

    monkeypatch.setattr(_Balance, "run", watched)
    config = load("strict", root, cwd=tmp_path)
    two = [f.model_dump() for f in run(ds, build_checks(config)[0], pixels=True)]
    assert len(threads) == 2
    _one_thread(monkeypatch)
    one = [f.model_dump() for f in run(Dataset.open(root), build_checks(config)[0], pixels=True)]
    assert two == one
    assert bool(plants) == any(f["severity"] == "error" for f in one)


class _Stub(Check):
    """A check whose shard() calls ``action`` (set per test) with the shard."""

    id = "XTEST1"
    name = "test.stub"
    severity = Severity.ERROR
    evidence = Evidence.DETERMINISTIC
    description = "test"
    action: ClassVar[Any] = None

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        type(self).action(shard)
        yield self.finding("seen", ep=shard.episodes[0])


class _Other(_Stub):
    id = "XTEST2"


def _fixed_split(monkeypatch: pytest.MonkeyPatch, mine: list[int], theirs: list[int]) -> None:
    monkeypatch.setattr(_Balance, "split", lambda self: (list(mine), list(theirs)))


def _view(ds: Dataset) -> DatasetView:
    return DatasetView(ds.path, ds.manifest, ds.episodes, lambda: ds.stats)


def test_an_error_in_the_helper_thread_surfaces_as_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A typed error a check raises on the helper thread reaches the caller unchanged."""
    ds = Dataset.open(fixtures.make(tmp_path))
    error = CorruptDatasetError("shard damaged", situation="shard-unreadable")

    def fail(shard: ShardView) -> None:
        assert threading.current_thread() is not threading.main_thread()
        raise error

    class Failing(_Stub):
        action = staticmethod(fail)

    class Quiet(_Other):
        action = staticmethod(lambda shard: None)

    _fixed_split(monkeypatch, [1], [0])
    with pytest.raises(CorruptDatasetError) as caught:
        run_shards(_view(ds), lambda: stream.shards(ds), [Failing(), Quiet()])
    assert caught.value is error


def test_an_error_on_the_calling_thread_waits_for_the_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a check on the calling thread fails, the helper's checks on that shard have finished before the error
    leaves the run (nothing is left running on the shard)."""
    ds = Dataset.open(fixtures.make(tmp_path))
    started, finished = threading.Event(), threading.Event()

    def slow(shard: ShardView) -> None:
        started.set()
        threading.Event().wait(0.2)
        finished.set()

    def fail(shard: ShardView) -> None:
        assert started.wait(10)
        raise RuntimeError("boom")

    class Slow(_Stub):
        action = staticmethod(slow)

    class Failing(_Other):
        action = staticmethod(fail)

    _fixed_split(monkeypatch, [1], [0])
    with pytest.raises(RuntimeError, match="boom"):
        run_shards(_view(ds), lambda: stream.shards(ds), [Slow(), Failing()])
    assert finished.is_set()


def test_checks_are_balanced_by_their_thread_time() -> None:
    """Longest first, each to the less loaded side; the first shard alternates; pixel checks stay on the calling
    thread."""

    class Pixels(_Stub):
        pixels = True

    checks: list[Check] = [_Stub(), _Other(), _Stub(), _Other(), Pixels()]
    balance = _Balance(checks)
    assert balance.split() == ([0, 2, 4], [1, 3])
    balance._spent = [5.0, 1.0, 3.0, 2.0, 0.5]
    mine, theirs = balance.split()
    assert (mine, theirs) == ([0, 1, 4], [2, 3])  # 5 | 3 + 2, then 1 to the side at 5 (ties: the caller)
    balance._spent = [1.0, 1.0, 1.0, 1.0, 9.0]
    assert 4 in balance.split()[0]


def test_the_first_shard_is_read_before_the_checks_are_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate_dataset starts reading shard 0 before it builds the checks (the read overlaps the setup)."""
    root = _sharded(tmp_path)
    read = threading.Event()
    original = stream._read_shard

    def reading(ds: Dataset, shard: int, columns: list[str]) -> dict[str, np.ndarray]:
        if shard == 0:
            read.set()
        return original(ds, shard, columns)

    built = runner_module.build_checks

    def building(config: Any) -> Any:
        assert read.wait(10), "shard 0 was not being read when the checks were built"
        return built(config)

    monkeypatch.setattr(stream, "_read_shard", reading)
    monkeypatch.setattr(runner_module, "build_checks", building)
    report = validate_dataset(Dataset.open(root), load("default", root, cwd=tmp_path))
    assert report.episodes == fixtures.EPISODES


def test_extents_from_the_reader_are_the_shards_own(tmp_path: Path) -> None:
    """The extents the read-ahead works out equal those a check would compute from the shard (NaN and ±inf too)."""
    ds = Dataset.open(_sharded(tmp_path, "nan"))
    for shard in stream.shards(ds):
        assert set(shard._extents) == set(ds.manifest.vectors)
        for key, got in shard._extents.items():
            want = Extent.of(shard.vectors[key], shard.starts, shard.lengths)
            for field in ("low", "high", "bad"):
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


def test_stored_rows_keep_their_own_shard_when_another_thread_reads_another(tmp_path: Path) -> None:
    """Two checks on two threads asking for episodes of different shards: each gets its own episode's rows, even
    when the other thread's read replaces the kept shard between one's read and its use."""
    ds = Dataset.open(_sharded(tmp_path))
    expected = [stream.StoredRows(ds)(p) for p in (0, 1)]

    class Interleaved(stream.StoredRows):
        """Another thread's request for position 1 lands right after this one kept its shard 0."""

        @property
        def _shard(self) -> Any:
            return self.__dict__.get("kept")

        @_shard.setter
        def _shard(self, value: Any) -> None:
            self.__dict__["kept"] = value
            if value is not None and value[0] == 0 and not self.__dict__.get("nested"):
                self.__dict__["nested"] = True
                self(1)

    times, vectors = Interleaved(ds)(0)
    np.testing.assert_array_equal(times, expected[0][0])
    for key, values in vectors.items():
        np.testing.assert_array_equal(values, expected[0][1][key])

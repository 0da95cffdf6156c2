"""The shards read ahead on a helper thread from the moment a run starts: the first read overlaps building the
checks, the reader works out the extents, and stored rows stay right when asked from more than one thread."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rdstd.schema import Episode, Provenance
from rdstd.schema.clock import Clock
from rdstd.schema.vocabulary import ClockKind
from rdstd.store.reader import Dataset
from rdstd.store.writer import DatasetWriter
from rdstd.validate import runner as runner_module
from rdstd.validate import stream
from rdstd.validate.check import Check, DatasetView, Extent, ShardView
from rdstd.validate.checks.actions import ActionSemanticsFit
from rdstd.validate.checks.values import NonFinite
from rdstd.validate.config import load
from rdstd.validate.model import Evidence, Finding, Severity
from rdstd.validate.runner import validate_dataset
from tests.validate import fixtures


def _sharded(root: Path, *plants: str) -> Path:
    """The fixture dataset with ``plants``, one episode per shard."""
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
    """Requests for episodes of different shards that interleave (checks on two threads, or a nested call): each
    gets its own episode's rows, even when the other's read replaces the kept shard between one's read and its
    use."""
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


class _Prepared(Check):
    """Keeps each shard's first timestamp from prepare, and says on which thread prepare ran."""

    id = "TEST900"
    name = "test.prepared"
    severity = Severity.INFO
    evidence = Evidence.DETERMINISTIC
    description = "test"

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []
        self.taken: list[tuple[float, bool]] = []

    def prepare(self, shard: ShardView) -> None:
        self.threads.append(threading.current_thread().name)
        shard.keep(self.id, "first", float(shard.timestamps[0]) + 0.5)

    def shard(self, shard: ShardView) -> Iterable[Finding]:
        computed = []
        got = shard.kept(self.id, "first", lambda: computed.append(1) or float(shard.timestamps[0]) + 0.5)
        self.taken.append((got, bool(computed)))
        return ()


def test_prepare_runs_on_the_reader_thread_and_shard_takes_what_it_kept(tmp_path: Path) -> None:
    """A check's prepare runs on the read-ahead thread, and shard() takes what it kept (waiting for it); a shard
    whose prepare had not started takes the work back; without prepare hooks, shard() computes it itself."""
    ds = Dataset.open(_sharded(tmp_path))
    view = DatasetView(ds.path, ds.manifest, ds.episodes)
    check = _Prepared()
    runner_module.run_shards(
        view, lambda: stream.ReadAhead(ds).views(prepare=runner_module.preparing([check])), [check]
    )
    assert [value for value, _ in check.taken] == [0.5] * fixtures.EPISODES  # one episode per shard
    assert len(check.threads) + sum(computed for _, computed in check.taken) == fixtures.EPISODES  # one or other
    assert all(name.startswith(stream._READER) for name in check.threads)
    alone = _Prepared()
    runner_module.run_shards(view, lambda: stream.ReadAhead(ds).views(), [alone])
    assert alone.taken == [(0.5, True)] * fixtures.EPISODES
    assert not alone.threads
    assert runner_module.preparing([NonFinite()]) == []  # a check without prepare has no hook


def test_prepare_waits_for_when_started_and_is_taken_back_when_not(tmp_path: Path) -> None:
    """The reader reads the next shard before it prepares this one: when the checks get to the prepared value
    before the reader got to prepare, they cancel it and compute the value themselves (no waiting on a busy
    reader); once prepare runs, they wait for it."""
    ds = Dataset.open(_sharded(tmp_path))
    view = DatasetView(ds.path, ds.manifest, ds.episodes)
    gate = threading.Event()
    reading = stream._read_shard

    def slow_read(ds_: Dataset, shard: int, columns: list[str]) -> dict[str, np.ndarray]:
        if shard == 2:  # the read queued before shard 1's prepare holds the reader until the checks asked
            assert gate.wait(10)
        return reading(ds_, shard, columns)

    class Asking(_Prepared):
        def shard(self, shard: ShardView) -> Iterable[Finding]:
            yield from super().shard(shard)
            if len(self.taken) == 2:  # shard 1 took its value: the reader may go on
                gate.set()

    check = Asking()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream, "_read_shard", slow_read)
        runner_module.run_shards(
            view, lambda: stream.ReadAhead(ds).views(prepare=runner_module.preparing([check])), [check]
        )
    assert check.taken[1] == (0.5, True)  # shard 1: taken back from the reader, computed by the checks' thread
    assert len(check.threads) + sum(computed for _, computed in check.taken) == fixtures.EPISODES


def test_what_prepare_raises_comes_to_the_check_that_takes_its_result(tmp_path: Path) -> None:
    ds = Dataset.open(_sharded(tmp_path))
    view = DatasetView(ds.path, ds.manifest, ds.episodes)

    started = threading.Event()

    class Failing(_Prepared):
        def prepare(self, shard: ShardView) -> None:
            started.set()
            raise OSError("prepare failed")

        def shard(self, shard: ShardView) -> Iterable[Finding]:
            assert started.wait(10)  # the reader got to prepare before the check asks for its result
            return super().shard(shard)

    check = Failing()
    with pytest.raises(OSError, match="prepare failed"):
        runner_module.run_shards(view, lambda: stream.ReadAhead(ds).views(prepare=[check.prepare]), [check])


def test_action_fits_prepared_ahead_are_those_the_check_computes(tmp_path: Path) -> None:
    """RDV501's fits worked out by prepare on the reader's thread are the ones it computes in shard() itself:
    the same findings with and without prepare, for every planted action problem."""
    reported = set()
    for plants in [(), ("absolute_labelled_delta",), ("delta",), ("lead",), ("nan",)]:
        ds = Dataset.open(_sharded(tmp_path / "-".join(plants or ("clean",)), *plants))
        found: list[list[Finding]] = []
        for hooks in (True, False):
            check = ActionSemanticsFit()
            view = DatasetView(ds.path, ds.manifest, ds.episodes)
            reader = stream.ReadAhead(ds)
            prepare = runner_module.preparing([check]) if hooks else []
            assert bool(prepare) == hooks
            found.append(runner_module.run_shards(view, lambda r=reader, p=prepare: r.views(prepare=p), [check]))
        assert found[0] == found[1]
        reported |= {f.severity for f in found[0]}
    assert Severity.ERROR in reported  # the planted problems were found


def test_cast_buffers_are_reused_only_when_no_view_of_them_is_alive() -> None:
    """A shard's float64 vectors go into a buffer of an earlier shard only once nothing refers to it: values a
    check kept (a view of an episode's rows) never change under it."""
    casts = stream.Casts()
    first = np.arange(12, dtype=np.float32).reshape(6, 2)
    kept = casts.cast(first)[2:4]  # a check keeps an episode's rows
    second = casts.cast(first + 100)
    np.testing.assert_array_equal(kept, first[2:4])  # not overwritten
    assert np.shares_memory(second, casts._held[-1]) and not np.shares_memory(second, kept)
    owner = id(_owner(second))
    del second
    third = casts.cast(first[:4] - 1)  # a smaller shard fits the buffer nobody refers to any more
    assert id(_owner(third)) == owner
    assert third.flags.f_contiguous and third.dtype == np.float64
    np.testing.assert_array_equal(third, first[:4] - 1)
    np.testing.assert_array_equal(kept, first[2:4])
    del kept
    assert len(casts._held) == 2


def _owner(array: np.ndarray) -> np.ndarray:
    """The array that owns ``array``'s memory."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array

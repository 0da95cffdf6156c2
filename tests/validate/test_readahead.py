"""The shards read ahead on a helper thread from the moment a run starts: the first read overlaps building the
checks, the reader works out the extents, and stored rows stay right when asked from more than one thread."""

from __future__ import annotations

import threading
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
from rdstd.validate.check import Extent
from rdstd.validate.config import load
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

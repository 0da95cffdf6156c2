"""The quantile reservoir of a long episode is kept in a temporary file, not resident while the episode is written
(#11: a 20-minute recording's ~36,000 frames held ~3.6 MB through the whole write)."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from rdstd.store.stats import RunningStats


def _resident_kb(array: np.ndarray) -> int:
    start = array.ctypes.data
    inside, found = False, 0
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= start < hi
        elif inside and head == "Rss:":
            found = int(line.split()[1])
    return found


@pytest.mark.skipif(
    not Path("/proc/self/smaps").exists() or not hasattr(mmap, "MADV_DONTNEED"), reason="reads /proc/self/smaps"
)
def test_a_long_episodes_reservoir_is_not_resident_while_it_fills_and_gives_the_same_quantiles() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(36_000, 14))  # float64: 4 MB of reservoir rows
    stats = RunningStats(14)
    episode = stats.episode()
    for start in range(0, len(rows), 32):  # a converter's chunks of one long episode
        episode.update(rows[start : start + 32])
    assert _resident_kb(stats.sample) * 1024 < 1.5 * (1 << 20)  # at most the rows since the last release
    stats.merge(episode)
    out = stats.as_dict()
    assert out["quantiles_exact"]
    expected = np.quantile(rows, [0.01, 0.99], axis=0)
    assert out["q01"] == expected[0].tolist() and out["q99"] == expected[1].tolist()


def test_a_reservoir_past_its_capacity_replaces_rows_in_the_file_as_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from rdstd.store import stats as module

    rng = np.random.default_rng(1)
    rows = rng.normal(size=(12_000, 40))

    def gathered() -> RunningStats:
        stats = RunningStats(40, reservoir_rows=5_000)
        for start in range(0, len(rows), 500):
            episode = stats.episode()
            episode.update(rows[start : start + 500])
            stats.merge(episode)
        return stats

    filed = gathered()
    assert filed._mapping is not None  # 5,000 × 40 × 8 bytes: in a temporary file
    monkeypatch.setattr(module, "_file_mapping", lambda nbytes: None)
    kept = gathered()
    assert kept._mapping is None
    assert filed.as_dict() == kept.as_dict()
    np.testing.assert_array_equal(filed.sample, kept.sample)


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps")
def test_widening_copies_only_the_rows_written() -> None:
    """Widening copied the whole capacity: it read never-written rows (uninitialized memory for a small reservoir:
    a signalling NaN there raised numpy's cast warning) and made the whole new float64 reservoir resident (29 MB
    for 56 dimensions)."""
    stats = RunningStats(56)
    stats.update(np.ones((10, 56), dtype=np.float32))
    stats.update(np.full((10, 56), 0.1))  # not exact in float32: widens
    assert stats.sample.dtype == np.float64 and stats.sample.nbytes == 65_536 * 56 * 8
    assert _resident_kb(stats.sample) < 256
    assert stats.as_dict()["q99"] == np.quantile(np.r_[np.ones(10), np.full(10, 0.1)], 0.99).repeat(56).tolist()

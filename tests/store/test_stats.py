"""Statistics: non-finite values counted and left out, valid JSON, exact merging of episodes and chunks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rdstd
from rdstd.schema import Episode
from rdstd.store import DatasetWriter, layout
from rdstd.store.stats import PENDING_ROWS, RunningStats
from tests.store.helpers import FEATURES, PROVENANCE, make_episode


def strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_nan_and_infinity_are_counted_per_dimension_left_out_and_stats_json_stays_valid(tmp_path: Path) -> None:
    episode = make_episode(0, 10)
    state = episode.vectors["observation.state"]
    state[2, 0], state[5, 0], state[7, 1] = np.nan, np.inf, -np.inf
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer:
        writer.add(episode)
        writer.add(make_episode(1, 4))
        assert writer.nonfinite_counts() == {"observation.state": [2, 1, 0], "action": [0, 0, 0, 0]}
    stats = strict_json((tmp_path / "ds" / layout.STATS).read_text())
    assert isinstance(stats, dict)
    s = stats["observation.state"]
    assert s["nonfinite"] == [2, 1, 0] and s["count"] == [12, 13, 14]
    both = np.concatenate([state, make_episode(1, 4).vectors["observation.state"]]).astype(np.float64)
    finite0 = both[:, 0][np.isfinite(both[:, 0])]
    assert s["mean"][0] == pytest.approx(finite0.mean())
    assert s["max"][0] == pytest.approx(finite0.max())
    assert s["q99"][1] is not None and np.isfinite(s["q99"][1])
    assert rdstd.open(tmp_path / "ds").stats["observation.state"]["nonfinite"] == [2, 1, 0]


def test_a_dimension_with_no_finite_value_has_null_stats() -> None:
    stats = RunningStats(2)
    stats.update(np.array([[np.nan, 1.0], [np.inf, 2.0]]))
    out = stats.as_dict()
    assert out["count"] == [0, 2] and out["nonfinite"] == [2, 0]
    assert out["mean"][0] is None and out["q01"][0] is None and out["std"][1] == pytest.approx(0.5)
    strict_json(json.dumps(out, allow_nan=False))


def feed(stats: RunningStats, episodes: list[np.ndarray], chunk: int) -> None:
    for values in episodes:
        episode = stats.episode()
        for start in range(0, len(values), chunk):
            episode.update(values[start : start + chunk])
        stats.merge(episode)


def test_stats_do_not_depend_on_how_episodes_were_chunked_even_past_the_reservoir() -> None:
    rng = np.random.default_rng(3)
    episodes = [rng.normal(size=(n, 3)) for n in (5000, 17, 9000, 1)]
    results = []
    for chunk in (1, 333, 4096, 100_000):
        stats = RunningStats(3, reservoir_rows=1000)
        feed(stats, episodes, chunk)
        results.append(stats.as_dict())
    assert all(r == results[0] for r in results)
    assert results[0]["quantiles_exact"] is False
    everything = np.concatenate(episodes)
    np.testing.assert_allclose(results[0]["mean"], everything.mean(axis=0))
    np.testing.assert_allclose(results[0]["std"], everything.std(axis=0))
    np.testing.assert_allclose(results[0]["q01"], np.quantile(everything, 0.01, axis=0), atol=0.15)


def test_an_episode_that_is_never_merged_leaves_no_trace_in_the_stats() -> None:
    rng = np.random.default_rng(4)
    before, dropped, after = rng.normal(size=(700, 2)), rng.normal(size=(900, 2)), rng.normal(size=(600, 2))
    clean = RunningStats(2, reservoir_rows=1000)
    feed(clean, [before, after], 50)
    tried = RunningStats(2, reservoir_rows=1000)
    feed(tried, [before], 50)
    abandoned = tried.episode()
    abandoned.update(dropped)  # it wrote into the reservoir's free slots and drew random numbers
    tried.discard(abandoned)
    feed(tried, [after], 50)
    assert tried.as_dict() == clean.as_dict()


def test_streaming_partial_and_merged_stats_give_the_same_moments() -> None:
    """The three ways stats.json moments are made (streaming, per-unit partials, merging datasets) agree."""
    from rdstd.store.stats import PartialStats, merge_moments

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 3)), rng.normal(5, 2, size=(30, 3))
    a[:, 2] = np.nan  # a dimension with no finite value in one part
    streaming, partial = RunningStats(3), PartialStats(3)
    for values in (a, b):
        streaming.update(values)
        partial.update(values)
    parts = []
    for values in (a, b):
        one = RunningStats(3)
        one.update(values)
        parts.append(one.as_dict())
    keys = ("count", "nonfinite", "mean", "std", "min", "max")
    run, part, merged = streaming.as_dict(), partial.as_dict(), merge_moments(parts)
    for key in keys:
        for other in (part[key], merged[key]):
            assert [v is None for v in run[key]] == [v is None for v in other], key
            assert [v for v in run[key] if v is not None] == pytest.approx([v for v in other if v is not None]), key
    assert set(merged) == set(keys) and run["count"] == [80, 80, 30]


def test_quantiles_are_nanquantile_column_by_column_with_nan_and_all_nan_columns() -> None:
    """The vectorised quantiles give numpy's nanquantile numbers exactly (a wide feature, NaN here and there)."""
    import warnings

    rng = np.random.default_rng(5)
    values = rng.normal(size=(3000, 64))
    values[rng.random(values.shape) < 0.002] = np.nan
    values[:, 3] = np.nan
    stats = RunningStats(64)
    stats.update(values)
    out = stats.as_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanquantile(values, [0.01, 0.99], axis=0)
    for i, name in enumerate(("q01", "q99")):
        assert out[name][3] is None
        assert [v for j, v in enumerate(out[name]) if j != 3] == [v for j, v in enumerate(expected[i]) if j != 3]


def test_quantiles_of_the_sorted_transposed_sample_equal_numpys_bit_for_bit() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from rdstd.store.stats import QUANTILES, _column_quantiles

    values = st.floats(-1e300, 1e300, allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-300])

    @settings(max_examples=300, deadline=None)
    @given(arrays(np.float64, st.tuples(st.integers(1, 120), st.integers(1, 5)), elements=values))
    def check(sample: np.ndarray) -> None:
        for qs in (list(QUANTILES.values()), [0.0, 0.25, 0.5, 0.999, 1.0]):
            expected = np.quantile(sample, qs, axis=0)
            assert np.array_equal(_column_quantiles(np.ascontiguousarray(sample.T), qs), expected)

    check()


def test_a_wide_feature_constant_per_episode_has_numpys_quantiles_and_nan_columns_stay_nanquantile() -> None:
    # a language embedding: 512 dimensions, one value per episode repeated over its steps (many equal values)
    rng = np.random.default_rng(3)
    sample = np.repeat(rng.random((300, 512)).astype(np.float32).astype(np.float64), 10, axis=0)
    sample[::7, 5] = np.nan
    stats = RunningStats(512)
    stats.update(sample)
    out = stats.as_dict()
    clean = np.delete(sample, 5, axis=1)
    expected = np.quantile(clean, [0.01, 0.99], axis=0)
    assert np.array_equal(np.delete(np.array(out["q01"], dtype=float), 5), expected[0])
    assert np.array_equal(np.delete(np.array(out["q99"], dtype=float), 5), expected[1])
    assert out["q01"][5] == float(np.nanquantile(sample[:, 5], 0.01))


def _quantiles(stats: RunningStats) -> tuple[list[float | None], list[float | None]]:
    out = stats.as_dict()
    return out["q01"], out["q99"]


def test_float32_rows_keep_a_float32_reservoir_with_the_quantiles_of_their_float64_values() -> None:
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(9000, 7)).astype(np.float32)
    rows[::50] = rows[1::50]  # repeated values too
    small = RunningStats(7, reservoir_rows=4096)  # past the capacity: replacements as well as the fill
    wide = RunningStats(7, reservoir_rows=4096)
    for start in range(0, len(rows), 700):
        small.update(rows[start : start + 700])
        wide.update(rows[start : start + 700].astype(np.float64))
    assert small.sample.dtype == np.float32
    assert wide.sample.dtype == np.float64
    assert _quantiles(small) == _quantiles(wide)  # the same rows sampled, the same numbers
    exact = RunningStats(7)
    exact.update(rows)
    expected = np.quantile(rows.astype(np.float64), [0.01, 0.99], axis=0)
    assert _quantiles(exact) == (expected[0].tolist(), expected[1].tolist())


def test_an_episode_past_the_reservoir_holds_its_pending_rows_in_the_reservoirs_type() -> None:
    """An episode past the reservoir keeps its replacements (up to PENDING_ROWS) until it ends: in float32 while its
    rows are (half the memory), and a float64 row later in the same episode widens without changing a number."""
    rng = np.random.default_rng(8)
    f32 = rng.normal(size=(3000, 4)).astype(np.float32)
    f64 = rng.normal(size=(1000, 4))
    for tail in (None, f64):
        narrow, wide = RunningStats(4, reservoir_rows=512), RunningStats(4, reservoir_rows=512)
        ep_narrow, ep_wide = narrow.episode(), wide.episode()
        for start in range(0, len(f32), 300):
            ep_narrow.update(f32[start : start + 300])
            ep_wide.update(f32[start : start + 300].astype(np.float64))
        assert ep_narrow.writes and all(rows.dtype == np.float32 for _, rows in ep_narrow.writes)
        if tail is not None:
            ep_narrow.update(tail)
            ep_wide.update(tail)
        narrow.merge(ep_narrow)
        wide.merge(ep_wide)
        assert narrow.sample.dtype == (np.float32 if tail is None else np.float64)
        assert _quantiles(narrow) == _quantiles(wide)  # the same rows sampled, the same numbers


def test_a_row_that_is_not_float32_exact_widens_the_reservoir_and_keeps_the_rows_before_it() -> None:
    rng = np.random.default_rng(6)
    first = rng.normal(size=(500, 3)).astype(np.float32)
    second = rng.normal(size=(400, 3))  # float64 values a float32 cannot hold
    stats = RunningStats(3)
    stats.update(first)
    assert stats.sample.dtype == np.float32
    stats.update(second)
    assert stats.sample.dtype == np.float64
    both = np.concatenate([first.astype(np.float64), second])
    expected = np.quantile(both, [0.01, 0.99], axis=0)
    assert _quantiles(stats) == (expected[0].tolist(), expected[1].tolist())


def test_the_reservoir_is_allocated_once_at_its_capacity_and_never_copied_to_grow() -> None:
    stats = RunningStats(14, reservoir_rows=65_536)
    stats.update(np.zeros((10, 14)))
    held = stats.sample
    assert held.shape == (65_536, 14)
    for _ in range(20):
        stats.update(np.ones((4000, 14)))
    assert stats.sample is held


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps")
def _resident_kb(array: np.ndarray) -> int:
    """Resident KiB of the mapping ``array`` starts in (/proc/self/smaps)."""
    start = array.ctypes.data
    resident_kb = 0
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= start < hi
        elif inside and head == "Rss:":
            resident_kb = int(line.split()[1])
    return resident_kb


def test_a_reservoir_filled_an_eighth_takes_about_an_eighth_of_its_memory() -> None:
    """numpy asks for huge pages for arrays over 4 MB: the reservoir is laid out so that the rows written are
    contiguous (one row per dimension touched a page in every dimension's row, all of it resident)."""
    stats = RunningStats(56)  # ALOHA's 4 × 14-d vectors: 29 MB at capacity in float64
    stats.update(np.random.default_rng(0).normal(size=(8192, 56)))
    resident_kb = _resident_kb(stats.sample)
    assert stats.sample.nbytes == 65_536 * 56 * 8
    assert resident_kb * 1024 < stats.sample.nbytes / 3, resident_kb


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


def test_a_compacted_sketch_level_keeps_no_view_of_the_sorted_level_it_came_from() -> None:
    """Each compaction left the odd value as a one-element view of the whole sorted level: a sketch held ~32 KB
    per dimension and level more than its values (13 MB over an ALOHA job's 56 dimensions, #10)."""
    from rdstd.store.stats import QuantileSketch

    sketch = QuantileSketch(k=64)
    sketch.add(np.random.default_rng(0).normal(size=64 * 40 + 1))
    held = sum(level.nbytes if level.base is None else level.base.nbytes for level in sketch.levels)
    assert held == sum(level.nbytes for level in sketch.levels)


def test_a_large_reservoir_is_a_mapping_of_its_own_and_freeing_it_gives_its_memory_back() -> None:
    """Each batch unit's writer has a reservoir: from glibc's heap, a freed one raised the mmap threshold and the
    next came from the heap, where its pages stayed resident after it was freed (#10)."""
    import mmap

    def owner(array: np.ndarray) -> object:
        while isinstance(array.base, np.ndarray):
            array = array.base
        base = array.base
        return base.obj if isinstance(base, memoryview) else base

    stats = RunningStats(56)
    stats.update(np.ones((20_000, 56)))
    assert isinstance(owner(stats.sample), mmap.mmap)
    small = RunningStats(2, reservoir_rows=100)
    small.update(np.ones((10, 2)))
    assert owner(small.sample) is None  # small ones stay ordinary arrays


def _long_episode_stats(pending_rows: int, episodes: list[np.ndarray], chunk: int, drop: int | None) -> RunningStats:
    stats = RunningStats(4, reservoir_rows=700, pending_rows=pending_rows)
    for i, values in enumerate(episodes):
        episode = stats.episode()
        for start in range(0, len(values), chunk):
            episode.update(values[start : start + chunk])
        if i == drop:
            stats.discard(episode)
        else:
            stats.merge(episode)
    return stats


def test_replacements_applied_as_they_come_give_the_stats_of_replacements_held_until_the_episode_ends() -> None:
    """An episode with more reservoir replacements than ``pending_rows`` applies them at once and logs what they
    overwrite: the reservoir, the stats and a dropped episode's undo are what holding them all gives."""
    rng = np.random.default_rng(11)
    long_f32 = rng.normal(size=(6000, 4)).astype(np.float32)
    widening = np.concatenate([rng.normal(size=(2500, 4)).astype(np.float32), rng.normal(size=(2500, 4))])
    episodes = [rng.normal(size=(900, 4)).astype(np.float32), long_f32, widening, rng.normal(size=(3000, 4))]
    for drop in (None, 1, 2, 3):
        held = _long_episode_stats(10**9, episodes, 333, drop)
        for pending, chunk in ((0, 333), (5, 1000), (64, 7)):
            applied = _long_episode_stats(pending, episodes, chunk, drop)
            assert applied.rows_seen == held.rows_seen
            np.testing.assert_array_equal(applied.sample[: applied.capacity], held.sample[: held.capacity])
            assert applied.sample.dtype == held.sample.dtype
            assert applied.as_dict() == held.as_dict()
    # and a dropped episode leaves the stats of never having seen it
    kept = [e for i, e in enumerate(episodes) if i != 2]
    never = RunningStats(4, reservoir_rows=700, pending_rows=0)
    for values in kept:
        never.update(values)
    dropped = _long_episode_stats(0, episodes, 333, 2)
    assert never.as_dict() == dropped.as_dict()


def test_an_episode_far_longer_than_the_reservoir_holds_a_bounded_number_of_pending_rows() -> None:
    """A 10-hour recording is one episode: its reservoir replacements (~2.8 × the reservoir) must not wait in
    memory until it ends. Measured with tracemalloc (numpy's buffers; the reservoir is a mapping, not traced)."""
    import tracemalloc

    rng = np.random.default_rng(12)
    block = rng.normal(size=(1024, 14))
    peaks = {}
    for pending in (PENDING_ROWS, 10**9):  # the bound, and what holding them all until the end takes
        stats = RunningStats(14, pending_rows=pending)
        episode = stats.episode()
        tracemalloc.start()
        for _ in range(200_000 // len(block)):
            episode.update(block)
        peaks[pending] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        stats.merge(episode)
        assert stats.as_dict()["quantiles_exact"] is False
    assert peaks[PENDING_ROWS] < 3e6, peaks
    assert peaks[10**9] > 3 * peaks[PENDING_ROWS], peaks  # the measure tells the two apart


def _write_with_small_reservoir(path: Path, episodes: list[Episode], dropped: int | None) -> dict[str, Any]:
    """A dataset of ``episodes`` (the one at ``dropped`` begun, appended, then abandoned), with a reservoir of 50
    rows and 2 pending replacements, so every episode past the first applies its replacements at once and logs
    what they overwrite."""
    with DatasetWriter(path, FEATURES, PROVENANCE) as writer:
        for running in writer._stats.values():
            running.capacity, running.pending_rows = 50, 2
        for i, episode in enumerate(episodes):
            if i == dropped:
                writer.begin_episode(episode.meta)
                writer.append(episode)
                writer.abort_episode()
            else:
                writer.add(episode)
    stats: dict[str, Any] = json.loads((path / layout.STATS).read_text())
    return stats


def test_a_writers_long_episodes_log_their_reservoir_undo_in_the_output_folder_not_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The undo log is an anonymous file in the folder being written (TMPDIR may be missing or small), and an
    abandoned episode's replacements are undone: the stats are those of a dataset that never had it."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    first, dropped, last = make_episode(0, 60), make_episode(1, 400), make_episode(2, 300)
    with_dropped = _write_with_small_reservoir(tmp_path / "a", [first, dropped, last], dropped=1)
    never = _write_with_small_reservoir(tmp_path / "b", [first, last], dropped=None)
    kept = _write_with_small_reservoir(tmp_path / "c", [first, dropped, last], dropped=None)
    assert with_dropped == never
    assert never["observation.state"]["count"] == [360, 360, 360]
    assert never["observation.state"]["quantiles_exact"] is False
    assert kept["observation.state"]["q01"] != never["observation.state"]["q01"]  # the dropped rows would count


def test_rows_added_at_once_apply_their_replacements_without_an_undo_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``update`` (merge, validate) is never dropped: it writes no undo log (no TMPDIR needed) and gives the stats
    an undoable episode gives."""
    import tempfile

    rng = np.random.default_rng(13)
    rows = rng.normal(size=(5000, 3))
    logged = RunningStats(3, reservoir_rows=100, pending_rows=0)
    episode = logged.episode()
    episode.update(rows)
    assert episode.undo is not None
    logged.merge(episode)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    direct = RunningStats(3, reservoir_rows=100, pending_rows=0)
    direct.update(rows)
    assert direct.as_dict() == logged.as_dict()
    np.testing.assert_array_equal(direct.sample, logged.sample)

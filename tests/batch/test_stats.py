"""Mergeable statistics: exact moments, a deterministic quantile sketch within its documented error."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rdstd.store.stats import PartialStats, QuantileSketch, RunningStats


def test_small_data_gives_exact_quantiles_and_the_same_stats_as_the_streaming_writer() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(3000, 3))
    rows[5, 1] = np.nan
    parts = [PartialStats(3) for _ in range(3)]
    for part, block in zip(parts, np.array_split(rows, 3), strict=True):
        part.update(block)
    merged = PartialStats(3)
    for part in parts:
        merged.merge(part)
    running = RunningStats(3)
    running.update(rows)
    ours, theirs = merged.as_dict(), running.as_dict()
    assert ours["count"] == theirs["count"] and ours["nonfinite"] == theirs["nonfinite"] == [0, 1, 0]
    assert ours["min"] == theirs["min"] and ours["max"] == theirs["max"]
    np.testing.assert_allclose(ours["mean"], theirs["mean"], rtol=1e-12)
    np.testing.assert_allclose(ours["std"], theirs["std"], rtol=1e-12)
    assert ours["q01"] == theirs["q01"] and ours["q99"] == theirs["q99"]
    assert ours["quantiles_exact"] is True


def test_the_sketch_stays_within_its_rank_error_bound() -> None:
    rng = np.random.default_rng(2)
    values = rng.standard_cauchy(300_000)
    sketch = QuantileSketch(k=512)
    for block in np.array_split(values, 37):
        part = QuantileSketch(k=512)
        part.add(block)
        sketch.merge(part)
    assert not sketch.exact and sketch.count == len(values)
    ordered = np.sort(values)
    levels = math.ceil(math.log2(len(values) / 512)) + 1
    bound = levels / 512  # the documented worst case: H / k of the rank
    for q in (0.01, 0.25, 0.5, 0.99):
        found = sketch.quantiles([q])[0]
        rank = np.searchsorted(ordered, found) / len(values)
        assert abs(rank - q) <= bound, (q, rank, bound)


def test_the_same_parts_merged_in_the_same_order_give_the_same_bytes() -> None:
    rng = np.random.default_rng(3)
    blocks = [rng.normal(size=(int(rng.integers(100, 3000)), 2)) for _ in range(20)]

    def run() -> str:
        total = PartialStats(2, k=256)
        for block in blocks:
            part = PartialStats(2, k=256)
            part.update(block)
            total.merge(PartialStats.from_json(json.loads(json.dumps(part.to_json()))))
        return json.dumps(total.as_dict())

    assert run() == run()
    assert json.loads(run())["quantiles_exact"] is False


def test_a_units_statistics_round_trip_through_the_journal_file_exactly() -> None:
    from rdstd.store.stats import partials_from_bytes, partials_to_bytes

    rng = np.random.default_rng(4)
    parts = {"a": PartialStats(3, k=64), "b.c": PartialStats(1, k=64), "empty": PartialStats(2, k=64)}
    for _ in range(40):  # enough values that the sketches compact into several levels
        parts["a"].update(rng.normal(size=(50, 3)))
        parts["b.c"].update(np.where(rng.random((50, 1)) < 0.1, np.nan, rng.normal(size=(50, 1))))
    back = partials_from_bytes(partials_to_bytes(parts))
    assert list(back) == list(parts)
    for key, part in parts.items():
        assert json.dumps(back[key].to_json()) == json.dumps(part.to_json())
        assert json.dumps(back[key].as_dict()) == json.dumps(part.as_dict())
    assert len(back["a"].sketches[0].levels) > 1 and back["b.c"].as_dict()["nonfinite"][0] > 0


def _one_sketch_per_dimension(blocks: list[np.ndarray], k: int) -> list[QuantileSketch]:
    """What a unit's sketches are when each dimension is sketched on its own (the reference): one sketch per
    dimension and block (episode), merged in order."""
    sketches = [QuantileSketch(k) for _ in range(blocks[0].shape[1])]
    for block in blocks:
        for d, sketch in enumerate(sketches):
            column = block[:, d]
            episode = QuantileSketch(k)
            episode.add(column[np.isfinite(column)])
            sketch.merge(episode)
    return sketches


def test_a_feature_sketched_as_one_is_each_dimension_sketched_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """PartialStats holds a feature's dimensions as one sketch while they have all seen the same values count: the
    sketches, stats and journal bytes are those of one QuantileSketch per dimension (also once a NaN splits them,
    and when a held-as-one part merges with a split one), and no per-dimension sketch is made while no NaN came."""
    from rdstd.store.stats import partials_from_bytes, partials_to_bytes

    rng = np.random.default_rng(5)
    k, size = 64, 5
    units = [[rng.normal(size=(int(rng.integers(1, 90)), size)) for _ in range(12)] for _ in range(4)]
    units[2][7][3, 1] = np.nan  # one unit's dimension 1 sees a NaN: that unit's sketches go apart
    made = 0
    original = QuantileSketch.__init__

    def counting(self: QuantileSketch, k: int = 4096) -> None:
        nonlocal made
        made += 1
        original(self, k)

    monkeypatch.setattr(QuantileSketch, "__init__", counting)
    total = PartialStats(size, k=k)
    reference = [QuantileSketch(k) for _ in range(size)]
    for u, blocks in enumerate(units):
        made = 0
        unit = PartialStats(size, k=k)
        for block in blocks:
            episode = PartialStats(size, k=k)  # as a batch unit does: an episode's, merged when it is written
            episode.update(block)
            unit.merge(episode)
        assert (made > 0) == (u == 2), (u, made)  # per-dimension sketches only in the unit where a NaN came
        journal = partials_to_bytes({"f": unit})
        back = partials_from_bytes(journal)["f"]  # through the journal, as at assembly
        assert (back._columns is None) == (u == 2)  # read back as one where the unit held it as one
        unit.sketches  # noqa: B018 - apart now: the journal written from them is the same bytes
        assert partials_to_bytes({"f": unit}) == journal
        total.merge(back)
        for mine, theirs in zip(reference, _one_sketch_per_dimension(blocks, k), strict=True):
            mine.merge(theirs)
    expected = PartialStats(size, k=k)
    expected.moments = total.moments
    expected.sketches = reference
    assert len(total.sketches[0].levels) > 2  # compacted several times
    for mine, theirs in zip(total.sketches, reference, strict=True):
        assert mine.flips == theirs.flips
        assert len(mine.levels) == len(theirs.levels)
        for a, b in zip(mine.levels, theirs.levels, strict=True):
            np.testing.assert_array_equal(a, b)
    assert json.dumps(total.as_dict()) == json.dumps(expected.as_dict())
    assert partials_to_bytes({"f": total}) == partials_to_bytes({"f": expected})

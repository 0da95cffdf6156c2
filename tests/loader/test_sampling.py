"""Samplers and numpy batches: deterministic from a seed, ranks disjoint and complete, episode blocks in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rdstd.errors import UsageError
from rdstd.loader import FrameDataset
from rdstd.loader.iterate import batches
from rdstd.loader.sampling import EpisodeSampler, FrameSampler
from tests.loader.helpers import ACTION, STATE, write


def test_the_same_seed_gives_the_same_order_and_epochs_differ() -> None:
    a, b = FrameSampler(100, seed=7), FrameSampler(100, seed=7)
    assert list(a) == list(b)
    assert sorted(a) == list(range(100)) and list(a) != list(range(100))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(100))
    assert list(FrameSampler(100, seed=8)) != first
    assert list(FrameSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_are_disjoint_and_complete(world: int) -> None:
    shares = [list(FrameSampler(101, seed=3, rank=r, world_size=world)) for r in range(world)]
    every = [i for s in shares for i in s]
    assert sorted(every) == list(range(101))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    equal = [list(FrameSampler(101, seed=3, rank=r, world_size=world, equal=True)) for r in range(world)]
    assert len({len(s) for s in equal}) == 1 and set().union(*map(set, equal)) == set(range(101))
    with pytest.raises(UsageError):
        FrameSampler(10, rank=world, world_size=world)


def test_episode_blocks_are_consecutive_within_an_episode_and_split_whole() -> None:
    lengths = [7, 3, 10]
    starts = [0, 7, 10]
    sampler = EpisodeSampler(lengths, block=4, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(20))
    blocks = [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12, 13], [14, 15, 16, 17], [18, 19]]
    pos = 0
    seen = []
    while pos < len(order):
        block = next(b for b in blocks if b[0] == order[pos])
        assert order[pos : pos + len(block)] == block
        seen.append(block)
        pos += len(block)
    assert len(seen) == len(blocks) and seen != blocks  # shuffled blocks, each in order
    assert all(any(s <= b[0] and b[-1] < s + n for s, n in zip(starts, lengths, strict=True)) for b in blocks)
    ranks = [list(EpisodeSampler(lengths, block=4, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == list(range(20)) and not set(ranks[0]) & set(ranks[1])
    with pytest.raises(UsageError):
        EpisodeSampler(lengths, block=0)


def test_numpy_batches_cover_the_epoch_deterministically(tmp_path: Path) -> None:
    fd = FrameDataset(write(tmp_path / "ds", [9, 14]), [STATE], windows={ACTION: range(0, 3)})
    got = list(batches(fd, 5, seed=2))
    again = list(batches(fd, 5, seed=2, prefetch=0))
    assert [len(b["index"]) for b in got] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate([b["index"] for b in got]).tolist()) == list(range(23))
    for a, b in zip(got, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert [len(b["index"]) for b in batches(fd, 5, drop_last=True)] == [5, 5, 5, 5]
    ordered = list(batches(fd, 10, sampler=range(23)))
    assert ordered[0]["index"].tolist() == list(range(10))
    with pytest.raises(UsageError):
        next(batches(fd, 0))

"""Which frames an epoch visits, in which order, on which rank: deterministic from a seed.

:class:`FrameSampler` shuffles all frames; :class:`EpisodeSampler` shuffles blocks of consecutive frames of
an episode and visits each block in order, so that windows of neighbouring samples share their frames (read and
decoded once per batch, video decoded forward without seeking). Both split an epoch between ``world_size``
ranks: rank ``r`` takes every ``world_size``-th item of the shuffled order (frames, or whole blocks), so the
ranks' shares are disjoint and together complete. ``equal=True`` pads shares to the same length by taking frames
again from the start of the order (DDP needs the same number of steps on every rank); then shares may overlap.
Call ``set_epoch(e)`` before each epoch for a new order (the same ``seed`` and epoch give the same order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from rdstd.errors import UsageError


class FrameSampler:
    """Every frame index of ``n``, shuffled (or in order), this rank's share; see the module doc."""

    def __init__(
        self,
        n: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        equal: bool = False,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} is not within a world of {world_size}", situation="rank-invalid")
        self.n = n
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.equal = equal
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` from now on."""
        self.epoch = epoch

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _order(self) -> npt.NDArray[np.int64] | list[npt.NDArray[np.int64]]:
        """The epoch's order: frame indices, or units of frames (blocks) that are never split between ranks."""
        order = self._rng().permutation(self.n) if self.shuffle else np.arange(self.n)
        return order.astype(np.int64)

    def indices(self) -> npt.NDArray[np.int64]:
        """This rank's frame indices for the current epoch, in order."""
        units = self._order()
        mine = units[self.rank :: self.world_size]
        if isinstance(units, list):
            out = np.concatenate(mine) if len(mine) else np.zeros(0, dtype=np.int64)
            everything = np.concatenate(units) if units else np.zeros(0, dtype=np.int64)
        else:
            out, everything = np.asarray(mine, dtype=np.int64), units
        if self.equal and len(everything):
            want = -(-self.n // self.world_size)
            if len(out) < want:
                out = np.concatenate([out, np.resize(everything, want - len(out))])
            out = out[:want]
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return len(self.indices())


class EpisodeSampler(FrameSampler):
    """Blocks of ``block`` consecutive frames of each episode (episodes of ``lengths`` frames, in dataset order),
    the blocks shuffled, each visited in order; ranks take whole blocks. See the module doc."""

    def __init__(
        self,
        lengths: Sequence[int] | npt.NDArray[np.integer],
        *,
        block: int = 16,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        equal: bool = False,
    ) -> None:
        if block < 1:
            raise UsageError(f"block {block} must be at least 1 frame", situation="block-size-invalid")
        lengths = np.asarray(lengths, dtype=np.int64)
        super().__init__(int(lengths.sum()), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size, equal=equal)
        self.block = block
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._blocks = [
            np.arange(s + b, s + min(b + block, n), dtype=np.int64)
            for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)
            for b in range(0, n, block)
        ]

    def _order(self) -> list[npt.NDArray[np.int64]]:
        if not self.shuffle:
            return list(self._blocks)
        return [self._blocks[i] for i in self._rng().permutation(len(self._blocks))]

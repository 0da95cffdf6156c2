"""torch on top of the numpy loader (``pip install 'rdstd[torch]'``): a ``Dataset`` and a ``DataLoader`` factory.

:class:`TorchFrames` wraps a :class:`~rdstd.loader.frames.FrameDataset`; the DataLoader hands each worker whole
batches of indices (``__getitems__``), so a batch is read with one :meth:`FrameDataset.batch` call (each row
group once, images decoded in the worker's thread pool). Files are opened lazily in each worker process (the
reader reopens its handles after a fork). :func:`make_loader` picks the sampler (shuffled frames, or episode
blocks for windows), the rank and world size (from ``torch.distributed`` when it is initialised), and sensible
defaults: 2 workers, persistent workers, prefetch 2, pinned memory when CUDA is available.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rdstd.errors import MissingDependencyError
from rdstd.loader.frames import FrameDataset
from rdstd.loader.mixture import Mixture
from rdstd.loader.sampling import EpisodeSampler, FrameSampler

try:
    import torch
    from torch.utils.data import DataLoader, Dataset
except ImportError as exc:
    raise MissingDependencyError("torch", "torch", purpose="load batches with torch") from exc


def to_tensors(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """numpy arrays (and numbers) of a batch as tensors (zero-copy where numpy allows)."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


def collate(batch: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """A DataLoader ``collate_fn``: a batch from ``__getitems__`` (a dict of stacked arrays) or a list of samples."""
    if isinstance(batch, Mapping):
        return to_tensors(batch)
    return to_tensors({k: np.stack([np.asarray(s[k]) for s in batch]) for k in batch[0]})


class TorchFrames(Dataset[dict[str, Any]]):
    """A torch map-style Dataset over a :class:`FrameDataset` or a :class:`Mixture` (samples as numpy;
    :func:`collate` makes tensors)."""

    def __init__(self, frames: FrameDataset | Mixture) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.frames[i]

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        """A whole batch at once (the DataLoader calls this with a batch of indices)."""
        return self.frames.batch(list(indices))


def _distributed() -> tuple[int, int]:
    """(rank, world size) from torch.distributed when initialised, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_loader(
    frames: FrameDataset | Mixture,
    batch_size: int = 32,
    *,
    seed: int = 0,
    sampler: Iterable[int] | None = None,
    episode_blocks: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    num_workers: int = 2,
    **loader_options: Any,
) -> DataLoader[dict[str, Any]]:
    """A DataLoader of tensor batches over ``frames``, deterministic from ``seed``.

    The sampler (unless ``sampler`` is given): for a :class:`Mixture`, its weighted :class:`MixtureSampler`;
    ``episode_blocks=k`` samples blocks of ``k`` consecutive frames (:class:`EpisodeSampler`: windows share their
    frames); else frames are shuffled one by one. ``rank``/``world_size`` default to torch.distributed's. Call
    ``loader.sampler.set_epoch(e)`` each epoch. ``loader_options`` override the DataLoader's defaults
    (``pin_memory``, ``persistent_workers``, ``prefetch_factor``, ``drop_last``, ``multiprocessing_context`` …).
    """
    found_rank, found_world = _distributed()
    rank = found_rank if rank is None else rank
    world_size = found_world if world_size is None else world_size
    if sampler is None:
        if isinstance(frames, Mixture):
            sampler = frames.sampler(seed=seed, rank=rank, world_size=world_size)
        elif episode_blocks:
            sampler = EpisodeSampler(
                frames.episode_lengths, block=episode_blocks, seed=seed, rank=rank, world_size=world_size
            )
        else:
            sampler = FrameSampler(len(frames), seed=seed, rank=rank, world_size=world_size)
    options: dict[str, Any] = {"pin_memory": torch.cuda.is_available(), "collate_fn": collate}
    if num_workers > 0:
        options.update(persistent_workers=True, prefetch_factor=2)
        threads = max(1, (os.cpu_count() or 1) // num_workers)  # decoding threads per worker: one core each
        parts = [s.frames for s in frames.sources] if isinstance(frames, Mixture) else [frames]
        for part in parts:
            part.threads = min(part.threads, threads)
    options.update(loader_options)
    return DataLoader(TorchFrames(frames), batch_size=batch_size, sampler=sampler, num_workers=num_workers, **options)

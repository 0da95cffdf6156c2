"""The training loader: numpy first, torch on top.

:class:`FrameDataset` (windows, padding masks, batched reads, images at the size the model takes, normalization),
:class:`Mixture` of datasets in a common layout, seeded samplers sharded by rank, :func:`batches` for JAX or any
framework. The torch ``Dataset`` and ``DataLoader`` factory are in :mod:`rdstd.loader.torchdata`, imported only
when used (``pip install 'rdstd[torch]'``).
"""

from __future__ import annotations

from rdstd.loader.frames import FrameDataset
from rdstd.loader.images import ImageOptions
from rdstd.loader.iterate import batches
from rdstd.loader.mixture import Mixture, MixtureSampler, Source
from rdstd.loader.normalize import Normalizer, skipped_dims
from rdstd.loader.sampling import EpisodeSampler, FrameSampler
from rdstd.loader.windows import Window

__all__ = [
    "EpisodeSampler",
    "FrameDataset",
    "FrameSampler",
    "ImageOptions",
    "Mixture",
    "MixtureSampler",
    "Normalizer",
    "Source",
    "Window",
    "batches",
    "skipped_dims",
]

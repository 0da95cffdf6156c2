"""The training loader: numpy first (:class:`FrameDataset`, samplers, :func:`batches`), torch on top
(:mod:`rdstd.loader.torchdata`, imported only when used)."""

from __future__ import annotations

from rdstd.loader.frames import FrameDataset
from rdstd.loader.images import ImageOptions
from rdstd.loader.normalize import Normalizer, skipped_dims
from rdstd.loader.windows import Window

__all__ = ["FrameDataset", "ImageOptions", "Normalizer", "Window", "skipped_dims"]

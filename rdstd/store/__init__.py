"""The canonical dataset on disk: streaming writer (atomic shards), random-access reader, stats.

The names below load on first use, so that writing a dataset does not import the reader's polars.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rdstd.store.reader import Dataset, EpisodeData, LazyImages, read_manifest
    from rdstd.store.writer import DatasetWriter

__all__ = ["Dataset", "DatasetWriter", "EpisodeData", "LazyImages", "read_manifest"]

_WHERE = {
    "Dataset": "rdstd.store.reader",
    "EpisodeData": "rdstd.store.reader",
    "LazyImages": "rdstd.store.reader",
    "read_manifest": "rdstd.store.reader",
    "DatasetWriter": "rdstd.store.writer",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'rdstd.store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

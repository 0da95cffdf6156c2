"""rdstd: one canonical, self-describing episode format for robot-learning data.

``import rdstd`` stays light: heavy backends (zarr, h5py, tensorflow-datasets, rerun, torch, ray) load on use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rdstd.ops.filter import filter_episodes
    from rdstd.ops.merge import merge
    from rdstd.ops.resample import resample
    from rdstd.ops.split import split
    from rdstd.store.reader import Dataset

__all__ = ["__version__", "filter_episodes", "merge", "open", "resample", "split"]

#: Canonical -> canonical operations, imported on first use: name -> module.
_OPS = {
    "merge": "rdstd.ops.merge",
    "split": "rdstd.ops.split",
    "filter_episodes": "rdstd.ops.filter",
    "resample": "rdstd.ops.resample",
}


def __getattr__(name: str) -> Any:
    """``rdstd.merge``, ``rdstd.split``, ``rdstd.filter_episodes``, ``rdstd.resample``, loaded lazily."""
    if name in _OPS:
        import importlib

        return getattr(importlib.import_module(_OPS[name]), name)
    raise AttributeError(f"module 'rdstd' has no attribute {name!r}")


def open(path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> Dataset:
    """Open a canonical rdstd dataset: ``len()``, ``.episodes``, ``.episode(i)``, ``.frame(i)``, ``.select(expr)``.

    ``path`` may be a URL (``s3://bucket/ds`` or any fsspec protocol; ``pip install 'rdstd[cloud]'``), read with
    read-ahead through a local block cache; ``storage_options`` go to the filesystem (endpoint, credentials).
    """
    from rdstd.store.reader import Dataset

    return Dataset.open(path, storage_options=storage_options)

"""rdstd: one canonical, self-describing episode format for robot-learning data.

``import rdstd`` stays light: heavy backends (zarr, h5py, tensorflow-datasets, rerun, torch, ray) load on use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rdstd.store.reader import Dataset

__all__ = ["__version__", "open"]


def open(path: str | os.PathLike[str]) -> Dataset:
    """Open a canonical rdstd dataset: ``len()``, ``.episodes``, ``.episode(i)``, ``.frame(i)``, ``.select(expr)``."""
    from rdstd.store.reader import Dataset

    return Dataset.open(path)

"""The content hash of an episode: what makes two episodes duplicates (the same definition as validate's RDV802)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt


def content_hash(timestamps: npt.NDArray[np.float64], vectors: Mapping[str, npt.NDArray[Any]]) -> str:
    """blake2b-128 (hex) of the timestamps, then each vector feature's name and bytes in name order."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(timestamps).tobytes())
    for key in sorted(vectors):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(vectors[key]).tobytes())
    return digest.hexdigest()

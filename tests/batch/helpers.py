"""Shared helpers of the batch tests: a generated source and a byte-level digest of a canonical dataset."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rdstd.testing.fixtures import make_zarr_replay_buffer

#: Episode lengths of the generated source (varied, so units hold different frame counts).
LENGTHS = [12 + (i * 5) % 11 for i in range(40)]


def make_source(folder: Path, lengths: list[int] | None = None) -> Path:
    """A PushT-like zarr replay buffer in ``folder`` (made once per folder)."""
    path = folder / "source.zarr"
    if not path.exists():
        make_zarr_replay_buffer(path, LENGTHS if lengths is None else lengths, image_hw=(16, 16))
    return path


def digest(dataset: Path) -> dict[str, Any]:
    """Every file's sha256 (the manifest compared without its creation time)."""
    files = {
        f.relative_to(dataset).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(dataset.rglob("*"))
        if f.is_file() and f.name != "rdstd.json"
    }
    manifest = json.loads((dataset / "rdstd.json").read_text())
    manifest["provenance"].pop("created_utc")
    return files | {"rdstd.json": manifest}

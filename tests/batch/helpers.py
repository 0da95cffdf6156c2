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


#: Episode lengths of the video-kept dataset the export tests use.
EXPORT_LENGTHS = [5 + (i * 3) % 7 for i in range(9)]


def file_digests(folder: Path) -> dict[str, str]:
    """Every file's sha256, by path relative to ``folder``."""
    return {
        f.relative_to(folder).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def video_kept_canonical(root: Path) -> Path:
    """A canonical dataset at ``root/canonical`` with its camera kept as video (9 episodes, one mp4 each, converted
    from a generated LeRobot v2.1 source)."""
    from rdstd.convert.pipeline import convert
    from rdstd.testing.lerobot import Spec, make_dataset

    source = make_dataset(root / "src", Spec(version="v2.1", lengths=EXPORT_LENGTHS))
    convert(source, root / "canonical")
    return root / "canonical"


def digest(dataset: Path) -> dict[str, Any]:
    """Every file's sha256 (the manifest compared without its creation time)."""
    files = {k: v for k, v in file_digests(dataset).items() if k != "rdstd.json"}
    manifest = json.loads((dataset / "rdstd.json").read_text())
    manifest["provenance"].pop("created_utc")
    return files | {"rdstd.json": manifest}

"""``make demo``: generate a small source dataset in a real format, convert it, and show what came out.

Runs the same code paths as the CLI: a Diffusion-Policy-style zarr replay buffer written with zarr itself,
``rdstd convert`` with the shipped PushT spec, ``rdstd info``, then one frame read back through ``rdstd.open``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import rdstd
from rdstd.cli.app import main as cli
from rdstd.testing.fixtures import make_zarr_replay_buffer


def run(root: Path = Path("demo-out")) -> int:
    """Generate, convert, describe; returns the exit code."""
    shutil.rmtree(root, ignore_errors=True)
    source = root / "pusht_like.zarr"
    lengths = [60 + (i * 37) % 90 for i in range(40)]
    print(f"$ (generating a zarr v2 replay buffer: {len(lengths)} episodes, {sum(lengths)} steps, 96x96 images)")
    make_zarr_replay_buffer(source, lengths, image_hw=(96, 96), chunk_rows=161)
    for args in (
        ["info", str(source)],
        ["convert", str(source), str(root / "canonical"), "--spec", "zarr/pusht"],
        ["info", str(root / "canonical")],
    ):
        print(f"\n$ rdstd {' '.join(args)}", flush=True)
        code = cli(args)
        sys.stdout.flush()
        if code:
            return code
    ds = rdstd.open(root / "canonical")
    frame = ds.frame(100)
    print("\n$ python -c \"import rdstd; ds = rdstd.open('demo-out/canonical'); ds.frame(100)\"")
    print(f"{ds!r}")
    for key, value in frame.items():
        shape = getattr(value, "shape", None)
        print(f"  {key}: {value if shape is None else f'array{list(shape)} {value.dtype}'}")
    print(f"  action units: {[d.unit.value for d in ds.manifest.vectors['action'].dims]}")
    return 0


if __name__ == "__main__":
    sys.exit(run())

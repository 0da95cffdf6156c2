"""Random single-frame reads through Dataset.frame against the bare JPEG decode of the same frames.

One 640×480 JPEG camera + a 14-float state. Workers are processes (as in a torch DataLoader). The row-group
sweep shows the knob between random access and file overhead. Run: .venv/bin/python bench/store_read.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
import simplejpeg

import rdstd
from bench.common import camera_frames, episodes, save, table, write_dataset

EPISODES, LENGTH = 20, 100


def read_frames(path: str, indices: list[int]) -> float:
    ds = rdstd.open(path)
    started = time.perf_counter()
    for i in indices:
        ds.frame(i)
    return time.perf_counter() - started


_FRAMES: list[bytes] = []


def _keep_frames(frames: list[bytes]) -> None:
    """Pool initializer: each worker gets the encoded frames once, before any timing."""
    _FRAMES[:] = frames


def decode_only(_: str, indices: list[int]) -> float:
    started = time.perf_counter()
    for i in indices:
        simplejpeg.decode_jpeg(_FRAMES[i], colorspace="RGB")
    return time.perf_counter() - started


def rate(workers: int, fn, args_per_worker: list[tuple], frames: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    """Frames per second over ``workers`` processes (wall clock, all workers together)."""
    n = sum(len(a[-1]) for a in args_per_worker)
    if workers == 1:
        _keep_frames(frames)
        return n / fn(*args_per_worker[0])
    with mp.get_context("spawn").Pool(workers, initializer=_keep_frames, initargs=(frames,)) as pool:
        pool.starmap(fn, [(a[0], a[1][:5]) for a in args_per_worker])  # warm up the processes
        started = time.perf_counter()
        pool.starmap(fn, args_per_worker)
        return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=1500)
    parser.add_argument("--row-groups", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    args = parser.parse_args()
    frames = camera_frames(EPISODES * LENGTH // 4)
    eps = episodes(EPISODES, LENGTH, frames)
    total = EPISODES * LENGTH
    all_frames = [f for ep in eps for f in ep.images["observation.images.front"].frames]  # type: ignore[union-attr]
    rng = np.random.default_rng(7)
    rows = []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            per_worker = [rng.integers(0, total, args.reads).tolist() for _ in range(workers)]
            base = rate(workers, decode_only, [("", idx) for idx in per_worker], all_frames)
            for rg in args.row_groups:
                path = Path(tmp) / f"rg{rg}"
                if not path.exists():
                    write_dataset(path, eps, rg)
                size_mb = sum(p.stat().st_size for p in path.rglob("*")) / 1e6
                read_frames(str(path), per_worker[0][:20])  # warm the page cache
                got = rate(workers, read_frames, [(str(path), idx) for idx in per_worker], [])
                rows.append([workers, rg, f"{got:,.0f}", f"{base:,.0f}", f"{got / base:.2f}", f"{size_mb:.0f}"])
                results.append(
                    {
                        "workers": workers,
                        "row_group_frames": rg,
                        "frames_per_s": got,
                        "decode_only_per_s": base,
                        "ratio": got / base,
                        "size_mb": size_mb,
                    }
                )
    print(f"random single-frame reads, 640×480 JPEG + 14 floats, {total} frames, {args.reads} reads per worker\n")
    print(table(["workers", "row group (frames)", "Dataset.frame /s", "JPEG decode only /s", "ratio", "MB"], rows))
    print(f"\nresults: {save('store_read', {'results': results})}")


if __name__ == "__main__":
    main()

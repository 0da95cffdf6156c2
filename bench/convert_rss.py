"""Peak RSS of ``rdstd convert`` on synthetic zarr replay buffers: flat as episodes get more, and as they get longer.

Two sweeps: many 100-frame episodes of 128×128 uint8 images (``--episodes``), and one long episode of 96×96
float32 images, PushT's layout (``--lengths``: the target is that a 20,000-frame episode peaks within 1.5× of a
2,000-frame one). Each conversion runs in its own process (the CLI, as a user would run it); peak RSS comes from
the kernel's accounting of that process (ru_maxrss via wait4). Run: .venv/bin/python -m bench.convert_rss
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import checkout_env, save, table

LENGTH = 100
HW = (128, 128)
LONG_HW = (96, 96)
#: Frames written to the source per step, so making even a long source needs little memory.
WRITE_BLOCK = 100


def write_source(path: Path, lengths: list[int], hw: tuple[int, int], dtype: type[np.generic]) -> float:
    """A replay buffer with these episode lengths, written a block of frames at a time. Returns raw image MB."""
    import zarr

    total = sum(lengths)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data = root.create_group("data")
    img = data.create_array("img", shape=(total, *hw, 3), dtype=dtype, chunks=(WRITE_BLOCK, *hw, 3))
    state = data.create_array("state", shape=(total, 5), dtype=np.float32, chunks=(1000, 5))
    action = data.create_array("action", shape=(total, 2), dtype=np.float32, chunks=(1000, 2))
    keypoint = data.create_array("keypoint", shape=(total, 9, 2), dtype=np.float32, chunks=(1000, 9, 2))
    contacts = data.create_array("n_contacts", shape=(total, 1), dtype=np.float32, chunks=(1000, 1))
    rng = np.random.default_rng(0)
    for start in range(0, total, WRITE_BLOCK):
        s = slice(start, min(start + WRITE_BLOCK, total))
        n = s.stop - s.start
        img[s] = rng.integers(0, 256, size=(n, *hw, 3)).astype(dtype)
        state[s] = rng.normal(size=(n, 5))
        action[s] = rng.normal(size=(n, 2))
        keypoint[s] = rng.normal(size=(n, 9, 2))
        contacts[s] = rng.integers(0, 3, size=(n, 1))
    ends = root.create_group("meta").create_array("episode_ends", shape=(len(lengths),), dtype=np.int64)
    ends[:] = np.cumsum(lengths)
    return total * hw[0] * hw[1] * 3 * np.dtype(dtype).itemsize / 1e6


def convert(source: Path, out: Path) -> tuple[float, float]:
    """Run the CLI in a child process; returns (seconds, peak RSS in MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdstd", "convert", str(source), str(out), "--spec", "zarr/pusht", "--images", "jpeg"],
        stdout=subprocess.DEVNULL,
        env=checkout_env(None),
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"convert failed on {source}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def sweep(tmp: Path, cases: list[tuple[str, list[int]]], hw: tuple[int, int], dtype: type[np.generic]) -> list[dict]:
    """Convert one source per case; a result row per case."""
    results = []
    for label, lengths in cases:
        source = tmp / f"src-{label}.zarr"
        raw_mb = write_source(source, lengths, hw, dtype)
        seconds, rss = convert(source, tmp / f"out-{label}")
        frames = sum(lengths)
        results.append(
            {
                "episodes": len(lengths),
                "longest_episode": max(lengths),
                "frames": frames,
                "raw_image_mb": raw_mb,
                "frames_per_s": frames / seconds,
                "peak_rss_mb": rss,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, nargs="*", default=[50, 200], help="counts of 100-frame episodes")
    parser.add_argument("--lengths", type=int, nargs="*", default=[2000, 20000], help="one episode of each length")
    args = parser.parse_args()
    columns = ["episodes", "longest", "frames", "raw images MB", "frames/s", "peak RSS MB", "RSS vs first"]
    with tempfile.TemporaryDirectory() as tmp:
        many = sweep(Path(tmp), [(f"n{c}", [LENGTH] * c) for c in args.episodes], HW, np.uint8)
        long = sweep(Path(tmp), [(f"len{n}", [n]) for n in args.lengths], LONG_HW, np.float32)
    for title, results in (
        (f"{LENGTH}-frame episodes, {HW[0]}×{HW[1]} uint8 images -> JPEG", many),
        (f"one long episode, {LONG_HW[0]}×{LONG_HW[1]} float32 images (PushT layout) -> JPEG", long),
    ):
        if not results:
            continue
        base = results[0]["peak_rss_mb"]
        rows = [
            [
                r["episodes"],
                r["longest_episode"],
                r["frames"],
                f"{r['raw_image_mb']:,.0f}",
                f"{r['frames_per_s']:,.0f}",
                f"{r['peak_rss_mb']:,.0f}",
                f"{r['peak_rss_mb'] / base:.2f}",
            ]
            for r in results
        ]
        print(f"rdstd convert of a zarr replay buffer: {title}\n")
        print(table(columns, rows) + "\n")
    print(f"results: {save('convert_rss', {'many_episodes': many, 'long_episode': long})}")


if __name__ == "__main__":
    main()

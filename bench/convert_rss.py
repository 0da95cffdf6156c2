"""Peak RSS of ``rdstd convert`` on a synthetic zarr replay buffer: flat as the episode count grows.

Each conversion runs in its own process (the CLI, as a user would run it); peak RSS comes from the kernel's
accounting of that process (ru_maxrss via wait4). Run: .venv/bin/python -m bench.convert_rss
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

from bench.common import save, table

LENGTH = 100
HW = (128, 128)


def write_source(path: Path, episodes: int) -> float:
    """A replay buffer written episode by episode (uint8 images), so making it needs little memory. Returns MB."""
    import zarr

    total = episodes * LENGTH
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data = root.create_group("data")
    img = data.create_array("img", shape=(total, *HW, 3), dtype=np.uint8, chunks=(LENGTH, *HW, 3))
    state = data.create_array("state", shape=(total, 5), dtype=np.float32, chunks=(1000, 5))
    action = data.create_array("action", shape=(total, 2), dtype=np.float32, chunks=(1000, 2))
    keypoint = data.create_array("keypoint", shape=(total, 9, 2), dtype=np.float32, chunks=(1000, 9, 2))
    contacts = data.create_array("n_contacts", shape=(total, 1), dtype=np.float32, chunks=(1000, 1))
    rng = np.random.default_rng(0)
    for e in range(episodes):
        s = slice(e * LENGTH, (e + 1) * LENGTH)
        img[s] = rng.integers(0, 256, size=(LENGTH, *HW, 3), dtype=np.uint8)
        state[s] = rng.normal(size=(LENGTH, 5))
        action[s] = rng.normal(size=(LENGTH, 2))
        keypoint[s] = rng.normal(size=(LENGTH, 9, 2))
        contacts[s] = rng.integers(0, 3, size=(LENGTH, 1))
    ends = root.create_group("meta").create_array("episode_ends", shape=(episodes,), dtype=np.int64)
    ends[:] = np.arange(1, episodes + 1) * LENGTH
    return total * HW[0] * HW[1] * 3 / 1e6


def convert(source: Path, out: Path) -> tuple[float, float]:
    """Run the CLI in a child process; returns (seconds, peak RSS in MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rdstd", "convert", str(source), str(out), "--spec", "zarr/pusht", "--images", "jpeg"],
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"convert failed on {source}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, nargs="+", default=[50, 200])
    args = parser.parse_args()
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.episodes:
            source = Path(tmp) / f"src{count}.zarr"
            raw_mb = write_source(source, count)
            seconds, rss = convert(source, Path(tmp) / f"out{count}")
            frames = count * LENGTH
            rows.append([count, frames, f"{raw_mb:,.0f}", f"{frames / seconds:,.0f}", f"{rss:,.0f}"])
            results.append(
                {"episodes": count, "frames": frames, "raw_image_mb": raw_mb, "seconds": seconds, "peak_rss_mb": rss}
            )
    print(f"rdstd convert of a zarr replay buffer ({LENGTH}-frame episodes, {HW[0]}×{HW[1]} uint8 images -> JPEG)\n")
    print(table(["episodes", "frames", "raw images MB", "frames/s", "peak RSS MB"], rows))
    print(f"\nresults: {save('convert_rss', {'results': results})}")


if __name__ == "__main__":
    main()

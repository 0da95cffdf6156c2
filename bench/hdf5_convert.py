"""ALOHA-style HDF5 → canonical: conversion frames/s and peak RSS beside h5py reading the same bytes (the limit).

Each episode is one ``episode_<i>.hdf5`` file as the ALOHA recorders write it with ``compress``: 4 cameras of
480×640 JPEG zero-padded to one length (chunks of one frame) plus ``compress_len``, 14-d ``action``/``qpos``/
``qvel``/``effort``, 400 steps at 50 Hz. The JPEGs are real (bench.common.camera_frames, quality 95) and reused
across frames, so writing a large source is quick. Images pass through (no re-encode).

"raw read" is the floor for any converter: h5py reads the padded rows 16 at a time (as the backend does; one
call per row is slower), trims each with ``compress_len``, and reads the vectors. "backend read" streams every
episode through the HDF5 backend alone (what convert reads, without writing the canonical dataset). "convert" is
``rdstd convert SRC OUT`` (the CLI, the shipped hdf5/aloha spec matched). Each runs in a fresh process; the source
is read once first, so all three read from the page cache. Peak RSS is each process's ru_maxrss (wait4).
Run: .venv/bin/python -m bench.hdf5_convert (--episodes 5,10,20 by default; the issue's 200 episodes need
~50 GB of disk for source and output at quality 95: pass --episodes 20,200 --jpeg-quality 50 to scale the JPEGs
down to ~9 KB, 480×640 still, and about 3 GB each way).

``--writer-share`` also converts the first episode count in-process under cProfile and reports the share of the
conversion spent in the canonical writer (``rdstd/store/writer.py`` and the Parquet/fsync calls below it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import camera_frames, save, table, writer_share

CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
STEPS = 400
POOL = 12
BLOCK_ROWS = 16


def write_episode(path: Path, steps: int, pools: dict[str, list[bytes]], seed: int) -> int:
    """One compressed ALOHA episode file; returns its image bytes (unpadded)."""
    import h5py

    rng = np.random.default_rng(seed)
    chosen = {cam: [pool[(seed + i) % len(pool)] for i in range(steps)] for cam, pool in pools.items()}
    padded = max(len(b) for frames in chosen.values() for b in frames)
    with h5py.File(path, "w") as f:
        f.attrs["sim"] = False
        f.attrs["compress"] = True
        images = f.create_group("observations/images")
        for cam, frames in chosen.items():
            block = np.zeros((steps, padded), dtype=np.uint8)
            for i, data in enumerate(frames):
                block[i, : len(data)] = np.frombuffer(data, dtype=np.uint8)
            images.create_dataset(cam, data=block, chunks=(1, padded))
        for key in ("observations/qpos", "observations/qvel", "observations/effort", "action"):
            f.create_dataset(key, data=rng.normal(size=(steps, 14)))
        f.create_dataset("compress_len", data=np.array([[len(b) for b in chosen[c]] for c in CAMERAS], dtype=float))
    return sum(len(b) for frames in chosen.values() for b in frames)


def raw_read(folder: Path) -> int:
    """Read every frame's bytes the way a minimal h5py reader would; returns frames (steps) read."""
    import h5py

    steps = 0
    for path in sorted(folder.glob("*.hdf5")):
        with h5py.File(path, "r") as f:
            lengths = f["compress_len"][()].astype(int)
            for row, cam in enumerate(CAMERAS):
                ds = f[f"observations/images/{cam}"]
                for lo in range(0, ds.shape[0], BLOCK_ROWS):
                    block = ds[lo : lo + BLOCK_ROWS]
                    for j in range(block.shape[0]):
                        bytes(block[j][: lengths[row, lo + j]])
            for key in ("observations/qpos", "observations/qvel", "observations/effort", "action"):
                f[key][()]
            steps += int(f["action"].shape[0])
    return steps


def backend_read(folder: Path) -> int:
    """Stream every episode through the HDF5 backend (images as encoded rows, vectors sliced); returns frames."""
    from rdstd.formats.base import read_frames
    from rdstd.formats.hdf5 import Hdf5Backend
    from rdstd.schema.episode import EncodedFrames

    steps = 0
    with Hdf5Backend().open(folder) as source:
        for ref in source.episode_refs():
            episode = source.read_episode(ref)
            for start in range(0, episode.length, 256):  # the pipeline's chunk of frames
                stop = min(start + 256, episode.length)
                for frames in episode.images.values():
                    assert isinstance(frames, EncodedFrames)
                    frames.frames[start:stop]
                for values in episode.vectors.values():
                    read_frames(values, start, stop)
            steps += episode.length
    return steps


def requality(frames: list[bytes], quality: int) -> list[bytes]:
    """The same frames re-encoded as JPEG at ``quality`` (same size in pixels, fewer bytes)."""
    import io

    from PIL import Image

    out = []
    for data in frames:
        with Image.open(io.BytesIO(data)) as img:
            buffer = io.BytesIO()
            img.save(buffer, format="JPEG", quality=quality)
            out.append(buffer.getvalue())
    return out


def child(argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` in a fresh process; (seconds, peak RSS MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    """Sweep the episode count; print a table and write bench/results/hdf5_convert.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", default="5,10,20", help="comma-separated episode counts")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of the frames (smaller files)")
    parser.add_argument("--writer-share", action="store_true", help="profile the writer's share (first count)")
    parser.add_argument("--raw-read", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--backend-read", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_read:
        print(json.dumps({"steps": raw_read(args.raw_read)}))
        return
    if args.backend_read:
        print(json.dumps({"steps": backend_read(args.backend_read)}))
        return
    pools = {cam: camera_frames(POOL, seed=i) for i, cam in enumerate(CAMERAS)}
    if args.jpeg_quality != 95:
        pools = {cam: requality(frames, args.jpeg_quality) for cam, frames in pools.items()}
    share: dict[str, float] = {}
    rows, results = [], []
    with tempfile.TemporaryDirectory(prefix="rdstd-bench-hdf5-") as tmp:
        for count in (int(n) for n in args.episodes.split(",")):
            src = Path(tmp) / f"aloha-{count}"
            src.mkdir()
            image_bytes = sum(write_episode(src / f"episode_{e}.hdf5", args.steps, pools, e) for e in range(count))
            frames = count * args.steps
            me = [sys.executable, "-m", "bench.hdf5_convert", "--raw-read", str(src)]
            child(me)  # warm the page cache
            raw_s, raw_rss = child(me)
            back_s, back_rss = child([sys.executable, "-m", "bench.hdf5_convert", "--backend-read", str(src)])
            conv_s, conv_rss = child(
                [sys.executable, "-m", "rdstd", "convert", str(src), str(Path(tmp) / f"out-{count}")]
            )
            result = {
                "episodes": count,
                "frames": frames,
                "image_mb": round(image_bytes / 1e6, 1),
                "raw_read_frames_per_s": round(frames / raw_s),
                "raw_read_peak_rss_mb": round(raw_rss),
                "backend_read_frames_per_s": round(frames / back_s),
                "backend_read_peak_rss_mb": round(back_rss),
                "convert_frames_per_s": round(frames / conv_s),
                "convert_peak_rss_mb": round(conv_rss),
                "backend_over_raw": round(raw_s / back_s, 2),
                "convert_over_raw": round(raw_s / conv_s, 2),
            }
            results.append(result)
            rows.append([result[k] for k in result])
            if args.writer_share and not share:
                share = writer_share(src, Path(tmp) / f"profiled-{count}") | {"episodes": count}
            shutil.rmtree(src)  # keep the disk free for the next count
            shutil.rmtree(Path(tmp) / f"out-{count}", ignore_errors=True)
            shutil.rmtree(Path(tmp) / f"profiled-{count}", ignore_errors=True)
    print(table(list(results[0]), rows))
    if share:
        print(f"writer share of convert (cProfile, {share['episodes']} episodes): {share['writer_share']:.0%}")
    summary = {
        "steps_per_episode": args.steps,
        "cameras": 4,
        "jpeg_quality": args.jpeg_quality,
        "jpeg_kb_mean": round(float(np.mean([len(b) for p in pools.values() for b in p])) / 1e3, 1),
        "results": results,
        "writer_share": share,
    }
    print(f"saved {save('hdf5_convert', summary)}")


if __name__ == "__main__":
    main()

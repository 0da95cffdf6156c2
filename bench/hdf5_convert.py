"""ALOHA-style HDF5 → canonical: conversion frames/s and peak RSS beside h5py reading the same bytes (the limit).

Each episode is one ``episode_<i>.hdf5`` file as the ALOHA recorders write it with ``compress``: 4 cameras of
480×640 JPEG zero-padded to one length (chunks of one frame) plus ``compress_len``, 14-d ``action``/``qpos``/
``qvel``/``effort``, 400 steps at 50 Hz. The JPEGs are real (bench.common.camera_frames) and reused across frames,
so writing a large source is quick. Images pass through (no re-encode).

The limit is the faster of two minimal h5py readers of every frame's bytes and every vector: "raw blocks" reads the
padded rows 16 at a time and trims each with ``compress_len`` (what a plain reader does); "raw direct" reads each
one-row chunk with ``read_direct_chunk`` (what the backend does; it skips HDF5's selection machinery). "raw copy"
is raw direct writing every frame's and vector's bytes to one file and fsyncing it: not the issue's limit, but the
floor of any converter that keeps its output, so that a run bound by the disk says so. "backend read" streams
every episode through the HDF5 backend alone (what convert reads, without writing the canonical
dataset). "convert" is ``rdstd convert SRC OUT`` (the CLI, the shipped hdf5/aloha spec matched: four cameras
and effort mapped; above ~2 s of estimated work it runs batch workers, one per core); "convert_1w" is the same
with ``--workers 1`` (one process). Each runs in a fresh process, interleaved, ``--repeats`` times; the source is
read once first, so all read from the page cache. Per run: wall time, CPU time (user + system of the process and
everything under it: wait4's, or the process tree sampled every 50 ms when that is more) and peak RSS (of the
largest process); best and median reported, and the ratios of backend and convert to the limit (limit time / their
time: 1.0 = as fast as the limit).

Run: .venv/bin/python -m bench.hdf5_convert (--episodes 5,20 by default; the issue's run is
``--episodes 20,200 --jpeg-quality 50 --writer-share``: JPEGs of ~9 KB, 480×640 still, ~3 GB of source and as much
output, under ``--workdir`` (/tmp/rdstd-bench-hdf5), deleted afterwards).

``--writer-share`` also converts the first episode count in-process under cProfile and reports the share of the
conversion spent in the canonical writer (``rdstd/store/writer.py`` and the Parquet/fsync calls below it).

``--baseline DIR`` adds "base" and "base_1w": the same two conversions by the rdstd in DIR (e.g. an earlier commit
unpacked with ``git archive <commit> | tar -x -C DIR``), interleaved with the others in the same runs, so an A/B
under the same load is one command: ``--episodes 20,200 --jpeg-quality 50 --repeats 3 --baseline /tmp/old7``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from bench.common import camera_frames, checkout_env, save, table, writer_share

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


def _direct_reads(folder: Path, keep: Callable[[bytes], object]) -> int:
    """Every frame's bytes read one chunk at a time with ``read_direct_chunk`` (one-row chunks, no filter) and
    every vector read whole, each handed to ``keep``; returns frames."""
    import h5py

    steps = 0
    for path in sorted(folder.glob("*.hdf5")):
        with h5py.File(path, "r") as f:
            lengths = f["compress_len"][()].astype(int)
            for row, cam in enumerate(CAMERAS):
                dsid = f[f"observations/images/{cam}"].id
                for i in range(lengths.shape[1]):
                    keep(dsid.read_direct_chunk((i, 0))[1][: lengths[row, i]])
            for key in ("observations/qpos", "observations/qvel", "observations/effort", "action"):
                keep(f[key][()].tobytes())
            steps += int(f["action"].shape[0])
    return steps


def raw_direct(folder: Path) -> int:
    """The same bytes read one chunk at a time with ``read_direct_chunk`` (one-row chunks, no filter)."""
    return _direct_reads(folder, lambda data: None)


def raw_copy(folder: Path, out: Path) -> int:
    """``raw_direct``'s reads, every frame's bytes and every vector written to one file in ``out`` and fsynced: the
    floor of any converter that keeps its output (it writes the same bytes as the canonical shards, with no format
    around them); returns frames."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "frames.bin").open("wb", buffering=1 << 20) as sink:
        steps = _direct_reads(folder, sink.write)
        sink.flush()
        os.fsync(sink.fileno())
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


def child(argv: list[str], pythonpath: str | None = None) -> tuple[float, float, float]:
    """Run ``argv`` in a fresh process; (wall seconds, CPU seconds of it and every process under it, peak RSS MB of
    the largest of them). ``pythonpath``: the child's PYTHONPATH (the rdstd it imports), else this process's.

    CPU is the larger of wait4's (the child and the children it waited for) and a sampled sum over the process
    tree (batch workers are forked by a fork server whose CPU wait4 does not see); RSS likewise."""
    import psutil

    from bench.common import TreeCpu

    started = time.perf_counter()
    env = checkout_env(pythonpath)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    tree = TreeCpu(proc.pid)
    peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        sampled = tree.sample()
        with contextlib.suppress(psutil.Error):
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            peak = max(peak, *(p.memory_info().rss / 2**20 for p in family))
        time.sleep(0.05)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    cpu = max(usage.ru_utime + usage.ru_stime, sampled)
    return wall, cpu, max(usage.ru_maxrss / 1024, peak)


def measure(
    src: Path, out: Path, repeats: int, rss_only: bool = False, baseline: Path | None = None
) -> dict[str, dict[str, list[float]]]:
    """Every reader and the conversion, interleaved ``repeats`` times: wall, cpu and rss lists per method (with
    ``rss_only``: the two conversions only; with ``baseline``: also both conversions by the rdstd there)."""
    me = [sys.executable, "-m", "bench.hdf5_convert"]
    rdstd = [sys.executable, "-m", "rdstd"]
    commands = {
        "raw_blocks": [*me, "--raw-read", str(src)],
        "raw_direct": [*me, "--raw-direct", str(src)],
        "raw_copy": [*me, "--raw-copy", str(src), "--copy-out", str(out)],
        "backend_read": [*me, "--backend-read", str(src)],
        "convert": [*rdstd, "convert", str(src), str(out), "--progress", "none"],
        "convert_1w": [*rdstd, "convert", str(src), str(out), "--progress", "none", "--workers", "1"],
    }
    if rss_only:
        commands = {m: commands[m] for m in ("convert", "convert_1w")}
    paths: dict[str, str] = {}
    if baseline is not None:
        for method in ("convert", "convert_1w"):
            commands[method.replace("convert", "base")] = commands[method]
            paths[method.replace("convert", "base")] = str(baseline.resolve())
    child([*me, "--raw-read", str(src)])  # warm the page cache
    runs: dict[str, dict[str, list[float]]] = {m: {"wall": [], "cpu": [], "rss": []} for m in commands}
    for _ in range(repeats):
        for method, argv in commands.items():
            shutil.rmtree(out, ignore_errors=True)
            wall, cpu, rss = child(argv, paths.get(method))
            for name, value in (("wall", wall), ("cpu", cpu), ("rss", rss)):
                runs[method][name].append(value)
    shutil.rmtree(out, ignore_errors=True)
    return runs


def summarize(count: int, frames: int, image_bytes: int, runs: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Best and median per method, and the ratios to the limit (the faster raw reader, per statistic)."""
    result: dict[str, Any] = {"episodes": count, "frames": frames, "image_mb": round(image_bytes / 1e6, 1)}
    stats = {
        m: {
            f"{k}_{how}": float(fn(v))
            for k, v in r.items()
            if k != "rss"
            for how, fn in (("best", min), ("median", median))
        }
        for m, r in runs.items()
    }
    for method, values in stats.items():
        result[method] = {
            "frames_per_s_best": round(frames / values["wall_best"]),
            "frames_per_s_median": round(frames / values["wall_median"]),
            **{k: round(v, 3) for k, v in values.items()},
            "peak_rss_mb": round(max(runs[method]["rss"])),
        }
    keys = ("wall_best", "wall_median", "cpu_best", "cpu_median")
    for method in ("raw_copy", "backend_read", "convert", "convert_1w", "base", "base_1w"):
        if method not in stats:
            continue
        result[f"{method}_over_limit"] = {
            key: round(min(stats["raw_blocks"][key], stats["raw_direct"][key]) / stats[method][key], 3) for key in keys
        }
    for method in ("convert", "convert_1w"):
        result[f"{method}_over_copy"] = {key: round(stats["raw_copy"][key] / stats[method][key], 3) for key in keys}
        if method.replace("convert", "base") in stats:  # new ÷ old time: above 1.0 = the new code is faster
            old = stats[method.replace("convert", "base")]
            result[f"{method}_speedup_over_base"] = {key: round(old[key] / stats[method][key], 3) for key in keys}
    return result


def main() -> None:
    """Sweep the episode count; print a table and write bench/results/hdf5_convert.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", default="5,20", help="comma-separated episode counts")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of every method")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality of the frames (smaller files)")
    parser.add_argument("--writer-share", action="store_true", help="profile the writer's share (first count)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rdstd-bench-hdf5"), help="scratch (deleted)")
    parser.add_argument(
        "--rss-only",
        action="store_true",
        help="only the two conversions, for their peak RSS (e.g. --episodes 20,200,600 --repeats 1)",
    )
    parser.add_argument(
        "--baseline", type=Path, help="an rdstd checkout to convert with too (A/B in the same runs), e.g. /tmp/old7"
    )
    parser.add_argument("--raw-read", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--raw-direct", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--backend-read", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--raw-copy", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--copy-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_copy:
        print(json.dumps({"steps": raw_copy(args.raw_copy, args.copy_out)}))
        return
    for flag, reader in ((args.raw_read, raw_read), (args.raw_direct, raw_direct), (args.backend_read, backend_read)):
        if flag:
            print(json.dumps({"steps": reader(flag)}))
            return
    pools = {cam: camera_frames(POOL, seed=i) for i, cam in enumerate(CAMERAS)}
    if args.jpeg_quality != 95:
        pools = {cam: requality(frames, args.jpeg_quality) for cam, frames in pools.items()}
    share: dict[str, float] = {}
    results = []
    rss_rows: list[list[Any]] = []
    args.workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir))
    try:
        for count in (int(n) for n in args.episodes.split(",")):
            src = tmp / f"aloha-{count}"
            src.mkdir()
            image_bytes = sum(write_episode(src / f"episode_{e}.hdf5", args.steps, pools, e) for e in range(count))
            runs = measure(src, tmp / f"out-{count}", args.repeats, args.rss_only, args.baseline)
            if args.rss_only:
                rss_rows.append([count, *(f"{max(runs[m]['rss']):.0f} ({min(runs[m]['wall']):.1f} s)" for m in runs)])
                print(rss_rows[-1], flush=True)
                shutil.rmtree(src)
                continue
            results.append(summarize(count, count * args.steps, image_bytes, runs))
            print(json.dumps(results[-1]), flush=True)
            if args.writer_share and not share:
                share = writer_share(src, tmp / f"profiled-{count}") | {"episodes": count}
                shutil.rmtree(tmp / f"profiled-{count}", ignore_errors=True)
            shutil.rmtree(src)  # keep the disk free for the next count
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.rss_only:
        methods = ["convert", "convert_1w", *(["base", "base_1w"] if args.baseline else [])]
        names = [m.replace("_1w", " --workers 1") for m in methods]
        print(table(["episodes", *(f"{name}: peak RSS MB (best wall)" for name in names)], rss_rows))
        print(
            f"saved {save('hdf5_rss', {'jpeg_quality': args.jpeg_quality, 'repeats': args.repeats, 'rows': rss_rows})}"
        )
        return
    headers = ["episodes", "method", "frames/s best", "frames/s median", "cpu s best", "peak RSS MB"]
    rows = [
        [
            r["episodes"],
            m,
            r[m]["frames_per_s_best"],
            r[m]["frames_per_s_median"],
            r[m]["cpu_best"],
            r[m]["peak_rss_mb"],
        ]
        for r in results
        for m in ("raw_blocks", "raw_direct", "raw_copy", "backend_read", "convert", "convert_1w", "base", "base_1w")
        if m in r
    ]
    print(table(headers, rows))
    ratio_rows = (
        [
            [r["episodes"], m, *r[f"{m}_over_limit"].values()]
            for r in results
            for m in ("raw_copy", "backend_read", "convert", "convert_1w", "base", "base_1w")
            if f"{m}_over_limit" in r
        ]
        + [[r["episodes"], f"{m} over raw_copy", *r[f"{m}_over_copy"].values()] for r in results for m in ("convert",)]
        + [
            [r["episodes"], f"{m} speed-up over base", *r[f"{m}_speedup_over_base"].values()]
            for r in results
            for m in ("convert", "convert_1w")
            if f"{m}_speedup_over_base" in r
        ]
    )
    print(table(["episodes", "over the limit", "wall best", "wall median", "cpu best", "cpu median"], ratio_rows))
    if share:
        print(f"writer share of convert (cProfile, {share['episodes']} episodes): {share['writer_share']:.0%}")
    summary = {
        "steps_per_episode": args.steps,
        "cameras": 4,
        "jpeg_quality": args.jpeg_quality,
        "jpeg_kb_mean": round(float(np.mean([len(b) for p in pools.values() for b in p])) / 1e3, 1),
        "repeats": args.repeats,
        "results": results,
        "writer_share": share,
    }
    print(f"saved {save('hdf5_convert', summary)}")


if __name__ == "__main__":
    main()

"""The training loader against the decoder's limit: random frames, batch 32, 1 and 2 worker processes.

One 640×480 JPEG camera + a 14-float state + a 16-step action window. "limit" is the bare full-size simplejpeg
decode of the same JPEG bytes (already in memory) by the same number of processes; the loader reads them from
the canonical dataset (row groups, checksums, windows) and decodes them in its thread pool (one thread per
process here, so both sides use one core per worker). The same again at 224×224 output (JPEG DCT scaling), the
RSS after 20,000 samples with 500 vs 5,000 episodes, and (``--video``) a camera kept as video against a bare PyAV
seek + decode of the same frames. Prints a table, writes bench/results/loader.json, prints ``ratio`` last.

Run: PYTHONPATH=. .venv/bin/python bench/loader.py [--samples 2048] [--video]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg

from bench.common import camera_frames, save, table
from rdstd.loader import FrameDataset, ImageOptions, batches
from rdstd.schema import (
    Dimension,
    EncodedFrames,
    Episode,
    EpisodeMeta,
    ImageCodec,
    ImageFeature,
    Provenance,
    VectorFeature,
)
from rdstd.store import DatasetWriter

CAM = "observation.images.front"
BATCH = 32
WINDOW = range(0, 16)


def features(height: int, width: int, codec: ImageCodec = ImageCodec.JPEG) -> dict[str, VectorFeature | ImageFeature]:
    return {
        "observation.state": VectorFeature(shape=(14,), dims=[Dimension(name=f"joint_{i}") for i in range(14)]),
        "action": VectorFeature(shape=(14,), dims=[Dimension(name=f"joint_{i}") for i in range(14)]),
        CAM: ImageFeature(height=height, width=width, codec=codec),
    }


def write(path: Path, count: int, length: int, frames: list[bytes], height: int, width: int) -> list[bytes]:
    """``count`` episodes of ``length`` frames (the JPEGs reused cyclically); returns every frame's bytes in order."""
    rng = np.random.default_rng(1)
    order = []
    with DatasetWriter(path, features(height, width), Provenance(source_format="bench", rdstd_version="bench")) as w:
        for e in range(count):
            images = [frames[(e * length + i) % len(frames)] for i in range(length)]
            order += images
            vectors = {k: rng.normal(size=(length, 14)).astype(np.float32) for k in ("observation.state", "action")}
            cams = {CAM: EncodedFrames(ImageCodec.JPEG, images)}
            w.add(Episode(EpisodeMeta(episode_id=f"ep{e:05d}"), np.arange(length) / 30.0, vectors, cams))
    return order


# -- worker functions (run in spawned processes) -----------------------------------------------------------------

_FRAMES: list[bytes] = []


def _keep(frames: list[bytes]) -> None:
    _FRAMES[:] = frames


def bare_decode(_: str, indices: list[int], options: ImageOptions) -> float:
    """CPU seconds to decode the frames at full size with simplejpeg alone (the bytes already in memory)."""
    started = time.process_time()
    for i in indices:
        simplejpeg.decode_jpeg(_FRAMES[i], colorspace="RGB")
    return time.process_time() - started


def loader(path: str, indices: list[int], options: ImageOptions) -> float:
    """CPU seconds for the loader's batches of these samples (one decoding thread: one core per worker)."""
    keys = ["observation.state", CAM]
    fd = FrameDataset(path, keys, windows={"action": WINDOW}, images=options, threads=1)
    fd.batch(indices[:4])  # open the shard, as a worker does before its first batch
    started = time.process_time()
    for _ in batches(fd, BATCH, sampler=indices, prefetch=0):
        pass
    return time.process_time() - started


def rate(
    workers: int, fn: Any, path: str, shares: list[list[int]], options: ImageOptions, frames: list[bytes]
) -> tuple[float, float]:
    """(samples per second over ``workers`` processes, wall clock; CPU milliseconds per sample in the workers)."""
    n = sum(len(s) for s in shares)
    with mp.get_context("spawn").Pool(workers, initializer=_keep, initargs=(frames,)) as pool:
        pool.starmap(fn, [(path, s[:BATCH], options) for s in shares])  # warm up
        started = time.perf_counter()
        cpu = pool.starmap(fn, [(path, s, options) for s in shares])
        return n / (time.perf_counter() - started), 1e3 * sum(cpu) / n


def rss_after(path: str, samples: int) -> tuple[float, float]:
    """(RSS after the first 1,000 samples, RSS after ``samples``) in MB, in a fresh process (no peak: Linux keeps
    the parent's high-water mark across fork and exec, so ru_maxrss would measure the bench itself)."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_rss_run, (path, samples))


def _rss_run(path: str, samples: int) -> tuple[float, float]:
    import psutil

    fd = FrameDataset(path, ["observation.state", CAM], windows={"action": WINDOW}, threads=1)
    proc = psutil.Process()
    early = 0.0
    seen = 0
    order = np.random.default_rng(0).integers(0, len(fd), samples)
    for batch in batches(fd, BATCH, sampler=order.tolist(), prefetch=0):
        seen += len(batch["index"])
        if not early and seen >= 1000:
            early = proc.memory_info().rss / 1e6
    return early, proc.memory_info().rss / 1e6


# -- video ------------------------------------------------------------------------------------------------------


def write_video(path: Path, count: int, length: int, jpegs: list[bytes]) -> Path:
    """Episodes whose camera is encoded as video by the writer (AV1 when PyAV's FFmpeg has it, else H.264)."""
    rng = np.random.default_rng(1)
    feats = features(480, 640, ImageCodec.VIDEO)
    with DatasetWriter(path, feats, Provenance(source_format="bench", rdstd_version="bench"), rate_hz=30.0) as w:
        for e in range(count):
            pixels = np.stack([simplejpeg.decode_jpeg(jpegs[(e * length + i) % len(jpegs)]) for i in range(length)])
            vectors = {k: rng.normal(size=(length, 14)).astype(np.float32) for k in ("observation.state", "action")}
            w.add(Episode(EpisodeMeta(episode_id=f"ep{e:05d}"), np.arange(length) / 30.0, vectors, {CAM: pixels}))
    return path


def bare_pyav(path: str, indices: list[int], options: ImageOptions) -> float:
    """Seek to each frame's time in its file (keyframe at or before), decode forward to it: PyAV alone."""
    import av

    import rdstd

    ds = rdstd.open(path)
    refs = ds.stored(CAM, indices)
    containers: dict[str, Any] = {}
    started = time.process_time()
    for ref in refs:
        c = containers.get(ref["path"])
        if c is None:
            c = containers[ref["path"]] = av.open(str(Path(path) / ref["path"]))
        stream = c.streams.video[0]
        t = ref["timestamp_s"]
        c.seek(int(max(0.0, t - 0.5 / 30) / stream.time_base), stream=stream, backward=True)
        for frame in c.decode(stream):
            if frame.pts * stream.time_base >= t - 0.5 / 30:
                frame.to_ndarray(format="rgb24")
                break
    return time.process_time() - started


def loader_sequential(path: str, block: int) -> tuple[float, int]:
    """CPU seconds and samples for one epoch in episode blocks (``EpisodeSampler``), camera window [-1, 0]."""
    from rdstd.loader import EpisodeSampler

    fd = FrameDataset(path, [CAM], windows={CAM: [-1, 0]}, threads=1)
    order = list(EpisodeSampler(fd.episode_lengths, block=block, seed=0))
    started = time.process_time()
    for _ in batches(fd, BATCH, sampler=order, prefetch=0):
        pass
    return time.process_time() - started, len(order)


def bare_sequential(path: str) -> tuple[float, int]:
    """CPU seconds and frames to decode every video file of the dataset from start to end with PyAV alone."""
    import av

    frames = 0
    started = time.process_time()
    for file in sorted((Path(path) / "videos").rglob("*.mp4")):
        with av.open(str(file)) as c:
            for frame in c.decode(video=0):
                frame.to_ndarray(format="rgb24")
                frames += 1
    return time.process_time() - started, frames


# -- LeRobot, in its own environment ------------------------------------------------------------------------------

_LEROBOT_SIDE = """
import contextlib, json, sys, time
with contextlib.suppress(ImportError):
    import tv_cpu_shim
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root, indices = sys.argv[1], json.loads(sys.argv[2])
ds = LeRobotDataset("rdstd/bench", root=root, delta_timestamps={"action": [k / 30 for k in range(16)]})
for i in indices[:8]:
    ds[i]
wall, cpu = time.perf_counter(), time.process_time()
for i in indices:
    ds[i]
print(json.dumps({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}))
"""


def lerobot_rate(python: str, root: Path, indices: list[int]) -> tuple[float, float]:
    """(samples/s, CPU ms per sample, all threads) of LeRobot's own LeRobotDataset on ``indices``, one process."""
    import json
    import subprocess

    out = subprocess.run(
        [python, "-c", _LEROBOT_SIDE, str(root), json.dumps(indices)], capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return len(indices) / got["wall_s"], 1e3 * got["cpu_s"] / len(indices)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2048, help="random samples per worker")
    parser.add_argument("--rss-samples", type=int, default=20_000)
    parser.add_argument("--video", action="store_true", help="also measure a camera kept as video")
    parser.add_argument(
        "--lerobot",
        nargs="*",
        default=[],
        help="LeRobot interpreters (e.g. .venv-lerobot-0.6/bin/lerobot-python) to read the video dataset's v3.0 "
        "export with LeRobot itself (needs --video)",
    )
    args = parser.parse_args()
    jpegs = camera_frames(200)
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "jpeg"
        order = write(path, 40, 100, jpegs, 480, 640)
        rng = np.random.default_rng(7)
        limits: dict[int, tuple[float, float]] = {}
        configs = [("640×480", ImageOptions()), ("224×224", ImageOptions((224, 224)))]
        configs.append(("224×224 nearest", ImageOptions((224, 224), resample="nearest")))
        for label, options in configs:
            for workers in (1, 2):
                shares = [rng.integers(0, len(order), args.samples).tolist() for _ in range(workers)]
                if workers not in limits:
                    limits[workers] = rate(workers, bare_decode, "", shares, ImageOptions(), order)
                got, cpu = rate(workers, loader, str(path), shares, options, [])
                limit, limit_cpu = limits[workers]
                ratio, cpu_ratio = got / limit, limit_cpu / cpu
                rows.append([label, workers, f"{got:,.0f}", f"{limit:,.0f}", f"{ratio:.2f}"])
                rows[-1] += [f"{cpu:.2f}", f"{limit_cpu:.2f}", f"{cpu_ratio:.2f}"]
                results.append(
                    {
                        "output": label,
                        "workers": workers,
                        "samples_per_s": got,
                        "limit_per_s": limit,
                        "ratio": ratio,
                        "cpu_ms_per_sample": cpu,
                        "limit_cpu_ms_per_frame": limit_cpu,
                        "cpu_ratio": cpu_ratio,
                    }
                )
                print(
                    f"{label} x{workers}: {got:,.0f}/s (limit {limit:,.0f}/s) {ratio:.2f}; CPU {cpu_ratio:.2f}",
                    flush=True,
                )
                ratios.append(ratio)
        if args.video:
            vpath = write_video(Path(tmp) / "video", 10, 60, jpegs)
            for workers in (1, 2):
                shares = [rng.integers(0, 600, args.samples // 4).tolist() for _ in range(workers)]
                bare, bare_cpu = rate(workers, bare_pyav, str(vpath), shares, ImageOptions(), [])
                got, cpu = rate(workers, loader, str(vpath), shares, ImageOptions(), [])
                rows.append(["video 640×480 (limit: PyAV seek+decode)", workers, f"{got:,.0f}", f"{bare:,.0f}"])
                rows[-1] += [f"{got / bare:.2f}", f"{cpu:.2f}", f"{bare_cpu:.2f}", f"{bare_cpu / cpu:.2f}"]
                results.append(
                    {
                        "output": "video",
                        "workers": workers,
                        "samples_per_s": got,
                        "limit_per_s": bare,
                        "ratio": got / bare,
                        "cpu_ms_per_sample": cpu,
                        "limit_cpu_ms_per_frame": bare_cpu,
                    }
                )
            for label, options in (
                ("224×224", ImageOptions((224, 224))),
                ("224×224 nearest", ImageOptions((224, 224), resample="nearest")),
            ):
                shares = [rng.integers(0, 600, args.samples // 4).tolist()]
                got, cpu = rate(1, loader, str(vpath), shares, options, [])
                rows.append([f"video {label}", 1, f"{got:,.0f}", "", "", f"{cpu:.2f}", "", ""])
                results.append(
                    {"output": f"video {label}", "workers": 1, "samples_per_s": got, "cpu_ms_per_sample": cpu}
                )
            with mp.get_context("spawn").Pool(1) as pool:
                seq_cpu, seq_n = pool.apply(loader_sequential, (str(vpath), 16))
                bare_seq_cpu, bare_n = pool.apply(bare_sequential, (str(vpath),))
            ours_ms, bare_ms = 1e3 * seq_cpu / seq_n, 1e3 * bare_seq_cpu / bare_n
            rows.append(["video, episode blocks of 16, window [-1, 0] (limit: sequential PyAV decode)", 1, "", ""])
            rows[-1] += ["", f"{ours_ms:.2f}", f"{bare_ms:.2f}", f"{bare_ms / ours_ms:.2f}"]
            results.append(
                {"output": "video sequential", "cpu_ms_per_sample": ours_ms, "limit_cpu_ms_per_frame": bare_ms}
            )
            if args.lerobot:
                from rdstd.export.lerobot import export_lerobot

                export_lerobot(vpath, Path(tmp) / "lerobot")
                indices = rng.integers(0, 600, args.samples // 4).tolist()
                ours, ours_cpu = rate(1, loader, str(vpath), [indices], ImageOptions(), [])
                for python in args.lerobot:
                    theirs, theirs_cpu = lerobot_rate(python, Path(tmp) / "lerobot", indices)
                    label = f"LeRobot ({Path(python).parents[1].name}) vs rdstd, same video frames"
                    rows.append([label, 1, f"{ours:,.0f} (LeRobot {theirs:,.0f})", "", f"{ours / theirs:.2f}"])
                    rows[-1] += [f"{ours_cpu:.2f}", f"{theirs_cpu:.2f} (LeRobot)", f"{theirs_cpu / ours_cpu:.2f}"]
                    results.append(
                        {
                            "output": "lerobot",
                            "python": python,
                            "samples_per_s": ours,
                            "lerobot_samples_per_s": theirs,
                            "cpu_ms_per_sample": ours_cpu,
                            "lerobot_cpu_ms_per_sample": theirs_cpu,
                        }
                    )
        small = [simplejpeg.encode_jpeg(simplejpeg.decode_jpeg(j, min_height=60, min_width=80)) for j in jpegs[:50]]
        rss_rows = []
        for count, length in ((500, 160), (5000, 16)):
            rpath = Path(tmp) / f"rss{count}"
            write(rpath, count, length, small, 60, 80)
            early, late = rss_after(str(rpath), args.rss_samples)
            rss_rows.append([count, length, f"{early:.0f}", f"{late:.0f}"])
            results.append({"rss_episodes": count, "rss_after_1000_mb": early, "rss_end_mb": late})
    print(f"\nrandom samples, batch {BATCH}, 640×480 JPEG + 14-float state + 16-step action window, ", end="")
    print(f"{args.samples} per worker\n")
    headers = ["output", "workers", "loader samples/s", "limit: full-size decode/s", "ratio"]
    headers += ["loader CPU ms/sample", "limit CPU ms/frame", "CPU ratio"]
    print(table(headers, rows))
    print(f"\nRSS over {args.rss_samples:,} random samples (80×60 JPEG camera, 80,000 frames in both)\n")
    rss_headers = ["episodes", "frames each", "RSS after 1,000 (MB)", f"RSS after {args.rss_samples:,} (MB)"]
    print(table(rss_headers, rss_rows))
    print(f"\nresults: {save('loader', {'results': results})}")
    print(f"ratio {min(ratios[:2]):.2f} (full size, worst of 1 and 2 workers); {min(ratios[2:4]):.2f} at 224×224")


if __name__ == "__main__":
    main()

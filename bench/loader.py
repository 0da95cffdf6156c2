"""The training loader against the decoder's limit: random frames, batch 32, 1 and 2 worker processes.

One 640×480 JPEG camera + a 14-float state + a 16-step action window. "limit" is the bare full-size simplejpeg
decode of the same JPEG bytes (already in memory) by the same number of processes; the loader reads them from
the canonical dataset (frame bytes, checksums, windows) and decodes them in its thread pool (one thread per
process here, so both sides use one core per worker). The same again at 224×224 output (JPEG DCT scaling); per
JPEG quality (75/90/95) on real frames (the G1 sample's 640×480 video, decoded and re-encoded; ``--g1``) and on
generated ones, with the bare DCT-scaled decodes that bound what any 224×224 loader can reach; the RSS after
20,000 samples with 500 vs 5,000 episodes; and (``--video``) a camera kept as video against a bare PyAV seek +
decode of the same frames. ``--lerobot PYTHON`` adds LeRobot's own LeRobotDataset on the v3.0 export of that
video, beside rdstd on the video and on the same frames converted back with ``--images jpeg``, at full size and
224×224. Prints tables, writes bench/results/loader.json, prints ``ratio`` last.

Run: PYTHONPATH=. .venv/bin/python bench/loader.py [--samples 2048] [--video [--lerobot PYTHON ...]]
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
    """CPU seconds to decode the frames with simplejpeg alone (the bytes already in memory): at full size, or at
    the smallest DCT scale covering ``options.size`` (no resize: a bound for any loader at that size)."""
    h, w = options.size or (0, 0)
    started = time.process_time()
    for i in indices:
        simplejpeg.decode_jpeg(_FRAMES[i], colorspace="RGB", min_height=h, min_width=w)
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


def torch_worker(path: str, indices: list[int], options: ImageOptions) -> float:
    """:func:`loader` in a process that has imported torch, one intra-op thread (as a DataLoader worker): bilinear
    resizing is then torch's."""
    import torch

    torch.set_num_threads(1)
    return loader(path, indices, options)


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


def paired(
    workers: int, fn: Any, path: str, shares: list[list[int]], options: ImageOptions, frames: list[bytes], reps: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The bare full-size decode of ``frames`` and ``fn`` on the dataset, each in its own pool of ``workers``
    processes, run alternately ``reps`` times: the best (samples/s, CPU ms per sample) of each."""
    n = sum(len(s) for s in shares)
    ctx = mp.get_context("spawn")
    best = [(0.0, float("inf")), (0.0, float("inf"))]
    with ctx.Pool(workers, initializer=_keep, initargs=(frames,)) as bare, ctx.Pool(workers) as ours:
        runs = [(bare, bare_decode, "", ImageOptions()), (ours, fn, path, options)]
        for pool, f, where, opts in runs:
            pool.starmap(f, [(where, s[:BATCH], opts) for s in shares])  # warm up
        for _ in range(reps):
            for k, (pool, f, where, opts) in enumerate(runs):
                started = time.perf_counter()
                cpu = pool.starmap(f, [(where, s, opts) for s in shares])
                got = (n / (time.perf_counter() - started), 1e3 * sum(cpu) / n)
                best[k] = (max(best[k][0], got[0]), min(best[k][1], got[1]))
    return best[0], best[1]


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
import contextlib, inspect, json, sys, time
with contextlib.suppress(ImportError):
    import tv_cpu_shim
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root, indices, size = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
options = {"delta_timestamps": {"action": [k / 30 for k in range(16)]}}
if size:  # LeRobot decodes at full size; a model wanting 224x224 adds a resize transform
    from torchvision.transforms import v2
    options["image_transforms"] = v2.Resize(size, antialias=True)
if "return_uint8" in inspect.signature(LeRobotDataset.__init__).parameters:
    options["return_uint8"] = True  # as rdstd's hwc output: no float conversion
ds = LeRobotDataset("rdstd/bench", root=root, **options)
for i in indices[:8]:
    ds[i]
wall, cpu = time.perf_counter(), time.process_time()
for i in indices:
    ds[i]
print(json.dumps({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}))
"""


def lerobot_rate(
    python: str, root: Path, indices: list[int], size: tuple[int, int] | None = None
) -> tuple[float, float]:
    """(samples/s, CPU ms per sample, all threads) of LeRobot's own LeRobotDataset on ``indices``, one process,
    resizing to ``size`` with torchvision when given."""
    import json
    import subprocess

    command = [python, "-c", _LEROBOT_SIDE, str(root), json.dumps(indices), json.dumps(size)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return len(indices) / got["wall_s"], 1e3 * got["cpu_s"] / len(indices)


#: The G1 sample (real 640×480 frames, AV1), beside the repository as in bench/lerobot_convert.py.
G1_VIDEO = (
    Path(__file__).resolve().parents[2]
    / "shared/samples/lerobot/g1_v21_subset/videos/chunk-000/observation.images.cam_high/episode_000000.mp4"
)
#: (label, options, worker function): the loader alone, or in a process with torch imported (a DataLoader worker).
OUTPUTS: list[tuple[str, ImageOptions, Any]] = [
    ("640×480", ImageOptions(), loader),
    ("224×224 bilinear (Pillow)", ImageOptions((224, 224)), loader),
    ("224×224 bilinear (torch imported)", ImageOptions((224, 224)), torch_worker),
    ("224×224 area", ImageOptions((224, 224), resample="area"), loader),
    ("224×224 nearest", ImageOptions((224, 224), resample="nearest"), loader),
]


def real_frames(video: Path, n: int) -> list[Any]:
    """``n`` RGB frames spread over a real recording."""
    import av

    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return [frames[i] for i in np.linspace(0, len(frames) - 1, n).astype(int)]


def jpeg_rows(
    path: Path, order: list[bytes], samples: int, rng: np.random.Generator, reps: int
) -> tuple[list[Any], list[Any]]:
    """The main table: each output at 1 and 2 workers against the full-size decode by as many processes."""
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    for label, options, fn in OUTPUTS:
        for workers in (1, 2):
            shares = [rng.integers(0, len(order), samples).tolist() for _ in range(workers)]
            (limit, limit_cpu), (got, cpu) = paired(workers, fn, str(path), shares, options, order, reps)
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
                f"{label} x{workers}: {got:,.0f}/s (limit {limit:,.0f}/s) {ratio:.2f}; CPU {cpu_ratio:.2f}", flush=True
            )
    return rows, results


def _cpu_ms(pool: Any, fn: Any, path: str, indices: list[int], options: ImageOptions) -> float:
    """CPU ms per sample of ``fn`` in a one-process pool, after a warm-up batch."""
    pool.apply(fn, (path, indices[:BATCH], options))
    return 1e3 * float(pool.apply(fn, (path, indices, options))) / len(indices)


def quality_rows(tmp: Path, sources: dict[str, list[Any]], samples: int, reps: int) -> tuple[list[Any], list[Any]]:
    """Per source and JPEG quality, one worker, CPU ms per frame (best of ``reps``, interleaved): the full-size
    decode (the limit), the bare DCT decodes at 1/2 (what 224×224 needs from 640×480) and 1/8 (the smallest),
    and the loader at each output (torch-worker rows in a process of their own)."""
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    rng = np.random.default_rng(11)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as plain, ctx.Pool(1) as with_torch:
        for name, rgb in sources.items():
            for quality in (75, 90, 95):
                jpegs = [simplejpeg.encode_jpeg(x, quality=quality) for x in rgb]
                path = tmp / f"{name}-q{quality}"
                order = write(path, len(jpegs) // 50, 50, jpegs, 480, 640)
                plain.apply(_keep, (order,))
                share = rng.integers(0, len(order), samples).tolist()
                bare = {"full": ImageOptions(), "half": ImageOptions((224, 224)), "eighth": ImageOptions((60, 80))}
                best: dict[str, float] = {}
                for _ in range(reps):
                    got = {k: _cpu_ms(plain, bare_decode, "", share, o) for k, o in bare.items()}
                    for label, options, fn in OUTPUTS:
                        pool = with_torch if fn is torch_worker else plain
                        got[label] = _cpu_ms(pool, fn, str(path), share, options)
                    best = {k: min(v, best.get(k, v)) for k, v in got.items()}
                full, half, eighth = best.pop("full"), best.pop("half"), best.pop("eighth")
                row, found = _quality_row(name, quality, jpegs, full, half, eighth, best)
                rows.append(row)
                results.append(found)
    return rows, results


def _quality_row(
    name: str, quality: int, jpegs: list[bytes], full: float, half: float, eighth: float, ours: dict[str, float]
) -> tuple[list[Any], dict[str, Any]]:
    """One row of the quality table and its JSON record."""
    kb = float(np.mean([len(j) for j in jpegs])) / 1e3
    row: list[Any] = [name, quality, f"{kb:.0f}", f"{full:.2f}", f"{half:.2f} ({full / half:.2f}×)"]
    row += [f"{eighth:.2f} ({full / eighth:.2f}×)"]
    row += [f"{cpu:.2f} ({full / cpu:.2f}×)" for cpu in ours.values()]
    found = {
        "frames": name,
        "quality": quality,
        "kb": kb,
        "full_decode_cpu_ms": full,
        "half_decode_cpu_ms": half,
        "eighth_decode_cpu_ms": eighth,
        "loader_cpu_ms": ours,
    }
    print(f"{name} q{quality}: full {full:.2f} half {half:.2f} eighth {eighth:.2f} loader {ours}", flush=True)
    return row, found


def video_rows(vpath: Path, samples: int, rng: np.random.Generator) -> tuple[list[Any], list[Any]]:
    """A camera kept as video against a bare PyAV seek + decode, and episode blocks against sequential decode."""
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    for workers in (1, 2):
        shares = [rng.integers(0, 600, samples // 4).tolist() for _ in range(workers)]
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
    with mp.get_context("spawn").Pool(1) as pool:
        seq_cpu, seq_n = pool.apply(loader_sequential, (str(vpath), 16))
        bare_seq_cpu, bare_n = pool.apply(bare_sequential, (str(vpath),))
    ours_ms, bare_ms = 1e3 * seq_cpu / seq_n, 1e3 * bare_seq_cpu / bare_n
    rows.append(["video, episode blocks of 16, window [-1, 0] (limit: sequential PyAV decode)", 1, "", ""])
    rows[-1] += ["", f"{ours_ms:.2f}", f"{bare_ms:.2f}", f"{bare_ms / ours_ms:.2f}"]
    results.append({"output": "video sequential", "cpu_ms_per_sample": ours_ms, "limit_cpu_ms_per_frame": bare_ms})
    return rows, results


def lerobot_rows(
    tmp: Path, vpath: Path, pythons: list[str], samples: int, rng: np.random.Generator, reps: int
) -> tuple[list[Any], list[Any]]:
    """LeRobot's LeRobotDataset on the v3.0 export of the video dataset, beside rdstd on the video and on the same
    frames converted back with ``--images jpeg``: CPU ms per sample (all threads), full size and 224×224."""
    from rdstd.convert.pipeline import convert
    from rdstd.export.lerobot import export_lerobot
    from rdstd.schema.vocabulary import ImageCodec as Codec

    export_lerobot(vpath, tmp / "lerobot")
    convert(tmp / "lerobot", tmp / "as-jpeg", images=Codec.JPEG)
    indices = rng.integers(0, 600, samples).tolist()
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    for label, options, fn in (OUTPUTS[0], OUTPUTS[1], OUTPUTS[2]):
        size = options.size
        ours = {"video": float("inf"), "--images jpeg": float("inf")}
        lerobot = dict.fromkeys(pythons, float("inf"))
        for _ in range(reps):  # interleaved, best of
            for storage, where in (("video", vpath), ("--images jpeg", tmp / "as-jpeg")):
                ours[storage] = min(ours[storage], rate(1, fn, str(where), [indices], options, [])[1])
            for python in pythons:
                lerobot[python] = min(lerobot[python], lerobot_rate(python, tmp / "lerobot", indices, size)[1])
        for python, theirs in lerobot.items():
            name = Path(python).parents[1].name
            for storage, cpu in ours.items():
                rows.append([label, f"rdstd, {storage}", f"{cpu:.2f}", f"LeRobot ({name}), video", f"{theirs:.2f}"])
                rows[-1] += [f"{theirs / cpu:.1f}×"]
                results.append(
                    {
                        "output": label,
                        "rdstd_storage": storage,
                        "cpu_ms_per_sample": cpu,
                        "lerobot": python,
                        "lerobot_cpu_ms_per_sample": theirs,
                        "frames_per_cpu_second_ratio": theirs / cpu,
                    }
                )
                print(f"{label} {storage}: rdstd {cpu:.2f} ms, LeRobot {theirs:.2f} ms", flush=True)
    return rows, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1024, help="random samples per worker and repetition")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (best of)")
    parser.add_argument("--rss-samples", type=int, default=20_000)
    parser.add_argument("--g1", type=Path, default=G1_VIDEO, help="a real 640×480 video for the quality table")
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
    results: list[dict[str, Any]] = []
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "jpeg"
        order = write(path, 40, 100, jpegs, 480, 640)
        rows, found = jpeg_rows(path, order, args.samples, rng, args.reps)
        results += found
        ratios = [r["ratio"] for r in found]
        sources = {"generated": [simplejpeg.decode_jpeg(j) for j in jpegs]}
        if args.g1.is_file():
            sources = {"G1 (real)": real_frames(args.g1, 200), **sources}
        q_rows, found = quality_rows(Path(tmp), sources, args.samples // 2, args.reps)
        results += found
        v_rows: list[list[Any]] = []
        l_rows: list[list[Any]] = []
        if args.video:
            vpath = write_video(Path(tmp) / "video", 10, 60, jpegs)
            v_rows, found = video_rows(vpath, args.samples, rng)
            results += found
            if args.lerobot:
                l_rows, found = lerobot_rows(Path(tmp), vpath, args.lerobot, args.samples // 4, rng, args.reps)
                results += found
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
    print(table(headers, rows + v_rows))
    print("\nper JPEG quality, one worker, CPU ms per frame (in brackets: frames per CPU-second against the full-size")
    print("decode; the bare DCT decodes have no resize and no read: no loader at that size can do better)\n")
    q_headers = ["frames", "quality", "KB", "full decode (limit)", "bare 1/2 DCT decode", "bare 1/8 DCT decode"]
    q_headers += [f"loader {label}" for label, _, _ in OUTPUTS]
    print(table(q_headers, q_rows))
    if l_rows:
        print(
            "\nLeRobot on the same frames, one process, CPU ms per sample (all threads; 224×224: torchvision Resize)\n"
        )
        l_headers = ["output", "rdstd", "CPU ms", "LeRobot", "CPU ms", "rdstd frames per CPU-second"]
        print(table(l_headers, l_rows))
    print(f"\nRSS over {args.rss_samples:,} random samples (80×60 JPEG camera, 80,000 frames in both)\n")
    rss_headers = ["episodes", "frames each", "RSS after 1,000 (MB)", f"RSS after {args.rss_samples:,} (MB)"]
    print(table(rss_headers, rss_rows))
    print(f"\nresults: {save('loader', {'results': results})}")
    best_224 = max(min(ratios[k : k + 2]) for k in range(2, len(ratios), 2))
    print(f"ratio {min(ratios[:2]):.2f} (full size, worst of 1 and 2 workers); {best_224:.2f} at 224×224 (best output)")


if __name__ == "__main__":
    main()

"""LeRobot v2.1 -> canonical (videos kept, or --images jpeg) -> LeRobot v3.0, beside the bare work each is bounded by.

Datasets: ../shared/samples/lerobot/g1_v21_subset (3 real episodes, 1,093 frames, AV1 640×480) and a v2.1 set of
100 episodes built from it (the 3 real episodes repeated, byte-identical mp4s, re-indexed parquet and metadata).
Stages, each in a fresh process (peak RSS is that process's own), files warm in the page cache:
- ``copy files``: copy every parquet/mp4/meta file of the source (the I/O bound of keeping video), once into the
  page cache only and once with an fsync per file (the store commits every file durably: temp name, fsync, rename);
- ``convert, video kept``: rdstd.convert with the default (copy mp4s, reference frames by timestamp);
- ``decode+JPEG alone``: PyAV decode of every frame + simplejpeg encode at quality 95 (the bound of --images jpeg);
- ``convert --images jpeg``: rdstd.convert re-encoding every frame to JPEG;
- ``export v3.0 (copy)``: rdstd export of the video-kept canonical set (stream copy + stats);
- ``export v3.0 (encode)``: export of the JPEG canonical set (AV1 encode), on the 3-episode set only by default;
- ``random frame reads``: 300 seeded random ``Dataset.frame(i)`` calls (camera decoded) on each canonical set.
``--check-cost`` instead measures what checking every packet's bytes against the file size costs (the truncated-
video check): convert with video kept, check on and off, alternated ``--repeat`` times in the same run.
Run: .venv/bin/python bench/lerobot_convert.py [--episodes 100] [--encode-large] [--check-cost [--repeat 5]]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import checkout_env, save, table

SAMPLE = Path(__file__).resolve().parents[2] / "shared/samples/lerobot/g1_v21_subset"
CAM = "observation.images.cam_high"


def build_large(dst: Path, episodes: int) -> Path:
    """A v2.1 dataset of ``episodes`` episodes cycling through the sample's three (mp4 bytes copied unchanged)."""
    if (dst / "meta/info.json").is_file():
        return dst
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    info = json.loads((SAMPLE / "meta/info.json").read_text())
    src_eps = [json.loads(line) for line in (SAMPLE / "meta/episodes.jsonl").read_text().splitlines()]
    src_stats = [json.loads(line) for line in (SAMPLE / "meta/episodes_stats.jsonl").read_text().splitlines()]
    lines, stats, first = [], [], 0
    for e in range(episodes):
        k = e % len(src_eps)
        chunk = e // info["chunks_size"]
        table_ = pq.read_table(SAMPLE / f"data/chunk-000/episode_{k:06d}.parquet")
        n = table_.num_rows
        table_ = table_.set_column(
            table_.column_names.index("episode_index"), "episode_index", pa.array(np.full(n, e, np.int64))
        )
        table_ = table_.set_column(
            table_.column_names.index("index"), "index", pa.array(np.arange(first, first + n, dtype=np.int64))
        )
        out = tmp / f"data/chunk-{chunk:03d}/episode_{e:06d}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table_, out)
        video = tmp / f"videos/chunk-{chunk:03d}/{CAM}/episode_{e:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLE / f"videos/chunk-000/{CAM}/episode_{k:06d}.mp4", video)
        lines.append(json.dumps({**src_eps[k], "episode_index": e}))
        stats.append(json.dumps({**src_stats[k], "episode_index": e}))
        first += n
    info |= {"total_episodes": episodes, "total_frames": first, "total_videos": episodes}
    info["splits"] = {"train": f"0:{episodes}"}
    (tmp / "meta").mkdir(parents=True, exist_ok=True)
    (tmp / "meta/info.json").write_text(json.dumps(info, indent=4))
    (tmp / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    (tmp / "meta/episodes_stats.jsonl").write_text("\n".join(stats) + "\n")
    shutil.copyfile(SAMPLE / "meta/tasks.jsonl", tmp / "meta/tasks.jsonl")
    tmp.rename(dst)
    return dst


# -- stages (each runs in its own process) --------------------------------------------------------------------


def stage_copy(src: Path, out: Path, durable: bool = False) -> int:
    """Copy every file of the source (``durable``: fsync each, as the store's atomic writes do); returns frames."""
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        target = out / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        if durable:
            fd = os.open(target, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    return int(json.loads((src / "meta/info.json").read_text())["total_frames"])


def stage_decode_jpeg(src: Path, out: Path) -> int:
    """PyAV-decode every frame of every mp4 and JPEG-encode it (quality 95), keeping nothing."""
    import av
    import simplejpeg

    frames = 0
    for mp4 in sorted(src.rglob("*.mp4")):
        with av.open(str(mp4)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                simplejpeg.encode_jpeg(frame.to_ndarray(format="rgb24"), quality=95, colorsubsampling="420")
                frames += 1
    return frames


def stage_convert(src: Path, out: Path, images: str | None) -> int:
    """rdstd.convert; returns frames written."""
    from rdstd.convert.pipeline import convert
    from rdstd.schema.vocabulary import ImageCodec

    if images == "nocheck":  # video kept, packet extents not checked (only to measure the check's cost)
        import rdstd.formats.lerobot.video as lvideo

        lvideo.CHECK_PACKET_BYTES = False
        images = None
    report = convert(src, out, images=ImageCodec(images) if images else None)
    return report.frames_written


def stage_export(src: Path, out: Path) -> int:
    """rdstd export to LeRobot v3.0; returns frames written."""
    from rdstd.export.lerobot import export_lerobot

    return export_lerobot(src, out).frames


def stage_random_reads(src: Path, count: int = 300) -> int:
    """Read ``count`` random frames (seeded) of a canonical dataset, decoding the camera; returns frames read."""
    from rdstd.store.reader import Dataset

    ds = Dataset.open(src)
    rng = np.random.default_rng(0)
    for i in rng.integers(0, len(ds), size=count):
        ds.frame(int(i))
    return count


def run_stage(name: str, src: Path, out: Path, arg: str | None) -> dict[str, Any]:
    """Run one stage in a fresh process; returns seconds, frames, peak RSS (MB)."""
    cmd = [sys.executable, "-m", "bench.lerobot_convert", "--stage", name, str(src), str(out), arg or ""]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=checkout_env(None))
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def child(name: str, src: Path, out: Path, arg: str) -> None:
    """Entry point of a stage process: run it, print JSON (imports happen before the clock starts)."""
    import av  # noqa: F401
    import simplejpeg  # noqa: F401

    import rdstd.convert.pipeline
    import rdstd.export.lerobot
    import rdstd.formats.lerobot.source  # noqa: F401

    started = time.perf_counter()
    if name == "copy":
        frames = stage_copy(src, out, durable=arg == "fsync")
    elif name == "decode_jpeg":
        frames = stage_decode_jpeg(src, out)
    elif name == "convert":
        frames = stage_convert(src, out, arg or None)
    elif name == "random":
        frames = stage_random_reads(src)
    else:
        frames = stage_export(src, out)
    seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "frames": frames, "rss_mb": rss_mb}))


def du_mb(path: Path) -> float:
    """Size of a folder in MB."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def bench(src: Path, work: Path, *, encode_export: bool) -> list[dict[str, Any]]:
    """Every stage on one source dataset."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stage_copy(src, work / "warm")  # page cache warm for everyone
    shutil.rmtree(work / "warm")
    plan: list[tuple[str, str, Path, Path, str | None]] = [
        ("copy files (page cache)", "copy", src, work / "copy", None),
        ("copy files + fsync", "copy", src, work / "copy_fsync", "fsync"),
        ("convert, video kept", "convert", src, work / "video", None),
        ("decode+JPEG alone (bound)", "decode_jpeg", src, work / "none", None),
        ("convert --images jpeg", "convert", src, work / "jpeg", "jpeg"),
        ("export v3.0 (stream copy)", "export", work / "video", work / "export_copy", None),
        ("random frame reads, video kept", "random", work / "video", work / "none", None),
        ("random frame reads, JPEG", "random", work / "jpeg", work / "none", None),
    ]
    if encode_export:
        plan.append(("export v3.0 (AV1 encode)", "export", work / "jpeg", work / "export_encode", None))
    rows = []
    for label, stage, a, b, arg in plan:
        result = run_stage(stage, a, b, arg)
        result["label"] = label
        result["size_mb"] = du_mb(b) if b.exists() else None
        rows.append(result)
        print(f"  {label}: {result['frames'] / result['seconds']:,.0f} frames/s, {result['rss_mb']:.0f} MB", flush=True)
    return rows


def check_cost(sources: dict[str, Path], work: Path, repeat: int) -> dict[str, Any]:
    """Convert with video kept, packet-extent check on and off, alternated in one run; medians per dataset."""
    results: dict[str, Any] = {}
    for name, src in sources.items():
        runs: dict[str, list[float]] = {"on": [], "off": []}
        stage_copy(src, work / "warm")
        shutil.rmtree(work / "warm")
        for _ in range(repeat):
            for mode, arg in (("on", None), ("off", "nocheck")):
                out = work / f"check_{name}_{mode}"
                shutil.rmtree(out, ignore_errors=True)
                runs[mode].append(run_stage("convert", src, out, arg)["seconds"])
        on, off = float(np.median(runs["on"])), float(np.median(runs["off"]))
        best_on, best_off = min(runs["on"]), min(runs["off"])
        results[name] = {"on_s": runs["on"], "off_s": runs["off"], "median_on_s": on, "median_off_s": off}
        print(
            f"  {name}: check on {on:.3f} s, off {off:.3f} s (median of {repeat}): {100 * (on / off - 1):+.1f}%; "
            f"fastest {best_on:.3f} vs {best_off:.3f} s: {100 * (best_on / best_off - 1):+.1f}%"
        )
    return results


def main() -> None:
    """Build the inputs, run every stage on each, print the table and save JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", nargs=4, metavar=("NAME", "SRC", "OUT", "ARG"))
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--encode-large", action="store_true", help="also AV1-encode the large set on export")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rdstd-bench-lerobot")
    parser.add_argument("--check-cost", action="store_true", help="only measure the truncated-video check")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.stage:
        name, src, out, arg = args.stage
        child(name, Path(src), Path(out), arg)
        return
    if not SAMPLE.is_dir():
        raise SystemExit(f"sample not found: {SAMPLE}")
    large = build_large(args.work / f"g1_x{args.episodes}", args.episodes)
    if args.check_cost:
        v30 = SAMPLE.parent / "v30_small"
        sources = {"v30_small": v30, "g1_v21_subset": SAMPLE, f"g1_x{args.episodes}": large}
        print(save("lerobot_check_cost", check_cost(sources, args.work, args.repeat)))
        return
    results: dict[str, Any] = {}
    for name, src, encode in (("g1_v21_subset", SAMPLE, True), (f"g1_x{args.episodes}", large, args.encode_large)):
        print(f"{name} ({du_mb(src):.0f} MB):", flush=True)
        results[name] = {"source_mb": du_mb(src), "stages": bench(src, args.work / f"run_{name}", encode_export=encode)}
    headers = ["dataset", "stage", "frames", "s", "frames/s", "vs bound", "peak RSS MB", "output MB"]
    rows = []
    for name, data in results.items():
        stages = data["stages"]
        bounds = {"convert, video kept": stages[0], "convert --images jpeg": stages[3]}
        for s in stages:
            fps = s["frames"] / s["seconds"]
            bound = bounds.get(s["label"])
            ratio = f"{fps / (bound['frames'] / bound['seconds']):.2f}×" if bound else ""
            if s["label"] == "convert, video kept":
                durable = stages[1]["frames"] / stages[1]["seconds"]
                ratio += f" ({fps / durable:.2f}× of copy + fsync)"
            size = f"{s['size_mb']:.0f}" if s["size_mb"] else ""
            rows.append(
                [name, s["label"], s["frames"], f"{s['seconds']:.2f}", f"{fps:,.0f}", ratio, f"{s['rss_mb']:.0f}", size]
            )
    print(table(headers, rows))
    print(save("lerobot_convert", {"results": results}))


if __name__ == "__main__":
    main()

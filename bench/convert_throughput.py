"""Single-worker end-to-end conversion beside the raw read/parse rate of each source (issue #14.7), and CLI start.

Each source's "raw" stage is the floor any converter pays to get the values out; "convert" is ``rdstd.convert``
end to end (read, map, encode where asked, write Parquet with page checksums, stats, fsync, rename). They run
interleaved in one process (raw, convert, raw, convert, …; files warm in the page cache after the first round),
``--repeats`` rounds after a warm-up, so load from other processes on the machine hits both alike. Each run's wall
time and CPU time (``time.process_time``: every thread of the process, the encoder pool and video copies included)
are kept; the table gives the ratio convert / raw of the best and of the median, for both.

- RLDS: the Bridge debug set with every split repeated ``--rlds-copies`` times (default 20: 1,000 episodes,
  139 MB). Raw: TFRecord framing + protobuf parse of every record (upb), the issue's 1.9 GB/s bound; the rate
  of turning every leaf into numpy (rdstd's own decode, images kept encoded) is shown beside it.
- LeRobot v2.1: the G1 sample's 3 real episodes cycled to ``--lerobot-episodes`` (AV1 640×480). Video kept —
  raw: read every parquet table and every mp4's bytes. ``--images jpeg`` — raw: the same plus PyAV decoding
  every frame to RGB (what any re-encode needs).
- zarr: PushT (206 episodes, 25,650 steps, float32 96×96 images, Blosc-zstd). Raw: every ``data/*`` array read
  chunk by chunk. Its images become PNG (the default for raw pixels), so convert also encodes 25,650 PNGs.
- raw_copy (every source): the raw stage's reads, then the files of that source's conversion (its output bytes, held
  in memory from a conversion before the clock, in the same folders and files) written and each fsynced, plus the
  folders: the floor of any converter that keeps its output. The table gives convert / raw_copy beside convert /
  raw: where 0.5 × the raw rate is above the raw_copy rate, the disk bounds the target and the table says so.
- CLI start: CPU seconds (user + sys) of ``python -m rdstd --version`` in a fresh process, median of ``--repeats``
  × 3, for this tree and, with ``--base PATH`` (a checkout of the code before), for that one, interleaved.

HDF5 (ALOHA-style) is measured by ``bench/hdf5_convert.py``. Run: ``PYTHONPATH=. .venv/bin/python -m
bench.convert_throughput [--repeats 3] [--base /path/to/old/checkout]``; to measure old code's conversions, put
the old checkout first on PYTHONPATH (``PYTHONPATH=OLD:.``) and pass ``--name convert_throughput_before``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.common import checkout_env, save, table

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
BRIDGE = SAMPLES / "rlds" / "bridge_debug"
BRIDGE_SPEC = Path(__file__).resolve().parents[1] / "converters" / "rlds" / "bridge.yaml"
PUSHT = SAMPLES / "zarr" / "pusht" / "pusht_cchi_v7_replay.zarr"

Stage = Callable[[], float]  # returns the amount processed (bytes or frames) for the rate


def interleaved(stages: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Run every stage once to warm up, then ``repeats`` rounds of all of them in turn: each run's wall and CPU s."""
    for fn in stages.values():
        fn()
    runs: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in stages}
    for _ in range(repeats):
        for name, fn in stages.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            runs[name]["wall"].append(time.perf_counter() - wall)
            runs[name]["cpu"].append(time.process_time() - cpu)
    return runs


def summary(runs: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """``<stage>_<wall|cpu>_<best|median>`` seconds of every stage."""
    out = {}
    for name, times in runs.items():
        for clock, values in times.items():
            out[f"{name}_{clock}_best"] = min(values)
            out[f"{name}_{clock}_median"] = statistics.median(values)
    return out


def converting(source: Path, **kwargs: Any) -> Callable[[], int]:
    """``rdstd.convert`` of ``source`` into a fresh folder (removed after); returns frames written."""
    from rdstd.convert.pipeline import convert

    def run() -> int:
        out = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP"))) / "canonical"
        try:
            return convert(source, out, **kwargs).frames_written
        finally:
            shutil.rmtree(out.parent)

    return run


def written(source: Path, scratch: Path, **kwargs: Any) -> dict[str, bytes]:
    """:func:`output_files` of ``rdstd.convert`` of ``source``."""
    from rdstd.convert.pipeline import convert

    return output_files(lambda out: convert(source, out, **kwargs), scratch)


def output_files(convert: Callable[[Path], Any], scratch: Path) -> dict[str, bytes]:
    """The files (relative path → bytes) one conversion writes: what :func:`copying` writes back each run."""
    out = Path(tempfile.mkdtemp(dir=scratch)) / "canonical"
    try:
        convert(out)
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    finally:
        shutil.rmtree(out.parent)


def copying(read: Callable[[], Any], files: dict[str, bytes]) -> Callable[[], int]:
    """The raw stage ``read`` followed by ``files`` written into a fresh folder, every file and folder fsynced (the
    floor of a converter that keeps its output); returns the bytes written."""

    def run() -> int:
        read()
        out = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP"))) / "canonical"
        try:
            folders = {out}
            for rel, data in files.items():
                path = out / rel
                if path.parent not in folders:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    folders.add(path.parent)
                with path.open("wb") as sink:
                    sink.write(data)
                    sink.flush()
                    os.fsync(sink.fileno())
            for folder in sorted(folders, reverse=True):
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return sum(len(d) for d in files.values())
        finally:
            shutil.rmtree(out.parent)

    return run


def rlds(copies: int, repeats: int, scratch: Path) -> dict[str, Any]:
    from bench.rlds_convert import scaled_copy
    from rdstd.formats.rlds import RldsDataset
    from rdstd.formats.rlds.example import decode_example
    from rdstd.formats.rlds.proto import example_class
    from rdstd.formats.rlds.tfrecord import TFRecordReader

    source = scaled_copy(BRIDGE, copies, scratch) if copies > 1 else BRIDGE
    with RldsDataset(source) as ds:
        shards = [s.path for s in ds.shards()]
        tree = ds.tree
    size = sum(p.stat().st_size for p in shards)
    message = example_class()

    def parse() -> None:
        for shard in shards:
            with TFRecordReader(shard) as reader:
                for record in reader:
                    message.FromString(record.data)

    def leaves() -> None:
        for shard in shards:
            with TFRecordReader(shard) as reader:
                for record in reader:
                    decode_example(record.data, tree)

    files = written(source, scratch, spec=str(BRIDGE_SPEC))
    stages = {
        "raw": parse,
        "leaves": leaves,
        "raw_copy": copying(parse, files),
        "convert": converting(source, spec=str(BRIDGE_SPEC)),
    }
    runs = interleaved(stages, repeats)
    return {
        "source": f"Bridge RLDS ×{copies}",
        "bytes": size,
        "raw_stage": "protobuf parse (upb)",
        "unit": "MB/s",
        "amount": size / 1e6,
        "written_bytes": sum(len(d) for d in files.values()),
        "runs": runs,
        **summary(runs),
    }


def lerobot(episodes: int, repeats: int, scratch: Path, images: str | None) -> dict[str, Any]:
    from bench.lerobot_convert import build_large

    source = build_large(scratch / f"lerobot_{episodes}", episodes)
    frames = int(json.loads((source / "meta/info.json").read_text())["total_frames"])
    tables = sorted(source.rglob("*.parquet"))
    videos = sorted(source.rglob("*.mp4"))

    def read_files() -> None:
        for path in tables:
            pq.read_table(path)
        for path in videos:
            path.read_bytes()

    def decode() -> None:
        import av

        for path in tables:
            pq.read_table(path)
        for mp4 in videos:
            with av.open(str(mp4)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    frame.to_ndarray(format="rgb24")

    from rdstd.schema.vocabulary import ImageCodec

    raw = decode if images else read_files
    kwargs = {"images": ImageCodec(images)} if images else {}
    files = written(source, scratch, **kwargs)
    runs = interleaved({"raw": raw, "raw_copy": copying(raw, files), "convert": converting(source, **kwargs)}, repeats)
    return {
        "source": f"LeRobot v2.1 G1 ×{episodes} episodes, " + ("--images jpeg" if images else "video kept"),
        "raw_stage": "PyAV decode every frame + parquet" if images else "read parquet + mp4 bytes",
        "unit": "frames/s",
        "amount": frames,
        "written_bytes": sum(len(d) for d in files.values()),
        "runs": runs,
        **summary(runs),
    }


def zarr_pusht(repeats: int, scratch: Path) -> dict[str, Any]:
    import numpy as np
    import zarr

    group = zarr.open_group(str(PUSHT), mode="r")
    arrays = [group["data"][k] for k in group["data"].array_keys()]  # type: ignore[union-attr]
    steps = int(arrays[0].shape[0])

    def read() -> None:
        for array in arrays:
            rows = int(array.chunks[0])
            for lo in range(0, int(array.shape[0]), rows):
                np.asarray(array[lo : lo + rows])

    files = written(PUSHT, scratch)
    runs = interleaved({"raw": read, "raw_copy": copying(read, files), "convert": converting(PUSHT)}, repeats)
    return {
        "source": "zarr PushT (images to PNG)",
        "raw_stage": "zarr read of every data/* chunk",
        "unit": "frames/s",
        "amount": steps,
        "written_bytes": sum(len(d) for d in files.values()),
        "runs": runs,
        **summary(runs),
    }


def cli_start(trees: dict[str, Path], rounds: int) -> dict[str, float]:
    """Median CPU seconds of ``python -m rdstd --version`` per tree (fresh process each, interleaved)."""
    times: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            before = os.times()
            env = checkout_env(tree)
            subprocess.run([sys.executable, "-m", "rdstd", "--version"], env=env, check=True, capture_output=True)
            after = os.times()
            times[name].append(
                (after.children_user - before.children_user) + (after.children_system - before.children_system)
            )
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rlds-copies", type=int, default=20)
    parser.add_argument("--lerobot-episodes", type=int, default=20)
    parser.add_argument("--only", default="rlds,lerobot,lerobot-jpeg,zarr,cli", help="comma-separated stages")
    parser.add_argument("--base", type=Path, help="an older checkout to compare the CLI start with")
    parser.add_argument("--name", default="convert_throughput", help="results file name")
    args = parser.parse_args()
    only = set(args.only.split(","))
    scratch = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP")))
    results: list[dict[str, Any]] = []
    try:
        if "rlds" in only:
            results.append(rlds(args.rlds_copies, args.repeats, scratch))
        if "lerobot" in only:
            results.append(lerobot(args.lerobot_episodes, args.repeats, scratch, None))
        if "lerobot-jpeg" in only:
            results.append(lerobot(args.lerobot_episodes, args.repeats, scratch, "jpeg"))
        if "zarr" in only:
            results.append(zarr_pusht(args.repeats, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = []
    for r in results:
        for clock in ("wall", "cpu"):
            for pick in ("best", "median"):
                r[f"ratio_{clock}_{pick}"] = r[f"raw_{clock}_{pick}"] / r[f"convert_{clock}_{pick}"]
                r[f"over_copy_{clock}_{pick}"] = r[f"raw_copy_{clock}_{pick}"] / r[f"convert_{clock}_{pick}"]
        # the target (convert at half the raw rate) against the floor: can any converter that writes reach it?
        r["target_above_copy_floor"] = 2 * r["raw_wall_best"] < r["raw_copy_wall_best"]
        leaves = r.get("leaves_wall_best")
        extra = f" (leaves to numpy: {r['amount'] / leaves:,.0f})" if leaves else ""
        rows.append(
            [
                r["source"],
                r["raw_stage"],
                f"{r['amount'] / r['raw_wall_best']:,.0f} {r['unit']}{extra}",
                f"{r['amount'] / r['raw_copy_wall_best']:,.0f} {r['unit']} ({r['written_bytes'] / 1e6:,.0f} MB out)",
                f"{r['amount'] / r['convert_wall_best']:,.0f} {r['unit']}",
                f"{r['ratio_wall_best']:.3f} / {r['ratio_wall_median']:.3f}",
                f"{r['ratio_cpu_best']:.3f} / {r['ratio_cpu_median']:.3f}",
                f"{r['over_copy_wall_best']:.3f} / {r['over_copy_wall_median']:.3f}",
                f"{r['over_copy_cpu_best']:.3f} / {r['over_copy_cpu_median']:.3f}",
                "YES: 0.5 × raw is faster than raw_copy" if r["target_above_copy_floor"] else "no",
            ]
        )
    print(f"single worker, {args.repeats} interleaved rounds after a warm-up (rates: best wall)\n")
    headers = [
        "source",
        "raw stage",
        "raw rate",
        "raw_copy rate",
        "convert rate",
        "÷ raw, wall best / median",
        "÷ raw, CPU best / median",
        "÷ raw_copy, wall best / median",
        "÷ raw_copy, CPU best / median",
        "target above the copy floor",
    ]
    print(table(headers, rows))
    data: dict[str, Any] = {"results": results}
    if "cli" in only:
        here = Path(__file__).resolve().parents[1]
        trees = {"this tree": here} | ({"base": args.base.resolve()} if args.base else {})
        start = cli_start(trees, 3 * args.repeats)
        data["cli_start_cpu_s"] = start
        print("\n" + table(["tree", "rdstd --version CPU s (median)"], [[k, f"{v:.3f}"] for k, v in start.items()]))
    print(f"\nresults: {save(args.name, data)}")


if __name__ == "__main__":
    main()

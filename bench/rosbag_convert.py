"""ROS bag conversion throughput beside rosbags' own read + deserialize, and peak RSS as the recording gets longer.

A generated recording (SYNTHETIC, labelled so): two 640×480 JPEG cameras at 30 Hz (a pool of distinct frames
cycled), a 7-joint JointState at 500 Hz and /tf at 100 Hz, written with rosbags as ROS 1 ``.bag``, rosbag2 sqlite3
and rosbag2 MCAP. For each container:

- *rosbags read* (the limit): ``AnyReader`` reading and deserializing every message of the same topics, in a
  child process (interpreter start and imports included, like the convert), and in-process (CPU only, compared
  with ``rdstd.convert.convert`` in-process: the per-byte cost without interpreter start and imports);
- *rdstd convert*: ``rdstd convert`` in a child process with an alignment plan (camera 1 as master, joints
  interpolated, camera 2 held) and a spec: one pass over the bag (ledger, times, vector values, camera payloads
  into a temporary file), align, then the frames read back from that file while writing.

The two alternate ``--repeats`` times (interleaved, so load from other processes weighs on both alike); the table
gives best and median of wall and CPU time (the child's user + system time, ``getrusage(RUSAGE_CHILDREN)``) and
the ratios limit / ours. ``--writer-share`` converts the first container in-process under cProfile and reports
the share of it spent in the canonical writer.

MB/s is bag bytes on disk / time. Peak RSS is the child's own VmHWM (see ``CHILD``). Bags and outputs go under
``--root`` (default: a temporary folder) and are deleted as soon as they are measured. Run:
``PYTHONPATH=. .venv/bin/python -m bench.rosbag_convert --minutes 2 --rss-minutes 2 20`` (``--kinds`` with no
value skips the throughput table; ``--rss-frame-size 96x128`` writes the RSS bags with small frames). Peak RSS A/B
against another checkout on the same bags, interleaved: ``--kinds --rss-minutes 2 20 --rss-repeats 3
--rss-against /tmp/old7`` (each RSS bag is written once and converted by both, ``--rss-repeats`` times).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import camera_frames, checkout_env, save, table, writer_share

T0 = 1_700_000_000_000_000_000
JOINTS = [f"joint{i}" for i in range(1, 8)]
PLAN = """\
master: {topic: /cam1/compressed, clock: header}
streams:
  joints: {topic: /joint_states, field: position, clock: header, method: interpolate, max_age_ms: 5}
  cam1: {topic: /cam1/compressed, clock: header, method: nearest, max_age_ms: 1}
  cam2: {topic: /cam2/compressed, clock: header, method: hold, max_age_ms: 50}
  ee: {tf: {target: base, source: tool, max_extrapolation_ms: 20}}
"""
SPEC = """\
name: rosbag/bench
format: rosbag
features:
  observation.state: {key: joints, role: joint_position, unit: rad, frame: none}
  observation.ee: {key: ee}
cameras:
  observation.images.cam1: {key: cam1}
  observation.images.cam2: {key: cam2}
"""
TOPICS = ["/joint_states", "/cam1/compressed", "/cam2/compressed", "/tf"]


def _typestore(ros2: bool) -> Any:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    if ros2:
        return get_typestore(Stores.ROS2_HUMBLE)
    ts = get_typestore(Stores.ROS1_NOETIC)
    ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    return ts


def _messages(ts: Any, ros2: bool, seconds: float, frames: list[bytes]) -> Any:
    """(topic, msgtype, receive ns, message) in receive-time order, generated lazily."""
    types = ts.types

    def header(ns: int, frame: str) -> Any:
        stamp = types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
        if ros2:
            return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)
        return types["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id=frame)

    events = []
    events += [(T0 + k * 2_000_000, "/joint_states", k) for k in range(int(500 * seconds))]
    events += [(T0 + k * 10_000_000, "/tf", k) for k in range(int(100 * seconds))]
    events += [(T0 + (k * 10**9) // 30, "/cam1/compressed", k) for k in range(int(30 * seconds))]
    events += [(T0 + (k * 10**9) // 30 + 7_000_000, "/cam2/compressed", k) for k in range(int(30 * seconds))]
    events.sort()
    data = [np.frombuffer(f, dtype=np.uint8) for f in frames]
    for ns, topic, k in events:
        t = k / 500
        if topic == "/joint_states":
            pos = np.sin(np.arange(1, 8) * 0.3 * t)
            msg = types["sensor_msgs/msg/JointState"](
                header=header(ns, ""), name=JOINTS, position=pos, velocity=np.zeros(7), effort=np.zeros(7)
            )
            yield topic, "sensor_msgs/msg/JointState", ns + 1_000_000, msg
        elif topic == "/tf":
            tr = types["geometry_msgs/msg/TransformStamped"](
                header=header(ns, "base"),
                child_frame_id="tool",
                transform=types["geometry_msgs/msg/Transform"](
                    translation=types["geometry_msgs/msg/Vector3"](x=0.4 + 0.001 * k, y=0.0, z=0.3),
                    rotation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                ),
            )
            yield topic, "tf2_msgs/msg/TFMessage", ns + 2_000_000, types["tf2_msgs/msg/TFMessage"](transforms=[tr])
        else:
            msg = types["sensor_msgs/msg/CompressedImage"](
                header=header(ns, "cam"), format="jpeg", data=data[k % len(data)]
            )
            yield topic, "sensor_msgs/msg/CompressedImage", ns + 15_000_000, msg


def write_bag(path: Path, kind: str, seconds: float, frames: list[bytes]) -> Path:
    """The synthetic recording as ``kind`` (ros1, db3, mcap) at ``path``."""
    ros2 = kind != "ros1"
    ts = _typestore(ros2)
    conns: dict[str, Any] = {}
    if not ros2:
        from rosbags.rosbag1 import Writer as Writer1

        w1 = Writer1(path)
        w1.open()
        for topic, msgtype, t, msg in _messages(ts, ros2, seconds, frames):
            if topic not in conns:
                conns[topic] = w1.add_connection(topic, msgtype, typestore=ts)
            w1.write(conns[topic], t, ts.serialize_ros1(msg, msgtype))
        w1.close()
        return path
    from rosbags.rosbag2 import StoragePlugin, Writer

    w2 = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3)
    w2.open()
    for topic, msgtype, t, msg in _messages(ts, ros2, seconds, frames):
        if topic not in conns:
            conns[topic] = w2.add_connection(topic, msgtype, typestore=ts)
        w2.write(conns[topic], t, ts.serialize_cdr(msg, msgtype))
    w2.close()
    return path


def size_mb(path: Path) -> float:
    """Bytes on disk of a bag file or folder, in MB."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(f.stat().st_size for f in files) / 1e6


def rosbags_read(path: Path) -> float:
    """Seconds for AnyReader to read and deserialize every message of the bench topics."""
    from rosbags.highlevel import AnyReader

    ros2 = path.suffix != ".bag"
    started = time.perf_counter()
    with AnyReader([path], default_typestore=_typestore(ros2)) as reader:
        conns = [c for c in reader.connections if c.topic in TOPICS]
        for conn, _, raw in reader.messages(connections=conns):
            reader.deserialize(raw, conn.msgtype)
    return time.perf_counter() - started


#: The child runs rdstd's CLI and writes its own peak RSS (VmHWM, which exec resets) to a file: ``ru_maxrss`` from
#: ``wait4`` also counts the parent's high-water mark at fork time (Linux carries it across exec), which made the
#: long bags look bigger (the parent had just generated them).
CHILD = (
    "import os, runpy\n"
    "try:\n"
    "    runpy.run_module('rdstd', run_name='__main__', alter_sys=True)\n"
    "finally:\n"
    "    hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1]\n"
    "    open(os.environ['RDSTD_BENCH_HWM'], 'w').write(hwm)\n"
)
#: The limit as a child process: the same read + deserialize as :func:`rosbags_read`.
READ_CHILD = (
    "import sys; from pathlib import Path; from bench.rosbag_convert import rosbags_read; "
    "rosbags_read(Path(sys.argv[1]))"
)
ROOT = Path(__file__).resolve().parent.parent


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a child process; a failure stops the bench with its stderr."""
    cpu, started = _child_cpu(), time.perf_counter()
    proc = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}... failed: {proc.stderr.decode()[-2000:]}")
    return wall, _child_cpu() - cpu


def rosbags_read_child(path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of :func:`rosbags_read` in a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return _run([sys.executable, "-c", READ_CHILD, str(path)], env)


def rdstd_convert(path: Path, out: Path, spec: Path, code: Path = ROOT) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of ``rdstd convert`` in a child process (its own peak, see CHILD),
    with the rdstd of the checkout ``code``; the output is deleted afterwards."""
    hwm = out.parent / f"{out.name}.hwm"
    env = checkout_env(code) | {"RDSTD_BENCH_HWM": str(hwm)}
    wall, cpu = _run([sys.executable, "-c", CHILD, "convert", str(path), str(out), "--spec", str(spec)], env)
    rss = int(hwm.read_text()) / 1024
    shutil.rmtree(out, ignore_errors=True)
    hwm.unlink()
    return wall, cpu, rss


def convert_in_process(path: Path, out: Path, spec: Path) -> float:
    """CPU seconds of ``rdstd.convert.convert`` in this process (imports done: per-byte cost only); output deleted."""
    from rdstd.convert.pipeline import convert

    started = time.process_time()
    convert(path, out, spec=spec)
    cpu = time.process_time() - started
    shutil.rmtree(out, ignore_errors=True)
    return cpu


def _stats(values: list[float]) -> dict[str, float]:
    return {"best": min(values), "median": statistics.median(values)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=2.0, help="recording length for the throughput table")
    parser.add_argument("--kinds", nargs="*", default=["ros1", "db3", "mcap"])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved limit/convert pairs per container")
    parser.add_argument("--rss-minutes", type=float, nargs="*", default=[2.0, 20.0], help="lengths for peak RSS (ros1)")
    parser.add_argument("--rss-repeats", type=int, default=1, help="conversions per length (best / median)")
    parser.add_argument(
        "--rss-against",
        type=Path,
        default=None,
        help="another checkout (e.g. /tmp/old7): its conversions interleaved with ours on the same RSS bags",
    )
    parser.add_argument("--pool", type=int, default=60, help="distinct JPEG frames cycled")
    parser.add_argument("--root", type=Path, default=None, help="where bags and outputs go (deleted after)")
    parser.add_argument("--writer-share", action="store_true", help="profile the writer's share (first container)")
    parser.add_argument(
        "--rss-frame-size",
        default="480x640",
        help="HxW of the camera frames in the RSS bags (96x128: the same messages, far fewer bytes, fast to write)",
    )
    args = parser.parse_args()
    frames = camera_frames(args.pool)
    height, width = (int(v) for v in args.rss_frame_size.split("x"))
    rss_frames = frames if (height, width) == (480, 640) else camera_frames(args.pool, height, width)
    results: dict[str, Any] = {
        "synthetic": True,
        "jpeg_kb_mean": float(np.mean([len(f) for f in frames]) / 1e3),
        "repeats": args.repeats,
        "load_average_start": os.getloadavg(),
    }
    rows, rss_rows = [], []
    if args.root is not None:
        args.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        root = Path(tmp)
        spec = root / "bench.yaml"
        spec.write_text(SPEC)
        for kind in args.kinds:
            bag = write_bag(
                root / (f"rec_{kind}.bag" if kind == "ros1" else f"rec_{kind}"), kind, args.minutes * 60, frames
            )
            (bag.parent / (bag.name + ".rdstd.yaml")).write_text(PLAN)
            mb = size_mb(bag)
            limit_wall, limit_cpu, inproc_cpu, conv_wall, conv_cpu, rss = [], [], [], [], [], []
            inproc_conv_cpu: list[float] = []
            for _ in range(args.repeats):
                wall, cpu = rosbags_read_child(bag)
                limit_wall.append(wall)
                limit_cpu.append(cpu)
                started = time.process_time()
                rosbags_read(bag)
                inproc_cpu.append(time.process_time() - started)
                wall, cpu, peak = rdstd_convert(bag, root / f"out_{kind}", spec)
                conv_wall.append(wall)
                conv_cpu.append(cpu)
                rss.append(peak)
                inproc_conv_cpu.append(convert_in_process(bag, root / f"inproc_{kind}", spec))
            entry = {
                "mb": mb,
                "rosbags_read_child_wall_s": _stats(limit_wall),
                "rosbags_read_child_cpu_s": _stats(limit_cpu),
                "rosbags_read_inprocess_cpu_s": _stats(inproc_cpu),
                "rdstd_convert_wall_s": _stats(conv_wall),
                "rdstd_convert_cpu_s": _stats(conv_cpu),
                "rdstd_convert_inprocess_cpu_s": _stats(inproc_conv_cpu),
                "peak_rss_mb": max(rss),
            }
            for what in ("best", "median"):
                entry[f"ratio_wall_{what}"] = (
                    entry["rosbags_read_child_wall_s"][what] / entry["rdstd_convert_wall_s"][what]
                )
                entry[f"ratio_cpu_{what}"] = (
                    entry["rosbags_read_child_cpu_s"][what] / entry["rdstd_convert_cpu_s"][what]
                )
                entry[f"ratio_cpu_inprocess_{what}"] = (
                    entry["rosbags_read_inprocess_cpu_s"][what] / entry["rdstd_convert_inprocess_cpu_s"][what]
                )
            results[kind] = entry
            if args.writer_share and "writer_share" not in results:
                results["writer_share"] = writer_share(bag, root / f"profiled_{kind}", spec=spec) | {"container": kind}
                shutil.rmtree(root / f"profiled_{kind}", ignore_errors=True)
            rows.append(
                [
                    kind,
                    f"{mb:,.0f}",
                    f"{mb / entry['rosbags_read_child_wall_s']['best']:,.0f} / "
                    f"{mb / entry['rosbags_read_child_wall_s']['median']:,.0f}",
                    f"{mb / entry['rdstd_convert_wall_s']['best']:,.0f} / "
                    f"{mb / entry['rdstd_convert_wall_s']['median']:,.0f}",
                    f"{entry['ratio_wall_best']:.2f} / {entry['ratio_wall_median']:.2f}",
                    f"{entry['rosbags_read_child_cpu_s']['best']:.2f} / {entry['rdstd_convert_cpu_s']['best']:.2f}",
                    f"{entry['ratio_cpu_best']:.2f} / {entry['ratio_cpu_median']:.2f}",
                    f"{entry['ratio_cpu_inprocess_best']:.2f} / {entry['ratio_cpu_inprocess_median']:.2f}",
                    f"{max(rss):,.0f}",
                ]
            )
            shutil.rmtree(bag) if bag.is_dir() else bag.unlink()
        codes = {"ours": ROOT, **({"against": args.rss_against.resolve()} if args.rss_against else {})}
        for minutes in args.rss_minutes:
            bag = write_bag(root / f"rss_{minutes}.bag", "ros1", minutes * 60, rss_frames)
            (bag.parent / (bag.name + ".rdstd.yaml")).write_text(PLAN)
            mb = size_mb(bag)
            runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in codes}
            for _ in range(args.rss_repeats):  # interleaved: load from other processes weighs on both alike
                for name, code in codes.items():
                    runs[name].append(rdstd_convert(bag, root / f"rss_out_{minutes}", spec, code))
            for name, measured in runs.items():
                seconds, cpu, rss_mb = (min(column) for column in zip(*measured, strict=True))
                rss_median = statistics.median(run[2] for run in measured)
                key = f"rss_{minutes}min" + ("" if name == "ours" else f"_{name}")
                results[key] = {
                    "code": str(codes[name]),
                    "mb": mb,
                    "seconds": seconds,
                    "cpu_s": cpu,
                    "peak_rss_mb": rss_mb,
                    "peak_rss_mb_median": rss_median,
                    "peak_rss_mb_runs": [run[2] for run in measured],
                }
                rss_rows.append(
                    [
                        f"{minutes:g}",
                        str(codes[name]),
                        f"{mb:,.0f}",
                        f"{seconds:,.1f}",
                        f"{cpu:,.1f}",
                        f"{rss_mb:,.1f} / {rss_median:,.1f}",
                    ]
                )
            bag.unlink()
        for name in codes:
            suffix = "" if name == "ours" else f"_{name}"
            lengths = [results[f"rss_{m}min{suffix}"] for m in args.rss_minutes]
            if len(lengths) > 1:
                results[f"rss_ratio{suffix}"] = {
                    "best": lengths[-1]["peak_rss_mb"] / lengths[0]["peak_rss_mb"],
                    "median": lengths[-1]["peak_rss_mb_median"] / lengths[0]["peak_rss_mb_median"],
                }
    results["load_average_end"] = os.getloadavg()
    print(f"SYNTHETIC {args.minutes:g}-minute recording: 2 JPEG cameras 640x480 @30 Hz, joints @500 Hz, /tf @100 Hz")
    print(
        f"{args.repeats} interleaved runs each; best / median; limit = rosbags read + deserialize in a child process\n"
    )
    print(
        table(
            [
                "container",
                "MB",
                "rosbags MB/s",
                "rdstd convert MB/s",
                "wall ratio",
                "CPU s limit / ours (best)",
                "CPU ratio",
                "CPU ratio in-process (no start, no imports)",
                "peak RSS MB",
            ],
            rows,
        )
    )
    if "writer_share" in results:
        share = results["writer_share"]
        print(f"\nwriter share of convert (cProfile, {share['container']}): {share['writer_share']:.0%}")
    print(f"\npeak RSS of rdstd convert as the ROS 1 recording gets longer ({args.rss_frame_size} frames)\n")
    print(table(["minutes", "code", "MB", "wall s (best)", "CPU s (best)", "peak RSS MB best / median"], rss_rows))
    for key, ratio in results.items():
        if key.startswith("rss_ratio"):
            print(f"{key}: longest / shortest peak RSS {ratio['best']:.3f} (best) / {ratio['median']:.3f} (median)")
    name = "rosbag_convert" if args.kinds else "rosbag_rss"  # an RSS-only run keeps the throughput table's file
    print(f"\nresults: {save(name, results)}")


if __name__ == "__main__":
    main()

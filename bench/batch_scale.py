"""Batch conversion scaling: a generated 400-episode conversion with 1 vs 2 local workers, Ray vs local at 2
workers, and peak RSS per worker at 100 vs 400 episodes; plus batch export with 1 vs 2 workers.

The source is a PushT-like zarr replay buffer (state, action, keypoints, a 64×64 camera encoded to PNG by the
spec), units of 16 episodes. Each run is a fresh Python process (as ``rdstd convert`` is), its imports (and
``ray.init``) done before the clock starts; rounds are interleaved (local 1, local 2, Ray 2) so the shared
machine's load hits every configuration alike. Per run: wall time of the conversion call, and CPU time of the
whole process tree during it (driver, fork server, pool workers, Ray's processes), sampled with psutil every
50 ms (a process that exits between samples loses at most 50 ms). Best and median of ``--repeats``.

Ray is measured two ways. ``ray-2``: the child calls ``ray.init(num_cpus=2)`` before the clock (a program that
started Ray itself just before converting: Ray's own start-up is not timed, but the tail of it, its worker
processes booting, falls in the window). ``ray-2-cluster``: a running 2-CPU cluster (``ray start --head
--num-cpus 2``, started once by the bench before the rounds, bound to 127.0.0.1 with token authentication off,
its workers importing the tree under test), each child connecting with ``ray_address`` inside the clock, as
``rdstd convert --executor ray --ray-address ADDR`` does: the connection, the job's worker start-up and the
workers' imports are all timed, and the CPU of the cluster's processes during the call counts with the child's.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.batch_scale [--repeats 5]``; an A/B of 1 vs 2 workers against
another tree (e.g. ``git archive main | tar -x -C /tmp/main-tree``): ``--only local-1,local-2 --no-export --no-rss
--baseline /tmp/main-tree``. The 2-worker run's phases (``batch.phases`` of the report) are printed as medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import TreeCpu, checkout_env, save, table
from rdstd.testing.fixtures import make_zarr_replay_buffer

EPISODES = 400
LENGTH = 60
UNIT_EPISODES = 16

#: The child process: imports and backend start-up first, then the timed call between START and END.
CHILD = """
import json, sys, time
from pathlib import Path
kind, src, out, options = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
if options.get("executor") == "ray":
    import ray
    if options.get("ray_address") is None:  # ray-2: Ray started here, before the clock
        ray.init(num_cpus=options["workers"], include_dashboard=False, log_to_driver=False)
if kind == "convert":  # what `rdstd convert` imports (the export imports polars: the pool could not fork)
    from rdstd.batch import convert_batch
    import rdstd.batch.worker  # noqa: F401
else:
    from rdstd.export.lerobot import export_lerobot
    import rdstd.batch.export  # noqa: F401
print("START", flush=True)
wall, cpu = time.perf_counter(), time.process_time()
if kind == "convert":
    report = convert_batch(src, out, **options).as_dict()
else:
    report = export_lerobot(src, out, **options).as_dict()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print("END " + json.dumps({"wall": wall, "driver_cpu": cpu, "batch": report["batch"]}), flush=True)
time.sleep(0.3)  # let the parent take its last CPU sample of the tree
"""


def load() -> float:
    """The 1-minute load average (the machine is shared: every run records it)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def run(
    kind: str, src: Path, out: Path, options: dict[str, Any], code: str | None = None, cluster: Cluster | None = None
) -> dict[str, Any]:
    """One run in a fresh process: its wall time, the CPU time of its process tree during the call (and of the
    ``cluster``'s processes, when it connects to one), its report (``code``: another rdstd tree to run, first on
    the path)."""
    shutil.rmtree(out, ignore_errors=True)
    before = load()
    env = checkout_env(code)
    if cluster is not None:
        env |= cluster.env
        options = options | {"ray_address": cluster.address}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(src), str(out), json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=out.parent,  # not the checkout: `python -c` puts the working folder first on the path
    )
    tree = Trees(child.pid, *([cluster.pid] if cluster is not None else []))
    marks: dict[str, Any] = {}
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout or []), daemon=True)
    reader.start()

    while child.poll() is None:
        total = tree.sample()
        if "start" not in marks and any(line.startswith("START") for line in lines):
            marks["start"] = total
        if any(line.startswith("END") for line in lines):
            marks["end"] = total
            break
        time.sleep(0.05)
    child.wait()
    reader.join()
    end = next(line for line in lines if line.startswith("END"))
    result: dict[str, Any] = json.loads(end[4:])
    result["cpu"] = marks["end"] - marks["start"]
    result["load"] = before
    shutil.rmtree(out, ignore_errors=True)
    return result


class Trees:
    """CPU seconds of several process trees together (a child and a Ray cluster it connects to)."""

    def __init__(self, *pids: int) -> None:
        self._trees = [TreeCpu(pid) for pid in pids]

    def sample(self) -> float:
        """The trees' CPU seconds so far."""
        return sum(tree.sample() for tree in self._trees)


class Cluster:
    """A running Ray cluster of ``cpus`` CPUs on this machine (``ray start --head --block``, in its own session and
    temporary folder, bound to 127.0.0.1, token authentication off), its workers importing ``code`` first;
    :meth:`stop` ends its process group (SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, cpus: int, code: str | None) -> None:
        import socket

        with socket.socket() as probe:  # a free port (not Ray's default: another cluster may use it)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.folder = tempfile.mkdtemp(prefix="rdstd-ray-")  # short: Ray's socket paths live under it
        self.env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self.address = f"127.0.0.1:{port}"
        ray = Path(sys.executable).with_name("ray")
        command = [str(ray), "start", "--head", "--block", f"--num-cpus={cpus}", "--include-dashboard=false"]
        command += [
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--temp-dir={self.folder}",
        ]
        self._head = subprocess.Popen(
            command,
            env=checkout_env(code) | self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid = self._head.pid
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        env = os.environ | self.env
        probe = f"import ray; ray.init(address={self.address!r}, log_to_driver=False); print(ray.cluster_resources())"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._head.poll() is not None:
                raise RuntimeError(f"ray start exited with {self._head.returncode}")
            done = subprocess.run(
                [sys.executable, "-c", probe], check=False, env=env, capture_output=True, timeout=timeout
            )
            if done.returncode == 0:
                time.sleep(5.0)  # let the head's own start-up settle: a running cluster is idle
                return
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"the Ray cluster at {self.address} did not come up in {timeout:.0f} s")

    def stop(self) -> None:
        """End the cluster's process group (SIGTERM; SIGKILL to whatever is left after a grace period) and remove
        its folder."""
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._head.wait(timeout=5.0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self._head.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Best and median of wall and CPU seconds."""
    walls, cpus = [r["wall"] for r in runs], [r["cpu"] for r in runs]
    return {
        "wall_best": min(walls),
        "wall_median": statistics.median(walls),
        "cpu_best": min(cpus),
        "cpu_median": statistics.median(cpus),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--episodes",
        type=int,
        default=EPISODES,
        help="episodes of the convert runs (a larger job: fixed costs amortised)",
    )
    parser.add_argument(
        "--length",
        type=int,
        default=LENGTH,
        help=f"frames per episode ({LENGTH} by default; PushT's own episodes average 125)",
    )
    parser.add_argument(
        "--only", default="local-1,local-2,ray-2,ray-2-cluster", help="convert runs to make (A/B: local-1,local-2)"
    )
    parser.add_argument("--no-export", action="store_true", help="skip the batch export runs")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS runs at 100 and 400 episodes")
    parser.add_argument("--baseline", help="A/B: also run each convert config with this rdstd tree (name@base)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rdstd-bench-batch-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "pusht.zarr"
        size = max(args.episodes, 400)  # the RSS runs take 100 and 400 of them
        make_zarr_replay_buffer(src, [args.length] * size, image_hw=(64, 64))
        limit = {"limit": args.episodes} if args.episodes < size else {}
        every: dict[str, dict[str, Any]] = {
            "local-1": {"workers": 1},
            "local-2": {"workers": 2},
            "ray-2": {"executor": "ray", "workers": 2},
            "ray-2-cluster": {"executor": "ray", "workers": 2},
        }
        configs = {name: every[name] for name in args.only.split(",")}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
        code = str(Path(__file__).resolve().parents[1])  # the tree the cluster's workers import
        cluster = Cluster(2, code) if "ray-2-cluster" in configs else None
        try:
            for _ in range(args.repeats):
                for name, options in configs.items():
                    on = cluster if name == "ray-2-cluster" else None
                    unit = options | {"unit_episodes": UNIT_EPISODES} | limit
                    runs[name].append(run("convert", src, tmp / "out", unit, cluster=on))
                    if args.baseline and on is None:
                        runs.setdefault(f"{name}@base", []).append(
                            run("convert", src, tmp / "out", unit, args.baseline)
                        )
        finally:
            if cluster is not None:
                cluster.stop()
        rss = {}
        for episodes in () if args.no_rss else (100, 400):
            result = run("convert", src, tmp / "out", {"workers": 2, "unit_episodes": UNIT_EPISODES, "limit": episodes})
            rss[episodes] = max(result["batch"]["peak_rss_mb_per_worker"].values())
        exports: dict[str, list[dict[str, Any]]] = {} if args.no_export else {"export-1": [], "export-2": []}
        if exports:
            canonical = tmp / "canonical"
            from rdstd.batch import convert_batch
            from rdstd.schema.vocabulary import ImageCodec

            convert_batch(src, canonical, workers=2, unit_episodes=UNIT_EPISODES, limit=100, images=ImageCodec.VIDEO)
        for _ in range(args.repeats if exports else 0):
            for name, workers in (("export-1", 1), ("export-2", 2)):
                exports[name].append(
                    run("export", canonical, tmp / "lerobot", {"workers": workers, "unit_episodes": 25})
                )
    stats = {name: summary(r) for name, r in (runs | exports).items()}
    frames = args.episodes * args.length
    rows = []
    for name in [*runs, *exports]:
        s = stats[name]
        suffix = name[name.index("@") :] if "@" in name else ""  # an A/B baseline against its own one worker
        base = stats.get(("local-1" + suffix) if name in runs else "export-1", s)
        rows.append(
            [
                name,
                f"{s['wall_best']:.2f} / {s['wall_median']:.2f}",
                f"{s['cpu_best']:.2f} / {s['cpu_median']:.2f}",
                f"{base['wall_best'] / s['wall_best']:.2f} / {base['wall_median'] / s['wall_median']:.2f}",
                f"{frames / s['wall_best']:,.0f}" if name in runs else "",
            ]
        )
    headers = ["run", "wall s (best / median)", "CPU s (best / median)", "speed-up vs 1 (best / median)", "frames/s"]
    loads = [r["load"] for rs in (runs | exports).values() for r in rs]
    shape = f"{args.episodes} episodes x {args.length} frames, 64x64 PNG camera, units of {UNIT_EPISODES} episodes"
    print(f"convert: {shape};")
    print("export: 100 of them (camera as video) to LeRobot v3.0, units of 25; interleaved, fresh process each")
    print(f"load average before the runs: {min(loads):.1f} to {max(loads):.1f}")
    print(table(headers, rows))
    results: dict[str, Any] = {
        "episodes": args.episodes,
        "frames_per_episode": args.length,
        "unit_episodes": UNIT_EPISODES,
        "repeats": args.repeats,
        "load": {"min": min(loads), "max": max(loads)},
        "runs": runs | exports,
        "summary": stats,
    }
    if "local-2" in runs:
        phases = phase_medians(runs["local-2"])
        started = sorted({str(r["batch"].get("processes_from")) for r in runs["local-2"]})
        print(f"local-2 phases (median s; processes from {', '.join(started)}): ")
        print("  " + ", ".join(f"{k} {v:.3f}" for k, v in phases.items()))
        results["phases_local_2_median_s"] = phases
    if {"local-1", "local-2"} <= set(runs):
        results["speedup_2_vs_1"] = ratios(stats["local-1"], stats["local-2"])
        print("speed-up 2 vs 1 workers: " + ", ".join(f"{k} {v:.2f}" for k, v in results["speedup_2_vs_1"].items()))
    if {"local-1@base", "local-2@base"} <= set(runs):
        results["speedup_2_vs_1_base"] = ratios(stats["local-1@base"], stats["local-2@base"])
        print("baseline 2 vs 1: " + ", ".join(f"{k} {v:.2f}" for k, v in results["speedup_2_vs_1_base"].items()))
    for name, key in (("ray-2", "ray_over_local_2"), ("ray-2-cluster", "ray_cluster_over_local_2")):
        if {name, "local-2"} <= set(runs):
            ray = ratios(stats[name], stats["local-2"])  # ray / local: above 1 is Ray's overhead
            results[key] = ray
            print(
                f"{name} / local-2 (best / median): wall {ray['wall_best']:.2f} / {ray['wall_median']:.2f}, "
                f"CPU {ray['cpu_best']:.2f} / {ray['cpu_median']:.2f}"
            )
    if exports:
        results["export_speedup_2_vs_1"] = ratios(stats["export-1"], stats["export-2"])
    if rss:
        print(f"peak RSS per worker: {rss[100]:.0f} MB at 100 episodes, {rss[400]:.0f} MB at 400 (flat)")
        results["peak_rss_mb_per_worker"] = {str(k): v for k, v in rss.items()}
    suffix = ("" if args.episodes == EPISODES else f"_{args.episodes}") + (
        "" if args.length == LENGTH else f"_x{args.length}"
    )
    print(f"wrote {save('batch_scale' + suffix, results)}")


def ratios(slow: dict[str, float], fast: dict[str, float]) -> dict[str, float]:
    """``slow / fast`` for wall and CPU, best and median (a speed-up when ``fast`` is the parallel run)."""
    return {key: slow[key] / fast[key] for key in ("wall_best", "wall_median", "cpu_best", "cpu_median")}


def phase_medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median seconds of each phase of a batch run (the report's ``batch.phases``)."""
    names = runs[0]["batch"].get("phases", {})
    return {name: statistics.median(r["batch"]["phases"].get(name, 0.0) for r in runs) for name in names}


if __name__ == "__main__":
    main()

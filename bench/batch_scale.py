"""Batch conversion scaling: a generated 400-episode conversion with 1 vs 2 local workers, Ray vs local at 2
workers, and peak RSS per worker at 100 vs 400 episodes; plus batch export with 1 vs 2 workers.

The source is a PushT-like zarr replay buffer (state, action, keypoints, a 64×64 camera encoded to PNG by the
spec), units of 16 episodes. Each run is a fresh Python process (as ``rdstd convert`` is), its imports (and
``ray.init``) done before the clock starts; rounds are interleaved (local 1, local 2, Ray 2) so the shared
machine's load hits every configuration alike. Per run: wall time of the conversion call, and CPU time of the
whole process tree during it (driver, fork server, pool workers, Ray's processes), sampled with psutil every
50 ms (a process that exits between samples loses at most 50 ms). Best and median of ``--repeats``.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.batch_scale [--repeats 5]``; an A/B of 1 vs 2 workers against
another tree (e.g. ``git archive main | tar -x -C /tmp/main-tree``): ``--only local-1,local-2 --no-export --no-rss
--baseline /tmp/main-tree``. The 2-worker run's phases (``batch.phases`` of the report) are printed as medians.
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
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import TreeCpu, save, table
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


def run(kind: str, src: Path, out: Path, options: dict[str, Any], code: str | None = None) -> dict[str, Any]:
    """One run in a fresh process: its wall time, the CPU time of its process tree during the call, its report
    (``code``: another rdstd tree to run, first on the path)."""
    shutil.rmtree(out, ignore_errors=True)
    before = load()
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([code, *filter(None, [env.get("PYTHONPATH")])])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(src), str(out), json.dumps(options)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=out.parent,  # not the checkout: `python -c` puts the working folder first on the path
    )
    tree = TreeCpu(child.pid)
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
    parser.add_argument("--only", default="local-1,local-2,ray-2", help="convert runs to make (A/B: local-1,local-2)")
    parser.add_argument("--no-export", action="store_true", help="skip the batch export runs")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS runs at 100 and 400 episodes")
    parser.add_argument("--baseline", help="A/B: also run each convert config with this rdstd tree (name@base)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rdstd-bench-batch-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "pusht.zarr"
        make_zarr_replay_buffer(src, [LENGTH] * EPISODES, image_hw=(64, 64))
        every: dict[str, dict[str, Any]] = {
            "local-1": {"workers": 1},
            "local-2": {"workers": 2},
            "ray-2": {"executor": "ray", "workers": 2},
        }
        configs = {name: every[name] for name in args.only.split(",")}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, options in configs.items():
                runs[name].append(run("convert", src, tmp / "out", options | {"unit_episodes": UNIT_EPISODES}))
                if args.baseline:
                    base = run("convert", src, tmp / "out", options | {"unit_episodes": UNIT_EPISODES}, args.baseline)
                    runs.setdefault(f"{name}@base", []).append(base)
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
    frames = EPISODES * LENGTH
    rows = []
    for name in [*runs, *exports]:
        s = stats[name]
        base = stats.get(("local-1" + name[7:]) if name in runs else "export-1", s)
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
    print(f"convert: {EPISODES} episodes x {LENGTH} frames, 64x64 PNG camera, units of {UNIT_EPISODES} episodes;")
    print("export: 100 of them (camera as video) to LeRobot v3.0, units of 25; interleaved, fresh process each")
    print(f"load average before the runs: {min(loads):.1f} to {max(loads):.1f}")
    print(table(headers, rows))
    results: dict[str, Any] = {
        "episodes": EPISODES,
        "frames_per_episode": LENGTH,
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
    if {"ray-2", "local-2"} <= set(runs):
        ray = ratios(stats["ray-2"], stats["local-2"])  # ray / local: above 1 is Ray's overhead
        results["ray_over_local_2"] = ray
        print(f"ray / local at 2 workers (wall, best / median): {ray['wall_best']:.2f} / {ray['wall_median']:.2f}")
    if exports:
        results["export_speedup_2_vs_1"] = ratios(stats["export-1"], stats["export-2"])
    if rss:
        print(f"peak RSS per worker: {rss[100]:.0f} MB at 100 episodes, {rss[400]:.0f} MB at 400 (flat)")
        results["peak_rss_mb_per_worker"] = {str(k): v for k, v in rss.items()}
    print(f"wrote {save('batch_scale', results)}")


def ratios(slow: dict[str, float], fast: dict[str, float]) -> dict[str, float]:
    """``slow / fast`` for wall and CPU, best and median (a speed-up when ``fast`` is the parallel run)."""
    return {key: slow[key] / fast[key] for key in ("wall_best", "wall_median", "cpu_best", "cpu_median")}


def phase_medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median seconds of each phase of a batch run (the report's ``batch.phases``)."""
    names = runs[0]["batch"].get("phases", {})
    return {name: statistics.median(r["batch"]["phases"].get(name, 0.0) for r in runs) for name in names}


if __name__ == "__main__":
    main()

"""``rdstd validate`` (default profile, no pixels) over a generated 1,000-episode, 500,000-frame canonical dataset,
beside a polars scan of the same shard columns (the limit: reading the data once), and peak RSS of each.

Optionally (``--doctor PATH`` to a lerobot-doctor 0.2.0 executable in its own venv) the same data is exported to
LeRobot (``rdstd export``) and lerobot-doctor runs on it in the same run: its time and findings beside ours.
Each measurement runs in a fresh subprocess so that its peak RSS is its own.

Run: .venv/bin/python -m bench.validate_default [--episodes 1000 --length 500] [--doctor /tmp/doctor/bin/lerobot-doctor]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import checkout_env, save, table
from rdstd.schema import (
    ActionMode,
    ActionSemantics,
    ActionSpace,
    ControlMode,
    DeltaReference,
    Dimension,
    Embodiment,
    Episode,
    EpisodeMeta,
    GripperConvention,
    GripperOpen,
    Joint,
    JointType,
    Provenance,
    RobotType,
    Role,
    Unit,
    VectorFeature,
)
from rdstd.schema.clock import Clock
from rdstd.schema.vocabulary import ActionTiming, ClockKind, GripperKind
from rdstd.store.writer import DatasetWriter

RATE_HZ = 30.0
JOINTS = [f"joint{i}" for i in range(7)]

_SCAN = """
import resource, sys, time, polars as pl
from pathlib import Path
root, columns = Path(sys.argv[1]), sys.argv[2].split(",")
started, cpu = time.perf_counter(), time.process_time()
frame = pl.scan_parquet(sorted(root.glob("data/shard-*.parquet"))).select(columns).collect()
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(seconds, cpu, len(frame), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "")
"""

_VALIDATE = """
import resource, sys, time
from rdstd.validate import validate
# imports before the clock (polars, pyarrow, the checks), as the scan imports polars before its clock
import rdstd.validate.runner, rdstd.validate.checks, rdstd.validate.source
started, cpu = time.perf_counter(), time.process_time()
report = validate(sys.argv[1])
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
print(seconds, cpu, report.frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, report.model_dump_json())
"""


#: With ``--planted``: the problem planted in each episode (the rest are clean), to compare what each tool finds.
PLANTED = {
    3: "joint1 in degrees",
    5: "a copy of episode 1 (val repeats train)",
    7: "a dropped frame after frame 100",
    9: "action gripper inverted",
    13: "NaN in joint0 at frames 50-52",
    15: "idle for the first 300 frames",
    17: "a constant action (dead teleop)",
    19: "empty task text",
}


def generate(path: Path, episodes: int, length: int, *, planted: bool = False) -> None:
    """A 7-joint arm with a gripper: absolute joint targets reached at the next frame, a measured 30 Hz clock;
    with ``planted``, the problems of :data:`PLANTED` in their episodes."""
    dims = [Dimension(name=j, role=Role.JOINT_POSITION, unit=Unit.RAD, frame="base") for j in JOINTS]
    dims.append(Dimension(name="gripper", role=Role.GRIPPER, unit=Unit.NORMALIZED, frame="none"))
    grip = GripperConvention(dim=7, kind=GripperKind.ABSOLUTE, range=(0.0, 1.0), open=GripperOpen.HIGH)
    features = {
        "observation.state": VectorFeature(shape=(8,), dims=dims, grippers=[grip]),
        "action": VectorFeature(
            shape=(8,),
            dims=dims,
            grippers=[grip],
            action=ActionSemantics(
                mode=ActionMode.ABSOLUTE,
                space=ActionSpace.JOINT,
                reference=DeltaReference.NONE,
                timing=ActionTiming.NEXT_STATE_TARGET,
            ),
        ),
    }
    embodiment = Embodiment(
        name="arm",
        robot_type=RobotType.FRANKA_PANDA,
        joints=[Joint(name=j, type=JointType.REVOLUTE, lower=-2.9, upper=2.9) for j in JOINTS],
        control_mode=ControlMode.JOINT_POSITION,
        control_rate_hz=RATE_HZ,
    )
    rng = np.random.default_rng(0)
    with DatasetWriter(
        path,
        features,
        Provenance(source_format="bench", rdstd_version="bench"),
        rate_hz=RATE_HZ,
        embodiments=[embodiment],
        clock=Clock(kind=ClockKind.MEASURED, source="source_timestamps", resampling="none"),
        row_group_frames=64,
    ) as writer:
        for e in range(episodes):
            t = np.arange(length + 1) / RATE_HZ
            phases = rng.uniform(0, 2 * math.pi, 8)
            freqs = rng.uniform(0.05, 0.3, 8)
            traj = 0.9 * np.sin(2 * math.pi * freqs * t[:, None] + phases)
            traj[:, 7] = 0.5 + 0.5 * traj[:, 7] / 0.9
            noise = np.concatenate([[0.0], rng.uniform(-1e-4, 1e-4, length - 1)])
            times = t[:length] + noise
            state, action = traj[:length].copy(), traj[1:].copy()
            task = f"task {e % 7}"
            if planted:
                if e == 1:
                    kept = (times, state.copy(), action.copy())
                state, action, times, task = _plant(e, state, action, times, task)
                if e == 5:
                    times, state, action = kept
            writer.add(
                Episode(
                    EpisodeMeta(
                        episode_id=f"ep{e:05d}",
                        task=task,
                        split="train" if e % 10 != 5 else "val",
                        embodiment="arm",
                    ),
                    times,
                    {"observation.state": state.astype(np.float32), "action": action.astype(np.float32)},
                )
            )


def _plant(
    e: int, state: np.ndarray, action: np.ndarray, times: np.ndarray, task: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    if e == 3:
        state[:, 1], action[:, 1] = np.degrees(state[:, 1]) * 3, np.degrees(action[:, 1]) * 3
    elif e == 7:
        times = times.copy()
        times[101:] += 1 / RATE_HZ
    elif e == 9:
        action[:, 7] = 1 - action[:, 7]
    elif e == 13:
        state[50:53, 0] = np.nan
    elif e == 15:
        state[:300], action[:300] = state[0], action[0]
    elif e == 17:
        action[:] = action[0]
    elif e == 19:
        task = ""
    return state, action, times, task


def _child(code: str, *args: str, path: str | None = None) -> list[str]:
    """(wall s, CPU s, frames, peak RSS KiB, report JSON or "") of one measurement in a fresh process (``path``
    first on its PYTHONPATH: another rdstd checkout to measure)."""
    env = checkout_env(path)
    # `python -c` puts the working directory first on sys.path: run in ``path`` so that its rdstd is the one imported
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env, cwd=path
    )
    return out.stdout.strip().split(" ", 4)


def _summary(runs: list[list[str]]) -> dict[str, float]:
    """Best and median wall and CPU seconds of ``runs`` (as :func:`_child` gives them), frames and peak RSS."""
    wall = sorted(float(r[0]) for r in runs)
    cpu = sorted(float(r[1]) for r in runs)
    return {
        "best_s": wall[0],
        "median_s": wall[len(wall) // 2],
        "best_cpu_s": cpu[0],
        "median_cpu_s": cpu[len(cpu) // 2],
        "frames": int(runs[0][2]),
        "peak_rss_mib": max(int(r[3]) for r in runs) / 1024,
    }


def run_doctor(doctor: str, dataset: Path, work: Path) -> dict[str, object]:
    """Export to LeRobot and run lerobot-doctor on it: seconds, exit code and its findings (JSON when it gives it)."""
    export = work / "lerobot"
    subprocess.run([sys.executable, "-m", "rdstd", "export", str(dataset), "--to", "lerobot", str(export)], check=True)
    started = time.perf_counter()
    done = subprocess.run([doctor, "check", str(export), "--json"], check=False, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    try:
        parsed: object = json.loads(done.stdout)
    except json.JSONDecodeError:
        parsed = done.stdout[-4000:]
    return {"seconds": round(seconds, 3), "exit": done.returncode, "output": parsed, "stderr": done.stderr[-2000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--dataset", type=Path, default=None, help="reuse (or create) the dataset here")
    parser.add_argument("--doctor", default=None, help="path of a lerobot-doctor executable")
    parser.add_argument("--planted", action="store_true", help="plant the problems of PLANTED (see the module)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of the scan and of validate (best)")
    parser.add_argument(
        "--base",
        action="append",
        default=[],
        help="another rdstd checkout (e.g. a `git archive` of main) measured interleaved too (repeatable)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rdstd-bench-validate-") as tmp:
        work = Path(tmp)
        path = args.dataset or work / "dataset"
        if not (path / "rdstd.json").is_file():
            started = time.perf_counter()
            generate(path, args.episodes, args.length, planted=args.planted)
            print(f"generated {args.episodes} x {args.length} frames in {time.perf_counter() - started:.1f} s")
        columns = "timestamp,observation.state,action"
        # interleaved: the machine is shared, so both sides see the same load; best and median of each
        scans: list[list[str]] = []
        ours: list[list[str]] = []
        bases: dict[str, list[list[str]]] = {b: [] for b in args.base}
        loads: list[float] = []
        for _ in range(args.repeat):
            loads.append(os.getloadavg()[0])
            scans.append(_child(_SCAN, str(path), columns))
            ours.append(_child(_VALIDATE, str(path)))
            for other, runs in bases.items():
                runs.append(_child(_VALIDATE, str(path), path=other))
        scan, mine = _summary(scans), _summary(ours)
        others = {b: _summary(runs) for b, runs in bases.items()}
        report = json.loads(min(ours, key=lambda r: float(r[0]))[4])
        frames = mine["frames"]
        ratios = {  # our frames/s over the scan's: the scan's seconds over ours
            f"{what}_{stat}": scan[f"{stat}_{unit}"] / mine[f"{stat}_{unit}"]
            for what, unit in (("wall", "s"), ("cpu", "cpu_s"))
            for stat in ("best", "median")
        }
        rows = [
            [
                name,
                f"{r['best_s']:.3f} / {r['median_s']:.3f}",
                f"{r['best_cpu_s']:.3f} / {r['median_cpu_s']:.3f}",
                f"{frames / r['best_s']:,.0f}",
                f"{r['peak_rss_mib']:.0f}",
            ]
            for name, r in (
                ("polars scan (timestamp, state, action)", scan),
                ("rdstd validate (default)", mine),
                *((f"rdstd validate (default), {b}", r) for b, r in others.items()),
            )
        ]
        result: dict[str, object] = {
            "planted": PLANTED if args.planted else {},
            "episodes": args.episodes,
            "frames": frames,
            "scan": scan,
            "validate": {
                **mine,
                "counts": report["counts"],
                "checks": len(report["checks"]),
                "findings_by_check": _by_check(report["findings"]),
            },
            "ratio_to_scan": ratios,
            "repeat": args.repeat,
            "load_1min": {"min": min(loads), "max": max(loads)},
        }
        result["base"] = [
            {
                "path": b,
                **r,
                "ratio_to_scan": {
                    f"{what}_{stat}": scan[f"{stat}_{unit}"] / r[f"{stat}_{unit}"]
                    for what, unit in (("wall", "s"), ("cpu", "cpu_s"))
                    for stat in ("best", "median")
                },
            }
            for b, r in others.items()
        ]
        if args.doctor:
            doctor = run_doctor(args.doctor, path, work)
            result["lerobot_doctor"] = doctor
            rows.append(["lerobot-doctor 0.2.0 (LeRobot export)", f"{doctor['seconds']:.2f}", "", "", ""])
        heads = ["what", "wall s best / median", "CPU s best / median", "frames/s (best wall)", "peak RSS MiB"]
        print(table(heads, rows))
        print(
            f"validate / scan rate over {args.repeat} interleaved runs (1-min load {min(loads):.1f}-{max(loads):.1f}): "
            f"wall {ratios['wall_best']:.2f}x best, {ratios['wall_median']:.2f}x median; CPU {ratios['cpu_best']:.2f}x "
            f"best, {ratios['cpu_median']:.2f}x median; findings: {report['counts']}"
        )
        for entry in result["base"]:  # type: ignore[attr-defined]
            r = entry["ratio_to_scan"]
            print(
                f"  {entry['path']}: wall {r['wall_best']:.2f}x best, {r['wall_median']:.2f}x median; CPU "
                f"{r['cpu_best']:.2f}x best, {r['cpu_median']:.2f}x median"
            )
        name = "validate_planted" if args.planted else "validate_default"
        if args.planted:
            for f in report["findings"]:
                if f["severity"] != "info" or f["check"].startswith("RDV95"):
                    print(f"rdstd {f['check']} {f['severity']} episode {f['episode_index']}: {f['message'][:110]}")
            if args.doctor:
                for check in result["lerobot_doctor"]["output"].get("checks", []):  # type: ignore[index, union-attr]
                    for m in check["messages"]:
                        if m["severity"] != "PASS":
                            print(f"doctor {check['name']} {m['severity']}: {m['message'][:140]}")
        print(f"saved {save(name, result)}")


def _by_check(findings: list[dict[str, object]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        key = f"{f['check']} {f['severity']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


if __name__ == "__main__":
    main()

"""LeRobot v2.1 → rdstd → LeRobot v3.0 beside LeRobot's own v2.1 → v3.0 converter on the same episodes (#14.8).

The source is the G1 sample's 3 real episodes cycled to ``--episodes`` (default 100; AV1 640×480, 30 fps, mp4s
copied byte for byte), built by ``bench.lerobot_convert.build_large``. Every measurement is a fresh process on a
fresh copy of the source (copied and synced before the clock: the page cache holds it alike for every side, and
no side profits from caches an earlier round left in its process), and the sides take turns round by round, in
a rotating order, so the shared machine's load hits them alike:

- ``lerobot``: ``lerobot.scripts.convert_dataset_v21_to_v30.convert_dataset(root=COPY, push_to_hub=False)`` in
  LeRobot's venv (``--lerobot-python``, default the 0.6.1 one). The call (its imports — torch, datasets, … — done
  before the clock) and the whole process. Its ``datasets`` Arrow cache is built in the scratch folder each run.
- ``rdstd`` (this checkout) and ``base`` (``--base PATH``: another rdstd checkout, e.g. last session's commit in a
  ``git worktree``): ``rdstd.convert`` (videos kept) then ``export_lerobot(version="3.0")`` (stream copy) in one
  process, imports before the clock, each stage timed; and the same as the two CLI processes a user runs
  (``python -m rdstd convert`` + ``… export``, their defaults: a process pool of all cores for a source of
  several work units).

Per run: wall seconds, and CPU seconds of the whole process tree (the process, a fork server and its pool workers)
sampled with psutil every 50 ms between the START and END marks the child prints (whole processes: until exit).
Best and median of ``--repeats``; ratio = LeRobot's seconds / rdstd's (≥ 1: rdstd as fast), of wall and of CPU.
Both write v3.0 with the cameras stream-copied; rdstd also writes the canonical dataset in between (fsynced),
checks every video packet against the file and every Parquet page checksum, and computes the vectors' quantiles,
which LeRobot's converter leaves out (it carries v2.1's episode stats as they are).
Run: ``PYTHONPATH=. .venv/bin/python -m bench.export_speed [--episodes 100] [--repeats 5] [--base PATH]``.
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

from bench.common import TreeCpu, checkout_env, save, table

REPO = Path(__file__).resolve().parents[1]
LEROBOT_PYTHON = Path("/work/fresh/.venv-lerobot-0.6/bin/lerobot-python")
LEROBOT_CODE = """
import sys, time
from lerobot.scripts.convert_dataset_v21_to_v30 import convert_dataset
print("START", flush=True)
t = time.perf_counter()
convert_dataset(repo_id="bench/ds", root=sys.argv[1], push_to_hub=False)
print(f"END {time.perf_counter() - t}", flush=True)
time.sleep(0.2)  # let the parent take its last CPU sample
"""
RDSTD_CODE = """
import sys, time
from rdstd.convert.pipeline import convert
from rdstd.export.lerobot import export_lerobot
print("START", flush=True)
t = time.perf_counter()
convert(sys.argv[1], sys.argv[2])
print(f"MID {time.perf_counter() - t}", flush=True)
t = time.perf_counter()
export_lerobot(sys.argv[2], sys.argv[3])
print(f"END {time.perf_counter() - t}", flush=True)
time.sleep(0.2)  # let the parent take its last CPU sample
"""


def measure(cmd: list[str], *, env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Run ``cmd``: wall and process-tree CPU seconds of the whole process, and between its marks (``START``,
    ``MID <wall s>``, ``END <wall s>``) when it prints them."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    tree = TreeCpu(child.pid)
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(child.stdout or []), daemon=True),
        threading.Thread(target=lambda: errors.extend(child.stderr or []), daemon=True),
    ]
    for reader in readers:
        reader.start()
    marks: dict[str, float] = {}

    while child.poll() is None:
        total = tree.sample()
        for line in list(lines):
            word = line.strip().split(" ", 1)[0]
            if word in ("START", "MID", "END") and word not in marks:
                marks[word] = total
        time.sleep(0.05)
    wall = time.perf_counter() - started
    for reader in readers:
        reader.join()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} … failed:\n{''.join(errors)[-3000:]}")
    out = {"process_wall": wall, "process_cpu": tree.sample()}
    said = {line.strip().split(" ", 1)[0]: line.strip().split(" ", 1)[1:] for line in lines}
    if "END" in said and "START" in marks and "END" in marks:
        if "MID" in said:
            out["stage1_wall"], out["stage1_cpu"] = float(said["MID"][0]), marks["MID"] - marks["START"]
            out["stage2_wall"], out["stage2_cpu"] = float(said["END"][0]), marks["END"] - marks["MID"]
            out["call_wall"] = out["stage1_wall"] + out["stage2_wall"]
        else:
            out["call_wall"] = float(said["END"][0])
        out["call_cpu"] = marks["END"] - marks["START"]
    return out


def fresh_copy(source: Path, scratch: Path) -> Path:
    """A fresh copy of ``source`` (every dirty page written back before the clock starts)."""
    copy = scratch / "source"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    os.sync()
    return copy


def run_rdstd(checkout: Path, source: Path, scratch: Path, cli: bool) -> dict[str, float]:
    """The round trip with the rdstd of ``checkout``: in one process, and (``cli``) as two CLI processes."""
    env = checkout_env(checkout)
    canon, out = scratch / "canon", scratch / "v30"
    for path in (canon, out):
        shutil.rmtree(path, ignore_errors=True)
    # cwd = scratch: `python -c` and `-m` put the working directory first on sys.path
    result = measure([sys.executable, "-c", RDSTD_CODE, str(source), str(canon), str(out)], env=env, cwd=scratch)
    for path in (canon, out):
        shutil.rmtree(path)
    if cli:
        rdstd = [sys.executable, "-m", "rdstd"]
        first = measure([*rdstd, "convert", str(source), str(canon), "--progress", "none"], env=env, cwd=scratch)
        second = measure([*rdstd, "export", str(canon), "--to", "lerobot", str(out)], env=env, cwd=scratch)
        result["cli_convert_wall"], result["cli_convert_cpu"] = first["process_wall"], first["process_cpu"]
        result["cli_export_wall"], result["cli_export_cpu"] = second["process_wall"], second["process_cpu"]
        result["cli_wall"] = first["process_wall"] + second["process_wall"]
        result["cli_cpu"] = first["process_cpu"] + second["process_cpu"]
        for path in (canon, out):
            shutil.rmtree(path)
    return result


def run_lerobot(python: Path, source: Path, scratch: Path) -> dict[str, float]:
    """LeRobot's converter on ``source`` (a fresh copy: it renames folders in place)."""
    # its `datasets` Arrow cache in the scratch folder: built anew each run (a fresh copy has new file times, so
    # its cache key is new anyway), and removed with the rest
    env = dict(os.environ, HF_DATASETS_CACHE=str(scratch / "hf-datasets-cache"))
    result = measure([str(python), "-c", LEROBOT_CODE, str(source)], env=env, cwd=scratch)
    shutil.rmtree(source)
    shutil.rmtree(scratch / "hf-datasets-cache", ignore_errors=True)
    shutil.rmtree(source.with_name(source.name + "_old"), ignore_errors=True)
    return result


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    """Best and median of every measured quantity."""
    out: dict[str, float] = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[f"{key}_best"], out[f"{key}_median"] = min(values), statistics.median(values)
    return out


def main() -> None:
    from bench.lerobot_convert import build_large

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lerobot-python", type=Path, default=LEROBOT_PYTHON)
    parser.add_argument("--base", type=Path, default=None, help="another rdstd checkout, measured interleaved too")
    parser.add_argument("--no-cli", action="store_true", help="leave out the CLI round trips")
    parser.add_argument("--name", default="export_speed", help="results file name")
    args = parser.parse_args()
    sides: dict[str, Any] = {}
    if args.lerobot_python.is_file():
        sides["lerobot"] = lambda src, tmp: run_lerobot(args.lerobot_python, src, tmp)
    sides["rdstd"] = lambda src, tmp: run_rdstd(REPO, src, tmp, not args.no_cli)
    if args.base:
        base = args.base.resolve()
        sides["base"] = lambda src, tmp: run_rdstd(base, src, tmp, not args.no_cli)
    scratch = Path(tempfile.mkdtemp(prefix="rdstd-bench-export-", dir=os.environ.get("BENCH_TMP")))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    try:
        source = build_large(scratch / f"v21_{args.episodes}", args.episodes)
        frames = int(json.loads((source / "meta/info.json").read_text())["total_frames"])
        names = list(sides)
        for round_ in range(args.repeats):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                runs[name].append(sides[name](fresh_copy(source, scratch), scratch))
                shutil.rmtree(scratch / "source", ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results = {name: summary(r) for name, r in runs.items()}
    rows: list[list[Any]] = []

    def row(label: str, side: str, key: str, against: str | None = None) -> None:
        got = results[side]
        cells = [label]
        for stat in ("best", "median"):
            cells.append(f"{got[f'{key}_wall_{stat}']:.2f} / {got[f'{key}_cpu_{stat}']:.2f}")
        if against:
            lr = results["lerobot"]
            cells.append(
                " / ".join(
                    f"{lr[f'{against}_{unit}_{stat}'] / got[f'{key}_{unit}_{stat}']:.2f}"
                    for stat in ("best", "median")
                    for unit in ("wall", "cpu")
                )
            )
        else:
            cells.append("")
        rows.append(cells)

    have_lerobot = "lerobot" in results
    for side, label in (("rdstd", "rdstd"), ("base", f"rdstd {args.base}")):
        if side not in results:
            continue
        row(f"{label}: convert (video kept), in process", side, "stage1")
        row(f"{label}: export v3.0 (stream copy), in process", side, "stage2")
        row(f"{label}: round trip, in process", side, "call", "call" if have_lerobot else None)
        if not args.no_cli:
            row(f"{label}: `rdstd convert` process", side, "cli_convert")
            row(f"{label}: `rdstd export` process", side, "cli_export")
            row(f"{label}: round trip, two CLI processes", side, "cli", "process" if have_lerobot else None)
    if have_lerobot:
        row("LeRobot 0.6.1 converter, the call", "lerobot", "call")
        row("LeRobot 0.6.1 converter, the process", "lerobot", "process")
    print(f"{args.episodes} episodes, {frames} frames, {args.repeats} rounds, sides interleaved\n")
    headers = ["stage", "best wall / CPU s", "median wall / CPU s", "LeRobot / rdstd: best wall, CPU; median wall, CPU"]
    print(table(headers, rows))
    data = {"episodes": args.episodes, "frames": frames, "repeats": args.repeats, "base": str(args.base or "")}
    print(f"\nresults: {save(args.name, data | {'results': results, 'runs': runs})}")


if __name__ == "__main__":
    main()

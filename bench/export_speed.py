"""LeRobot v2.1 → rdstd → LeRobot v3.0 beside LeRobot's own v2.1 → v3.0 converter on the same episodes (#14.8).

The source is the G1 sample's 3 real episodes cycled to ``--episodes`` (default 100; AV1 640×480, 30 fps, mp4s
copied byte for byte), built by ``bench.lerobot_convert.build_large``. Stages, interleaved round by round, best
of ``--repeats``:

- ``lerobot converter``: ``lerobot.scripts.convert_dataset_v21_to_v30.convert_dataset(root=COPY,
  push_to_hub=False)`` in LeRobot's venv (``--lerobot-python``, default the 0.6.1 one), on a fresh copy of the
  source each round (it renames folders in place; the copy is not timed). Two times: the conversion call alone
  (measured inside that process) and the whole process (``python -c`` with its imports: torch, datasets, …).
- ``rdstd round trip``: ``rdstd.convert`` (videos kept) then ``export_lerobot(version="3.0")`` (stream copy),
  timed in this process; and the same as two CLI processes (``python -m rdstd convert`` + ``… export``).

Both write v3.0 with the cameras stream-copied; rdstd also writes the canonical dataset in between, checks every
video packet against the file and every Parquet page checksum. Ratio = LeRobot's time / rdstd's (≥ 1: rdstd as fast).
Run: ``PYTHONPATH=. .venv/bin/python -m bench.export_speed [--episodes 100] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import save, table

LEROBOT_PYTHON = Path("/work/fresh/.venv-lerobot-0.6/bin/lerobot-python")
LEROBOT_CODE = """
import json, sys, time
t0 = time.perf_counter()
from lerobot.scripts.convert_dataset_v21_to_v30 import convert_dataset
t1 = time.perf_counter()
convert_dataset(repo_id="bench/ds", root=sys.argv[1], push_to_hub=False)
print(json.dumps({"imports_s": t1 - t0, "convert_s": time.perf_counter() - t1}))
"""


def lerobot_converter(python: Path, source: Path, scratch: Path) -> tuple[float, float]:
    """(conversion call seconds, whole process seconds) of LeRobot's converter on a fresh copy of ``source``."""
    work = scratch / "lerobot"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    shutil.copytree(source, work / "ds")
    started = time.perf_counter()
    out = subprocess.run(
        [str(python), "-c", LEROBOT_CODE, str(work / "ds")], check=True, capture_output=True, text=True
    )
    whole = time.perf_counter() - started
    inner = json.loads(out.stdout.strip().splitlines()[-1])["convert_s"]
    shutil.rmtree(work)
    return inner, whole


def rdstd_in_process(source: Path, scratch: Path) -> tuple[float, float, str]:
    """(convert seconds, export seconds, camera modes) of the round trip in this process."""
    from rdstd.convert.pipeline import convert
    from rdstd.export.lerobot import export_lerobot

    canon, out = scratch / "canon", scratch / "v30"
    for path in (canon, out):
        shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    convert(source, canon)
    converted = time.perf_counter()
    report = export_lerobot(canon, out)
    exported = time.perf_counter()
    for path in (canon, out):
        shutil.rmtree(path)
    return converted - started, exported - converted, json.dumps(report.cameras)


def rdstd_cli(source: Path, scratch: Path) -> float:
    """Seconds of ``rdstd convert`` + ``rdstd export`` as two processes (what a user runs)."""
    canon, out = scratch / "canon_cli", scratch / "v30_cli"
    for path in (canon, out):
        shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    run = [sys.executable, "-m", "rdstd"]
    subprocess.run([*run, "convert", str(source), str(canon), "--progress", "none"], check=True, capture_output=True)
    subprocess.run([*run, "export", str(canon), "--to", "lerobot", str(out)], check=True, capture_output=True)
    took = time.perf_counter() - started
    for path in (canon, out):
        shutil.rmtree(path)
    return took


def main() -> None:
    from bench.lerobot_convert import build_large

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lerobot-python", type=Path, default=LEROBOT_PYTHON)
    parser.add_argument("--no-cli", action="store_true", help="leave out the CLI round trip")
    parser.add_argument("--name", default="export_speed", help="results file name")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(dir=os.environ.get("BENCH_TMP")))
    have_lerobot = args.lerobot_python.is_file()
    try:
        source = build_large(scratch / f"v21_{args.episodes}", args.episodes)
        frames = int(json.loads((source / "meta/info.json").read_text())["total_frames"])
        best: dict[str, float] = {}
        cameras = ""

        def keep(name: str, seconds: float) -> None:
            best[name] = min(best.get(name, float("inf")), seconds)

        for _ in range(args.repeats):
            if have_lerobot:
                inner, whole = lerobot_converter(args.lerobot_python, source, scratch)
                keep("lerobot_convert_s", inner)
                keep("lerobot_process_s", whole)
            conv, exp, cameras = rdstd_in_process(source, scratch)
            keep("rdstd_convert_s", conv)
            keep("rdstd_export_s", exp)
            keep("rdstd_round_trip_s", conv + exp)
            if not args.no_cli:
                keep("rdstd_cli_s", rdstd_cli(source, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows: list[list[Any]] = [
        ["rdstd convert (video kept)", f"{best['rdstd_convert_s']:.2f}", ""],
        ["rdstd export v3.0 (stream copy)", f"{best['rdstd_export_s']:.2f}", ""],
        ["rdstd round trip, in process", f"{best['rdstd_round_trip_s']:.2f}", ""],
    ]
    if "rdstd_cli_s" in best:
        rows.append(["rdstd round trip, two CLI processes", f"{best['rdstd_cli_s']:.2f}", ""])
    if have_lerobot:
        rows.append(["LeRobot converter, the call", f"{best['lerobot_convert_s']:.2f}", ""])
        rows.append(["LeRobot converter, the process", f"{best['lerobot_process_s']:.2f}", ""])
        best["ratio_in_process"] = best["lerobot_convert_s"] / best["rdstd_round_trip_s"]
        rows[2][2] = f"{best['ratio_in_process']:.2f}"
        if "rdstd_cli_s" in best:
            best["ratio_processes"] = best["lerobot_process_s"] / best["rdstd_cli_s"]
            rows[3][2] = f"{best['ratio_processes']:.2f}"
    print(f"{args.episodes} episodes, {frames} frames, best of {args.repeats}, interleaved; cameras: {cameras}\n")
    print(table(["stage", "seconds", "LeRobot / rdstd"], rows))
    data = {"episodes": args.episodes, "frames": frames, "cameras": cameras, **best}
    print(f"\nresults: {save(args.name, data)}")


if __name__ == "__main__":
    main()

"""Batch conversion scaling: a generated 400-episode conversion with 1 vs 2 local workers, Ray vs local at 2
workers, and peak RSS per worker at 100 vs 400 episodes.

The source is a PushT-like zarr replay buffer (state, action, keypoints, a 64×64 camera encoded to PNG by the
spec). Runs are interleaved (1 worker, 2 workers, Ray) and repeated; the best of each is kept, so the shared cores'
noise hits every row alike. Run: .venv/bin/python -m bench.batch_scale
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import save, table
from rdstd.batch import convert_batch
from rdstd.testing.fixtures import make_zarr_replay_buffer

EPISODES = 400
LENGTH = 60
REPEATS = 3
UNIT_EPISODES = 16


def run(src: Path, tmp: Path, **options: Any) -> tuple[float, dict[str, Any]]:
    """One conversion into a fresh folder: (seconds, the report's batch section)."""
    out = tmp / f"out-{time.monotonic_ns()}"
    started = time.perf_counter()
    report = convert_batch(src, out, unit_episodes=UNIT_EPISODES, **options)
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    return seconds, report.batch | {"frames": report.frames_written, "units_detail": report.units}


def main() -> None:
    import ray

    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "pusht.zarr"
        make_zarr_replay_buffer(src, [LENGTH] * EPISODES, image_hw=(64, 64))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        times: dict[str, list[float]] = {"local-1": [], "local-2": [], "ray-2": []}
        batches: dict[str, dict[str, Any]] = {}
        try:
            for _ in range(REPEATS):
                for name, options in (
                    ("local-1", {"workers": 1}),
                    ("local-2", {"workers": 2}),
                    ("ray-2", {"executor": "ray", "workers": 2}),
                ):
                    seconds, batch = run(src, tmp, **options)
                    times[name].append(seconds)
                    batches[name] = batch
            rss = {}
            for episodes in (100, 400):
                _, batch = run(src, tmp, workers=2, limit=episodes)
                rss[episodes] = max(batch["peak_rss_mb_per_worker"].values())
        finally:
            ray.shutdown()
    best = {k: min(v) for k, v in times.items()}
    frames = batches["local-1"]["frames"]
    units = batches["local-1"]["units_detail"]
    per_unit_s = sum(u["seconds"] for u in units) / len(units)
    per_unit_bytes = sum(u["bytes"] for u in units) / len(units)
    rows = [
        ["local, 1 worker", f"{best['local-1']:.2f}", f"{frames / best['local-1']:,.0f}", "1.00"],
        [
            "local, 2 workers",
            f"{best['local-2']:.2f}",
            f"{frames / best['local-2']:,.0f}",
            f"{best['local-1'] / best['local-2']:.2f}",
        ],
        [
            "ray, 2 workers",
            f"{best['ray-2']:.2f}",
            f"{frames / best['ray-2']:,.0f}",
            f"{best['local-1'] / best['ray-2']:.2f}",
        ],
    ]
    print(f"{EPISODES} episodes x {LENGTH} frames, 64x64 PNG camera, {len(units)} units of {UNIT_EPISODES} episodes")
    print(table(["run", "seconds (best of 3)", "frames/s", "speed-up vs 1 worker"], rows))
    print(f"speed-up 2 vs 1 worker: {best['local-1'] / best['local-2']:.2f}x (target >= 1.7)")
    print(f"ray / local at 2 workers: {best['ray-2'] / best['local-2']:.2f}x (target <= 1.2)")
    print(f"peak RSS per worker: {rss[100]:.0f} MB at 100 episodes, {rss[400]:.0f} MB at 400 (flat)")
    print(
        f"per unit ({UNIT_EPISODES} episodes, {UNIT_EPISODES * LENGTH} frames): {per_unit_s:.2f} s, "
        f"{per_unit_bytes / 1e6:.1f} MB"
    )
    path = save(
        "batch_scale",
        {
            "episodes": EPISODES,
            "frames_per_episode": LENGTH,
            "unit_episodes": UNIT_EPISODES,
            "seconds": times,
            "best_seconds": best,
            "speedup_2_vs_1": best["local-1"] / best["local-2"],
            "ray_over_local_2": best["ray-2"] / best["local-2"],
            "peak_rss_mb_per_worker": {str(k): v for k, v in rss.items()},
            "per_unit_seconds": per_unit_s,
            "per_unit_bytes": per_unit_bytes,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

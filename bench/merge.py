"""Merging canonical datasets against copying the same files, peak RSS against episode count, and LeRobot's merge.

Inputs: 3 generated datasets × EPISODES episodes of 50 frames (7-DoF state and action, one 128×128 JPEG camera,
10 Hz). The limit is copying the three input folders (``shutil.copytree``: the kernel copies, nothing parsed);
rdstd merge reads every row group (page checksums verified), renumbers, writes new shards (fsynced), links nothing
(no videos here) and merges the stats. Both run interleaved, best of REPEATS. Peak RSS of a merge is measured in a
fresh process for 3 × SMALL and 3 × EPISODES episodes. LeRobot (0.6.1 venv,
``lerobot.datasets.dataset_tools.merge_datasets``) merges LeRobot v3.0 exports of the same inputs; a fourth input
at 30 Hz shows what it refuses.

Run: .venv/bin/python -m bench.merge [EPISODES]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import camera_frames, checkout_env, save, table
from rdstd.schema.embodiment import Embodiment
from rdstd.schema.episode import EncodedFrames, Episode, EpisodeMeta
from rdstd.schema.features import Dimension, ImageFeature, VectorFeature
from rdstd.schema.manifest import Provenance
from rdstd.schema.vocabulary import ImageCodec, Role, Unit
from rdstd.store.writer import DatasetWriter

EPISODES = 200
SMALL = 50
FRAMES = 50
REPEATS = 5
LEROBOT_PYTHON = Path("/work/fresh/.venv-lerobot-0.6/bin/lerobot-python")

_STATE = VectorFeature(
    shape=(7,), dims=[Dimension(name=f"joint{i}", role=Role.JOINT_POSITION, unit=Unit.RAD) for i in range(7)]
)
FEATURES: dict[str, VectorFeature | ImageFeature] = {
    "observation.state": _STATE,
    "action": _STATE,
    "observation.images.front": ImageFeature(height=128, width=128),
}


def make_input(path: Path, episodes: int, prefix: str, rate_hz: float = 10.0, seed: int = 0) -> Path:
    """A generated canonical dataset of ``episodes`` × FRAMES frames."""
    frames = camera_frames(64, height=128, width=128, seed=seed)
    rng = np.random.default_rng(seed)
    provenance = Provenance(source_format="bench", rdstd_version="bench")
    with DatasetWriter(
        path, FEATURES, provenance, rate_hz=rate_hz, embodiments=[Embodiment(name="arm", control_rate_hz=rate_hz)]
    ) as writer:
        for e in range(episodes):
            state = np.cumsum(rng.normal(0, 0.01, (FRAMES, 7)), axis=0).astype(np.float32)
            writer.add(
                Episode(
                    EpisodeMeta(episode_id=f"{prefix}{e:05d}", task="pick", embodiment="arm"),
                    np.arange(FRAMES) / rate_hz,
                    {"observation.state": state, "action": state},
                    {
                        "observation.images.front": EncodedFrames(
                            ImageCodec.JPEG, [frames[(e + i) % 64] for i in range(FRAMES)]
                        )
                    },
                )
            )
    return path


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cpu_s() -> float:
    """CPU seconds (user + system, every thread) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CPU: dict[str, list[float]] = {"merge": [], "copy": []}


def time_merge(inputs: list[Path], out: Path) -> float:
    """Seconds of ``rdstd.merge`` into a fresh ``out`` (removed after); its CPU seconds go to CPU["merge"]."""
    from rdstd.ops.merge import merge

    cpu, started = cpu_s(), time.perf_counter()
    merge(inputs, out)
    seconds = time.perf_counter() - started
    CPU["merge"].append(cpu_s() - cpu)
    shutil.rmtree(out)
    return seconds


def time_copy(inputs: list[Path], out: Path) -> float:
    """Seconds to copy the input folders (the limit), fsynced like the merge's output (CPU to CPU["copy"])."""
    cpu, started = cpu_s(), time.perf_counter()
    for p in inputs:
        shutil.copytree(p, out / p.name)
    for f in out.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    seconds = time.perf_counter() - started
    CPU["copy"].append(cpu_s() - cpu)
    shutil.rmtree(out)
    return seconds


def peak_rss_mb(inputs: list[Path], out: Path) -> float:
    """Peak RSS (MB) of a fresh process that merges ``inputs`` into ``out``."""
    code = (
        "import resource, sys; from rdstd.ops.merge import merge; "
        f"merge({[str(p) for p in inputs]!r}, {str(out)!r}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=checkout_env(None)
    )
    shutil.rmtree(out)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


LEROBOT_MERGE = """
import json, sys, time
from pathlib import Path
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.datasets.dataset_tools import merge_datasets
roots, out = [Path(p) for p in sys.argv[1:-1]], Path(sys.argv[-1])
started = time.perf_counter()
try:
    datasets = [LeRobotDataset(repo_id=f"bench/{r.name}", root=r) for r in roots]
    merge_datasets(datasets, output_repo_id="bench/merged", output_dir=out)
    print(json.dumps({"seconds": time.perf_counter() - started, "refused": None}))
except Exception as exc:
    print(json.dumps({"seconds": time.perf_counter() - started, "refused": f"{type(exc).__name__}: {exc}"}))
"""


def lerobot_merge(roots: list[Path], out: Path) -> dict[str, object]:
    """LeRobot's own merge of LeRobot datasets ``roots`` (its time, or what it refuses)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [str(LEROBOT_PYTHON), "-c", LEROBOT_MERGE, *map(str, roots), str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"seconds": None, "refused": f"crashed: {done.stderr.strip().splitlines()[-1:]}"}
    result: dict[str, object] = json.loads(lines[-1])
    shutil.rmtree(out, ignore_errors=True)
    return result


def main(episodes: int = EPISODES) -> None:
    """Run the bench, print the table, save the JSON."""
    from rdstd.export.lerobot import export_lerobot
    from rdstd.ops.merge import merge

    with tempfile.TemporaryDirectory(prefix="rdstd-bench-merge-") as tmp:
        root = Path(tmp)
        inputs = [make_input(root / f"lab{k}", episodes, f"lab{k}-", seed=k) for k in range(3)]
        small = [make_input(root / f"small{k}", SMALL, f"small{k}-", seed=k) for k in range(3)]
        size = sum(folder_bytes(p) for p in inputs)
        merges, copies = [], []
        for _ in range(REPEATS):  # interleaved: the shared cores' noise hits both alike
            merges.append(time_merge(inputs, root / "merged"))
            copies.append(time_copy(inputs, root / "copied"))
        merge_s, copy_s = min(merges), min(copies)
        merges_median, copies_median = float(np.median(merges)), float(np.median(copies))
        rss_small = peak_rss_mb(small, root / "rss-small")
        rss_large = peak_rss_mb(inputs, root / "rss-large")

        lerobot: dict[str, object] = {"seconds": None, "refused": "LeRobot 0.6.1 venv not found"}
        refused: dict[str, object] = dict(lerobot)
        rdstd_mixed: str = ""
        if LEROBOT_PYTHON.exists():
            exports = []
            for p in inputs:
                export_lerobot(p, root / f"lr-{p.name}")
                exports.append(root / f"lr-{p.name}")
            lerobot = lerobot_merge(exports, root / "lr-merged")
            fast = make_input(root / "lab30hz", 20, "fast-", rate_hz=30.0, seed=9)
            export_lerobot(fast, root / "lr-lab30hz")
            refused = lerobot_merge([exports[0], root / "lr-lab30hz"], root / "lr-refused")
            merge([inputs[0], fast], root / "rdstd-mixed")
            rdstd_mixed = f"merged: {len(list((root / 'rdstd-mixed' / 'data').iterdir()))} shards, rates 10 and 30 Hz"
            shutil.rmtree(root / "rdstd-mixed")

    rows = [
        [
            "copy the 3 input folders (limit)",
            f"{copy_s:.2f}",
            f"{copies_median:.2f}",
            f"{min(CPU['copy']):.2f}",
            f"{size / copy_s / 1e6:,.0f}",
            "1.00",
            "1.00",
        ],
        [
            "rdstd merge",
            f"{merge_s:.2f}",
            f"{merges_median:.2f}",
            f"{min(CPU['merge']):.2f}",
            f"{size / merge_s / 1e6:,.0f}",
            f"{copy_s / merge_s:.2f}",
            f"{copies_median / merges_median:.2f}",
        ],
    ]
    if isinstance(lerobot.get("seconds"), float) and not lerobot.get("refused"):
        lr = float(lerobot["seconds"])  # type: ignore[arg-type]
        rows.append(
            [
                "LeRobot merge_datasets (its v3.0 exports)",
                f"{lr:.2f}",
                "",
                "",
                "",
                f"rdstd {lr / merge_s:.2f}× faster",
                "",
            ]
        )
    print(f"3 × {episodes} episodes × {FRAMES} frames, 128×128 JPEG, {size / 1e6:.0f} MB of input")
    headers = ["what", "s (best)", "s (median)", "CPU s (best)", "MB/s (best)", "rate vs copy (best)", "(median)"]
    print(table(headers, rows))
    print(
        table(["episodes merged", "peak RSS MB"], [[3 * SMALL, f"{rss_small:.0f}"], [3 * episodes, f"{rss_large:.0f}"]])
    )
    print(f"LeRobot merge: {lerobot}")
    print(f"LeRobot merge of a 10 Hz and a 30 Hz dataset: {refused}")
    print(f"rdstd merge of the same two: {rdstd_mixed}")
    save(
        "merge",
        {
            "episodes_per_input": episodes,
            "frames_per_episode": FRAMES,
            "input_bytes": size,
            "merge_s": merges,
            "copy_s": copies,
            "merge_cpu_s": CPU["merge"],
            "copy_cpu_s": CPU["copy"],
            "merge_rate_vs_copy": copy_s / merge_s,
            "merge_rate_vs_copy_median": copies_median / merges_median,
            "peak_rss_mb": {str(3 * SMALL): rss_small, str(3 * episodes): rss_large},
            "lerobot_merge": lerobot,
            "lerobot_mixed_rates": refused,
            "rdstd_mixed_rates": rdstd_mixed,
        },
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else EPISODES)

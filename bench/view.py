"""Logging one episode to .rrd: ``rdstd view`` against a bare ``send_columns`` of the same arrays (the limit) and
per-row ``rr.log`` (what frame-by-frame viewers do).

The episode: 10,000 frames, 7-DoF state and action, two 96×96 JPEG cameras, stored as a canonical dataset. rdstd's
time is end to end: open the dataset, read the episode from its shard, log it (two timelines, series names, task,
properties, blueprint) and write the .rrd aside and rename it. The bare and per-row times start from the arrays in
memory and log the same streams on both timelines. The three run interleaved, best of ``REPEATS``.
Run: .venv/bin/python -m bench.view
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rerun as rr

from bench.common import save, table
from rdstd.media.images import encode
from rdstd.schema import (
    Dimension,
    EncodedFrames,
    Episode,
    EpisodeMeta,
    ImageCodec,
    ImageFeature,
    Provenance,
    VectorFeature,
)
from rdstd.schema.vocabulary import Role, Unit
from rdstd.store.writer import DatasetWriter

FRAMES = 10_000
DOF = 7
SIDE = 96
RATE = 50.0
REPEATS = 5
CAMERAS = ("observation.images.front", "observation.images.wrist")


def joints() -> list[Dimension]:
    return [Dimension(name=f"joint_{i}", role=Role.JOINT_POSITION, unit=Unit.RAD) for i in range(DOF)]


def make_dataset(root: Path) -> tuple[Path, dict[str, np.ndarray], dict[str, list[bytes]]]:
    rng = np.random.default_rng(0)
    t = np.arange(FRAMES) / RATE
    state = np.sin(t[:, None] + np.arange(DOF)).astype(np.float32)
    action = np.roll(state, -1, axis=0)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    # a smooth scene with some texture (about 3 KB per JPEG frame, like a real 96×96 camera), not noise
    base = np.stack([xx * 2, yy * 2, (xx + yy)], axis=-1) + rng.integers(0, 24, (SIDE, SIDE, 3))
    base = base.clip(0, 255).astype(np.uint8)
    cams = {
        name: [encode(np.roll(base, (f + 7 * c) % SIDE, axis=1), ImageCodec.JPEG) for f in range(FRAMES)]
        for c, name in enumerate(CAMERAS)
    }
    features: dict[str, VectorFeature | ImageFeature] = {
        "observation.state": VectorFeature(shape=(DOF,), dims=joints()),
        "action": VectorFeature(shape=(DOF,), dims=joints()),
        **{name: ImageFeature(height=SIDE, width=SIDE) for name in CAMERAS},
    }
    path = root / "ds"
    with DatasetWriter(path, features, Provenance(source_format="bench", rdstd_version="bench"), rate_hz=RATE) as w:
        w.add(
            Episode(
                EpisodeMeta(episode_id="ep0", task="bench"),
                t,
                {"observation.state": state, "action": action},
                {name: EncodedFrames(ImageCodec.JPEG, frames) for name, frames in cams.items()},
            )
        )
    return path, {"observation.state": state.astype(np.float64), "action": action.astype(np.float64), "t": t}, cams


Timing = tuple[float, float]  # (wall seconds, CPU seconds of the whole process, Rerun's threads included)


def timed(fn: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_rdstd(ds: Path, out: Path) -> Timing:
    """End to end: open the dataset, read the episode, log it, write the .rrd aside and rename it."""
    from rdstd.view.episodes import open_view
    from rdstd.view.session import save as save_rrd

    def go() -> None:
        with open_view(ds) as view:
            save_rrd(view, [0], out)

    return timed(go)


def run_rdstd_logging(ds: Path, out: Path) -> Timing:
    """Logging only: the episode already read into memory (as the bare and per-row runs have theirs)."""
    from rdstd.view.episodes import open_view
    from rdstd.view.record import Side
    from rdstd.view.session import write_rrd

    with open_view(ds) as view:
        episode = view.episode(0)
        chunks = list(episode.chunks)
        episode.chunks = iter(chunks)
        return timed(lambda: write_rrd([Side("", view.facts, episode)], out))


def run_bare(arrays: dict[str, np.ndarray], cams: dict[str, list[bytes]], out: Path) -> Timing:
    def go() -> None:
        rec = rr.RecordingStream("bench", recording_id="bare")
        rec.save(out)
        t = arrays["t"]
        idx = [rr.TimeColumn("frame", sequence=np.arange(FRAMES)), rr.TimeColumn("time", duration=t)]
        for name in ("observation.state", "action"):
            rec.send_columns(name, indexes=idx, columns=rr.Scalars.columns(scalars=arrays[name]))
        for name, frames in cams.items():
            rec.log(name, rr.EncodedImage.from_fields(media_type="image/jpeg"), static=True)
            rec.send_columns(name, indexes=idx, columns=rr.EncodedImage.columns(blob=frames))
        rec.flush()
        rec.disconnect()

    return timed(go)


def run_per_row(arrays: dict[str, np.ndarray], cams: dict[str, list[bytes]], out: Path) -> Timing:
    def go() -> None:
        rec = rr.RecordingStream("bench", recording_id="per-row")
        rec.save(out)
        t = arrays["t"]
        for i in range(FRAMES):
            rec.set_time("frame", sequence=i)
            rec.set_time("time", duration=float(t[i]))
            for name in ("observation.state", "action"):
                rec.log(name, rr.Scalars(arrays[name][i]))
            for name, frames in cams.items():
                rec.log(name, rr.EncodedImage(contents=frames[i], media_type="image/jpeg"))
        rec.flush()
        rec.disconnect()

    return timed(go)


METHODS = ("rdstd", "rdstd_logging", "bare", "per_row")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-view-") as tmp:
        root = Path(tmp)
        ds, arrays, cams = make_dataset(root)
        runs: dict[str, Callable[[Path], Timing]] = {
            "rdstd": lambda f: run_rdstd(ds, f),
            "rdstd_logging": lambda f: run_rdstd_logging(ds, f),
            "bare": lambda f: run_bare(arrays, cams, f),
            "per_row": lambda f: run_per_row(arrays, cams, f),
        }
        wall: dict[str, list[float]] = {k: [] for k in METHODS}
        cpu: dict[str, list[float]] = {k: [] for k in METHODS}
        sizes: dict[str, int] = {}
        for r in range(REPEATS):
            for name in METHODS:
                file = root / f"{name}-{r}.rrd"
                w, c = runs[name](file)
                wall[name].append(w)
                cpu[name].append(c)
                sizes[name] = file.stat().st_size
                file.unlink()
    best = {k: min(v) for k, v in wall.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    rows = [
        [
            k,
            f"{best[k]:.3f}",
            f"{float(np.median(wall[k])):.3f}",
            f"{best_cpu[k]:.3f}",
            f"{FRAMES / best[k]:,.0f}",
            f"{best[k] / best['bare']:.2f}×",
            f"{best_cpu[k] / best_cpu['bare']:.2f}×",
            f"{sizes[k] / 2**20:.1f}",
        ]
        for k in METHODS
    ]
    print(f"{FRAMES} frames, {DOF}-DoF state + action, {len(CAMERAS)} cameras {SIDE}×{SIDE} JPEG, best of {REPEATS}")
    print(
        table(
            ["method", "best wall s", "median wall s", "best CPU s", "frames/s", "÷ bare wall", "÷ bare CPU", "MiB"],
            rows,
        )
    )
    ratio = best["rdstd"] / best["bare"]
    print(
        f"rdstd / bare send_columns = {ratio:.2f} wall, {best_cpu['rdstd'] / best_cpu['bare']:.2f} CPU (target ≤ 1.5)"
    )
    save(
        "view",
        {
            "frames": FRAMES,
            "dof": DOF,
            "cameras": len(CAMERAS),
            "image": f"{SIDE}x{SIDE} jpeg",
            "repeats": REPEATS,
            "wall_s": wall,
            "cpu_s": cpu,
            "best_wall_s": best,
            "best_cpu_s": best_cpu,
            "rrd_bytes": sizes,
            "rdstd_over_bare_wall": ratio,
            "rdstd_over_bare_cpu": best_cpu["rdstd"] / best_cpu["bare"],
            "rdstd_logging_over_bare_wall": best["rdstd_logging"] / best["bare"],
            "per_row_over_bare_wall": best["per_row"] / best["bare"],
            "target_rdstd_over_bare": 1.5,
        },
    )


if __name__ == "__main__":
    main()

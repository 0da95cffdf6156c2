"""Shared bench helpers: synthetic camera frames, canonical datasets to read, tables and JSON results."""

from __future__ import annotations

import compileall
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

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
from rdstd.store import DatasetWriter

RESULTS = Path(__file__).resolve().parent / "results"


def camera_frames(n: int, height: int = 480, width: int = 640, seed: int = 0) -> list[bytes]:
    """JPEG frames (quality 95) of a moving scene with texture, sized like real robot camera frames (~60-90 KB)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.normal(0, 4, size=(height, width, 3)).astype(np.float32)
    frames = []
    for i in range(n):
        cx, cy = width / 2 + 200 * np.sin(i / 15), height / 2 + 120 * np.cos(i / 11)
        disk = ((xx - cx) ** 2 + (yy - cy) ** 2 < 60**2)[..., None]
        base = np.stack([xx / width * 200, yy / height * 180, (xx + yy) / (width + height) * 160], axis=-1)
        img = np.where(disk, [220, 40, 30], base) + texture
        frames.append(encode(np.clip(img, 0, 255).astype(np.uint8), ImageCodec.JPEG))
    return frames


FEATURES: dict[str, VectorFeature | ImageFeature] = {
    "observation.state": VectorFeature(shape=(14,), dims=[Dimension(name=f"joint_{i}") for i in range(14)]),
    "observation.images.front": ImageFeature(height=480, width=640),
}


def episodes(count: int, length: int, frames: list[bytes]) -> list[Episode]:
    """``count`` episodes of ``length`` frames reusing the encoded ``frames`` cyclically."""
    rng = np.random.default_rng(1)
    out = []
    for e in range(count):
        images = [frames[(e * length + i) % len(frames)] for i in range(length)]
        out.append(
            Episode(
                EpisodeMeta(episode_id=f"ep{e:05d}"),
                np.arange(length) / 30.0,
                {"observation.state": rng.normal(size=(length, 14)).astype(np.float32)},
                {"observation.images.front": EncodedFrames(ImageCodec.JPEG, images)},
            )
        )
    return out


def write_dataset(path: Path, eps: list[Episode], row_group_frames: int) -> float:
    """Write ``eps`` as a canonical dataset; returns seconds."""
    started = time.perf_counter()
    with DatasetWriter(
        path, FEATURES, Provenance(source_format="bench", rdstd_version="bench"), row_group_frames=row_group_frames
    ) as writer:
        for ep in eps:
            writer.add(ep)
    return time.perf_counter() - started


_CHECKED: set[tuple[str, str]] = set()


def installed_bytecode(code: str | Path | None = None) -> None:
    """Write the bytecode of the rdstd a child will run (the checkout ``code``'s, else the one this process
    imports), as pip does when it installs a wheel; quick when it is there already.

    On machines that set PYTHONDONTWRITEBYTECODE (these do) an editable checkout has no ``__pycache__``, so every
    child compiled the rdstd modules it imported: 0.3 s of CPU for ``rdstd --help``, 0.1–0.5 s for a 20-episode
    HDF5 conversion (measured 2026-12-01), which the benches counted as conversion. No installed rdstd pays it. The
    children still do not write bytecode themselves; they read this. Call it in the parent, before measuring."""
    import rdstd

    root = Path(code).resolve() / "rdstd" if code is not None else Path(rdstd.__file__).resolve().parent
    if not compileall.compile_dir(str(root), quiet=1):
        raise SystemExit(f"could not compile the bytecode of {root}")


def checkout_env(code: str | Path | None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment (``env``, else this process's) of a child process that must import rdstd from the checkout
    ``code`` (unchanged without one): ``code`` first on PYTHONPATH, and PYTHONSAFEPATH set, since ``python -c`` and
    ``python -m`` otherwise put the working directory first on sys.path (a bench run from one checkout "comparing"
    another ran its own rdstd twice). Checked once per checkout and working directory: a child with this
    environment must import ``code``'s rdstd, else the bench stops. The child's rdstd gets its bytecode
    (:func:`installed_bytecode`)."""
    out = dict(os.environ if env is None else env)
    key = (str(Path(code).resolve()) if code is not None else "", str(Path.cwd()))
    if key not in _CHECKED:
        installed_bytecode(code)
    if code is None:
        _CHECKED.add(key)
        return out
    root = str(Path(code).resolve())
    out["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [out.get("PYTHONPATH")])])
    out["PYTHONSAFEPATH"] = "1"
    if key not in _CHECKED:
        found = subprocess.run(
            [sys.executable, "-c", "import rdstd; print(rdstd.__file__)"],
            env=out,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(found).resolve().is_relative_to(root):
            raise SystemExit(f"a child meant to run the rdstd in {root} imports {found}")
        _CHECKED.add(key)
    return out


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    """The best (smallest) of ``repeats`` timings."""
    return min(fn() for _ in range(repeats))


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name: str, data: dict[str, Any]) -> Path:
    """Write results as JSON under bench/results/ with machine facts."""
    RESULTS.mkdir(exist_ok=True)
    data = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}, **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


#: What rdstd/convert/pipeline.py calls on DatasetWriter once the output is prepared.
WRITER_ENTRY_POINTS = frozenset({"begin_episode", "append", "end_episode", "__exit__"})


def writer_share(src: Path, out: Path, **options: Any) -> dict[str, float]:
    """``rdstd.convert.convert(src, out, **options)`` in-process under cProfile: seconds in total and inside the
    canonical writer (the DatasetWriter calls the pipeline makes, with everything below them)."""
    import cProfile
    import pstats

    from rdstd.convert.pipeline import convert

    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    convert(src, out, **options)
    profile.disable()
    total = time.perf_counter() - started
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    writer = 0.0
    for (filename, _, name), (_, _, _, cumulative, _) in stats.items():
        # the entry points the pipeline calls (none calls another), so their cumulative times add up
        if filename.endswith("rdstd/store/writer.py") and name in WRITER_ENTRY_POINTS:
            writer += cumulative
    return {
        "convert_s_profiled": round(total, 2),
        "writer_s_profiled": round(writer, 2),
        "writer_share": round(writer / total, 3),
    }


class TreeCpu:
    """CPU seconds (user + system) of a process and all its descendants, sampled: each process's highest reading
    is kept, so one that exits between samples loses at most a sampling interval."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid)
        self._seen: dict[int, float] = {}

    def sample(self) -> float:
        """The tree's CPU seconds so far."""
        psutil = self._psutil
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            self._seen[proc.pid] = max(self._seen.get(proc.pid, 0.0), times.user + times.system)
        return sum(self._seen.values())

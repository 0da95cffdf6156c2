"""``make demo``: the whole mission in a couple of minutes, on data generated here.

It writes a small source in every format rdstd reads (a Diffusion Policy zarr replay buffer, an RLDS builder, a
LeRobot v3.0 dataset, ALOHA HDF5 episodes, a ROS 1 bag), converts each with ``rdstd convert`` (the shipped
converter spec that matches it), plants a problem in one and lets ``rdstd validate`` find it, writes the dataset
card, loads a batch with :func:`rdstd.open`, and says after each step what it produced and the next command to try.

The generators are those of :mod:`rdstd.testing` (the tests use the same ones). It also writes a Rerun recording
of one episode (``rdstd view --save``) and merges two labs' datasets into one (``rdstd merge``).

Run it with ``make demo`` or ``python -m rdstd.demo [OUT]`` (default ``demo-out``); ``--only zarr,hdf5`` limits
the formats.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import rdstd
from rdstd.cli.app import main as cli

#: The formats the demo generates, in the order it shows them.
FORMATS = ("zarr", "rlds", "lerobot", "hdf5", "rosbag")


@dataclass(frozen=True)
class Source:
    """A generated source: its path, what it is, and the arguments ``rdstd convert`` needs beyond SRC OUT."""

    path: Path
    what: str
    convert_args: tuple[str, ...] = ()


def make_zarr(root: Path) -> Source:
    """A PushT-like zarr v2 replay buffer (Diffusion Policy's layout): 12 episodes, 96×96 images."""
    from rdstd.testing.fixtures import make_zarr_replay_buffer

    lengths = [40 + (i * 37) % 60 for i in range(12)]
    path = root / "sources" / "pusht_like.zarr"
    make_zarr_replay_buffer(path, lengths, image_hw=(96, 96), chunk_rows=161, zarr_format=2)
    return Source(path, f"zarr v2 replay buffer, {len(lengths)} episodes, {sum(lengths)} steps, 96×96 images")


def make_rlds(root: Path) -> Source:
    """A BridgeData V2-shaped RLDS builder (tfrecord shards): 4 episodes, four JPEG cameras, state and action."""
    from rdstd.testing.rlds import image, random_episode, rlds_features, tensor, text, write_builder

    flags = {name: tensor("bool") for name in ("is_first", "is_last", "is_terminal")}
    steps = {
        **{f"observation/image_{i}": image("jpeg", [64, 64, 3]) for i in range(4)},
        "observation/state": tensor("float32", [7]),
        "action": tensor("float32", [7]),
        "language_instruction": text(),
        "reward": tensor("float32"),
        "discount": tensor("float32"),
        **flags,
    }
    features = rlds_features(steps)
    records = [random_episode(features, 20 + 5 * i, seed=i) for i in range(4)]
    path = write_builder(root / "sources" / "rlds", features, {"train": [records]}, name="bridge_dataset")
    return Source(path, "RLDS builder (Bridge layout), 4 episodes in one tfrecord shard")


def make_lerobot(root: Path) -> Source:
    """A LeRobot v3.0 dataset: 3 episodes, joint state and action, a front and a wrist camera as mp4 video; the
    shipped spec for this robot, completed with the reward column."""
    from rdstd.testing.lerobot import Spec, make_dataset

    cameras = {"observation.images.front": (48, 64), "observation.images.wrist": (48, 64)}
    spec = Spec(version="v3.0", lengths=[30, 24, 36], fps=10, cameras=cameras)
    path = make_dataset(root / "sources" / "lerobot_v30", spec)
    reward = "  next.reward:\n    key: next.reward\n    role: reward\n    unit: none\n    frame: none\n"
    completed = _extend_spec(
        "lerobot/synthetic_7dof_arm", root / "specs" / "lerobot_demo.yaml", "lerobot/demo_arm", reward, ""
    )
    return Source(path, "LeRobot v3.0 dataset, 3 episodes, two cameras as mp4 video", ("--spec", str(completed)))


def make_hdf5(root: Path) -> Source:
    """ALOHA/ACT episodes (one HDF5 file each, padded JPEG cameras with compress_len), converted with the shipped
    ALOHA spec, matched on its own (it maps the four cameras and the effort)."""
    from rdstd.testing.hdf5 import write_aloha_folder

    path = write_aloha_folder(root / "sources" / "aloha", episodes=3, steps=20)
    return Source(path, "ALOHA HDF5 folder, 3 episode files, 4 JPEG cameras each")


ROSBAG_SPEC = """\
# The demo bag's spec, as a user writes one from `rdstd spec arm.bag` (the streams come from arm.bag.rdstd.yaml).
name: rosbag/demo_arm
format: rosbag
description: The demo's 3-joint arm bag (joints in rad, the tool pose from TF, one camera).
rate_hz: 10
clock: {kind: measured, source: header_stamp}
features:
  observation.state: {key: joints, names: [j1, j2, j3], role: joint_position, unit: rad, frame: none}
  observation.ee_pose:
    key: ee
    dims:
      - {name: x, role: eef_position, unit: m, frame: base}
      - {name: y, role: eef_position, unit: m, frame: base}
      - {name: z, role: eef_position, unit: m, frame: base}
      - {name: qx, role: eef_rotation, unit: none, frame: base}
      - {name: qy, role: eef_rotation, unit: none, frame: base}
      - {name: qz, role: eef_rotation, unit: none, frame: base}
      - {name: qw, role: eef_rotation, unit: none, frame: base}
    rotations: [{start: 3, representation: quat_xyzw}]
cameras:
  observation.images.cam: {key: cam, frame: cam_optical}
"""


def make_rosbag(root: Path) -> Source:
    """A 1 s ROS 1 bag (joints 100 Hz, camera 10 Hz, TF 50 Hz) with its alignment plan beside it, and a spec."""
    from rdstd.testing.rosbag import with_plan, write_bag

    folder = root / "sources" / "ros"
    folder.mkdir(parents=True)
    path = with_plan(write_bag(folder / "arm.bag"))
    spec = root / "specs" / "demo_arm.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(ROSBAG_SPEC, encoding="utf-8")
    return Source(path, "ROS 1 bag with its alignment plan (arm.bag.rdstd.yaml)", ("--spec", str(spec)))


def _extend_spec(shipped: str, path: Path, name: str, features: str, cameras: str) -> Path:
    """A copy of a shipped spec renamed ``name``, with YAML ``features`` and ``cameras`` entries appended."""
    from rdstd.convert.specs import load_spec

    text = Path(load_spec(shipped).origin).read_text(encoding="utf-8")
    text = text.replace(f"name: {shipped}\n", f"name: {name}\n", 1)
    text = text.replace("\nfeatures:\n", f"\nfeatures:\n{features}", 1)
    if cameras and "\ncameras:\n" not in text:  # a shipped spec that maps its cameras keeps its own mapping
        text += f"cameras:\n{cameras}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


GENERATORS: dict[str, Callable[[Path], Source]] = {
    "zarr": make_zarr,
    "rlds": make_rlds,
    "lerobot": make_lerobot,
    "hdf5": make_hdf5,
    "rosbag": make_rosbag,
}


def plant_problem(source: Path) -> str:
    """Damage a copy of the zarr replay buffer the way real data goes wrong: a stretch of NaN in the state of one
    episode (a sensor dropout). Returns what was planted."""
    import zarr

    state: Any = zarr.open_array(str(source / "data" / "state"), mode="r+")
    ends = np.asarray(zarr.open_array(str(source / "meta" / "episode_ends"), mode="r")[:])
    start = int(ends[1]) + 5  # episode 2, frames 5..12
    values = np.asarray(state[start : start + 8])
    values[:, 0] = np.nan
    state[start : start + 8] = values
    return "NaN in observation.state[agent_x], episode 2, frames 5-12"


def view_step(dataset: Path, out: Path) -> Path | None:
    """Write an ``.rrd`` of episode 0 of ``dataset`` into ``out`` with ``rdstd view --save`` and return its path (None
    when it failed; its error has been printed)."""
    rrd = out / "episode_0.rrd"
    out.mkdir(parents=True, exist_ok=True)
    if _cli("view", dataset, "--episode", "0", "--save", rrd):
        return None
    return rrd


def merge_step(first: Path, second: Path, out: Path) -> Path | None:
    """Merge two converted datasets of different labs into ``out`` with ``rdstd merge`` and return it (None when the
    merge failed; its error has been printed)."""
    if _cli("merge", first, second, out, "--prefix-ids"):
        return None
    print(f"  {rdstd.open(out)}")
    return out


def run(root: Path = Path("demo-out"), formats: tuple[str, ...] = FORMATS) -> int:
    """Generate, convert, validate, describe, load; returns the exit code (0 when every step did what it should)."""
    started = time.monotonic()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    converted: dict[str, Path] = {}
    for name in formats:
        _title(f"{name}: generate a small source, convert it")
        source = GENERATORS[name](root)
        print(f"generated {source.path}: {source.what}")
        out = root / "canonical" / name
        code = _cli("convert", source.path, out, *source.convert_args)
        if code:
            return code
        converted[name] = out
        print(f"produced: {out} (rdstd.json, episodes.parquet, data/shard-*.parquet, stats.json)")

    if "zarr" in formats:
        _title("validate: plant a problem in a source, convert it, let rdstd validate find it")
        planted_src = root / "sources" / "pusht_planted.zarr"
        shutil.copytree(root / "sources" / "pusht_like.zarr", planted_src)
        print(f"planted: {plant_problem(planted_src)}")
        planted = root / "canonical" / "zarr_planted"
        if _cli("convert", planted_src, planted, "--quiet"):
            return 3
        findings = planted / "findings.json"
        code = _cli("validate", planted, "--select", "RDV1", "--fail-on", "error")
        _cli("validate", planted, "--select", "RDV1", "--format", "json", "--output", findings, "--fail-on", "never")
        if code != 1:
            print(f"the planted problem was not found (rdstd validate exited {code})", file=sys.stderr)
            return 1
        print("produced: exit code 1 (a finding at or above --fail-on) and the report in findings.json")
        print(f"next: rdstd validate {planted} --format sarif --output findings.sarif   (for code scanning)")

    first = converted.get("zarr") or next(iter(converted.values()))
    _title("dataset card: rdstd info --format markdown")
    card = root / "README-card.md"
    with _stdout_to(card):
        code = _cli("info", first, "--format", "markdown", echo=False)
    if code:
        return code
    print(f"$ rdstd info {first} --format markdown > {card}")
    print("\n".join(card.read_text(encoding="utf-8").splitlines()[9:24]))
    print(f"produced: {card} ({len(card.read_text(encoding='utf-8').splitlines())} lines)")
    print(f"next: rdstd info {first} --format markdown > {first}/README.md")

    _title("view: one episode as a Rerun recording")
    if importlib.util.find_spec("rerun") is None:
        print("skipped: rdstd view needs the viewer extra (pip install 'rdstd[viewer]')")
    else:
        rrd = view_step(first, root / "views")
        if rrd is None:
            return 1
        print(f"produced: {rrd} ({rrd.stat().st_size / 1e6:.1f} MB)")
        print(f"next: rerun {rrd}   (or: rdstd view {first} --serve, then open the printed address)")

    _title("merge: two datasets into one")
    if len(converted) >= 2:
        a, b = list(converted.values())[:2]
        merged = merge_step(a, b, root / "canonical" / "merged")
        if merged is None:
            return 1
        print(f"produced: {merged}")
        _train_on_merged(merged)
    else:
        print("(needs two converted datasets: run the demo with more than one format)")

    _title("load: a training batch with rdstd.open")
    _load(first)
    print(f"\ndemo done in {time.monotonic() - started:.0f} s; everything is in {root}/")
    return 0


def _train_on_merged(path: Path) -> None:
    """The merged dataset validated, and a training batch of it: features an input lacked are marked missing."""
    from rdstd.loader import FrameDataset
    from rdstd.validate import validate

    counts = validate(path).counts
    said = ", ".join(f"{n} {s.value}{'' if n == 1 or s.value == 'info' else 's'}" for s, n in counts.items())
    print(f"$ rdstd validate {path}   -> {said} (null rows of a feature an input lacked are not data)")
    fd = FrameDataset(path, sorted(rdstd.open(path).manifest.vectors))
    picks = np.linspace(0, len(fd) - 1, 8).astype(np.int64)
    batch = fd.batch(picks)
    print(f"  a training batch of {len(picks)} frames across both inputs (rdstd.loader.FrameDataset):")
    shown = [k for k in sorted(fd.partial) if k.startswith(("observation.state", "action"))] or sorted(fd.partial)
    for key in shown[:4]:
        missing = int(batch[f"{key}_is_missing"].sum())
        print(f"    {key}: array{list(batch[key].shape)}, {missing} of {len(picks)} marked {key}_is_missing (zeros)")
    if len(fd.partial) > len(shown[:4]):
        print(f"    (+{len(fd.partial) - len(shown[:4])} more keys that one input lacks; see docs/loader.md)")


def _load(path: Path) -> None:
    ds = rdstd.open(path)
    n = min(len(ds), 8)
    frame = min(10, len(ds) - 1)
    print(f"$ python -c \"import rdstd; ds = rdstd.open('{path}'); ds.vectors('observation.state', range({n}))\"")
    print(repr(ds))
    batch = ds.vectors("observation.state", np.arange(n))
    print(f"  a batch of {n} frames of observation.state: array{list(batch.shape)} {batch.dtype}")
    print(f"  ds.frame({frame}):")
    for key, value in ds.frame(frame).items():
        shape = getattr(value, "shape", None)
        print(f"    {key}: {value if shape is None else f'array{list(shape)} {value.dtype}'}")
    state = ds.manifest.vectors["observation.state"]
    print(f"  observation.state units: {[f'{d.name}[{d.unit.value}]' for d in state.dims]}")
    print("next: rdstd.loader for training batches with windows, masks and normalization (see docs/loader.md)")


def _title(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _cli(*args: object, echo: bool = True) -> int:
    argv = [str(a) for a in args]
    if echo:
        print(f"$ rdstd {' '.join(argv)}", flush=True)
    code = cli(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


@contextlib.contextmanager
def _stdout_to(path: Path) -> Iterator[None]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    path.write_text(buffer.getvalue(), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``python -m rdstd.demo [OUT] [--only zarr,rlds,...]``."""
    parser = argparse.ArgumentParser(prog="python -m rdstd.demo", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="demo-out", type=Path, help="where to write (replaced)")
    parser.add_argument("--only", default=",".join(FORMATS), help="formats to generate (comma-separated)")
    args = parser.parse_args(argv)
    formats = tuple(f for f in args.only.split(",") if f)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown formats {unknown}; choose from {', '.join(FORMATS)}")
    return run(args.out, formats)


if __name__ == "__main__":
    sys.exit(main())

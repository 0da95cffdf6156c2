"""Generated LeRobot datasets (v2.0, v2.1, v3.0) and their broken variants, written in code with pyarrow + PyAV.

Frames carry their identity: frame k of episode e is a flat colour ``frame_color(e, k)``, far enough from its
neighbours that a decoded frame tells which frame it is (after lossy coding) — so "the same frame" is testable.
Vectors follow a closed formula (``state_value``), so values are checked against the formula, not a copy.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

STATE_NAMES = ["j0", "j1", "j2", "gripper"]
TASKS = ["pick the cube", "open the drawer"]


def frame_color(episode: int, k: int) -> tuple[int, int, int]:
    """The flat RGB colour of frame ``k`` of ``episode``: red steps by 23 levels per frame (mod 216).

    Neighbouring frames stay apart after three lossy generations (MPEG-4 -> JPEG -> AV1 at CRF 30).
    """
    return (20 + (23 * k) % 216, 40 + 50 * (episode % 4), 128)


def identify(pixels: npt.NDArray[np.uint8], episode: int, length: int) -> int:
    """Which frame of ``episode`` a decoded image is (nearest colour)."""
    mean = pixels.reshape(-1, 3).mean(axis=0)
    colors = np.array([frame_color(episode, k) for k in range(length)], dtype=np.float64)
    return int(np.argmin(np.abs(colors - mean).sum(axis=1)))


def state_value(episode: int, k: int) -> npt.NDArray[np.float32]:
    """observation.state of frame k of an episode (float32)."""
    j = np.arange(len(STATE_NAMES))
    values: npt.NDArray[np.float32] = (0.1 * (j + 1) * np.sin(0.3 * k + j + episode)).astype(np.float32)
    return values


def image(episode: int, k: int, height: int, width: int) -> npt.NDArray[np.uint8]:
    """The frame as pixels."""
    return np.broadcast_to(np.array(frame_color(episode, k), np.uint8), (height, width, 3)).copy()


def write_mp4(
    path: Path,
    frames: list[npt.NDArray[np.uint8]],
    fps: int,
    *,
    codec: str = "mpeg4",
    gop: int = 2,
    start: int = 0,
    faststart: bool = False,
) -> None:
    """Frames to an mp4 (pts = (start + i) / fps), keyframe every ``gop`` frames; ``faststart`` puts the index
    (``moov``) before the packets, as LeRobot's files have it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream: Any = container.add_stream(codec, rate=fps)  # a video stream (av types it as any kind)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        if codec != "libsvtav1":
            stream.bit_rate = 4_000_000
        tb = Fraction(1, fps)
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = start + i, tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@dataclass
class Spec:
    """What to generate."""

    version: str = "v2.1"
    lengths: list[int] = field(default_factory=lambda: [6, 9, 7])
    fps: int = 10
    cameras: dict[str, tuple[int, int]] = field(default_factory=lambda: {"observation.images.front": (32, 48)})
    image_keys: dict[str, tuple[int, int]] = field(default_factory=dict)
    codec: str = "mpeg4"
    declared_codec: str | None = None
    faststart: bool = False


def _features(spec: Spec) -> dict[str, Any]:
    features: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": list(STATE_NAMES)},
        "action": {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": {"motors": list(STATE_NAMES)}},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    }
    for key, (h, w) in spec.cameras.items():
        info = {"video.height": h, "video.width": w, "video.codec": spec.declared_codec or spec.codec}
        info |= {"video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": spec.fps, "has_audio": False}
        features[key] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"], "info": info}
    for key, (h, w) in spec.image_keys.items():
        features[key] = {"dtype": "image", "shape": [h, w, 3], "names": ["height", "width", "channels"]}
    for key in ("timestamp",):
        features[key] = {"dtype": "float32", "shape": [1], "names": None}
    for key in ("frame_index", "episode_index", "index", "task_index"):
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def _frame_table(spec: Spec, episode: int, length: int, first_index: int) -> pa.Table:
    states = np.stack([state_value(episode, k) for k in range(length)])
    actions = np.stack([state_value(episode, k + 1) for k in range(length)])
    n = len(STATE_NAMES)
    columns: dict[str, pa.Array] = {
        "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(states.reshape(-1)), n),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(actions.reshape(-1)), n),
        "next.reward": pa.array(np.where(np.arange(length) == length - 1, 1.0, 0.0).astype(np.float32)),
    }
    for key, (h, w) in spec.image_keys.items():
        pngs = []
        for k in range(length):
            out = io.BytesIO()
            Image.fromarray(image(episode, k, h, w)).save(out, format="PNG")
            pngs.append({"bytes": out.getvalue(), "path": f"frame_{k:06d}.png"})
        columns[key] = pa.array(pngs, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    columns |= {
        "timestamp": pa.array((np.arange(length) / spec.fps).astype(np.float32)),
        "frame_index": pa.array(np.arange(length, dtype=np.int64)),
        "episode_index": pa.array(np.full(length, episode, dtype=np.int64)),
        "index": pa.array(np.arange(first_index, first_index + length, dtype=np.int64)),
        "task_index": pa.array(np.full(length, episode % len(TASKS), dtype=np.int64)),
    }
    return pa.table(columns)


def _info(spec: Spec) -> dict[str, Any]:
    n = len(spec.lengths)
    info: dict[str, Any] = {
        "codebase_version": spec.version,
        "robot_type": "test_arm",
        "total_episodes": n,
        "total_frames": sum(spec.lengths),
        "total_tasks": min(n, len(TASKS)),
        "chunks_size": 1000,
        "fps": spec.fps,
        "splits": {"train": f"0:{n}"},
    }
    if spec.version.startswith("v2"):
        info |= {"total_videos": n * len(spec.cameras), "total_chunks": 1}
        info["data_path"] = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
        info["video_path"] = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    else:
        info |= {"data_files_size_in_mb": 100, "video_files_size_in_mb": 200}
        info["data_path"] = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
        info["video_path"] = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    if not spec.cameras:
        info["video_path"] = None
    info["features"] = _features(spec)
    return info


def make_dataset(root: Path, spec: Spec | None = None) -> Path:
    """Write a LeRobot dataset of ``spec.version`` at ``root``; returns ``root``."""
    spec = spec or Spec()
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta/info.json").write_text(json.dumps(_info(spec), indent=4))
    if spec.version.startswith("v2"):
        _write_v2(root, spec)
    else:
        _write_v3(root, spec)
    return root


def _write_v2(root: Path, spec: Spec) -> None:
    first = 0
    episodes, stats = [], []
    for e, length in enumerate(spec.lengths):
        table = _frame_table(spec, e, length, first)
        file = root / f"data/chunk-000/episode_{e:06d}.parquet"
        file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, file)
        for key, (h, w) in spec.cameras.items():
            frames = [image(e, k, h, w) for k in range(length)]
            write_mp4(
                root / f"videos/chunk-000/{key}/episode_{e:06d}.mp4",
                frames,
                spec.fps,
                codec=spec.codec,
                faststart=spec.faststart,
            )
        episodes.append({"episode_index": e, "tasks": [TASKS[e % len(TASKS)]], "length": length})
        states = np.stack([state_value(e, k) for k in range(length)])
        stats.append({"episode_index": e, "stats": {"observation.state": _stats(states)}})
        first += length
    lines = "\n".join(json.dumps(r) for r in episodes) + "\n"
    (root / "meta/episodes.jsonl").write_text(lines)
    tasks = [{"task_index": i, "task": t} for i, t in enumerate(TASKS[: min(len(spec.lengths), len(TASKS))])]
    (root / "meta/tasks.jsonl").write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    if spec.version == "v2.1":
        (root / "meta/episodes_stats.jsonl").write_text("\n".join(json.dumps(s) for s in stats) + "\n")
    else:
        all_states = np.concatenate(
            [np.stack([state_value(e, k) for k in range(n)]) for e, n in enumerate(spec.lengths)]
        )
        (root / "meta/stats.json").write_text(json.dumps({"observation.state": _stats(all_states)}))


def _stats(values: npt.NDArray[Any]) -> dict[str, Any]:
    return {
        "min": values.min(0).tolist(),
        "max": values.max(0).tolist(),
        "mean": values.mean(0).tolist(),
        "std": values.std(0).tolist(),
        "count": [len(values)],
    }


def _write_v3(root: Path, spec: Spec) -> None:
    """All episodes in one data file and one mp4 per camera, one row group per episode (as LeRobot 0.4.4 writes)."""
    tables, rows, first = [], [], 0
    for e, length in enumerate(spec.lengths):
        tables.append(_frame_table(spec, e, length, first))
        row: dict[str, Any] = {
            "episode_index": e,
            "tasks": [TASKS[e % len(TASKS)]],
            "length": length,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": first,
            "dataset_to_index": first + length,
        }
        for key in spec.cameras:
            row |= {
                f"videos/{key}/chunk_index": 0,
                f"videos/{key}/file_index": 0,
                f"videos/{key}/from_timestamp": first / spec.fps,
                f"videos/{key}/to_timestamp": (first + length) / spec.fps,
            }
        row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        states = np.stack([state_value(e, k) for k in range(length)])
        row |= {f"stats/observation.state/{k}": v for k, v in _stats(states).items()}
        rows.append(row)
        first += length
    file = root / "data/chunk-000/file-000.parquet"
    file.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(file, tables[0].schema) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=table.num_rows)
    for key, (h, w) in spec.cameras.items():
        frames = [image(e, k, h, w) for e, n in enumerate(spec.lengths) for k in range(n)]
        write_mp4(
            root / f"videos/{key}/chunk-000/file-000.mp4", frames, spec.fps, codec=spec.codec, faststart=spec.faststart
        )
    meta = root / "meta/episodes/chunk-000/file-000.parquet"
    meta.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), meta)
    names = TASKS[: min(len(spec.lengths), len(TASKS))]
    tasks = pa.table({"task_index": pa.array(range(len(names)), pa.int64()), "__index_level_0__": names})
    pq.write_table(tasks, root / "meta/tasks.parquet")
    (root / "meta/stats.json").write_text("{}")


def edit_info(root: Path, **changes: Any) -> None:
    """Change top-level keys of meta/info.json (a broken variant)."""
    file = root / "meta/info.json"
    info = json.loads(file.read_text())
    info.update(changes)
    file.write_text(json.dumps(info, indent=4))


def depth_png(episode: int, k: int, height: int = 6, width: int = 8) -> bytes:
    """A 16-bit PNG depth frame: millimetres 1000 + 100·episode + k everywhere, one pixel at 65535."""
    pixels = np.full((height, width), 1000 + 100 * episode + k, dtype=np.uint16)
    pixels[0, 0] = 65535
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def make_canonical(
    root: Path,
    *,
    splits: list[str],
    depth: bool = True,
    success: list[bool | None] | None = None,
    stamps_step_s: float = 0.1,
) -> Path:
    """A canonical dataset written with rdstd's own writer: one episode per entry of ``splits`` (4 + i frames),
    ``observation.state`` in rad with roles, a 16-bit depth camera (PNG) when ``depth``, success flags, and
    ``source_meta``."""
    from rdstd.schema.episode import EncodedFrames, Episode, EpisodeMeta
    from rdstd.schema.features import Dimension, ImageFeature, VectorFeature
    from rdstd.schema.manifest import Provenance
    from rdstd.schema.vocabulary import ColorOrder, ImageCodec, Role, Unit
    from rdstd.store.writer import DatasetWriter

    dims = [Dimension(name=n, role=Role.JOINT_POSITION, unit=Unit.RAD, frame="base") for n in STATE_NAMES]
    features: dict[str, Any] = {
        "observation.state": VectorFeature(dtype="float32", shape=(len(STATE_NAMES),), dims=dims),
    }
    if depth:
        features["observation.images.depth"] = ImageFeature(
            height=6, width=8, channels=1, dtype="uint16", codec=ImageCodec.PNG, color=ColorOrder.DEPTH
        )
    provenance = Provenance(source_format="test", rdstd_version="test")
    with DatasetWriter(root, features, provenance, rate_hz=1 / stamps_step_s) as writer:
        for e, split in enumerate(splits):
            n = 4 + e
            meta = EpisodeMeta(
                episode_id=f"ep-{e}",
                task=TASKS[e % len(TASKS)],
                split=split,
                success=(success or [None] * len(splits))[e],
                source_path=f"raw/ep{e}.h5",
                source_key=f"ep{e}",
                source_meta={"operator": f"op{e}", "attempt": e},
            )
            images: dict[str, Any] = {}
            if depth:
                images["observation.images.depth"] = EncodedFrames(ImageCodec.PNG, [depth_png(e, k) for k in range(n)])
            writer.add(
                Episode(
                    meta,
                    np.arange(n, dtype=np.float64) * stamps_step_s,
                    {"observation.state": np.stack([state_value(e, k) for k in range(n)])},
                    images,
                )
            )
    return root

"""Export a canonical dataset as LeRobot v3.0 or v2.1, laid out exactly as those versions write it.

v3.0: ``data/chunk-CCC/file-FFF.parquet`` (one row group per episode, files roll over at 100 MB),
``videos/<camera>/chunk-CCC/file-FFF.mp4`` (episodes concatenated, roll over at 200 MB), ``meta/episodes/…``
(file indices, row ranges, per-camera from/to timestamps, ``stats/*`` columns), ``meta/tasks.parquet`` (the
task text as the pandas index), ``meta/stats.json``, ``meta/info.json``.
v2.1: one parquet and one mp4 per episode, ``meta/episodes.jsonl``, ``tasks.jsonl``, ``episodes_stats.jsonl``.
Both: a GR00T ``meta/modality.json`` from the features' semantics (or the source's own, when it had one).

Low-dimensional values are written as stored (timestamps as float32, LeRobot's type); video is stream-copied
when the store kept it (see :mod:`.export_video`), else encoded. Depth cameras (16-bit) become LeRobot ``image``
features holding the stored PNG bytes untouched, marked ``is_depth_map`` (LeRobot 0.6's depth convention for
images). What LeRobot has no place for goes where LeRobot keeps it without reading it, and what it cannot hold at
all is listed in the report's ``warnings`` (see :mod:`.export_meta`).

Every path the export writes is made by :meth:`_Exporter.target`, inside the output folder (names from the
manifest are refused when they would leave it). The output folder is handled like every rdstd output, by
:class:`rdstd.store.output.Output`: locked, built under a temporary sibling and renamed into place at the end, so
a failed export leaves nothing behind and a folder that is not a LeRobot dataset is never replaced.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from rdstd.errors import SchemaError, UsageError
from rdstd.export import image_stats
from rdstd.export import lerobot_meta as export_meta
from rdstd.export.lerobot_meta import Warnings
from rdstd.export.lerobot_video import CopyPlan, PacketIndex, VideoFile, copy_plan
from rdstd.formats.lerobot import stats as lstats
from rdstd.formats.lerobot.meta import looks_like_lerobot
from rdstd.formats.lerobot.modality import build_modality
from rdstd.media import video
from rdstd.paths import inside, safe_component
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ImageCodec, Role
from rdstd.store.merged import inputs as merge_inputs
from rdstd.store.output import Output
from rdstd.store.reader import Dataset, EpisodeData, LazyImages
from rdstd.store.writer import nominal_rate_hz

if TYPE_CHECKING:
    from rdstd.batch.executors import ExecutorName

Version = Literal["3.0", "2.1"]
#: Called after each episode with (episodes done, episodes in total).
Progress = Callable[[int, int], None]

CHUNKS_SIZE = 1000
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
V3_DATA = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V2_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
#: Episodes per unit of a batch export at most (a dataset of no more is exported in one process).
UNIT_EPISODES = 50
#: CPU seconds an export costs per frame it writes (vectors, LeRobot's columns, statistics, the packet copy of a
#: camera kept as video), and per pixel of a camera frame it encodes: ``bench/export_speed.py`` (100 G1 episodes,
#: 36,462 frames stream-copied: ~0.75 s) and ``bench/lerobot_convert.py`` (AV1 encode of 640×480: ~170 frames/s).
COPY_S_PER_FRAME = 2e-5
ENCODE_S_PER_PIXEL = 2e-8
#: An export told no ``workers`` starts a pool of the machine's cores only when its work in one process is
#: estimated at more than this many seconds: the pool's start-up (a fork server, each worker's imports, opening the
#: dataset, the units' assembly) costs about a second of CPU, which smaller work never wins back.
POOL_MIN_S = 10.0
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


#: Arrow type of a LeRobot ``image`` column (HF ``Image``: embedded bytes and an optional path).
IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


@dataclass
class ExportReport:
    """What an export wrote, and what the target format could not hold.

    ``splits``: LeRobot's split ranges as written. ``warnings``: what LeRobot cannot hold (or what the export
    changed to fit it), each with the number of episodes it concerns (1 for a dataset-level fact).
    """

    output: str
    version: str
    episodes: int = 0
    frames: int = 0
    cameras: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    #: Episodes left out under ``on_error="skip"``: episode id -> reason.
    skipped: dict[str, str] = field(default_factory=dict)
    #: Batch export (:mod:`rdstd.batch.export`): executor, workers, units (empty for an export in one process).
    batch: dict[str, Any] = field(default_factory=dict)
    #: Batch export: one entry per unit run (episodes, frames, seconds, CPU seconds, worker pid).
    units: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    file += 1
    return (chunk + 1, 0) if file >= CHUNKS_SIZE else (chunk, file)


def _hf_feature(dtype: str, shape: tuple[int, ...], list_type: str) -> dict[str, Any]:
    value = {"dtype": dtype, "_type": "Value"}
    size = int(np.prod(shape))
    if shape == (1,):
        return value
    return {"feature": value, "length": size, "_type": list_type}


class _Exporter:
    """One export run (state shared by the version-specific writers)."""

    def __init__(
        self,
        ds: Dataset,
        out: Path,
        version: Version,
        codec: str,
        exclude: Sequence[str] = (),
        skip: Collection[int] = (),
    ) -> None:
        self.ds = ds
        self.out = out
        self.version = version
        self.codec = codec
        self.warnings = Warnings()
        manifest = ds.manifest
        unknown = sorted(set(exclude) - set(manifest.features))
        if unknown:
            raise UsageError(
                f"--exclude names no feature of {ds.path}: {unknown}",
                hint="see rdstd info DATASET",
                situation="exclude-unknown-feature",
            )
        for key in exclude:
            self.warnings.add(f"feature {key} left out (--exclude)")
        self.vectors: dict[str, VectorFeature] = {k: f for k, f in manifest.vectors.items() if k not in exclude}
        cameras = {k: f for k, f in manifest.cameras.items() if k not in exclude}
        for key in cameras:  # camera names become folder names: refuse one that is not a plain name
            safe_component(key, f"{ds.path / 'rdstd.json'}: camera", error=SchemaError)
        #: Cameras written as mp4 video, and depth cameras written as LeRobot ``image`` columns (PNG bytes).
        self.cameras: dict[str, ImageFeature] = {k: f for k, f in cameras.items() if not export_meta.is_depth(f)}
        self.depth: dict[str, ImageFeature] = {k: f for k, f in cameras.items() if export_meta.is_depth(f)}
        for key, f in self.depth.items():
            if f.codec == ImageCodec.VIDEO:
                raise UsageError(
                    f"{ds.path}: depth camera {key} is stored as video, which LeRobot cannot take as it is "
                    "(its depth video is 12-bit quantized HEVC, which rdstd does not write)",
                    hint=f"leave it out with --exclude {key}, or convert the source with --images png",
                    situation="depth-video-unsupported",
                )
            if export_meta.depth_unit(f) is None:
                self.warnings.add(f"depth camera {key}: unit unknown, so info.depth_unit is not set")
        clash = set(self.vectors) & set(INDEX_COLUMNS)
        if clash:
            raise UsageError(
                f"features {sorted(clash)} clash with LeRobot's own columns",
                hint="rename them first",
                situation="feature-name-clash",
            )
        self.fps = float(manifest.rate_hz or _rate_of(ds))
        if not manifest.rate_hz:
            self.warnings.add(
                f"the dataset has no single frame rate (rate_hz unknown); LeRobot's fps is set to {self.fps:g} "
                "from the first episode's median step"
            )
        splits = [str(s or "") for s in ds.episodes["split"].to_list()] if ds.num_episodes else []
        #: The export order of every episode, and without the episodes ``skip`` leaves out (canonical positions;
        #: a batch export under --on-error skip): a range of the former is a range of the latter.
        self.full_order, _ = export_meta.split_order(splits)
        self.order = [p for p in self.full_order if p not in skip]
        self.splits = export_meta.split_ranges([splits[p] for p in self.order])
        #: The canonical position of the episode being exported (what a failure names).
        self.current_position: int | None = None
        unlisted = sum(1 for s in splits if s in export_meta.NO_SPLIT)
        self.warnings.add("episodes of split 'unknown' are listed in no LeRobot split", unlisted)
        if self.order != sorted(self.order):
            self.warnings.add(
                f"episodes reordered so each split is one range of episode_index ({', '.join(self.splits)}); "
                f"{export_meta.PREFIX}source_position holds the canonical position",
                sum(1 for i, p in enumerate(self.order) if i != p),
            )
        #: Task text -> task_index, by first appearance in export order (known before any episode is read, so a
        #: range of episodes exported on its own numbers its tasks as the whole export does).
        self.tasks: dict[str, int] = {}
        texts = [str(t or "") for t in ds.episodes["task"].to_list()] if ds.num_episodes else []
        for position in self.order:
            self.tasks.setdefault(texts[position], len(self.tasks))
        #: Frames before each episode in export order (the ``index`` a range of episodes starts at).
        lengths = [int(n) for n in ds.episodes["length"].to_list()] if ds.num_episodes else []
        self.frame_offsets = [0, *itertools.accumulate(lengths[p] for p in self.order)]
        self.packets = PacketIndex()
        self.episode_stats: list[dict[str, Any]] = []
        self.camera_modes: dict[str, set[str]] = {k: set() for k in self.cameras}
        #: Cameras whose statistics every episode carries from the source (their keys): nothing to decode for them.
        self.carried: dict[str, tuple[str, ...]] = (
            image_stats.carried_keys(ds.episodes["source_meta"].to_list(), self.cameras, quantiles=version == "3.0")
            if ds.num_episodes and self.cameras
            else {}
        )
        self.video_info: dict[str, dict[str, Any]] = {}
        self.schema = self._schema()

    def target(self, rel: str, what: str) -> Path:
        """``out / rel`` for a file the export writes; a path that would leave the output folder is refused."""
        return inside(self.out, rel, what, error=SchemaError, hint="fix the feature names in the dataset's rdstd.json")

    def episodes(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, int, EpisodeData]]:
        """(LeRobot episode index, canonical position, episode) in export order (grouped by split), for the
        LeRobot episode indices ``start`` to ``stop``."""
        for index in range(start, len(self.order) if stop is None else stop):
            position = self.current_position = self.order[index]
            yield index, position, self.ds.episode(position)
        self.current_position = None

    def range_of(self, start: int, stop: int) -> tuple[int, int]:
        """The LeRobot episode indices of the episodes in slots ``start`` to ``stop`` of :attr:`full_order`."""
        kept = set(self.order)
        first = sum(1 for p in self.full_order[:start] if p in kept)
        return first, first + sum(1 for p in self.full_order[start:stop] if p in kept)

    def part_key(self, start: int, stop: int) -> str:
        """What the files of the part over :attr:`full_order` slots ``start`` to ``stop`` depend on beyond the
        dataset and the options: its episodes, where they start (episode and frame index) and the task numbers."""
        first, last = self.range_of(start, stop)
        key = [first, self.frame_offsets[first], self.order[first:last], sorted(self.tasks.items())]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()

    def check_episode(self, ep: EpisodeData) -> None:
        """Count what this episode loses in LeRobot's types."""
        change = export_meta.timestamp_change_s(ep.timestamps)
        if change > export_meta.TIMESTAMP_TOLERANCE_S:
            self.warnings.add(
                f"timestamps rounded to float32 (LeRobot's type) move by more than "
                f"{export_meta.TIMESTAMP_TOLERANCE_S:g} s"
            )

    # -- shared pieces ------------------------------------------------------------------------------------------

    def _schema(self) -> pa.Schema:
        list_type = "List" if self.version == "3.0" else "Sequence"
        fields, hf = [], {}
        for key, f in self.vectors.items():
            value = pa.bool_() if f.dtype == "bool" else pa.from_numpy_dtype(np.dtype(f.dtype))
            fields.append(pa.field(key, value if f.shape == (1,) else pa.list_(value, f.size)))
            hf[key] = _hf_feature(f.dtype, (f.size,), list_type)
        for key in self.depth:
            fields.append(pa.field(key, IMAGE_TYPE))
            hf[key] = {"_type": "Image"}
        fields.append(pa.field("timestamp", pa.float32()))
        hf["timestamp"] = _hf_feature("float32", (1,), list_type)
        for key in INDEX_COLUMNS[1:]:
            fields.append(pa.field(key, pa.int64()))
            hf[key] = _hf_feature("int64", (1,), list_type)
        return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})

    def frame_table(self, ep: EpisodeData, episode_index: int, first_index: int, task_index: int) -> pa.Table:
        n = ep.length
        columns: list[pa.Array] = []
        for key, f in self.vectors.items():
            values = np.ascontiguousarray(ep.vectors[key], dtype=f.dtype).reshape(n, f.size)
            columns.append(
                pa.array(values[:, 0])
                if f.shape == (1,)
                else pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), f.size)
            )
        for key in self.depth:
            stored = ep.images[key].encoded  # the stored PNG/JPEG bytes, untouched
            columns.append(pa.array([{"bytes": b, "path": None} for b in stored], IMAGE_TYPE))
        columns.append(pa.array(ep.timestamps.astype(np.float32)))
        columns.append(pa.array(np.arange(n, dtype=np.int64)))
        columns.append(pa.array(np.full(n, episode_index, dtype=np.int64)))
        columns.append(pa.array(np.arange(first_index, first_index + n, dtype=np.int64)))
        columns.append(pa.array(np.full(n, task_index, dtype=np.int64)))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def stats(self, table: pa.Table, frames: dict[str, list[npt.NDArray[np.uint8]]], ep: EpisodeData) -> dict[str, Any]:
        """Per-episode statistics in info.json's feature order (vectors, cameras, then LeRobot's columns)."""
        quantiles = self.version == "3.0"
        out: dict[str, Any] = {}
        for name in [*self.vectors, *self.depth, *frames, *INDEX_COLUMNS]:
            if name in self.carried:
                out[name] = image_stats.carried(ep.meta.source_meta, name, self.carried[name])
                continue
            if name in frames:
                out[name] = lstats.image_stats(frames[name], quantiles=quantiles)
                continue
            if name in self.depth:
                lazy = ep.images[name]
                sampled = [lazy[int(i)] for i in lstats.sample_indices(len(lazy))]
                out[name] = lstats.depth_stats(sampled, quantiles=quantiles)
                continue
            column = table[name].combine_chunks()
            values = column.flatten() if pa.types.is_fixed_size_list(column.type) else column
            array = values.to_numpy(zero_copy_only=False).reshape(table.num_rows, -1)
            out[name] = lstats.vector_stats(array, quantiles=quantiles)
        return out

    def task_index(self, ep: EpisodeData) -> int:
        return self.tasks[ep.meta.task]

    def write_video(
        self, current: VideoFile | None, key: str, ep: EpisodeData, path_for: Callable[[], Path]
    ) -> tuple[VideoFile, float, float, list[npt.NDArray[np.uint8]]]:
        """Add an episode's camera ``key`` to ``current`` (or a new file); returns file, from, to, sampled frames."""
        lazy: LazyImages = ep.images[key]
        feature = self.cameras[key]
        plan: CopyPlan | None = None
        if feature.codec == ImageCodec.VIDEO and self.codec == "copy-or-auto":
            plan = copy_plan(self.packets, self.ds.path, lazy.refs, ep.timestamps)
        if current is None or not current.accepts(plan):
            if current is not None:
                current.close()
            encoder: dict[str, Any] | None = (
                None if plan else {"width": feature.width, "height": feature.height, "rate_hz": self.fps}
            )
            if encoder is not None and self.codec not in ("copy-or-auto", "auto"):
                encoder["codec"] = self.codec
            current = VideoFile(path_for(), copy_from=plan.packets if plan else None, encoder_args=encoder)
        carried = key in self.carried
        wanted = set() if carried else set(lstats.sample_indices(ep.length).tolist())
        sampled: list[npt.NDArray[np.uint8]] = []
        step = max(1, max(feature.height, feature.width) // lstats.IMAGE_STATS_PX)
        if plan is not None:
            start, end = current.copy(plan, self.fps)
            if not carried:  # keyframes only: each decodes on its own (see image_stats)
                refs = lazy.refs
                with video.VideoDecoder(plan.path) as decoder:
                    first, last = float(refs[0]["timestamp_s"]), float(refs[-1]["timestamp_s"])
                    times = image_stats.keyframe_times(decoder.keyframe_times(), first, last) or [first]
                    sampled = [f[::step, ::step].copy() for f in decoder.frames_at(times)]
            self.camera_modes[key].add(f"stream copy ({current.codec})")
        else:

            def frames() -> Any:
                for i in range(ep.length):
                    pixels = lazy[i]
                    if i in wanted:
                        sampled.append(pixels[::step, ::step].copy())
                    yield pixels

            start, end = current.encode(frames(), ep.timestamps - ep.timestamps[0], self.fps)
            self.camera_modes[key].add(f"encoded ({current.codec})")
        if carried:
            self.camera_modes[key].add("statistics carried from the source")
        self.video_info.setdefault(key, self._video_info(feature, current))
        return current, start, end, sampled

    def _video_info(self, feature: ImageFeature, file: VideoFile) -> dict[str, Any]:
        return {
            "video.height": feature.height,
            "video.width": feature.width,
            "video.codec": file.codec,
            "video.pix_fmt": file.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": _int_if_whole(self.fps),
            "video.channels": feature.channels,
            "has_audio": False,
        }

    def info(self, episodes: int, frames: int) -> dict[str, Any]:
        features: dict[str, Any] = {}
        for key, f in self.vectors.items():
            features[key] = {
                "dtype": f.dtype,
                "shape": [f.size],
                "names": [d.name for d in f.dims],
                "info": export_meta.vector_info(f),
            }
        for key, c in self.depth.items():
            features[key] = {
                "dtype": "image",
                "shape": [c.height, c.width, c.channels],
                "names": ["height", "width", "channels"],
                "info": export_meta.depth_info(c),
            }
        for key, c in self.cameras.items():
            features[key] = {
                "dtype": "video",
                "shape": [c.height, c.width, c.channels],
                "names": ["height", "width", "channels"],
                "info": self.video_info.get(key, {}),
            }
        features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        for key in INDEX_COLUMNS[1:]:
            features[key] = {"dtype": "int64", "shape": [1], "names": None}
        info: dict[str, Any] = {
            "codebase_version": f"v{self.version}",
            "robot_type": _robot_type(self.ds),
            "total_episodes": episodes,
            "total_frames": frames,
            "total_tasks": len(self.tasks),
        }
        if self.version == "2.1":
            info |= {"total_videos": episodes * len(self.cameras), "total_chunks": -(-episodes // CHUNKS_SIZE)}
            info |= {"chunks_size": CHUNKS_SIZE, "fps": _int_if_whole(self.fps), "splits": dict(self.splits)}
            info |= {"data_path": V2_DATA, "video_path": V2_VIDEO if self.cameras else None}
        else:
            info |= {"chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB}
            info |= {"video_files_size_in_mb": VIDEO_FILE_MB, "fps": _int_if_whole(self.fps)}
            info |= {"splits": dict(self.splits), "data_path": V3_DATA}
            info["video_path"] = V3_VIDEO if self.cameras else None
        info["features"] = features
        return info

    def modality(self) -> dict[str, Any]:
        source = (self.ds.manifest.extra.get("source_info") or {}).get("modality")
        if isinstance(source, dict) and _modality_fits(source, self.vectors):
            return source
        groups = {k: _semantic_groups(f) for k, f in self.vectors.items() if k.startswith(("observation.", "action"))}
        return build_modality(groups, list(self.cameras))

    def write_meta_common(self, episodes: int, frames: int) -> None:
        info = self.info(episodes, frames)
        self.target("meta", "meta folder").mkdir(parents=True, exist_ok=True)
        self.target("meta/info.json", "info.json").write_text(json.dumps(info, indent=4), encoding="utf-8")
        modality = json.dumps(self.modality(), indent=4)
        self.target("meta/modality.json", "modality.json").write_text(modality, encoding="utf-8")
        manifest = self.ds.manifest.model_dump_json(indent=2)
        self.target(f"meta/{export_meta.MANIFEST_FILE}", "manifest copy").write_text(manifest, encoding="utf-8")


# -- v3.0 -----------------------------------------------------------------------------------------------------


@dataclass
class Part:
    """What exporting one range of episodes wrote (JSON-ready, the journal entry of a batch export's unit).

    ``rows``: v3.0 episodes-table rows (data and video files numbered from 0 within the part: the final step
    renumbers them) or v2.1 ``episodes.jsonl`` lines; ``stats``: per-episode statistics in the same order;
    ``files``: the files written, relative to the part's folder.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    files: list[str] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)
    camera_modes: dict[str, list[str]] = field(default_factory=dict)
    video_info: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (numpy scalars as Python numbers)."""
        data: dict[str, Any] = json.loads(json.dumps(self.__dict__, default=_plain))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        """The part :meth:`to_json` wrote."""
        return cls(**data)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def export_part(x: _Exporter, start: int, stop: int, progress: Progress | None = None) -> Part:
    """Write LeRobot episodes ``start`` to ``stop`` (export order) into ``x.out``: their frames and videos."""
    before = dict(x.warnings.counts)  # the dataset-level warnings every part's exporter makes: counted once
    part = (_part_v3 if x.version == "3.0" else _part_v21)(x, start, stop, progress)
    part.files = sorted(p.relative_to(x.out).as_posix() for p in x.out.rglob("*") if p.is_file())
    part.warnings = {k: n - before.get(k, 0) for k, n in x.warnings.counts.items() if n > before.get(k, 0)}
    x.warnings.counts = before
    part.camera_modes = {k: sorted(v) for k, v in x.camera_modes.items()}
    part.video_info = dict(x.video_info)
    return part


def _part_v3(x: _Exporter, start: int, stop: int, progress: Progress | None) -> Part:
    part = Part()
    data_chunk, data_file = 0, 0
    writer: pq.ParquetWriter | None = None
    data_bytes = 0
    videos: dict[str, VideoFile | None] = dict.fromkeys(x.cameras)
    video_index: dict[str, tuple[int, int]] = dict.fromkeys(x.cameras, (0, -1))
    frames_total = x.frame_offsets[start]

    def video_path(key: str) -> Callable[[], Path]:
        def make() -> Path:
            chunk, file = _next_file(*video_index[key])
            video_index[key] = (chunk, file)
            return x.target(V3_VIDEO.format(video_key=key, chunk_index=chunk, file_index=file), f"video of {key}")

        return make

    try:
        n_eps = x.ds.num_episodes
        for i, position, ep in x.episodes(start, stop):
            x.check_episode(ep)
            task = x.task_index(ep)
            table = x.frame_table(ep, i, frames_total, task)
            if writer is not None and data_bytes >= DATA_FILE_MB * 1024 * 1024:
                writer.close()
                writer, data_bytes = None, 0
                data_chunk, data_file = _next_file(data_chunk, data_file)
            if writer is None:
                path = x.target(V3_DATA.format(chunk_index=data_chunk, file_index=data_file), "data file")
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, x.schema, compression="snappy")
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            data_bytes += table.nbytes
            row: dict[str, Any] = {
                "episode_index": i,
                "tasks": [ep.meta.task],
                "length": ep.length,
                "data/chunk_index": data_chunk,
                "data/file_index": data_file,
                "dataset_from_index": frames_total,
                "dataset_to_index": frames_total + ep.length,
            }
            row |= export_meta.episode_columns(ep.meta, position)
            sampled: dict[str, list[npt.NDArray[np.uint8]]] = {}
            for key in x.cameras:
                current = videos[key]
                if current is not None and current.size_bytes() >= VIDEO_FILE_MB * 1024 * 1024:
                    current.close()
                    current = None
                current, begin, end, sampled[key] = x.write_video(current, key, ep, video_path(key))
                videos[key] = current
                chunk, file = video_index[key]
                row |= {
                    f"videos/{key}/chunk_index": chunk,
                    f"videos/{key}/file_index": file,
                    f"videos/{key}/from_timestamp": begin,
                    f"videos/{key}/to_timestamp": end,
                }
            stats = x.stats(table, sampled, ep)
            part.stats.append(stats)
            for feature, values in stats.items():
                for name, value in values.items():
                    row[f"stats/{feature}/{name}"] = value
            row |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
            part.rows.append(row)
            frames_total += ep.length
            part.frames += ep.length
            if progress is not None:
                progress(i + 1, n_eps)
        if writer is not None:
            writer.close()
            writer = None
        for current in videos.values():
            if current is not None:
                current.close()
    except BaseException:
        if writer is not None:
            writer.close()
        for current in videos.values():
            if current is not None:
                current.abort()
        raise
    return part


def finish_export(x: _Exporter, parts: Sequence[tuple[Path, Part]]) -> tuple[int, int]:
    """The final step: the parts' files into ``x.out`` with dataset-wide file numbers (linked, or left in place
    when a part was written there), then the metadata. Returns (episodes, frames)."""
    files = _place_parts(x, parts) if x.version == "3.0" else [(f, p.files, p.files) for f, p in parts]
    for folder, old, new in files:
        for rel_old, rel_new in zip(old, new, strict=True):
            source, target = folder / rel_old, x.target(rel_new, "exported file")
            if source != target:
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(source, target)
    for _, part in parts:
        for message, count in part.warnings.items():
            x.warnings.add(message, count)
        for key, modes in part.camera_modes.items():
            x.camera_modes.setdefault(key, set()).update(modes)
        for key, info in part.video_info.items():
            x.video_info.setdefault(key, info)
    rows = [row for _, part in parts for row in part.rows]
    stats = [s for _, part in parts for s in part.stats]
    frames = sum(part.frames for _, part in parts)
    if x.version == "3.0":
        _meta_v3(x, rows, stats)
    else:
        _meta_v21(x, rows, stats)
    x.write_meta_common(len(rows), frames)
    return len(rows), frames


def _place_parts(x: _Exporter, parts: Sequence[tuple[Path, Part]]) -> list[tuple[Path, list[str], list[str]]]:
    """Number the parts' v3.0 data and video files in order (each stream on its own count); rows updated."""
    counters: dict[str, tuple[int, int]] = {}
    moves: list[tuple[Path, list[str], list[str]]] = []
    for folder, part in parts:
        mapping: dict[tuple[str, int, int], tuple[int, int]] = {}
        for row in part.rows:
            streams = [("data", "data/")] + [(key, f"videos/{key}/") for key in x.cameras]
            for stream, prefix in streams:
                local = (stream, row[f"{prefix}chunk_index"], row[f"{prefix}file_index"])
                if local not in mapping:
                    mapping[local] = counters[stream] = _next_file(*counters.get(stream, (0, -1)))
                row[f"{prefix}chunk_index"], row[f"{prefix}file_index"] = mapping[local]
        old, new = [], []
        for (stream, chunk, file), (g_chunk, g_file) in mapping.items():
            if stream == "data":
                old.append(V3_DATA.format(chunk_index=chunk, file_index=file))
                new.append(V3_DATA.format(chunk_index=g_chunk, file_index=g_file))
            else:
                old.append(V3_VIDEO.format(video_key=stream, chunk_index=chunk, file_index=file))
                new.append(V3_VIDEO.format(video_key=stream, chunk_index=g_chunk, file_index=g_file))
        moves.append((folder, old, new))
    return moves


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _meta_v3(x: _Exporter, rows: list[dict[str, Any]], stats: list[dict[str, Any]]) -> None:
    episodes_file = x.target("meta/episodes/chunk-000/file-000.parquet", "episodes table")
    episodes_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), episodes_file, compression="snappy")
    _write_tasks_parquet(x.target("meta/tasks.parquet", "tasks table"), x.tasks)
    if stats:
        aggregated = {k: lstats.aggregate([s[k] for s in stats]) for k in stats[0]}
        x.target("meta/stats.json", "stats").write_text(json.dumps(aggregated, indent=4), encoding="utf-8")


def _write_tasks_parquet(path: Path, tasks: dict[str, int]) -> None:
    """``task_index`` plus the task text as the pandas index (how LeRobot 0.4.x writes and reads it)."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    schema = pa.schema(
        [pa.field("task_index", pa.int64()), pa.field("__index_level_0__", pa.string())],
        metadata={"pandas": json.dumps(pandas_meta)},
    )
    table = pa.Table.from_arrays(
        [pa.array(list(tasks.values()), pa.int64()), pa.array(list(tasks.keys()), pa.string())], schema=schema
    )
    pq.write_table(table, path)


# -- v2.1 -----------------------------------------------------------------------------------------------------


def _part_v21(x: _Exporter, start: int, stop: int, progress: Progress | None) -> Part:
    part = Part()
    frames_total = x.frame_offsets[start]
    n_eps = x.ds.num_episodes
    for i, position, ep in x.episodes(start, stop):
        x.check_episode(ep)
        fields = {"episode_chunk": i // CHUNKS_SIZE, "episode_index": i}
        table = x.frame_table(ep, i, frames_total, x.task_index(ep))
        path = x.target(V2_DATA.format(**fields), "data file")
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="snappy")
        sampled: dict[str, list[npt.NDArray[np.uint8]]] = {}
        for key in x.cameras:
            target = x.target(V2_VIDEO.format(video_key=key, **fields), f"video of {key}")
            file, _, _, sampled[key] = x.write_video(None, key, ep, lambda target=target: target)  # type: ignore[misc]
            file.close()
        part.stats.append({"episode_index": i, "stats": x.stats(table, sampled, ep)})
        line = {"episode_index": i, "tasks": [ep.meta.task], "length": ep.length}
        part.rows.append(line | export_meta.episode_columns(ep.meta, position))
        frames_total += ep.length
        part.frames += ep.length
        if progress is not None:
            progress(i + 1, n_eps)
    return part


def _meta_v21(x: _Exporter, rows: list[dict[str, Any]], stats: list[dict[str, Any]]) -> None:
    meta = x.target("meta", "meta folder")
    meta.mkdir(parents=True, exist_ok=True)
    with (meta / "episodes.jsonl").open("w", encoding="utf-8") as episodes:
        episodes.writelines(json.dumps(line) + "\n" for line in rows)
    with (meta / "episodes_stats.jsonl").open("w", encoding="utf-8") as stats_file:
        stats_file.writelines(json.dumps(line) + "\n" for line in stats)
    with (meta / "tasks.jsonl").open("w", encoding="utf-8") as tasks:
        for text, index in x.tasks.items():
            tasks.write(json.dumps({"task_index": index, "task": text}) + "\n")


# -- entry point ----------------------------------------------------------------------------------------------


def export_lerobot(
    dataset: str | os.PathLike[str] | Dataset,
    output: str | os.PathLike[str],
    *,
    version: Version = "3.0",
    codec: str = "copy-or-auto",
    overwrite: bool = False,
    exclude: Sequence[str] = (),
    progress: Progress | None = None,
    on_error: Literal["fail", "skip"] = "fail",
    executor: ExecutorName | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    unit_episodes: int | None = None,
) -> ExportReport:
    """Write the canonical ``dataset`` as a LeRobot ``version`` dataset at ``output``.

    ``codec``: ``copy-or-auto`` (default) stream-copies cameras kept as video and encodes the rest with the best
    encoder available (libsvtav1, else H.264); ``auto`` always encodes; or an FFmpeg encoder name.
    ``exclude``: features to leave out (listed in the report's warnings).

    Batch export (:mod:`rdstd.batch.export`, ``docs/batch.md``): with ``executor``, ``workers`` (default: the
    machine's cores) or ``resume``, ranges of ``unit_episodes`` episodes are exported on that executor and
    assembled; the output is the same whatever the executor and the worker count. A dataset of one unit is
    exported in this process either way, and so is one whose export :func:`estimated_seconds` puts under
    :data:`POOL_MIN_S` when ``executor="local"`` comes without ``workers`` or ``resume`` (what ``rdstd export``
    passes by default): starting the pool would cost more than it saves. ``on_error="skip"`` leaves out episodes
    whose data cannot be read (listed in the report) instead of failing.
    """
    started = time.perf_counter()
    if version not in ("3.0", "2.1"):
        raise UsageError(
            f"LeRobot version {version!r} cannot be written",
            hint="choose --version 3.0 or 2.1",
            situation="export-version-unknown",
        )
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    _refuse_mixed(ds)
    out = Path(output)
    unit_episodes = unit_episodes or UNIT_EPISODES
    asked = workers is not None or resume or executor not in (None, "local")
    pool = asked or (executor == "local" and estimated_seconds(ds, codec, exclude) > POOL_MIN_S)
    if on_error == "skip" or (pool and (ds.num_episodes > unit_episodes or executor not in (None, "local") or resume)):
        from rdstd.batch.export import export_batch

        return export_batch(
            ds,
            out,
            version=version,
            codec=codec,
            overwrite=overwrite,
            exclude=exclude,
            progress=progress,
            on_error=on_error,
            executor=executor or "local",
            workers=workers or os.cpu_count() or 1,
            ray_address=ray_address,
            resume=resume,
            unit_episodes=unit_episodes,
        )
    with (
        Output.begin(
            out, is_kind=looks_like_lerobot, kind="LeRobot dataset", overwrite=overwrite, sources=[ds.path]
        ) as target,
        target.guard(),
    ):
        exporter = _Exporter(ds, target.tmp, version, codec, exclude)
        part = export_part(exporter, 0, ds.num_episodes, progress)
        episodes, frames = finish_export(exporter, [(target.tmp, part)])
    report = ExportReport(str(out), f"v{version}", episodes, frames)
    report.cameras = {k: ", ".join(sorted(v)) for k, v in exporter.camera_modes.items()}
    report.cameras |= {k: "depth image (stored bytes)" for k in exporter.depth}
    report.splits = dict(exporter.splits)
    report.warnings = dict(exporter.warnings.counts)
    report.seconds = time.perf_counter() - started
    return report


# -- helpers --------------------------------------------------------------------------------------------------


def estimated_seconds(ds: Dataset, codec: str, exclude: Sequence[str] = ()) -> float:
    """CPU seconds the export of ``ds`` would take in one process, roughly: every frame at the stream-copy rate,
    plus the pixels of every camera frame it encodes (cameras not kept as video, or every camera when ``codec`` is
    not ``copy-or-auto``; a video camera found not copyable encodes too, which this does not foresee)."""
    frames = int(ds.episodes["length"].sum()) if ds.num_episodes else 0
    encoded_pixels = sum(
        f.height * f.width
        for key, f in ds.manifest.cameras.items()
        if key not in exclude
        and not export_meta.is_depth(f)
        and (f.codec != ImageCodec.VIDEO or codec != "copy-or-auto")
    )
    return frames * (COPY_S_PER_FRAME + encoded_pixels * ENCODE_S_PER_PIXEL)


def _refuse_mixed(ds: Dataset) -> None:
    """LeRobot holds one fps and one feature set per dataset: refuse a mix (a merged dataset) naming the fix."""
    inputs = merge_inputs(ds.manifest.extra)
    rates = {i.get("rate_hz") for i in inputs}
    durations = ds.episodes.filter(pl.col("duration_s") > 0)
    per_episode = ((durations["length"] - 1) / durations["duration_s"]).to_numpy() if len(durations) else None
    mixed_rate = (ds.manifest.rate_hz is None and len(rates) > 1) or (
        per_episode is not None and per_episode.max() > 1.5 * per_episode.min()
    )
    sets = {tuple(sorted(i.get("features", {}))) for i in inputs}
    groups = ", ".join(f"{i.get('label')} ({i.get('rate_hz')} Hz)" for i in inputs) or "its episodes"
    where = ds.location
    if len(sets) > 1:
        raise UsageError(
            f"{where}: LeRobot holds one feature set per dataset; this one mixes {len(sets)} ({groups})",
            hint="export one group at a time: rdstd filter DS DS-PART --where \"embodiment = 'NAME'\" (or on "
            "source_meta) then rdstd export DS-PART --to lerobot OUT; or merge with --rename so the features agree",
            situation="feature-sets-differ",
        )
    if mixed_rate:
        shown = (
            sorted(r for r in rates if r)
            or sorted({round(float(r), 3) for r in (per_episode if per_episode is not None else [])})[:5]
        )
        raise UsageError(
            f"{where}: LeRobot holds one fps per dataset; this one has episodes at {shown} Hz",
            hint="resample first (rdstd resample DS DS-10HZ --rate 10) or export one rate at a time (rdstd filter "
            'DS DS-PART --where "rate_hz > 29 AND rate_hz < 31")',
            situation="rates-differ",
        )


def _int_if_whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _rate_of(ds: Dataset) -> float:
    """The first episode's nominal rate (30 for an empty dataset), rounded as LeRobot's fps is written."""
    return round(nominal_rate_hz(ds.episode(0).timestamps), 6) if ds.num_episodes else 30.0


def _robot_type(ds: Dataset) -> str:
    source = (ds.manifest.extra.get("source_info") or {}).get("robot_type")
    if isinstance(source, str) and source:
        return source
    if ds.manifest.embodiments:
        embodiment = ds.manifest.embodiments[0]
        return embodiment.name or str(embodiment.robot_type)
    return "unknown"


def _semantic_groups(feature: VectorFeature) -> list[tuple[str, int, int]]:
    """Runs of dims that belong together: the ``<group>.`` prefix of their names, else their role."""
    names = [d.name for d in feature.dims]
    prefixed = all("." in n for n in names) and len({n.split(".", 1)[0] for n in names}) < len(names)
    runs: list[tuple[str, int, int]] = []
    for i, dim in enumerate(feature.dims):
        label = dim.name.split(".", 1)[0] if prefixed else (dim.role.value if dim.role != Role.UNKNOWN else "")
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1], i + 1)
        else:
            runs.append((label, i, i + 1))
    return [(label or "values", start, end) for label, start, end in runs]


def _modality_fits(modality: dict[str, Any], vectors: dict[str, VectorFeature]) -> bool:
    for section, default in (("state", "observation.state"), ("action", "action")):
        for entry in (modality.get(section) or {}).values():
            key = entry.get("original_key", default) if isinstance(entry, dict) else None
            if (
                key not in vectors
                or not 0 <= int(entry.get("start", -1)) < int(entry.get("end", -1)) <= vectors[key].size
            ):
                return False
    return True


__all__ = ["ExportReport", "export_lerobot"]

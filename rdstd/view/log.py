"""Columnar logging of canonical episodes to a Rerun recording.

Every stream is sent with ``send_columns`` on two timelines, ``frame`` (sequence) and ``time`` (duration from the
episode's start), so no entity vanishes on either. One entity per (feature, role) holds a multi-series plot whose
series names carry the dimension's unit; JPEG/PNG frames go as ``EncodedImage`` bytes, never decoded; decoded
pixels (a source converted on the fly) go as raw ``Image`` in slices of :data:`RAW_SLICE` frames; cameras kept as
video go as the video file (``AssetVideo``) plus a frame reference per frame, never decoded either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import rerun as rr

from rdstd.schema.episode import EncodedFrames, EpisodeMeta
from rdstd.schema.features import GripperConvention, ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ActionMode, ColorOrder, GripperKind, GripperOpen, ImageCodec, Role, Unit
from rdstd.view import paths
from rdstd.view.episodes import Chunk, Feature, StoredFrames, VideoRefs
from rdstd.view.rotations import quaternions

#: Decoded frames per ``send_columns`` call (one huge chunk of raw pixels is slower than per-row logging).
RAW_SLICE = 500
#: Rerun's blob column type: an array of exactly this type is taken as it is.
BLOB_TYPE = pa.list_(pa.field("item", pa.uint8(), nullable=False))
MEDIA_TYPES = {ImageCodec.JPEG: "image/jpeg", ImageCodec.PNG: "image/png"}


def series_name(feature: VectorFeature, dim: int) -> str:
    """A plot series' name: the dimension's name and its unit (``unknown`` said, not hidden)."""
    d = feature.dims[dim]
    return f"{d.name} [{d.unit.value}]"


@dataclass(frozen=True)
class Pose:
    """Where an end-effector pose sits in a vector feature: three position dims and an optional rotation group."""

    feature: str
    position: tuple[int, int, int]
    rotation: Any  # RotationGroup | None


def poses(features: dict[str, Feature]) -> list[Pose]:
    """End-effector poses the schema names: three ``eef_position`` dimensions (and an ``eef_rotation`` group) of a
    feature that is a pose, not a change of one (delta or velocity actions are plotted, not placed in 3D)."""
    found = []
    for name, f in features.items():
        if not isinstance(f, VectorFeature):
            continue
        if f.action is not None and f.action.mode in (ActionMode.DELTA, ActionMode.VELOCITY):
            continue
        pos = [i for i, d in enumerate(f.dims) if d.role == Role.EEF_POSITION]
        if len(pos) < 3:
            continue
        rot = next((g for g in f.rotations if f.dims[g.start].role == Role.EEF_ROTATION), None)
        found.append(Pose(name, (pos[0], pos[1], pos[2]), rot))
    return found


def grippers(feature: VectorFeature) -> dict[int, GripperConvention | None]:
    """Gripper dimensions shown as open/closed: those with a convention that is a position (a relative command is
    not a state), and ``gripper`` dimensions without a convention (shown with polarity unknown)."""
    out: dict[int, GripperConvention | None] = {
        g.dim: g for g in feature.grippers if g.kind != GripperKind.RELATIVE and g.dim < len(feature.dims)
    }
    for i, d in enumerate(feature.dims):
        if d.role == Role.GRIPPER and i not in out and all(g.dim != i for g in feature.grippers):
            out[i] = None
    return out


@dataclass
class _GripperLane:
    """State of one gripper lane across chunks: its threshold and the last state sent."""

    threshold: float | None = None
    last: str | None = None


@dataclass
class EpisodeLogger:
    """Logs one episode's chunks, columnar, under ``prefix`` (``""``, or ``a``/``b`` when comparing)."""

    rec: rr.RecordingStream
    features: dict[str, Feature]
    prefix: str = ""
    _lanes: dict[tuple[str, int], _GripperLane] = field(default_factory=dict)
    _assets: dict[tuple[str, Path], str] = field(default_factory=dict)
    _paths: dict[str, list[npt.NDArray[np.float64]]] = field(default_factory=dict)
    frames: int = 0
    #: Timestamps of the episode so far, chunk by chunk (findings are placed on the ``time`` timeline with them).
    timestamps: list[npt.NDArray[np.float64]] = field(default_factory=list)

    def begin(self, meta: EpisodeMeta) -> None:
        """Static parts: series names, camera formats, pose axes, the task text."""
        rec = self.rec
        for name, f in self.features.items():
            if isinstance(f, VectorFeature):
                for role, dims in paths.roles(f).items():
                    names = [series_name(f, i) for i in dims]
                    rec.log(paths.vector(self.prefix, name, role), rr.SeriesLines(names=names), static=True)
            elif f.codec in MEDIA_TYPES:
                rec.log(
                    paths.camera(self.prefix, name),
                    rr.EncodedImage.from_fields(media_type=MEDIA_TYPES[f.codec]),
                    static=True,
                )
        for pose in poses(self.features):
            rec.log(paths.pose(self.prefix, pose.feature), rr.TransformAxes3D(0.05), static=True)
        rec.log(
            paths.join(self.prefix, paths.TASK),
            rr.TextDocument(task_text(meta), media_type="text/markdown"),
            static=True,
        )

    def chunk(self, chunk: Chunk) -> None:
        """Send one chunk of frames: every stream in one ``send_columns`` call (raw pixels in slices)."""
        n = chunk.length
        if n == 0:
            return
        index = self.index(chunk.start, chunk.timestamps)
        for name, values in chunk.vectors.items():
            f = self.features.get(name)
            if isinstance(f, VectorFeature):
                self._vector(name, f, values.reshape(n, -1), index, chunk)
        for name, frames in chunk.images.items():
            f = self.features.get(name)
            if isinstance(f, ImageFeature):
                self._camera(name, f, frames, chunk)
        for pose in poses(self.features):
            pose_values = chunk.vectors.get(pose.feature)
            if pose_values is not None:
                self._pose(pose, pose_values.reshape(n, -1), index)
        self.frames += n
        self.timestamps.append(np.asarray(chunk.timestamps, dtype=np.float64))

    # -- streams ---------------------------------------------------------------------------------------------------

    @staticmethod
    def index(start: int, timestamps: npt.NDArray[np.float64]) -> list[rr.TimeColumn]:
        """The ``frame`` and ``time`` columns of frames ``start…`` with these timestamps."""
        frames = np.arange(start, start + len(timestamps), dtype=np.int64)
        return [rr.TimeColumn("frame", sequence=frames), rr.TimeColumn("time", duration=nanoseconds(timestamps))]

    def _vector(
        self, name: str, f: VectorFeature, values: npt.NDArray[Any], index: list[rr.TimeColumn], chunk: Chunk
    ) -> None:
        as_float = values.astype(np.float64, copy=False)
        for role, dims in paths.roles(f).items():
            block = as_float if len(dims) == as_float.shape[1] else as_float[:, dims]
            self.rec.send_columns(
                strict=True,
                entity_path=paths.vector(self.prefix, name, role),
                indexes=index,
                columns=rr.Scalars.columns(scalars=block),
            )
        for dim, conv in grippers(f).items():
            self._gripper(name, dim, conv, as_float[:, dim], chunk)

    def _gripper(
        self, name: str, dim: int, conv: GripperConvention | None, values: npt.NDArray[np.float64], chunk: Chunk
    ) -> None:
        lane = self._lanes.setdefault((name, dim), _GripperLane())
        if lane.threshold is None:
            lo_hi = conv.range if conv is not None and conv.range is not None else None
            if lo_hi is None:
                finite = values[np.isfinite(values)]
                if not finite.size:
                    return
                lo_hi = (float(finite.min()), float(finite.max()))
            lane.threshold = (lo_hi[0] + lo_hi[1]) / 2
        high = values > lane.threshold
        polarity = conv.open if conv is not None else GripperOpen.UNKNOWN
        if polarity == GripperOpen.HIGH:
            labels = np.where(high, "open", "closed")
        elif polarity == GripperOpen.LOW:
            labels = np.where(high, "closed", "open")
        else:
            labels = np.where(high, "high (polarity unknown)", "low (polarity unknown)")
        labels = np.where(np.isfinite(values), labels, "no value")
        change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        at = change if lane.last == labels[0] else np.concatenate([[0], change])
        if not at.size:
            return
        lane.last = str(labels[-1])
        self.rec.send_columns(
            strict=True,
            entity_path=paths.gripper(self.prefix, name, dim),
            indexes=self._index_at(chunk, at),
            columns=rr.StateChange.columns(state=labels[at].tolist()),
        )

    @staticmethod
    def _index_at(chunk: Chunk, at: npt.NDArray[np.intp]) -> list[rr.TimeColumn]:
        return [
            rr.TimeColumn("frame", sequence=chunk.start + at.astype(np.int64)),
            rr.TimeColumn("time", duration=nanoseconds(chunk.timestamps[at])),
        ]

    def _camera(self, name: str, f: ImageFeature, frames: Any, chunk: Chunk) -> None:
        entity = paths.camera(self.prefix, name)
        if isinstance(frames, EncodedFrames | StoredFrames):
            index = self.index(chunk.start, chunk.timestamps)
            self.rec.send_columns(
                strict=True,
                entity_path=entity,
                indexes=index,
                columns=rr.EncodedImage.columns(
                    blob=blobs(frames.column if isinstance(frames, StoredFrames) else frames.frames)
                ),
            )
        elif isinstance(frames, VideoRefs):
            self._video(entity, frames, chunk)
        else:
            self._raw(entity, f, np.asarray(frames), chunk)

    def _raw(self, entity: str, f: ImageFeature, pixels: npt.NDArray[Any], chunk: Chunk) -> None:
        n = len(pixels)
        height, width = pixels.shape[1:3]
        channels = pixels.shape[3] if pixels.ndim == 4 else 1
        models: dict[int, Literal["L", "RGB", "BGR", "RGBA"]] = {
            3: "BGR" if f.color == ColorOrder.BGR else "RGB",
            4: "RGBA",
        }
        model = models.get(channels, "L")
        datatype: Literal["U8", "U16"] = "U16" if pixels.dtype == np.uint16 else "U8"
        fmt = rr.components.ImageFormat(width=width, height=height, color_model=model, channel_datatype=datatype)
        self.rec.log(entity, rr.Image.from_fields(format=fmt), static=True)
        flat = np.ascontiguousarray(pixels).view(np.uint8).reshape(n, -1)
        for s in range(0, n, RAW_SLICE):
            e = min(s + RAW_SLICE, n)
            index = self.index(chunk.start + s, chunk.timestamps[s:e])
            self.rec.send_columns(
                strict=True, entity_path=entity, indexes=index, columns=rr.Image.columns(buffer=flat[s:e])
            )

    def _video(self, entity: str, refs: VideoRefs, chunk: Chunk) -> None:
        assets = []
        for file in refs.files:
            asset = self._assets.get((entity, file))
            if asset is None:
                asset = paths.join(entity, f"video_{sum(1 for e, _ in self._assets if e == entity)}")
                self.rec.log(asset, rr.AssetVideo(path=file), static=True)
                self._assets[(entity, file)] = asset
            assets.append("/" + asset)
        index = self.index(chunk.start, chunk.timestamps)
        nanos = np.round(refs.times_s * 1e9).astype(np.int64)
        self.rec.send_columns(
            strict=True,
            entity_path=entity,
            indexes=index,
            columns=rr.VideoFrameReference.columns(timestamp=nanos.view("timedelta64[ns]"), video_reference=assets),
        )

    def _pose(self, pose: Pose, values: npt.NDArray[Any], index: list[rr.TimeColumn]) -> None:
        translation = values[:, list(pose.position)].astype(np.float64)
        quat = quaternions(values, pose.rotation) if pose.rotation is not None else None
        columns = (
            rr.Transform3D.columns(translation=translation, quaternion=quat)
            if quat is not None
            else rr.Transform3D.columns(translation=translation)
        )
        entity = paths.pose(self.prefix, pose.feature)
        self.rec.send_columns(strict=True, entity_path=entity, indexes=index, columns=columns)
        self._paths.setdefault(pose.feature, []).append(translation)

    def finish(self) -> None:
        """After the last chunk: each end-effector's whole path as a line in the 3D view."""
        for feature, parts in self._paths.items():
            strip = np.concatenate(parts)
            strip = strip[np.isfinite(strip).all(axis=1)]
            self.rec.log(paths.trajectory(self.prefix, feature), rr.LineStrips3D([strip]), static=True)


def nanoseconds(seconds: npt.NDArray[np.float64]) -> npt.NDArray[np.timedelta64]:
    """Seconds as ``timedelta64[ns]``, rounded to the nearest nanosecond (Rerun truncates floats: 0.1 s stored as
    float32 would land a nanosecond early)."""
    return np.round(np.asarray(seconds, dtype=np.float64) * 1e9).astype(np.int64).astype("timedelta64[ns]")


def blobs(frames: list[bytes] | pa.Array) -> pa.Array:
    """Encoded frames as Rerun's blob column (``list<uint8>``), built from the bytes without copying each frame into
    its own array."""
    array = frames if isinstance(frames, pa.Array) else pa.array(frames, type=pa.binary())
    if pa.types.is_large_binary(array.type):
        array = array.cast(pa.binary())
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    offsets = pa.Array.from_buffers(pa.int32(), len(array) + 1, [None, array.buffers()[1]], offset=array.offset)
    values = pa.Array.from_buffers(
        pa.uint8(), len(array.buffers()[2]) if array.buffers()[2] else 0, [None, array.buffers()[2]]
    )
    return pa.ListArray.from_arrays(offsets, values, type=BLOB_TYPE)


def task_text(meta: EpisodeMeta) -> str:
    """The episode's task as markdown: the task, its other phrasings, and time-segmented language."""
    lines = [f"# {meta.task or '(no task text)'}"]
    if meta.instructions:
        lines += ["", "Also phrased as:", *(f"- {t}" for t in meta.instructions)]
    if meta.language:
        lines += ["", "Language over the episode:"]
        lines += [f"- frames {s.start_frame}–{s.end_frame} ({s.kind.value}): {s.text}" for s in meta.language]
    facts = {
        "episode id": meta.episode_id,
        "split": meta.split,
        "success": "unknown" if meta.success is None else str(meta.success).lower(),
        "embodiment": meta.embodiment or "unknown",
        "source": f"{meta.source_path} {meta.source_key}".strip() or "unknown",
    }
    lines += ["", *(f"- **{k}**: {v}" for k, v in facts.items())]
    return "\n".join(lines)


def unit_names(feature: VectorFeature) -> list[str]:
    """The unit of each dimension."""
    return [d.unit.value if d.unit != Unit.UNKNOWN else "unknown" for d in feature.dims]

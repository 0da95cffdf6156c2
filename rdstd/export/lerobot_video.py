"""Writing LeRobot's mp4 files from a canonical dataset: stream copy when possible, encoding otherwise.

A camera the store keeps as video is copied packet by packet (no re-encode, no quality loss) when an episode's
frames are a run of consecutive packets starting at a keyframe, without B-frame reordering, whose times match the
episode's timestamps; runs from many source files go into one output file when their streams are alike (codec,
size, time base, codec header). Anything else (JPEG/PNG cameras, irregular segments) is decoded and encoded:
AV1 with libsvtav1 when PyAV's FFmpeg has it, else H.264; keyframe every 2 frames; yuv420p (LeRobot's settings).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptSourceError
from rdstd.formats.lerobot.video import codec_family
from rdstd.io import atomic
from rdstd.media import video
from rdstd.media.lru import LruCache

#: Largest gap (s) between an episode's timestamp and its stored frame's offset for a stream copy (LeRobot's tolerance).
COPY_TOLERANCE_S = 1e-4


@dataclass(frozen=True)
class Packets:
    """Every frame of one video stream: presentation times, keyframe flags, and the stream's signature."""

    pts: npt.NDArray[np.int64]
    keyframe: npt.NDArray[np.bool_]
    reorders: bool
    time_base: Fraction
    signature: tuple[Any, ...]
    codec: str

    def times(self) -> npt.NDArray[np.float64]:
        """Presentation times in seconds."""
        return self.pts.astype(np.float64) * float(self.time_base)


def scan(path: Path) -> Packets:
    """Frame times from the container index (no reordering) or by demuxing, and the stream's signature."""
    container = video.open_container(path)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        reorders = bool(ctx.has_b_frames)
        entries = stream.index_entries
        if not reorders and len(entries):
            rows = [(e.timestamp, e.is_keyframe) for e in entries if not e.is_discard]
        else:
            rows = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
        table = np.array(rows, dtype=np.int64).reshape(-1, 2)
        table = table[np.argsort(table[:, 0], kind="stable")]  # by time (stable: as Python's sort)
        signature = (
            ctx.codec.name,
            ctx.width,
            ctx.height,
            str(ctx.pix_fmt),
            stream.time_base,
            bytes(ctx.extradata or b""),
        )
        return Packets(
            pts=np.ascontiguousarray(table[:, 0]),
            keyframe=table[:, 1].astype(bool),
            reorders=reorders,
            time_base=Fraction(stream.time_base),
            signature=signature,
            codec=codec_family(ctx.codec.name),
        )
    finally:
        container.close()


class PacketIndex:
    """:func:`scan` results of the last few files."""

    def __init__(self, size: int = 4) -> None:
        self._cache: LruCache[Path, Packets] = LruCache(size)

    def get(self, path: Path) -> Packets:
        """The packets of ``path`` (scanned on first use)."""
        return self._cache.get(path, lambda: scan(path))


@dataclass(frozen=True)
class CopyPlan:
    """Packets ``[first, last]`` of ``path`` are exactly one episode's frames."""

    path: Path
    packets: Packets
    first: int
    last: int


def copy_plan(
    index: PacketIndex, root: Path, refs: list[dict[str, Any]], stamps_s: npt.NDArray[np.float64]
) -> CopyPlan | None:
    """How to stream-copy an episode stored as video, or None when it cannot be copied as it is."""
    paths = {r["path"] for r in refs}
    if len(paths) != 1 or not refs:
        return None
    path = video.resolve_ref(root, paths.pop())
    packets = index.get(path)
    times = packets.times()
    want = np.array([r["timestamp_s"] for r in refs], dtype=np.float64)
    found = np.clip(np.searchsorted(times, want - 1e-7), 0, len(times) - 1)
    first, last = int(found[0]), int(found[-1])
    if (
        np.abs(times[found] - want).max() > 1e-6
        or last - first + 1 != len(refs)
        or not np.array_equal(found, np.arange(first, last + 1))
        or not packets.keyframe[first]
        or packets.reorders
        or np.abs((want - want[0]) - (stamps_s - stamps_s[0])).max() > COPY_TOLERANCE_S
    ):
        return None
    return CopyPlan(path, packets, first, last)


class VideoFile:
    """One output mp4, written either by stream copy or by encoding; tracks where the next episode starts."""

    def __init__(self, path: Path, *, copy_from: Packets | None, encoder_args: dict[str, Any] | None) -> None:
        self.path = path
        self.mode = "copy" if copy_from is not None else "encode"
        self.signature = copy_from.signature if copy_from is not None else None
        self.end_s = 0.0
        self.frames = 0
        self.codec = copy_from.codec if copy_from is not None else ""
        self._inputs: OrderedDict[Path, Any] = OrderedDict()
        self._encoder: video.VideoEncoder | None = None
        self._container: Any = None
        self._tmp = atomic.temp_name(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if copy_from is None:
            assert encoder_args is not None
            self._encoder = video.VideoEncoder(path, **encoder_args)
            self.codec = codec_family(self._encoder.codec)
            self.pix_fmt = video.DEFAULT_PIX_FMT
        else:
            self.pix_fmt = str(copy_from.signature[3])
            self._stream: Any = None
            self._tb = copy_from.time_base

    def accepts(self, plan: CopyPlan | None) -> bool:
        """Whether the next episode can go into this file (same mode, and for copies a like stream)."""
        if plan is None:
            return self.mode == "encode"
        return self.mode == "copy" and plan.packets.signature == self.signature

    def copy(self, plan: CopyPlan, rate_hz: float) -> tuple[float, float]:
        """Append an episode's packets; returns its (from, to) times in this file."""
        av = video.require_av()
        source = self._input(plan.path)
        in_stream = source.streams.video[0]
        if self._container is None:
            self._container = av.open(str(self._tmp), "w", format="mp4")
            self._stream = self._container.add_stream_from_template(in_stream, opaque=True)
        first_pts = int(plan.packets.pts[plan.first])
        last_pts = int(plan.packets.pts[plan.last])
        start_ticks = round(Fraction(self.end_s).limit_denominator(1 << 30) / self._tb)
        shift = start_ticks - first_pts
        source.seek(first_pts, stream=in_stream, backward=True, any_frame=False)
        written = 0
        out_stream, mux = self._stream, self._container.mux_one
        for packet in source.demux(in_stream):  # ~36k packets per 100 episodes: one read of pts each
            pts = packet.pts
            if pts is None or pts < first_pts:
                continue
            if pts > last_pts:
                break
            packet.pts = packet.dts = pts + shift
            packet.stream = out_stream
            mux(packet)
            written += 1
        n = plan.last - plan.first + 1
        if written != n:
            raise CorruptSourceError(
                f"{plan.path}: copied {written} packets of an episode of {n} frames", situation="video-packets-short"
            )
        start = float(start_ticks * self._tb)
        self.end_s = float(start_ticks * self._tb + Fraction(n) / Fraction(rate_hz).limit_denominator(1001))
        self.frames += n
        return start, self.end_s

    def encode(
        self, frames: Iterable[npt.NDArray[np.uint8]], stamps_s: npt.NDArray[np.float64], rate_hz: float
    ) -> tuple[float, float]:
        """Encode an episode's frames at ``end_s + stamps_s``; returns its (from, to) times in this file."""
        assert self._encoder is not None
        start = self.end_s
        for frame, t in zip(frames, stamps_s, strict=True):
            self._encoder.add(frame, start + float(t))
        n = len(stamps_s)
        rate = Fraction(rate_hz).limit_denominator(1001)
        span = max(Fraction(n) / rate, Fraction(float(stamps_s[-1])).limit_denominator(1 << 30) + 1 / rate)
        self.end_s = float(Fraction(start).limit_denominator(1 << 30) + span)
        self.frames += n
        return start, self.end_s

    def _input(self, path: Path) -> Any:
        found = self._inputs.get(path)
        if found is None:
            found = video.open_container(path)
            self._inputs[path] = found
            if len(self._inputs) > 2:
                self._inputs.popitem(last=False)[1].close()
        return found

    def size_bytes(self) -> int:
        """Bytes written so far (approximate while open)."""
        tmp = self._tmp if self._encoder is None else self._encoder._tmp
        return tmp.stat().st_size if tmp.exists() else 0

    def close(self) -> None:
        """Finish the file and move it into place."""
        for handle in self._inputs.values():
            handle.close()
        self._inputs.clear()
        if self._encoder is not None:
            self._encoder.close()
        elif self._container is not None:
            self._container.close()
            atomic.commit(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        for handle in self._inputs.values():
            handle.close()
        if self._encoder is not None:
            self._encoder.abort()
        elif self._container is not None:
            self._container.close()
        self._tmp.unlink(missing_ok=True)

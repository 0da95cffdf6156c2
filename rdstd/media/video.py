"""Cameras kept as video: mp4 files copied into the store, frames located and decoded by timestamp.

A camera whose feature has ``codec: video`` stores, per frame, a reference ``{path, timestamp_s}``: the file
under ``videos/<camera>/`` (relative to the dataset root) and the frame's presentation time inside it. Source
files are copied once, byte for byte (a LeRobot v3.0 file holds many episodes, so episodes share it), never
re-encoded. Reading seeks to the keyframe at or before the time, decodes forward and returns the frame whose
time lies within half a frame period of the one asked for; an open decoder is kept per file so sequential
reads decode each frame once. Nothing here holds more than one decoded frame (plus the codec's own buffers).

PyAV (``pip install 'rdstd[video]'``) is imported on first use, so ``import rdstd`` stays light.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from rdstd.errors import (
    CorruptSourceError,
    EpisodeError,
    MissingDependencyError,
    RdstdError,
    SchemaError,
    SourceNotFoundError,
)
from rdstd.io import atomic
from rdstd.io.threads import shared_pool
from rdstd.io.write_errors import output_error
from rdstd.media.lru import LruCache
from rdstd.paths import inside
from rdstd.schema.episode import VideoFrames

#: Arrow type of a camera kept as video: per frame, the file (relative to the root) and the time inside it.
VIDEO_REF_TYPE = pa.struct([pa.field("path", pa.string()), pa.field("timestamp_s", pa.float64())])

#: Open decoders kept per process (each holds a demuxer and a codec context, a few MB).
DECODER_CACHE_SIZE = 8
#: A request this far ahead of the last decoded frame still decodes forward instead of seeking.
FORWARD_DECODE_S = 1.0
#: Encoder defaults, as LeRobot records: keyframe every 2 frames (fast random access), CRF 30, yuv420p.
DEFAULT_GOP = 2
DEFAULT_CRF = 30
DEFAULT_PIX_FMT = "yuv420p"


def require_av() -> ModuleType:
    """PyAV, or a :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError("av", "video", purpose="read and write video") from exc
    return av


def ffmpeg_reason(exc: BaseException, logs: Sequence[tuple[int, str, str]] = ()) -> str:
    """One line saying why FFmpeg failed: its last log line, else its error text (never its errno number)."""
    own: Any = getattr(exc, "log", None)
    lines = [str(m).strip() for _, _, m in (*logs, *([own] if own else []))]
    lines = [line for line in lines if line]
    if lines:
        return lines[-1].splitlines()[-1]
    return str(getattr(exc, "strerror", None) or exc).strip()


@contextlib.contextmanager
def ffmpeg_errors(path: Path, action: str, error: type[RdstdError], hint: str = "") -> Iterator[None]:
    """Turn FFmpeg errors inside into one ``error`` line naming ``path``; FFmpeg's log lines are captured, not
    printed (PyAV logs nothing by default; the level is raised only here, to learn the reason)."""
    av = require_av()
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    logs: list[tuple[int, str, str]] = []
    try:
        with av.logging.Capture() as logs:
            yield
    except av.FFmpegError as exc:
        if isinstance(exc, OSError):
            full = output_error(exc, path)
            if full is not None:
                raise full from exc
        raise error(f"{path}: {action}: {ffmpeg_reason(exc, logs)}", hint=hint) from exc
    finally:
        av.logging.set_level(previous)


def open_container(path: Path) -> Any:
    """Open ``path`` with PyAV for reading; errors name the file (missing, unreadable, no video stream)."""
    av = require_av()
    if not path.is_file():
        raise SourceNotFoundError(
            f"{path}: video file not found", hint="check that the dataset is complete", situation="video-missing"
        )
    try:
        container = av.open(str(path), metadata_errors="replace")  # damaged tags must not stop a read
    except (av.FFmpegError, OSError) as exc:
        raise CorruptSourceError(
            f"{path}: not a readable video file ({ffmpeg_reason(exc)})",
            hint="re-download or re-encode it",
            situation="video-unreadable",
        ) from exc
    if not container.streams.video:
        container.close()
        raise CorruptSourceError(
            f"{path}: has no video stream", hint="re-download or re-encode it", situation="video-stream-missing"
        )
    return container


@dataclass(frozen=True)
class StreamInfo:
    """What a video file's header says about its first video stream."""

    codec: str
    width: int
    height: int
    pix_fmt: str
    rate_hz: float
    time_base: Fraction
    frames: int


def probe(path: Path) -> StreamInfo:
    """Codec, size, pixel format, frame rate and frame count of ``path`` (header only, nothing decoded)."""
    return scan(path, times=False)[0]


def stream_info(stream: Any, path: Path) -> StreamInfo:
    """What the header of ``path`` says about ``stream``; a header too damaged to say it is a corrupt source."""
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None or not ctx.width or not ctx.height:
        raise CorruptSourceError(
            f"{path}: the video header is damaged (no codec or frame size for its video stream)",
            hint="re-download or re-encode it",
            situation="video-header-damaged",
        )
    rate = stream.average_rate or stream.guessed_rate or 0
    return StreamInfo(
        codec=_codec_family(ctx.codec.name),
        width=int(ctx.width),
        height=int(ctx.height),
        pix_fmt=str(ctx.pix_fmt or ""),
        rate_hz=float(rate),
        time_base=Fraction(stream.time_base) if stream.time_base else Fraction(0),
        frames=int(stream.frames or 0),
    )


def _codec_family(name: str) -> str:
    """A decoder's name as the codec it decodes (``libdav1d`` -> ``av1``)."""
    return {"libdav1d": "av1", "libaom-av1": "av1", "h264_cuvid": "h264", "libopenh264": "h264"}.get(name, name)


def scan(path: Path, *, times: bool = True) -> tuple[StreamInfo, npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """The stream header plus every frame's presentation time (s, sorted) and keyframe flag, in one open.

    Times come from the container's index when the stream has no B-frame reordering (there the index's
    decode times are the presentation times), else from demuxing every packet; nothing is decoded.
    """
    av = require_av()
    container = open_container(path)
    try:
        stream = container.streams.video[0]
        info = stream_info(stream, path)
        if not times:
            return info, np.empty(0), np.empty(0, dtype=bool)
        base = float(stream.time_base)
        entries = stream.index_entries
        if not stream.codec_context.has_b_frames and len(entries):
            found = [(e.timestamp * base, bool(e.is_keyframe)) for e in entries if not e.is_discard]
        else:
            found = [(p.pts * base, bool(p.is_keyframe)) for p in container.demux(stream) if p.pts is not None]
    except av.FFmpegError as exc:
        raise CorruptSourceError(
            f"{path}: video does not demux ({ffmpeg_reason(exc)})",
            hint="re-download or re-encode it",
            situation="video-unreadable",
        ) from exc
    finally:
        container.close()
    found.sort(key=lambda pair: pair[0])
    return (
        info,
        np.array([t for t, _ in found], dtype=np.float64),
        np.array([k for _, k in found], dtype=bool),
    )


def packet_times(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Presentation times (s, sorted) and keyframe flags of every frame in ``path`` (see :func:`scan`)."""
    _, stamps, keys = scan(path)
    return stamps, keys


class VideoDecoder:
    """Frame-accurate decoding of one video file by presentation time, streaming forward.

    ``frame_at(t)`` returns the RGB frame (H, W, 3 uint8) whose time is within ``tolerance_s`` (default half a
    frame period) of ``t``. Requests at or shortly after the last one decode forward; others seek to the
    keyframe at or before ``t`` first.
    """

    def __init__(self, path: Path, *, tolerance_s: float | None = None, threads: bool = False) -> None:
        self.path = path
        self._container = open_container(path)
        self._stream = self._container.streams.video[0]
        if threads:
            self._stream.thread_type = "AUTO"  # frame threads: fastest for sequential decoding
        else:
            self._stream.codec_context.thread_count = 1  # no frame delay after a seek: fastest random access
        rate = float(self._stream.average_rate or self._stream.guessed_rate or 0) or 30.0
        self.period_s = 1.0 / rate
        self.tolerance_s = tolerance_s if tolerance_s is not None else 0.5 * self.period_s
        self._base = float(self._stream.time_base)
        self._frames: Iterator[Any] | None = None
        self._pending: Any = None
        self._last_s = -np.inf
        self._last: Any = None  # the last frame decoded (a PyAV frame)
        self._pixels: dict[tuple[int, int] | None, npt.NDArray[np.uint8]] = {}  # it converted, per size
        self._keys: npt.NDArray[np.float64] | None = None  # keyframe times (s), read from the index on first use

    def close(self) -> None:
        """Close the file."""
        self._frames = None
        self._pending = None
        self._container.close()

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _seek(self, t_s: float) -> None:
        target = max(0, int((t_s - self.tolerance_s) / self._base))
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except require_av().FFmpegError as exc:
            raise CorruptSourceError(
                f"{self.path}: cannot seek to {t_s:.6f} s ({ffmpeg_reason(exc)})", situation="video-seek-failed"
            ) from exc
        self._frames = iter(self._container.decode(self._stream))
        self._pending = None
        self._last, self._last_s, self._pixels = None, -np.inf, {}

    def _next(self) -> Any:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        assert self._frames is not None
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except require_av().FFmpegError as exc:
            raise CorruptSourceError(
                f"{self.path}: video does not decode ({ffmpeg_reason(exc)})",
                hint="re-encode it",
                situation="video-undecodable",
            ) from exc

    def _time(self, frame: Any) -> float:
        return float(frame.pts * self._base) if frame.pts is not None else float(frame.time or 0.0)

    def keyframe_times(self) -> npt.NDArray[np.float64]:
        """Presentation times (s) of the keyframes, sorted, from the container's index (nothing is decoded).

        Empty when the container has no index.
        """
        if self._keys is None:
            entries = self._stream.index_entries
            keys = [e.timestamp * self._base for e in entries if e.is_keyframe and not e.is_discard]
            self._keys = np.sort(np.asarray(keys, dtype=np.float64))
        return self._keys

    def _keyframe_skips(self, t_s: float) -> bool:
        """Whether seeking to the keyframe at or before ``t_s`` skips frames that decoding forward from the last one
        would decode (GOP-aware: with short GOPs a jump of a few frames is cheaper as a seek). Keyframe times come
        from the container's index (nothing decoded); without an index, decoding forward is kept."""
        keys = self.keyframe_times()
        at = int(np.searchsorted(keys, t_s - self.tolerance_s, side="right")) - 1
        return at >= 0 and float(keys[at]) > self._last_s + 1.5 * self.period_s

    def frame_at(self, t_s: float, size: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
        """The frame shown at ``t_s`` seconds (HWC RGB uint8); :class:`CorruptSourceError` when there is none.

        ``size`` (height, width) scales it in the same FFmpeg conversion to RGB (swscale, bilinear), instead of
        converting at full size and resizing after.
        """
        ahead = t_s - self._last_s
        if self._last is not None and abs(ahead) < self.tolerance_s:
            return self._converted(size)  # the same frame again
        if self._frames is None or not 0 < ahead <= FORWARD_DECODE_S or self._keyframe_skips(t_s):
            self._seek(t_s)
        best: Any = None
        while True:
            frame = self._next()
            if frame is None:
                break
            when = self._time(frame)
            if when <= t_s - self.tolerance_s:
                continue
            if when < t_s + self.tolerance_s:
                best = frame
                self._last_s = when
                break
            self._pending = frame  # overshot: keep it for the next request
            break
        if best is None:
            self._frames, self._last, self._last_s, self._pixels = None, None, -np.inf, {}  # re-seek next time
            raise CorruptSourceError(
                f"{self.path}: no frame within {self.tolerance_s * 1e3:.1f} ms of {t_s:.6f} s",
                hint="the video has fewer frames than the data says, or its timestamps are off",
                situation="video-frame-missing",
            )
        self._last, self._pixels = best, {}
        return self._converted(size)

    def _converted(self, size: tuple[int, int] | None) -> npt.NDArray[np.uint8]:
        """The last frame as RGB at ``size`` (converted once per size)."""
        pixels = self._pixels.get(size)
        if pixels is None:
            if size is None or (size[0], size[1]) == (self._last.height, self._last.width):
                pixels = self._last.to_ndarray(format="rgb24")
            else:
                pixels = self._last.to_ndarray(format="rgb24", height=size[0], width=size[1], interpolation="BILINEAR")
            self._pixels[size] = pixels
        return pixels

    def frames_at(self, times_s: Iterable[float]) -> Iterator[npt.NDArray[np.uint8]]:
        """The frames at each of ``times_s`` (best in increasing order: then each frame is decoded once)."""
        for t in times_s:
            yield self.frame_at(float(t))


class DecoderCache:
    """A few open :class:`VideoDecoder` objects per process, least recently used closed first."""

    def __init__(self, size: int = DECODER_CACHE_SIZE) -> None:
        self.size = size
        self._open: LruCache[Path, VideoDecoder] = LruCache(size, on_evict=VideoDecoder.close)
        self._pid = os.getpid()

    def get(self, path: Path) -> VideoDecoder:
        """The open decoder of ``path`` (opened on first use; a forked process opens its own)."""
        if self._pid != os.getpid():
            self._open = LruCache(self.size, on_evict=VideoDecoder.close)
            self._pid = os.getpid()
        return self._open.get(path, lambda: VideoDecoder(path))

    def clear(self) -> None:
        """Close every open decoder."""
        self._open.clear()

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "_open": LruCache(self.size, on_evict=VideoDecoder.close), "_pid": -1}


#: The decoders of this process, shared by every reader.
DECODERS = DecoderCache()


def frame_times(frames: VideoFrames) -> npt.NDArray[np.float64]:
    """The presentation time of each frame of a video segment (its own, or spread evenly over the segment)."""
    if frames.frame_times_s is not None:
        return np.asarray(frames.frame_times_s, dtype=np.float64)
    step = (frames.to_s - frames.from_s) / frames.count if frames.count else 0.0
    return frames.from_s + step * np.arange(frames.count, dtype=np.float64)


def decode_frames(frames: VideoFrames) -> Iterator[npt.NDArray[np.uint8]]:
    """Decode a video segment frame by frame (HWC RGB uint8), streaming: one frame in memory at a time."""
    with VideoDecoder(Path(frames.path), threads=True) as decoder:
        yield from decoder.frames_at(frame_times(frames))


# -- the store side: copying source files, writing frame references ------------------------------------------


#: Video copies in flight at once. Each waits mostly in fsync; several in flight keep the disk's queue deep
#: (20 G1 mp4s, 68 MB on ext4: 0.08-0.10 s with 2, 0.04-0.05 s with 8).
COPY_THREADS = 8


class VideoCopier:
    """Copies source video files into a dataset's ``videos/<camera>/``, each source file once.

    Copies are atomic (temporary name, fsync, rename) and run on :data:`COPY_THREADS` daemon threads shared by the
    process (the kernel does the copying, outside the GIL: a reflink where the file system can, else
    ``sendfile``), overlapping the frame-table work; :meth:`finish` waits for them. The copy is the output's own
    file either way (a reflink shares blocks copy-on-write, never a hard link to the source). ``refs`` gives the
    frame-reference column of an episode.
    """

    def __init__(self, root: Path, videos_dir: str = "videos", *, workers: int = COPY_THREADS) -> None:
        self.root = root
        self.videos_dir = videos_dir
        self._copied: dict[tuple[str, Path], str] = {}
        self._resolved: dict[Path, Path] = {}  # source path as given -> resolved (resolving costs a syscall per part)
        self._counts: dict[str, int] = {}
        self._pool = shared_pool("rdstd-video-copy", workers)
        self._pending: list[Future[None]] = []
        #: What was added, in order (for :meth:`rollback`): (camera, key in _copied or None, file, copy or None).
        self._log: list[tuple[str, tuple[str, Path] | None, str, Future[None] | None]] = []

    def mark(self) -> int:
        """A point to :meth:`rollback` to (taken when an episode begins)."""
        return len(self._log)

    def rollback(self, mark: int) -> None:
        """Undo every copy and encoded file since ``mark``: files removed, numbering as if they never came."""
        undo, self._log = self._log[mark:], self._log[:mark]
        for camera, key, rel, future in reversed(undo):
            if future is not None:
                future.cancel()
                with contextlib.suppress(Exception):  # a copy that failed: nothing of it is kept anyway
                    future.result()
                self._pending = [f for f in self._pending if f is not future]
            if key is not None:  # a copied file: its number is free again
                self._copied.pop(key, None)
                self._counts[camera] -= 1
            (self.root / rel).unlink(missing_ok=True)

    def open_encoder(
        self, camera: str, episode_index: int, *, width: int, height: int, rate_hz: float
    ) -> tuple[str, VideoEncoder]:
        """An encoder for one episode's frames, to ``videos/<camera>/episode-NNNNNN.mp4`` (relative path, encoder).

        Add frames over as many chunks as needed, then ``close`` it (or ``abort``); undone by :meth:`rollback`.
        """
        rel = f"{self.videos_dir}/{camera}/episode-{episode_index:06d}.mp4"
        encoder = VideoEncoder(self.root / rel, width=width, height=height, rate_hz=rate_hz)
        self._log.append((camera, None, rel, None))
        return rel, encoder

    def stored_path(self, camera: str, source: Path) -> str:
        """The file's path relative to the dataset root, copying it on first use."""
        resolved = self._resolved.get(source)
        if resolved is None:
            resolved = self._resolved[source] = source.resolve()
        key = (camera, resolved)
        rel = self._copied.get(key)
        if rel is None:
            if not source.is_file():
                raise SourceNotFoundError(
                    f"{source}: video file not found",
                    hint="check that the dataset is complete",
                    situation="video-missing",
                )
            number = self._counts.get(camera, 0)
            self._counts[camera] = number + 1
            rel = f"{self.videos_dir}/{camera}/file-{number:05d}{source.suffix or '.mp4'}"
            final = self.root / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            future = self._pool.submit(_copy_file, source, final)
            self._pending.append(future)
            self._copied[key] = rel
            self._log.append((camera, key, rel, future))
        return rel

    def finish(self) -> None:
        """Wait for every copy; raises the first copy error (the copies run in background threads) once all of
        them have ended (none is left running into an output that is then removed)."""
        first: Exception | None = None
        while self._pending:  # each stays listed until it has ended: an interrupt here leaves cancel() its wait
            try:
                self._pending[0].result()
            except Exception as exc:  # a copy's error, raised below once the other copies have ended
                if first is None:
                    first = exc
            self._pending.pop(0)
        if first is not None:
            raise first

    def cancel(self) -> None:
        """Stop copying: drop queued copies and wait for running ones (before the output is removed)."""
        for future in self._pending:
            future.cancel()
        while self._pending:
            with contextlib.suppress(Exception):  # the output is being removed: a copy's error is moot
                self._pending[0].result()
            self._pending.pop(0)

    def refs(self, camera: str, frames: VideoFrames) -> pa.StructArray:
        """The frame-reference column (``VIDEO_REF_TYPE``) of one episode's segment, copying the file if needed."""
        rel = self.stored_path(camera, Path(frames.path))
        times = frame_times(frames)
        return refs_column(rel, times)


def _copy_file(source: Path, final: Path) -> None:
    """Copy ``source`` to ``final`` atomically (reflink or kernel copy, fsync, rename)."""
    with atomic.atomic_path(final) as tmp:
        if not _reflink(source, tmp):
            shutil.copyfile(source, tmp)  # sendfile: no pass through Python


#: ``FICLONE`` (linux/fs.h ``_IOW(0x94, 9, int)``): make a file share another's blocks copy-on-write.
FICLONE = 0x40049409
#: What ``FICLONE`` fails with where it cannot clone (no support in the file system, another file system, ...).
_NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS}


def _reflink(source: Path, target: Path) -> bool:
    """Make ``target`` a copy-on-write clone of ``source`` (btrfs, XFS, bcachefs...); ``False`` when the file
    system cannot (``target`` is then left empty for an ordinary copy). Other errors are raised."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return False
    with source.open("rb") as src, target.open("wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError as exc:
            if exc.errno in _NO_REFLINK:
                return False
            raise
    return True


def refs_column(rel: str, times_s: npt.NDArray[np.float64]) -> pa.StructArray:
    """A frame-reference column: every frame in file ``rel`` at the given times."""
    return pa.StructArray.from_arrays(
        [pa.repeat(pa.scalar(rel, pa.string()), len(times_s)), pa.array(times_s, pa.float64())],
        fields=list(VIDEO_REF_TYPE),
    )


def resolve_ref(root: Path, rel: str) -> Path:
    """The absolute file of a stored frame reference (refusing paths that leave the dataset)."""
    return inside(root, rel, "a frame reference", error=SchemaError, hint="the dataset is corrupt; rebuild it")


# -- encoding -------------------------------------------------------------------------------------------------


def available_encoder(preferred: str = "auto") -> str:
    """The encoder to use: ``libsvtav1`` when PyAV's FFmpeg has it, else ``libx264``/``h264``, or ``preferred``."""
    av = require_av()
    candidates = ["libsvtav1", "libx264", "h264", "mpeg4"] if preferred == "auto" else [preferred]
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        return name
    raise MissingDependencyError(
        "av", "video", purpose=f"encode video with {' or '.join(candidates)} (PyAV's FFmpeg lacks it)"
    )


class VideoEncoder:
    """Writes RGB frames to an mp4 at given presentation times: AV1 (SVT) or H.264, keyframe every ``gop``.

    Times are rounded to the stream's time base (1/(1024·rate), as LeRobot's files have), so a frame added at
    ``t`` decodes at ``t`` within half a tick. The file appears only on :meth:`close` (atomic rename).
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        rate_hz: float,
        codec: str = "auto",
        gop: int = DEFAULT_GOP,
        crf: int = DEFAULT_CRF,
        pix_fmt: str = DEFAULT_PIX_FMT,
    ) -> None:
        av = require_av()
        # SVT-AV1 logs to stderr itself, read once per process: a banner at level 1 and up, and for every encoder
        # dropped unfinished (a skipped episode, Ctrl-C) "Svt[error]: deinit called without sending EOS!". Its real
        # failures also come back through FFmpeg's return codes, which rdstd reports as one-line errors: fatal only.
        os.environ.setdefault("SVT_LOG", "0")
        self.path = path
        self.codec = available_encoder(codec)
        self._tmp = atomic.temp_name(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rate = Fraction(rate_hz).limit_denominator(1001)
        options = {"crf": str(crf)}
        if self.codec == "libsvtav1":
            options["preset"] = "12"
        elif self.codec == "libx264":
            options["preset"] = "veryfast"
        try:
            with self._errors("cannot start the video"):
                self._container = av.open(str(self._tmp), "w", format="mp4")
                self._stream = self._container.add_stream(self.codec, rate=rate, options=options)
                self._stream.width = width
                self._stream.height = height
                self._stream.pix_fmt = pix_fmt
                self._stream.codec_context.gop_size = gop
        except BaseException:
            self.abort()
            raise
        self.time_base = Fraction(1, max(1, round(float(rate) * 1024)))
        self._stream.time_base = self.time_base
        self._last_pts = -1
        self.frames = 0

    def add(self, pixels: npt.NDArray[np.uint8], t_s: float) -> None:
        """Encode one HWC RGB uint8 frame shown at ``t_s`` seconds (times must increase)."""
        av = require_av()
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise EpisodeError(
                f"{self.path}: video frames must be HxWx3 uint8, got {pixels.shape} {pixels.dtype}",
                situation="video-frame-invalid",
            )
        pts = round(t_s / self.time_base)
        if pts <= self._last_pts:
            after = float(self._last_pts * self.time_base)
            raise EpisodeError(
                f"{self.path}: frame times must increase: {t_s} s comes after {after} s",
                situation="video-times-not-increasing",
            )
        with self._errors("the frame does not encode"):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts = pts
            frame.time_base = self.time_base
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return ffmpeg_errors(
            self.path, f"{action} ({self.codec})", EpisodeError, hint="check the camera's width, height and pixels"
        )

    def close(self) -> Path:
        """Flush, close and move the file into place; returns its path."""
        with self._errors("the video does not finish"):
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        atomic.commit(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        with contextlib.suppress(Exception):  # closing a half-written container may fail; the file goes anyway
            if hasattr(self, "_container"):
                self._container.close()
        self._tmp.unlink(missing_ok=True)

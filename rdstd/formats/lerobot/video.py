"""Checking an episode's video segment against its data before any frame is trusted.

For each camera of an episode: the file exists; its stream's codec and size are the ones info.json declares;
and every frame the data expects (``from_timestamp + timestamp``) has a frame in the file within half a frame
period, one to one, with no extra frames inside the episode's span (nor, for v2.x files that hold one
episode, anywhere in the file); and every packet of the episode's frames lies inside the file (a file cut
short keeps a complete index when its ``moov`` comes first, as LeRobot's files have it, so the index alone
would accept frames whose bytes are gone). Only the container index is read, or packets demuxed without
decoding; per-file results are cached, so a v3.0 file shared by many episodes is scanned once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rdstd.errors import CorruptSourceError, EpisodeError, RdstdError
from rdstd.formats.lerobot.episodes import VideoSegment
from rdstd.formats.lerobot.meta import Feature
from rdstd.lfs import raise_if_pointer
from rdstd.media import video
from rdstd.media.lru import LruCache
from rdstd.schema.episode import VideoFrames

#: Whether packet extents are checked against the file size (off only to measure what the check costs).
CHECK_PACKET_BYTES = True

#: Codec names that mean the same bitstream format.
_FAMILIES = {
    "libdav1d": "av1", "libaom-av1": "av1", "libsvtav1": "av1", "av01": "av1", "librav1e": "av1",
    "libx264": "h264", "avc1": "h264", "avc": "h264", "libopenh264": "h264",
    "h265": "hevc", "libx265": "hevc", "hvc1": "hevc", "hev1": "hevc",
    "mp4v": "mpeg4", "libvpx-vp9": "vp9",
}  # fmt: skip


def codec_family(name: str) -> str:
    """``libsvtav1`` -> ``av1``, ``libx264`` -> ``h264`` …"""
    name = name.lower()
    return _FAMILIES.get(name, name)


@dataclass(frozen=True)
class FileFacts:
    """What one video file holds: its stream header, every frame's time, and where each frame's bytes end.

    ``ends[i]`` is the byte offset just past frame ``i``'s packet (frames in time order); ``size`` the file's size.
    """

    stream: video.StreamInfo
    times_s: npt.NDArray[np.float64]
    keyframes: npt.NDArray[np.bool_]
    ends: npt.NDArray[np.int64]
    size: int


def read_facts(path: Path, *, check_bytes: bool = True) -> FileFacts:
    """Header, frame times, keyframes and packet extents of ``path`` in one open, from the container index when
    the stream has no B-frame reordering, else by demuxing (nothing decoded either way).

    ``check_bytes=False`` reads what :func:`rdstd.media.video.scan` reads and no extents (to measure their cost).
    """
    if not check_bytes:
        stream_info, times, keys = video.scan(path)
        return FileFacts(stream_info, times, keys, np.zeros(len(times), dtype=np.int64), path.stat().st_size)
    av = video.require_av()
    container = video.open_container(path)
    try:
        stream = container.streams.video[0]
        stream_info = video.stream_info(stream, path)  # the store's own header reading, shared rather than copied
        base = float(stream.time_base)
        entries = stream.index_entries
        if not stream.codec_context.has_b_frames and len(entries):
            rows = [(e.timestamp * base, bool(e.is_keyframe), e.pos + e.size) for e in entries if not e.is_discard]
        else:
            rows = [
                (p.pts * base, bool(p.is_keyframe), p.pos + p.size)
                for p in container.demux(stream)
                if p.pts is not None
            ]
    except av.FFmpegError as exc:
        raise CorruptSourceError(
            f"{path}: video does not demux ({exc})", hint="re-download or re-encode it", situation="video-unreadable"
        ) from exc
    finally:
        container.close()
    rows.sort(key=lambda row: row[0])
    return FileFacts(
        stream_info,
        np.array([r[0] for r in rows], dtype=np.float64),
        np.array([r[1] for r in rows], dtype=bool),
        np.array([r[2] for r in rows], dtype=np.int64),
        path.stat().st_size,
    )


class VideoChecker:
    """Matches episodes' frames to their video files; keeps the facts of the last few files."""

    def __init__(self, fps: float, cache_size: int = 4, *, check_bytes: bool | None = None) -> None:
        self.fps = fps
        self.tolerance_s = 0.5 / fps
        self.check_bytes = CHECK_PACKET_BYTES if check_bytes is None else check_bytes
        self._facts: LruCache[Path, FileFacts] = LruCache(cache_size)

    def facts(self, path: Path) -> FileFacts:
        """Header, frame times and packet extents of ``path`` (cached)."""
        return self._facts.get(path, lambda: read_facts(path, check_bytes=self.check_bytes))

    def segment(
        self,
        feature: Feature,
        seg: VideoSegment,
        stamps_s: npt.NDArray[np.float64],
        *,
        whole_file: bool,
        where: str,
        root: Path,
    ) -> VideoFrames:
        """The episode's frames of camera ``feature`` as a video segment, after checking them all.

        Raises :class:`EpisodeError` (naming the file and what disagrees) when the video does not fit the data.
        """
        if not seg.path.is_file():
            elsewhere = _found_elsewhere(seg.path, feature.key, root)
            if elsewhere is not None:
                raise EpisodeError(
                    f"{where}: video file {seg.path} is missing, but {elsewhere} exists: "
                    "the video_path template does not match the files",
                    hint="fix video_path in meta/info.json (or move the files to where it points)",
                    situation="video-path-template-mismatch",
                )
            raise EpisodeError(
                f"{where}: video file {seg.path} is missing",
                hint="the dataset is incomplete; skip such episodes with --on-error skip",
                situation="video-missing",
            )
        try:
            facts = self.facts(seg.path)
        except RdstdError as exc:
            raise_if_pointer(seg.path, root)
            raise EpisodeError(f"{where}: {exc.message}", hint=exc.hint, situation="video-unreadable") from exc
        declared = feature.declared_codec
        actual = codec_family(facts.stream.codec)
        if declared and codec_family(declared) != actual:
            raise EpisodeError(
                f"{where}: {seg.path} holds {actual} video but meta/info.json declares {declared} for {feature.key}",
                hint=f"correct video.codec of {feature.key} in meta/info.json to {actual!r}",
                situation="video-codec-mismatch",
            )
        if len(feature.shape) == 3 and (facts.stream.height, facts.stream.width) != feature.shape[:2]:
            raise EpisodeError(
                f"{where}: {seg.path} is {facts.stream.width}x{facts.stream.height} but meta/info.json declares "
                f"{feature.shape[1]}x{feature.shape[0]} for {feature.key}",
                hint="fix the feature's shape in meta/info.json",
                situation="video-size-mismatch",
            )
        times = facts.times_s
        want = seg.from_s + stamps_s
        n = len(want)
        if seg.to_s is not None:  # writers put length/fps (LeRobot) or (length-1)/fps here, exactly
            span = seg.to_s - seg.from_s
            if min(abs(span - n / self.fps), abs(span - (n - 1) / self.fps)) > 0.1 / self.fps:
                raise EpisodeError(
                    f"{where}: {feature.key} spans [{seg.from_s:.4f}, {seg.to_s:.4f}) s in {seg.path}, which does "
                    f"not fit {n} frames at {self.fps:g} fps",
                    hint="from_timestamp/to_timestamp in meta/episodes disagree with length; skip with --on-error skip",
                    situation="video-span-mismatch",
                )
        if not len(times):
            raise EpisodeError(
                f"{where}: {seg.path} has no frames", hint="re-encode or re-download the video", situation="video-empty"
            )
        right = np.clip(np.searchsorted(times, want), 0, len(times) - 1)
        left = np.clip(right - 1, 0, len(times) - 1)
        nearest = np.where(np.abs(times[left] - want) <= np.abs(times[right] - want), left, right)
        error = np.abs(times[nearest] - want)
        bad = np.flatnonzero(error >= self.tolerance_s)
        have = f"{len(times)} frames over [{times[0]:.3f}, {times[-1]:.3f}] s"
        if bad.size:
            i = int(bad[0])
            raise EpisodeError(
                f"{where}: {seg.path} has no frame at {want[i]:.4f} s (episode frame {i} of {n}; "
                f"{bad.size} frames missing; the file has {have})",
                hint="the video is shorter than the data or its timestamps are off; skip with --on-error skip",
                situation="video-frames-missing",
            )
        inside = int(np.count_nonzero((times >= want[0] - self.tolerance_s) & (times <= want[-1] + self.tolerance_s)))
        if inside != n or len(np.unique(nearest)) != n:
            raise EpisodeError(
                f"{where}: {seg.path} has {inside} frames in the episode's time span, the data has {n} rows",
                hint="frame counts disagree with length; skip with --on-error skip",
                situation="video-frame-count-mismatch",
            )
        if whole_file and len(times) != n:
            raise EpisodeError(
                f"{where}: {seg.path} has {len(times)} frames, the episode has {n} (length in the metadata)",
                hint="frame counts disagree with length; skip with --on-error skip",
                situation="video-frame-count-mismatch",
            )
        first, last = int(nearest.min()), int(nearest.max())
        past = np.flatnonzero(facts.ends[first : last + 1] > facts.size)
        if past.size:
            k = int(past[0]) + first
            raise EpisodeError(
                f"{where}: {seg.path} is truncated: {past.size} of the episode's {n} frames lie past its end "
                f"(the file has {facts.size:,} bytes, the frame at {times[k]:.4f} s needs {int(facts.ends[k]):,})",
                hint="re-download the video; skip such episodes with --on-error skip",
                situation="video-truncated",
            )
        matched = times[nearest]
        to_s = seg.to_s if seg.to_s is not None else float(matched[-1] + 1.0 / self.fps)
        return VideoFrames(str(seg.path), seg.from_s, to_s, n, tuple(float(t) for t in matched))


def _found_elsewhere(path: Path, key: str, root: Path) -> Path | None:
    """A file with the same name for the same camera somewhere under ``root/videos`` (a template mismatch)."""
    for candidate in sorted((root / "videos").rglob(path.name)):
        rel = candidate.relative_to(root)
        if key in rel.parts:
            return rel
    return None

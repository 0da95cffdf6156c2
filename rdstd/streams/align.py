"""Time alignment of multi-rate streams onto one master clock (pure numpy; no ROS, reusable by HDF5 and resampling).

A *stream* is a sequence of samples with their times (integer nanoseconds on one clock). The *master* times are
either another stream's sample times or a fixed-rate grid (:func:`fixed_grid`). Each stream declares how it is
sampled at the master times, with nothing defaulted silently:

``interpolate``
    linear between the two samples that bracket the master time (quaternion groups by slerp); both must exist and
    lie within ``max_age_ms`` of the master time. No extrapolation past the first or last sample.
``hold``
    the last sample at or before the master time (no look into the future), at most ``max_age_ms`` old.
``nearest``
    the closest sample, past or future, at most ``max_age_ms`` away.

A master time at which a stream has no valid sample is *dropped* (the frame is left out of the episode: nothing
is invented), and every drop is counted in the stream's :class:`AlignmentReport`, together with the dt statistics
(|master − sample used|: median, p95, max), the frames *filled* (value not a sample taken exactly at the master
time) and the largest gap between the stream's own samples.

Before alignment, :func:`check_clock` looks at a stream's two clocks (header stamp and receive time): zero stamps,
|receive − header| > 1 s, negative latency (stamped after it was received), non-monotonic stamps; and a backward
jump of more than 1 s (a clock reset) splits the stream (:attr:`ClockCheck.segments`) instead of being sorted away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from rdstd.errors import MappingError

Method = Literal["interpolate", "hold", "nearest"]
METHODS: tuple[str, ...] = ("interpolate", "hold", "nearest")
#: A backward jump larger than this is a clock reset (the stream is split), smaller ones are disorder.
RESET_NS = 1_000_000_000
#: |receive − header| above this is reported (sim time, sensor clocks, another machine's clock).
OFFSET_NS = 1_000_000_000

I64 = npt.NDArray[np.int64]


@dataclass
class ClockCheck:
    """What :func:`check_clock` found about one stream's clocks."""

    stream: str
    findings: list[str] = field(default_factory=list)
    #: ``[start, stop)`` index ranges between clock resets (one range when there is none).
    segments: list[tuple[int, int]] = field(default_factory=list)
    zero_stamps: int = 0
    negative_latency: int = 0
    max_negative_latency_ms: float = 0.0
    offset_over_1s: int = 0
    median_latency_ms: float | None = None
    non_monotonic: int = 0
    resets: int = 0


def check_clock(stream: str, header_ns: I64 | None, receive_ns: I64, clock: str) -> ClockCheck:
    """Sanity of a stream's clocks; ``clock`` (``header`` or ``receive``) is the one alignment will use."""
    scan = ClockScan(stream, header_ns is not None, clock)
    receive = np.asarray(receive_ns, dtype=np.int64)
    header = np.asarray(header_ns, dtype=np.int64) if header_ns is not None else None
    scan.add(header, receive)
    return scan.finish(lambda: (header, receive) if header is not None else None)


class ClockScan:
    """:func:`check_clock` a block of messages at a time (:meth:`add`, in stream order), so a long recording's
    times need not be held at once; :meth:`finish` gives the same :class:`ClockCheck`. The median latency is the
    one figure that needs every message at once: :meth:`finish` asks for the times whole only when a finding
    states it (more than 1 s between the clocks), and leaves it ``None`` otherwise."""

    def __init__(self, stream: str, has_header: bool, clock: str) -> None:
        if not has_header and clock == "header":
            raise MappingError(
                f"{stream}: clock header asked for, but the messages have no header stamp",
                situation="header-stamp-missing",
            )
        self.check = ClockCheck(stream)
        self.has_header = has_header
        self.clock = clock
        self.count = 0
        self.stamped = 0  # messages with a non-zero header stamp
        self.min_latency: int | None = None
        self.cuts: list[int] = []
        self.last: int | None = None

    def add(self, header: I64 | None, receive: I64) -> None:
        """The next messages' header stamps (None: the messages have none) and receive times."""
        check = self.check
        if header is not None:
            zero = header == 0
            check.zero_stamps += int(zero.sum())
            ok = ~zero
            latency = receive[ok] - header[ok]
            if latency.size:
                self.stamped += latency.size
                low = int(latency.min())
                self.min_latency = low if self.min_latency is None else min(self.min_latency, low)
                check.negative_latency += int((latency < 0).sum())
                check.offset_over_1s += int((np.abs(latency) > OFFSET_NS).sum())
        times = header if self.clock == "header" and header is not None else receive
        steps = np.diff(times)
        if self.last is not None and times.size:
            steps = np.concatenate([[int(times[0]) - self.last], steps])
        first = self.count + (0 if self.last is not None else 1)  # the position each step arrives at
        self.cuts += (np.flatnonzero(steps < -RESET_NS) + first).tolist()
        check.non_monotonic += int(((steps < 0) & (steps >= -RESET_NS)).sum())
        if times.size:
            self.last = int(times[-1])
        self.count += len(receive)

    def finish(self, whole: Callable[[], tuple[I64, I64] | None]) -> ClockCheck:
        """The check; ``whole()`` gives (header, receive) of every message, asked for only for the median
        latency a finding states."""
        check, stream = self.check, self.check.stream
        if check.zero_stamps:
            check.findings.append(f"{stream}: {check.zero_stamps} of {self.count} header stamps are zero")
        if self.stamped:
            if check.negative_latency:
                assert self.min_latency is not None
                check.max_negative_latency_ms = float(-self.min_latency) / 1e6
                check.findings.append(
                    f"{stream}: {check.negative_latency} messages are stamped after they were received "
                    f"(up to {check.max_negative_latency_ms:.3f} ms: clock skew between machines?)"
                )
            if check.offset_over_1s:
                times = whole()
                assert times is not None
                header, receive = times
                ok = header != 0
                check.median_latency_ms = float(np.median(receive[ok] - header[ok])) / 1e6
                check.findings.append(
                    f"{stream}: {check.offset_over_1s} messages have |receive - header| > 1 s "
                    f"(median {check.median_latency_ms:.1f} ms: another clock, e.g. sim time or a sensor's)"
                )
        bounds = [0, *self.cuts, self.count]
        check.segments = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)] if self.count else [(0, 0)]
        check.resets = len(check.segments) - 1
        if check.resets:
            check.findings.append(
                f"{stream}: {check.resets} backward jump(s) over 1 s in its {self.clock} times (clock reset): "
                f"split into {len(check.segments)} segments"
            )
        if check.non_monotonic:
            check.findings.append(f"{stream}: {check.non_monotonic} {self.clock} times go backwards (by up to 1 s)")
        return check


def fixed_grid(start_ns: int, stop_ns: int, fps: float) -> I64:
    """Times ``start + round(k * 1e9 / fps)`` for every k that stays at or before ``stop_ns``."""
    if not fps > 0:
        raise MappingError(f"fps must be positive, not {fps!r}", situation="rate-invalid")
    count = int(np.floor((stop_ns - start_ns) * fps / 1e9 + 1e-9)) + 1 if stop_ns >= start_ns else 0
    return start_ns + np.round(np.arange(count, dtype=np.float64) * (1e9 / fps)).astype(np.int64)


@dataclass
class Sampling:
    """Where each master time takes its value from: ``lo``/``hi`` sample indices and weight ``w`` of ``hi``.

    ``valid`` marks master times with a usable sample; ``dt_ns`` is |master − the sample used| (for interpolation:
    the nearer bracket).
    """

    lo: I64
    hi: I64
    w: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    dt_ns: I64


def sample_at(master_ns: I64, times_ns: I64, method: str, max_age_ns: int) -> Sampling:
    """How a stream with sorted ``times_ns`` is sampled at ``master_ns`` (see the module docs for each method)."""
    if method not in METHODS:
        raise MappingError(
            f"unknown alignment method {method!r}",
            hint=f"use one of: {', '.join(METHODS)}",
            situation="alignment-method-unknown",
        )
    master = np.asarray(master_ns, dtype=np.int64)
    times = np.asarray(times_ns, dtype=np.int64)
    m = len(master)
    if len(times) == 0:
        zeros = np.zeros(m, dtype=np.int64)
        return Sampling(zeros, zeros, np.zeros(m), np.zeros(m, dtype=bool), zeros)
    if np.any(np.diff(times) < 0):
        raise MappingError(
            "stream times must be sorted before alignment (split clock resets first)", situation="times-not-sorted"
        )
    last = len(times) - 1
    right = np.searchsorted(times, master, side="right")  # first sample after the master time
    before = right - 1  # last sample at or before
    has_before = before >= 0
    lo = np.clip(before, 0, last)
    after_exact = np.clip(right, 0, last)
    w = np.zeros(m, dtype=np.float64)
    if method == "hold":
        dt = master - times[lo]
        valid = has_before & (dt <= max_age_ns)
        hi = lo
    elif method == "nearest":
        has_after = right <= last
        d_before = np.where(has_before, master - times[lo], np.iinfo(np.int64).max)
        d_after = np.where(has_after, times[after_exact] - master, np.iinfo(np.int64).max)
        take_after = d_after < d_before
        lo = np.where(take_after, after_exact, lo)
        hi = lo
        dt = np.minimum(d_before, d_after)
        valid = (has_before | has_after) & (dt <= max_age_ns)
    else:
        exact = has_before & (times[lo] == master)
        has_after = right <= last
        hi = np.where(exact, lo, after_exact)
        d_lo = master - times[lo]
        d_hi = times[hi] - master
        span = (times[hi] - times[lo]).astype(np.float64)
        w = np.where(exact | (span == 0), 0.0, d_lo / np.where(span == 0, 1.0, span))
        dt = np.where(exact, 0, np.minimum(d_lo, d_hi))
        valid = has_before & (exact | has_after) & (d_lo <= max_age_ns) & ((d_hi <= max_age_ns) | exact)
    return Sampling(lo.astype(np.int64), hi.astype(np.int64), w, valid, np.abs(dt).astype(np.int64))


def apply_sampling(
    values: npt.NDArray[Any], sampling: Sampling, method: str, quaternions: list[int] | None = None
) -> npt.NDArray[Any]:
    """The stream's values at the master times (rows of invalid master times are whatever ``lo`` holds).

    ``quaternions``: start columns of xyzw groups in the last axis, interpolated by slerp (others linearly).
    Non-float values are never interpolated: they take the nearer bracket.
    """
    lo_vals = values[sampling.lo]
    if method != "interpolate":
        return lo_vals
    hi_vals = values[sampling.hi]
    if values.dtype.kind != "f":
        return np.where((sampling.w > 0.5).reshape(-1, *([1] * (values.ndim - 1))), hi_vals, lo_vals)
    w = sampling.w.reshape(-1, *([1] * (values.ndim - 1)))
    out = lo_vals + (hi_vals - lo_vals) * w
    for start in quaternions or []:
        out[..., start : start + 4] = slerp(
            lo_vals[..., start : start + 4], hi_vals[..., start : start + 4], sampling.w
        )
    result: npt.NDArray[Any] = out.astype(values.dtype, copy=False)
    return result


def slerp(q0: npt.NDArray[Any], q1: npt.NDArray[Any], w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Spherical linear interpolation of unit quaternions (rows), the short way round."""
    a = np.asarray(q0, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(q1, dtype=np.float64).reshape(-1, 4).copy()
    t = np.asarray(w, dtype=np.float64).reshape(-1)
    dot = np.einsum("ij,ij->i", a, b)
    b[dot < 0] *= -1
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    close = sin < 1e-9
    safe = np.where(close, 1.0, sin)
    s0 = np.where(close, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    s1 = np.where(close, t, np.sin(t * theta) / safe)
    out = a * s0[:, None] + b * s1[:, None]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.reshape(np.shape(q0))


@dataclass
class AlignmentReport:
    """One stream's alignment over one episode (times in ms)."""

    stream: str
    method: str
    clock: str
    max_age_ms: float
    samples: int
    frames: int
    dt_median_ms: float | None
    dt_p95_ms: float | None
    dt_max_ms: float | None
    filled: int
    dropped: int
    largest_gap_ms: float | None
    findings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


class DtStore(Protocol):
    """Where a :class:`ReportBuilder` keeps the dt of the frames kept (in memory, or a temporary file)."""

    def append(self, rows: npt.ArrayLike) -> None:
        """The next frames' dt (ns)."""

    def __getitem__(self, index: slice) -> npt.NDArray[Any]:
        """The dt kept (``[:]``: all of them)."""


class _Kept:
    """dt kept in memory (arrays per window)."""

    def __init__(self) -> None:
        self.parts: list[I64] = []

    def append(self, rows: npt.ArrayLike) -> None:
        self.parts.append(np.asarray(rows, dtype=np.int64))

    def __getitem__(self, index: slice) -> I64:
        return np.concatenate(self.parts)[index] if self.parts else np.zeros(0, dtype=np.int64)


class ReportBuilder:
    """A stream's :class:`AlignmentReport` built a window of master frames at a time (:meth:`add`), the same as
    :func:`report` over the whole episode: the dt of the frames kept go to ``store`` (the median and p95 are
    computed from all of them at the end, exactly), the rest are counts and maxima."""

    def __init__(
        self,
        stream: str,
        method: str,
        clock: str,
        max_age_ms: float,
        samples: int,
        largest_gap_ns: int | None,
        store: DtStore | None = None,
    ) -> None:
        self.head = (stream, method, clock, max_age_ms)
        self.samples = samples
        self.largest_gap_ns = largest_gap_ns
        self.store: DtStore = _Kept() if store is None else store
        self.frames = 0
        self.filled = 0
        self.dropped = 0

    def add(self, sampling: Sampling, kept: npt.NDArray[np.bool_]) -> None:
        """One window's sampling and which of its master frames are kept."""
        dt = sampling.dt_ns[kept]
        self.store.append(dt)
        self.frames += int(kept.sum())
        self.filled += int((dt > 0).sum())
        self.dropped += int((~sampling.valid).sum())

    def build(self) -> AlignmentReport:
        """The report over every window added."""
        dt = self.store[:].astype(np.float64) / 1e6
        stream, method, clock, max_age_ms = self.head
        return AlignmentReport(
            stream=stream,
            method=method,
            clock=clock,
            max_age_ms=max_age_ms,
            samples=self.samples,
            frames=self.frames,
            dt_median_ms=float(np.median(dt)) if dt.size else None,
            dt_p95_ms=float(np.percentile(dt, 95)) if dt.size else None,
            dt_max_ms=float(dt.max()) if dt.size else None,
            filled=self.filled,
            dropped=self.dropped,
            largest_gap_ms=float(self.largest_gap_ns) / 1e6 if self.largest_gap_ns is not None else None,
        )


def report(
    stream: str,
    method: str,
    clock: str,
    max_age_ms: float,
    times_ns: I64,
    sampling: Sampling,
    kept: npt.NDArray[np.bool_],
) -> AlignmentReport:
    """The stream's :class:`AlignmentReport` over the master frames ``kept`` (drops counted over all of them)."""
    gaps = np.diff(np.asarray(times_ns, dtype=np.int64))
    builder = ReportBuilder(stream, method, clock, max_age_ms, len(times_ns), int(gaps.max()) if gaps.size else None)
    builder.add(sampling, kept)
    return builder.build()

"""The alignment engine against values computed independently (plain loops, closed-form signals)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rdstd.errors import MappingError
from rdstd.streams.align import (
    apply_sampling,
    check_clock,
    fixed_grid,
    report,
    sample_at,
    slerp,
)

MS = 1_000_000


def _loop_hold(master: list[int], times: list[int], max_age: int) -> list[int | None]:
    out: list[int | None] = []
    for m in master:
        best = None
        for i, t in enumerate(times):
            if t <= m:
                best = i
        out.append(best if best is not None and m - times[best] <= max_age else None)
    return out


def _loop_nearest(master: list[int], times: list[int], max_age: int) -> list[int | None]:
    out: list[int | None] = []
    for m in master:
        i = min(range(len(times)), key=lambda k: (abs(times[k] - m), times[k] > m))
        out.append(i if abs(times[i] - m) <= max_age else None)
    return out


def test_hold_and_nearest_match_a_plain_loop() -> None:
    rng = np.random.default_rng(3)
    times = np.sort(rng.integers(0, 2000 * MS, 300)).astype(np.int64)
    times = np.unique(times)
    master = np.arange(-50 * MS, 2100 * MS, 33 * MS, dtype=np.int64)
    for method, loop in (("hold", _loop_hold), ("nearest", _loop_nearest)):
        s = sample_at(master, times, method, 20 * MS)
        expected = loop(master.tolist(), times.tolist(), 20 * MS)
        got = [int(i) if v else None for i, v in zip(s.lo, s.valid, strict=True)]
        assert got == expected, method
        assert all(s.dt_ns[k] == abs(master[k] - times[s.lo[k]]) for k in range(len(master)) if s.valid[k])


def test_hold_never_looks_into_the_future() -> None:
    s = sample_at(np.array([10, 20], dtype=np.int64), np.array([11, 19], dtype=np.int64), "hold", 100)
    assert s.valid.tolist() == [False, True] and s.lo[1] == 1


def test_linear_interpolation_recovers_a_line_exactly_and_a_sine_closely() -> None:
    times = np.arange(0, 1000 * MS, 5 * MS, dtype=np.int64)  # 200 Hz
    t = times / 1e9
    values = np.stack([3.0 * t - 1.0, np.sin(2 * np.pi * 0.4 * t)], axis=1)
    master = (np.arange(1, 29) * 1e9 / 30).astype(np.int64)  # 30 Hz, between samples
    s = sample_at(master, times, "interpolate", 10 * MS)
    assert s.valid.all()
    out = apply_sampling(values, s, "interpolate")
    tm = master / 1e9
    np.testing.assert_allclose(out[:, 0], 3.0 * tm - 1.0, atol=1e-12)
    # linear interpolation error bound for sin: h^2/8 * max|f''| with h = 5 ms
    bound = (0.005**2) / 8 * (2 * np.pi * 0.4) ** 2
    assert np.max(np.abs(out[:, 1] - np.sin(2 * np.pi * 0.4 * tm))) <= bound


def test_interpolation_does_not_extrapolate_and_honours_max_age() -> None:
    times = np.array([100, 200, 500], dtype=np.int64)
    master = np.array([50, 150, 200, 350, 600], dtype=np.int64)
    s = sample_at(master, times, "interpolate", 120)
    # 50: before the first sample; 350: brackets 200 and 500 are 150 away; 600: after the last
    assert s.valid.tolist() == [False, True, True, False, False]
    assert s.w[1] == pytest.approx(0.5) and s.dt_ns[2] == 0


def test_slerp_follows_a_constant_rate_rotation() -> None:
    def yaw(a: float) -> list[float]:
        return [0.0, 0.0, math.sin(a / 2), math.cos(a / 2)]

    q0 = np.array([yaw(0.0)] * 4)
    q1 = np.array([yaw(1.2)] * 4)
    w = np.array([0.0, 0.25, 0.5, 1.0])
    got = slerp(q0, q1, w)
    np.testing.assert_allclose(got, np.array([yaw(1.2 * x) for x in w]), atol=1e-12)
    # the short way: q and -q are the same rotation
    np.testing.assert_allclose(slerp(q0[:1], -q1[:1], np.array([0.5])), [yaw(0.6)], atol=1e-12)


def test_quaternion_columns_are_slerped_not_lerped() -> None:
    times = np.array([0, 10], dtype=np.int64)
    values = np.array([[1.0, 0, 0, 0, 1], [3.0, 0, 0, 1, 0]])  # x, then quaternion xyzw: 0 -> 180 deg yaw
    s = sample_at(np.array([5], dtype=np.int64), times, "interpolate", 10)
    out = apply_sampling(values, s, "interpolate", quaternions=[1])
    assert out[0, 0] == 2.0
    np.testing.assert_allclose(out[0, 1:], [0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)], atol=1e-12)
    assert np.linalg.norm(out[0, 1:]) == pytest.approx(1.0)


def test_fixed_grid_stays_on_the_rate() -> None:
    grid = fixed_grid(1_000, 1_000 + 10**9, 30.0)
    assert len(grid) == 31
    np.testing.assert_array_equal(grid - 1_000, np.round(np.arange(31) * 1e9 / 30).astype(np.int64))
    with pytest.raises(MappingError):
        fixed_grid(0, 1, 0.0)


def test_report_counts_drops_fills_dt_and_gaps() -> None:
    times = np.array([0, 10, 20, 2000, 2010], dtype=np.int64) * MS
    master = np.array([0, 15, 1000, 2005], dtype=np.int64) * MS
    s = sample_at(master, times, "hold", 50 * MS)
    kept = s.valid
    r = report("joints", "hold", "header", 50.0, times, s, kept)
    assert (r.frames, r.dropped, r.filled) == (3, 1, 2)
    assert r.dt_max_ms == 5.0 and r.dt_median_ms == 5.0
    assert r.largest_gap_ms == 1980.0


def test_clock_sanity_findings() -> None:
    receive = np.array([10, 20, 30, 40, 50], dtype=np.int64) * MS
    header = np.array([0, 21, 29, 39, 49], dtype=np.int64) * MS
    c = check_clock("/joints", header, receive, "header")
    assert c.zero_stamps == 1 and c.negative_latency == 1 and c.max_negative_latency_ms == pytest.approx(1.0)
    assert c.offset_over_1s == 0 and c.resets == 0 and c.non_monotonic == 0
    far = check_clock("/scan", receive + 5 * 10**9, receive, "receive")
    assert far.offset_over_1s == 5 and any("> 1 s" in f for f in far.findings)
    with pytest.raises(MappingError, match="no header stamp"):
        check_clock("/task", None, receive, "header")


def test_a_backward_jump_over_a_second_splits_the_stream_small_ones_are_disorder() -> None:
    times = np.array([5, 6, 7, 1, 2, 3], dtype=np.int64) * 10**9
    c = check_clock("/sim", None, times, "receive")
    assert c.resets == 1 and c.segments == [(0, 3), (3, 6)]
    wobble = np.array([100, 200, 150, 300], dtype=np.int64) * MS
    w = check_clock("/rosout", None, wobble, "receive")
    assert w.resets == 0 and w.non_monotonic == 1
    with pytest.raises(MappingError, match="sorted"):
        sample_at(np.array([0], dtype=np.int64), wobble, "hold", 1)

"""Alignment pieces that run a block or window at a time give what they give over everything at once."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rdstd.streams.align import ClockScan, ReportBuilder, check_clock, report, sample_at
from rdstd.streams.tf import Failure


@st.composite
def clocks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(header, receive) of up to 60 messages: zero stamps, offsets over 1 s, negative latency, disorder, resets."""
    n = draw(st.integers(0, 60))
    steps = draw(st.lists(st.sampled_from([0, 1, 5, -3, -2_000_000_000, 10_000_000]), min_size=n, max_size=n))
    receive = 1_700_000_000_000_000_000 + np.cumsum(np.array(steps, dtype=np.int64) + 10_000_000)
    offsets = draw(st.lists(st.sampled_from([0, 1_000_000, -2_000_000, 3_000_000_000]), min_size=n, max_size=n))
    header = receive - np.array(offsets, dtype=np.int64)
    zero = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    header[np.array(zero, dtype=bool)] = 0
    return header, receive


@settings(max_examples=150, deadline=None)
@given(pair=clocks(), block=st.integers(1, 7), clock=st.sampled_from(["header", "receive"]))
def test_a_clock_checked_a_block_at_a_time_gives_the_findings_of_the_whole(
    pair: tuple[np.ndarray, np.ndarray], block: int, clock: str
) -> None:
    header, receive = pair
    whole = check_clock("/s", header, receive, clock)
    scan = ClockScan("/s", True, clock)
    for start in range(0, len(receive), block):
        scan.add(header[start : start + block], receive[start : start + block])
    parts = scan.finish(lambda: (header, receive))
    assert parts.findings == whole.findings
    assert parts.segments == whole.segments
    assert (parts.zero_stamps, parts.negative_latency, parts.offset_over_1s, parts.non_monotonic, parts.resets) == (
        whole.zero_stamps,
        whole.negative_latency,
        whole.offset_over_1s,
        whole.non_monotonic,
        whole.resets,
    )
    assert parts.max_negative_latency_ms == whole.max_negative_latency_ms


@settings(max_examples=100, deadline=None)
@given(
    times=st.lists(st.integers(0, 400), min_size=0, max_size=40).map(sorted),
    master=st.lists(st.integers(-20, 420), min_size=1, max_size=40).map(sorted),
    method=st.sampled_from(["interpolate", "hold", "nearest"]),
    window=st.integers(1, 9),
)
def test_a_report_built_a_window_at_a_time_is_the_report_of_the_whole(
    times: list[int], master: list[int], method: str, window: int
) -> None:
    t, m = np.array(times, dtype=np.int64), np.array(master, dtype=np.int64)
    sampling = sample_at(m, t, method, 30)
    kept = sampling.valid | (m % 3 == 0)
    whole = report("s", method, "header", 0.00003, t, sampling, kept)
    gaps = np.diff(t)
    builder = ReportBuilder("s", method, "header", 0.00003, len(t), int(gaps.max()) if gaps.size else None)
    for start in range(0, len(m), window):
        part = sample_at(m[start : start + window], t, method, 30)
        builder.add(part, kept[start : start + window])
    assert builder.build() == whole


def test_failures_of_parts_of_a_recording_merge_into_the_failure_of_all_of_it() -> None:
    a = Failure("base", "tool", "after", 3e6, 2, 5_000_000)
    b = Failure("base", "tool", "after", 7.5e6, 4, 5_000_000)
    assert str(a.merge(b)) == "base->tool: up to 7.5 ms after its last sample (allowed 5 ms) at 6 time(s)"

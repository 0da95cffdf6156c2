"""Windows and padding masks at episode edges, against values computed independently of the loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import rdstd
from rdstd.errors import UsageError
from rdstd.loader import FrameDataset, Window
from tests.loader.helpers import ACTION, CAM, JPG, STATE, pixel, write

LENGTHS = [5, 9, 7]


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("loader") / "ds", LENGTHS)


def expected(offsets: list[int]) -> list[tuple[int, int, list[tuple[int, int, bool]]]]:
    """Per sample (episode, frame, [(episode, frame, pad) per offset]) by plain loops over the lengths."""
    out = []
    for e, n in enumerate(LENGTHS):
        for f in range(n):
            reads = []
            for o in offsets:
                t = f + o
                reads.append((e, t, not 0 <= t < n))
            out.append((e, f, reads))
    return out


def test_frame_windows_and_masks_match_an_independent_computation(ds_path: Path) -> None:
    offsets = [-2, -1, 0, 2]
    fd = FrameDataset(ds_path, [STATE, CAM], windows={STATE: offsets, CAM: offsets})
    batch = fd.batch(np.arange(len(fd)))
    for i, (e, f, reads) in enumerate(expected(offsets)):
        assert batch["episode_index"][i] == e and batch["frame_index"][i] == f
        for w, (ep, t, pad) in enumerate(reads):
            assert batch[f"{STATE}_is_pad"][i, w] == pad
            assert batch[f"{CAM}_is_pad"][i, w] == pad
            if pad:  # zeros, never a repeated frame
                assert not batch[STATE][i, w].any()
                assert not batch[CAM][i, w].any()
            else:
                assert batch[STATE][i, w, :2].tolist() == [ep, t]
                assert (batch[CAM][i, w] == pixel(ep, t)).all()


def test_single_samples_equal_batches_and_the_reader(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, windows={ACTION: range(0, 4)})
    ds = rdstd.open(ds_path)
    batch = fd.batch([3, 0, 20, 3])
    for n, i in enumerate([3, 0, 20, 3]):
        one = fd[i]
        frame = ds.frame(i)
        assert set(one) == set(batch)
        for key, value in one.items():
            np.testing.assert_array_equal(value, batch[key][n])
        np.testing.assert_array_equal(one[STATE], frame[STATE])
        np.testing.assert_array_equal(one[JPG], frame[JPG])
        np.testing.assert_array_equal(one[ACTION][0], frame[ACTION])
        assert one["index"] == frame["index"] and one["timestamp"] == frame["timestamp"]


def test_repeat_pads_with_the_edge_frame_and_still_says_so(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [STATE], windows={STATE: [-1, 0, 1]}, pad="repeat")
    first, last = fd[0], fd[LENGTHS[0] - 1]
    assert first[f"{STATE}_is_pad"].tolist() == [True, False, False]
    assert first[STATE][:, 1].tolist() == [0, 0, 1]
    assert last[f"{STATE}_is_pad"].tolist() == [False, False, True]
    assert last[STATE][:, 1].tolist() == [3, 4, 4]


def test_time_windows_resolve_against_timestamps(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [STATE], windows={STATE: [-0.2, 0.0, 0.1, 0.21]})
    for i in range(len(fd)):
        s = fd[i]
        f, e = int(s["frame_index"]), int(s["episode_index"])
        want = [f - 2, f, f + 1, f + 2]  # 10 Hz: 0.21 s is 2 frames away (within half a period)
        for w, t in enumerate(want):
            pad = not 0 <= t < LENGTHS[e]
            assert s[f"{STATE}_is_pad"][w] == pad
            if not pad:
                assert s[STATE][w, 1] == t


def test_time_offsets_take_the_nearest_frame(tmp_path: Path) -> None:
    path = write(tmp_path / "ds", [6], rate_hz=None)  # no nominal rate: half the median period of the timestamps
    fd = FrameDataset(path, [STATE], windows={STATE: [-0.26, -0.049, 0.051, 0.26]})
    s = fd[2]
    # 0.2 s - 0.26 s lies 0.06 s before frame 0 (more than half a period): padding; 0.46 s is frame 5's
    assert s[f"{STATE}_is_pad"].tolist() == [True, False, False, False]
    assert s[STATE][:, 1].tolist() == [0, 2, 3, 5]


def test_only_the_requested_keys_come_back(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [ACTION])
    assert set(fd[0]) == {"index", "episode_index", "frame_index", "timestamp", ACTION}


def test_window_parsing() -> None:
    assert Window.parse("a", range(0, 3)) == Window((0, 1, 2), seconds=False)
    assert Window.parse("a", [-0.5, 0]).seconds
    for bad in ([], ["x"], [True]):
        with pytest.raises(UsageError):
            Window.parse("a", bad)


def test_bad_requests_fail_at_construction(ds_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no feature 'observation\.nope'"):
        FrameDataset(ds_path, ["observation.nope"])
    with pytest.raises(UsageError, match=r"no feature 'action\.chunk'"):
        FrameDataset(ds_path, [STATE], windows={"action.chunk": [0]})
    with pytest.raises(UsageError, match=r"spans 6 frames, longer than episode 0 \(5 frames\)"):
        FrameDataset(ds_path, windows={ACTION: range(0, 6)})
    with pytest.raises(UsageError, match="longer than episode 0"):
        FrameDataset(ds_path, windows={ACTION: [0.0, 0.6]})
    FrameDataset(ds_path, windows={ACTION: range(0, 5)})  # exactly the shortest episode: fine
    with pytest.raises(UsageError, match="longer than episode 0"):  # a time window first changes nothing
        FrameDataset(ds_path, windows={STATE: [0.0, 0.1], ACTION: range(0, 6)})
    longer = rdstd.open(ds_path).select(pl.col("length") >= 7)
    assert len(FrameDataset(longer, windows={ACTION: range(0, 7)})) == 16


def test_out_of_range_samples(ds_path: Path) -> None:
    fd = FrameDataset(ds_path, [STATE])
    with pytest.raises(IndexError):
        fd[len(fd)]
    with pytest.raises(IndexError):
        fd.batch([0, -len(fd) - 1])
    assert fd[-1]["frame_index"] == LENGTHS[-1] - 1

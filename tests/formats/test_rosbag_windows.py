"""Alignment a window of master frames at a time (window.py) gives the episode that aligning it whole gives: the
same frames, values, poses, camera frames and reports, whatever the window and block sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rdstd.errors import SourceError
from rdstd.formats.rosbag import RosbagSource
from tests.formats.rosbag_fixtures import PLAN, T0, with_plan, write_bag

FPS = PLAN.replace("master: {topic: /cam/compressed, clock: header}", "master: {fps: 37}")
WORLD = PLAN.replace("target: base", "target: world")
SPLIT = PLAN + "episodes: {split_on: {topic: /episode_start}}\n"


def _squeeze(topic: str, ns: int) -> int:
    """/tf stamped on half the recording's span, 0.3 s in: lookups fail before its first and after its last."""
    return T0 + 300_000_000 + (ns - T0) // 2 if topic == "/tf" else ns


def _disorder(topic: str, ns: int) -> int:
    return ns + 15_000_000 if topic == "/joint_states" and (ns // 10_000_000) % 7 == 3 else ns


CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "camera master": (PLAN, {}),
    "fps master, frames dropped": (FPS, {}),
    "TF failures on both sides, two edges": (WORLD, {"stamp": _squeeze}),
    "joint stamps out of order": (PLAN, {"stamp": _disorder}),
    "episodes cut by an event topic": (SPLIT, {"events": [0.9, 1.7]}),
}


def _episodes(bag: Path) -> list[dict[str, Any]]:
    out = []
    with RosbagSource(bag) as source:
        for ref in source.episode_refs():
            episode = source.read_episode(ref)
            out.append(
                {
                    "length": episode.length,
                    "timestamps": np.asarray(episode.timestamps_s).tolist(),
                    "vectors": {k: np.asarray(v).tolist() for k, v in episode.vectors.items()},
                    "images": {k: [bytes(f) for f in v.frames] for k, v in episode.images.items()},
                    "meta": json.loads(json.dumps(episode.meta, default=str)),
                }
            )
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_an_episode_aligned_in_windows_of_three_frames_is_the_episode_aligned_whole(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.formats.rosbag import reader, spill, window

    plan, options = CASES[case]
    bag = with_plan(write_bag(tmp_path / "run.bag", seconds=3.0, **options), plan)
    for name, value in (("WINDOW_FRAMES", 1 << 30), ("CLOCK_BLOCK", 1 << 30)):
        monkeypatch.setattr(reader, name, value)
    monkeypatch.setattr(window, "BLOCK", 1 << 30)
    whole = _episodes(bag)
    for name, value in (("WINDOW_FRAMES", 3), ("CLOCK_BLOCK", 4)):
        monkeypatch.setattr(reader, name, value)
    monkeypatch.setattr(window, "BLOCK", 4)
    monkeypatch.setattr(spill, "ROWS_AT_ONCE", 4)
    monkeypatch.setattr(spill, "COLUMN_BUFFER_BYTES", 64)
    windowed = _episodes(bag)
    assert windowed == whole
    assert sum(e["length"] for e in whole) > 0


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc/self/fd (Linux)")
def test_an_episode_read_and_dropped_leaves_no_temporary_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-frame columns of an aligned episode (temporary files once they outgrow their buffer) go with the
    episode: a bag cut into many episodes, read one at a time as the converter does, does not hold one set of files
    per episode until the bag closes (hundreds of long pieces ran out of file descriptors)."""
    import gc

    from rdstd.formats.rosbag import spill

    monkeypatch.setattr(spill, "COLUMN_BUFFER_BYTES", 64)  # every column spills to its file
    bag = with_plan(write_bag(tmp_path / "run.bag", seconds=3.0, events=[0.6, 1.2, 1.8, 2.4]), SPLIT)

    def temporary() -> int:  # unlinked temporary files open in this process
        gc.collect()
        return sum(1 for fd in Path("/proc/self/fd").iterdir() if _target(fd).endswith("(deleted)"))

    outside = temporary()
    with RosbagSource(bag) as source:
        refs = source.episode_refs()
        assert len(refs) == 5
        np.asarray(next(iter(source.read_episode(refs[0]).vectors.values())))
        before = temporary()  # the bag's single pass keeps its own (times, payloads), opened as they are first read
        for ref in refs:
            episode = source.read_episode(ref)
            assert np.asarray(next(iter(episode.vectors.values()))).shape[0] == episode.length
            del episode
            assert temporary() == before  # the episode's columns went with it
        kept = source.read_episode(refs[0])  # one still held is closed with the bag
        assert temporary() > before
    assert temporary() == outside
    for values in kept.vectors.values():  # read after the bag closed: an error, never an empty episode
        with pytest.raises(SourceError, match="the bag is closed"):
            np.asarray(values)


def _target(fd: Path) -> str:
    try:
        return str(fd.readlink())
    except OSError:
        return ""

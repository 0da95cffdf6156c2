"""Episode rules of the alignment plan: a bag cut into episodes at each message of an event topic
(``episodes: {split_on: {topic: ...}}``) or at pauses of the master stream (``episodes: {gap_s: ...}``), alone and
together with clock resets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rdstd.convert import convert
from rdstd.errors import MappingError
from rdstd.formats.rosbag import RosbagSource
from tests.formats.rosbag_fixtures import PLAN, T0, joint_positions, jpeg, tool_xyz, with_plan, write_bag
from tests.formats.test_rosbag_convert import _key, _reset_all, _spec_for

SPLIT = PLAN + "episodes: {split_on: {topic: /episode_start}}\n"


def _bag(tmp_path: Path, kind: str, plan: str, **options: object) -> Path:
    tmp_path.mkdir(exist_ok=True)
    return with_plan(write_bag(tmp_path / ("run.bag" if kind == "ros1" else "run"), kind, **options), plan)


def _camera_times(episode: object) -> np.ndarray:
    """The seconds after T0 of an episode's camera frames (its first frame's time from its meta)."""
    meta = episode.meta  # type: ignore[attr-defined]
    return (meta["start_ns"] - T0) / 1e9 + np.asarray(episode.timestamps_s)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["ros1", "db3", "mcap"])
def test_each_event_message_starts_an_episode(tmp_path: Path, kind: str) -> None:
    # events before the first camera frame and twice with no frame between: one cut is made, at 0.42 s
    bag = _bag(tmp_path, kind, SPLIT, events=[0.0, 0.42, 0.43])
    with RosbagSource(bag) as source:
        refs = source.episode_refs()
        assert [r.key for r in refs] == [f"{_key(bag)}_piece0", f"{_key(bag)}_piece1"]
        first, second = (source.read_episode(r) for r in refs)
        assert (first.length, second.length) == (4, 6)  # frames received at 0.055..0.355 s, then 0.455..0.955 s
        for k0, episode in ((0, first), (4, second)):
            t = 0.05 + 0.1 * (k0 + np.arange(episode.length))
            np.testing.assert_allclose(_camera_times(episode), t, atol=1e-9)
            np.testing.assert_allclose(episode.timestamps_s, t - t[0], atol=1e-9)
            want = np.array([joint_positions(x) for x in t])
            np.testing.assert_allclose(np.asarray(episode.vectors["joints"]), want, atol=2e-3)
            np.testing.assert_allclose(np.asarray(episode.vectors["ee"])[:, 0], [tool_xyz(x)[0] for x in t], atol=1e-9)
            assert list(episode.images["cam"].frames) == [jpeg(k0 + k) for k in range(episode.length)]
            assert episode.task == "stack the cups"
        assert first.meta["piece"]["reason"] == "the start of the recording"
        assert second.meta["piece"]["reason"] == "the plan's episode rule: a new episode at each /episode_start message"
        assert second.meta["piece"]["starts_at_receive_ns"] == T0 + 420_000_000
        assert second.meta["piece"]["rule"] == {"split_on": {"topic": "/episode_start"}}
        assert (
            second.meta["notes"][0] == "piece 2 of 2: the bag was split at each /episode_start message into 2 episodes"
        )
    report = convert(bag, tmp_path / "out", spec=_spec_for(source_keys=("joints", "cam", "ee")))
    assert report.episodes_written == 2 and report.frames_written == 10


def test_a_pause_longer_than_gap_s_starts_an_episode_and_a_shorter_one_does_not(tmp_path: Path) -> None:
    # nothing is received from 0.4 to 0.7 s: camera frames 4, 5, 6 are missing, a 0.4 s pause of the master
    bag = _bag(tmp_path, "ros1", PLAN + "episodes: {gap_s: 0.25}\n", pause=(0.4, 0.7))
    with RosbagSource(bag) as source:
        episodes = [source.read_episode(r) for r in source.episode_refs()]
        assert list(episodes[1].images["cam"].frames) == [jpeg(7), jpeg(8), jpeg(9)]
        t = np.array([0.75, 0.85, 0.95])
        want = np.array([joint_positions(x) for x in t])  # the first frame interpolated from both sides of 0.75 s
        np.testing.assert_allclose(np.asarray(episodes[1].vectors["joints"]), want, atol=2e-3)
    assert [e.length for e in episodes] == [4, 3]
    np.testing.assert_allclose(_camera_times(episodes[1]), t, atol=1e-9)
    assert episodes[1].meta["piece"]["starts_at_receive_ns"] == T0 + 555_000_000  # the middle of the pause
    assert episodes[1].meta["piece"]["reason"].endswith("pauses over 0.25 s")
    with_plan(bag, PLAN + "episodes: {gap_s: 0.5}\n")
    with RosbagSource(bag) as source:
        (only,) = source.episode_refs()
        assert source.read_episode(only).length == 7


def test_an_fps_master_is_cut_where_every_stream_pauses(tmp_path: Path) -> None:
    plan = PLAN.replace("master: {topic: /cam/compressed, clock: header}", "master: {fps: 10}")
    plan = plan.replace("cam: {topic: /cam/compressed, clock: header, method: nearest, max_age_ms: 1}", "")
    bag = _bag(tmp_path, "mcap", plan + "episodes: {gap_s: 0.25}\n", pause=(0.4, 0.7))
    with RosbagSource(bag) as source:
        refs = source.episode_refs()
        assert len(refs) == 2
        second = source.read_episode(refs[1])
    # the middle of the pause of every stream: the last joint state before it at 0.391 s, the first after at 0.701 s
    assert second.meta["piece"]["starts_at_receive_ns"] == T0 + 546_000_000
    assert second.length == 3 and second.meta["master_frames"] == 3  # the 10 fps grid over 0.70..0.99 s


def test_events_and_a_clock_reset_cut_together(tmp_path: Path) -> None:
    # header clocks jump back 5 s at 0.5 s (a reset), and an event at 0.25 s
    bag = _bag(tmp_path, "mcap", SPLIT, stamp=_reset_all, events=[0.25])
    with RosbagSource(bag) as source:
        episodes = [source.read_episode(r) for r in source.episode_refs()]
        assert [next(iter(e.images["cam"].frames)) for e in episodes] == [jpeg(0), jpeg(2), jpeg(5)]
    assert [e.length for e in episodes] == [2, 3, 5]
    assert [e.meta["piece"]["reason"].split(":")[0] for e in episodes] == [
        "the start of the recording",
        "the plan's episode rule",
        "the recording's clock reset (a backward jump over 1 s)",
    ]
    assert episodes[0].meta["notes"][0] == (
        "piece 1 of 3: the bag was split at each /episode_start message and its clock reset(s) into 3 episodes"
    )


def test_an_episode_rule_names_what_is_wrong(tmp_path: Path) -> None:
    bag = _bag(tmp_path, "ros1", PLAN + "episodes: {gap_s: 1.0, split_on: {topic: /episode_start}}\n")
    with pytest.raises(MappingError, match="give either split_on"):
        RosbagSource(bag)
    with_plan(bag, PLAN + "episodes: {split_on: {topic: /nope}}\n")
    with RosbagSource(bag) as source, pytest.raises(MappingError, match="'/nope', which the bag does not have"):
        source.episode_refs()
    early = _bag(tmp_path / "early", "ros1", SPLIT, events=[0.0])  # no master message before the event: no cut
    with RosbagSource(early) as source:
        assert len(source.episode_refs()) == 1

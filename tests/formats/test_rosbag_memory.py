"""Long recordings with flat memory: what an opened bag holds per message (measured with tracemalloc, not time),
the ROS 1 compact index against rosbags' own reader, and the aligned vectors read lazily from the bag."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rdstd.errors import CorruptSourceError, SourceError
from rdstd.formats.rosbag import RosbagSource
from rdstd.formats.rosbag.frames import BagVectors
from rdstd.formats.rosbag.ros1 import CompactRos1Reader
from tests.conftest import sample
from tests.formats.rosbag_fixtures import T0, joint_positions, with_plan, write_bag
from tests.formats.test_rosbag_salvage import write_chunked_ros1

ROS1_SAMPLES = [
    "ros/ipab-slmc__kuka_honeypot_demo/test.bag",
    "ros/cruise-automation__rosbag.js/example-unsorted-chunks.bag",
]


def held_by_open_source(bag: Path) -> tuple[int, int]:
    """(bytes still allocated while the source is open, messages in the bag).

    Not counted: what rosbags' type store allocates when it registers (generates code for) message types, a
    per-process cache that it sometimes fills again in the middle of a run (73 KB at once, seen on one machine).
    """
    gc.collect()  # sources opened before (reference cycles) are freed first
    tracemalloc.start(32)
    try:
        source = RosbagSource(bag)
        source.ledger  # noqa: B018 - the single pass over the bag runs on first use
        gc.collect()  # what the pass left as garbage is not held by the source
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    kept = snapshot.filter_traces(
        [
            tracemalloc.Filter(False, "*/rosbags/typesys/store.py", all_frames=True),
            tracemalloc.Filter(False, "<string>"),
        ]
    )
    held = sum(stat.size for stat in kept.statistics("filename"))
    with source:
        messages = sum(led.read for led in source.ledger.values())
    return held, messages


def recording(path: Path, kind: str, seconds: float) -> Path:
    """The fixture recording; ROS 1 in 64 KiB chunks (the reader keeps the last chunk it read decompressed, which
    would otherwise be the whole of a short bag)."""
    if kind == "ros1":
        return with_plan(write_chunked_ros1(path.with_suffix(".bag"), seconds=seconds, chunk_bytes=64 * 1024))
    return with_plan(write_bag(path, kind, seconds=seconds))


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_an_open_bag_holds_a_few_dozen_bytes_per_message(tmp_path: Path, kind: str) -> None:
    short = recording(tmp_path / "short", kind, 2.0)
    long = recording(tmp_path / "long", kind, 12.0)
    held_by_open_source(short)  # first use of each: type stores and caches, not per message
    held_by_open_source(long)
    held_short, n_short = held_by_open_source(short)
    held_long, n_long = held_by_open_source(long)
    per_message = (held_long - held_short) / (n_long - n_short)
    # expected ~80 B: receive and header times (16), the ROS 1 index (24), TF samples (72 each, 50 of the 160
    # messages a second: ~22), the joint values kept from the single pass (24 each, 100 of 160 a second: 15; past
    # 1 MiB a stream they go to a temporary file); the camera payloads and their offsets and lengths are in
    # temporary files. The code before held 463 (ROS 1) and 303 (MCAP): a Python
    # tuple per index entry, each vector stream's values and a list of tuples per TF message.
    assert per_message < 100, f"{per_message:.0f} bytes held per message"


@pytest.mark.parametrize("window", [None, 7])
@pytest.mark.parametrize("name", ROS1_SAMPLES)
def test_the_compact_ros1_index_yields_what_rosbags_yields(
    name: str, window: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when the index is merged by time in windows of 7 messages (whole-index merges held ~40 bytes a
    message of a long recording while they ran)."""
    from rosbags.rosbag1 import Reader

    from rdstd.formats.rosbag import ros1

    if window is not None:
        monkeypatch.setattr(ros1, "WINDOW_MESSAGES", window)

    path = sample(name)
    with Reader(path) as theirs:
        expected = [(c.id, t, bytes(raw)) for c, t, raw in theirs.messages()]
        counts = {c.id: c.msgcount for c in theirs.connections}
        by_conn = {
            c.id: [(t, bytes(raw)) for _, t, raw in theirs.messages(connections=[c])] for c in theirs.connections
        }
        times = sorted(t for _, t, _ in expected)
        start, stop = times[len(times) // 3], times[2 * len(times) // 3]
        window = [(c.id, t, bytes(raw)) for c, t, raw in theirs.messages(start=start, stop=stop)]
    ours = CompactRos1Reader(path)
    ours.open()
    try:
        assert [(c.id, t, bytes(raw)) for c, t, raw in ours.messages()] == expected
        assert {c.id: c.msgcount for c in ours.connections} == counts
        for conn in ours.connections:
            assert [(t, bytes(raw)) for _, t, raw in ours.messages(connections=[conn])] == by_conn[conn.id]
        assert [(c.id, t, bytes(raw)) for c, t, raw in ours.messages(start=start, stop=stop)] == window
        assert not any(ours.indexes.values())  # no per-message tuples
    finally:
        ours.close()


def test_aligned_vectors_fetch_only_the_samples_a_slice_uses_without_reading_the_bag_again(tmp_path: Path) -> None:
    bag = with_plan(write_bag(tmp_path / "run.bag", seconds=3.0))
    with RosbagSource(bag) as source:
        episode = source.read_episode(source.episode_refs()[0])
        joints = episode.vectors["joints"]
        assert isinstance(joints, BagVectors) and joints.shape == (30, 3) and joints.dtype == np.float64
        reads: list[int] = []
        original = joints._fetch

        def counting(positions: Any) -> Any:
            reads.append(len(positions))
            return original(positions)

        joints._fetch = counting
        bag_reads = []
        messages = source.bag.messages
        source.bag.messages = lambda *a, **k: bag_reads.append(a) or messages(*a, **k)  # type: ignore[method-assign]
        part = joints[10:14]
        whole = np.asarray(joints)
        last = joints[-1]
    # 4 frames on the 10 ms joint grid: their own samples and the next ones, nothing else
    assert reads[0] <= 8
    assert bag_reads == []  # the values were kept in the bag's single pass
    np.testing.assert_array_equal(part, whole[10:14])
    stamps = T0 + 50_000_000 + np.arange(30) * 100_000_000
    np.testing.assert_allclose(whole, [joint_positions((s - T0) / 1e9) for s in stamps], atol=1e-12)
    assert last.shape == (3,)
    np.testing.assert_array_equal(last, whole[-1])


def test_vector_values_past_the_memory_limit_go_to_a_temporary_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from rdstd.formats.rosbag import reader, spill

    monkeypatch.setattr(spill, "BUFFER_BYTES", 100)
    rows = reader.Rows("t")
    values = np.arange(60, dtype=np.float64).reshape(20, 3)
    for row in values:
        rows.append(row)
    assert rows._bytes._file is not None and len(rows._bytes._buffer) < 100  # most on disk, the tail in memory
    picks = np.array([0, 19, 5, 4, 4, 12], dtype=np.int64)
    np.testing.assert_array_equal(rows.read(picks), values[picks])
    np.testing.assert_array_equal(rows.read(np.array([18, 19])), values[18:])  # the in-memory tail only
    np.testing.assert_array_equal(rows.read(np.array([2, 3])), values[2:4])  # the file only
    with pytest.raises(Exception, match="changes size"):
        rows.append(np.zeros(4))
    rows.close()
    assert rows._bytes._file is None


def test_camera_payloads_and_their_places_go_to_temporary_files(monkeypatch: pytest.MonkeyPatch) -> None:
    from rdstd.formats.rosbag import frames

    monkeypatch.setattr(frames, "COLUMN_BUFFER_BYTES", 64)  # 4 messages' (offset, length) in memory, the rest on disk
    camera = frames.FrameSpill("cam", "data")
    payloads = [bytes([i]) * (i * 37 % 11 + 1) for i in range(50)]
    for data in payloads:
        camera.append(data)
    assert len(camera) == 50
    index = camera._index
    assert index._file is not None and 0 < len(index._buffer) < 64  # the index on disk but its tail
    for picks in ([0, 49, 7, 7, 3], [48, 49], [1, 2, 3], [49], [12, 11, 10]):
        assert camera.read(np.array(picks, dtype=np.int64)) == [payloads[i] for i in picks]
    with pytest.raises(CorruptSourceError, match="message 50 asked for, 50 were read"):
        camera.read(np.array([3, 50], dtype=np.int64))
    camera.close()
    with pytest.raises(SourceError, match="the bag is closed"):
        camera.read(np.array([0], dtype=np.int64))


@pytest.mark.parametrize("kind", ["ros1", "db3", "mcap"])
def test_the_bag_is_read_once_and_camera_frames_come_from_the_spill(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.errors import SourceError
    from rdstd.formats.rosbag.bag import RawBag
    from rdstd.formats.rosbag.frames import BagFrames
    from tests.formats.rosbag_fixtures import jpeg

    bag = with_plan(write_bag(tmp_path / ("run.bag" if kind == "ros1" else "run"), kind, seconds=3.0))
    passes: list[str] = []
    topic_reads: list[str] = []
    all_messages, messages = RawBag.all_messages, RawBag.messages
    monkeypatch.setattr(RawBag, "all_messages", lambda self: passes.append("all") or all_messages(self))
    monkeypatch.setattr(RawBag, "messages", lambda self, *a, **k: topic_reads.append(a[0]) or messages(self, *a, **k))
    with RosbagSource(bag) as source:
        episode = source.read_episode(source.episode_refs()[0])
        frames = episode.images["cam"].frames
        assert isinstance(frames, BagFrames)
        every = list(frames)
        window = frames[5:9]
        joints = np.asarray(episode.vectors["joints"])
        spill = source._cache["/cam/compressed"].frames
        assert spill is not None and spill.payload == "data" and len(spill) == 30
        assert spill.size == sum(len(jpeg(k)) for k in range(30))  # the encoded bytes only, on disk
    assert passes == ["all"] and topic_reads == []  # one pass for the ledger, times, values and frames
    assert every == [jpeg(k) for k in range(30)] and window == every[5:9]
    assert joints.shape == (30, 3)
    with pytest.raises(SourceError, match="the bag is closed"):
        frames[0:2]


def test_the_ros1_index_is_dropped_after_the_pass_and_read_again_if_asked_for(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "run.bag", seconds=2.0)  # no plan: the TF topics are not kept by the pass
    with RosbagSource(bag) as source:
        source.ledger  # noqa: B018 - the single pass
        (reader,) = source.bag.readers
        assert reader.compact == {} and reader.spans == []  # no index held once the pass is done
        assert source.tf_frames() == ["base", "tool", "world"]  # reads /tf and /tf_static again: index re-read
        assert reader.spans and reader.compact == {}  # the chunks' summaries, not an entry per message
        assert sum(c.msgcount for c in reader.connections) == sum(led.read for led in source.ledger.values())
        again = source.read_topic("/joint_states")
        assert len(again.receive_ns) == 200


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_times_and_transforms_kept_in_temporary_files_give_the_same_episode(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rdstd.errors import SourceError
    from rdstd.formats.rosbag import spill

    bag = with_plan(write_bag(tmp_path / ("run.bag" if kind == "ros1" else "run"), kind, seconds=3.0))

    def episode() -> tuple[tuple[Any, Any, Any, Any], bool]:
        with RosbagSource(bag) as source:
            ep = source.read_episode(source.episode_refs()[0])
            data = source._cache["/joint_states"]
            on_disk = data.receive._bytes._file is not None and source._cache["/tf"].transforms._bytes._file is not None
            result = (ep.timestamps_s, np.asarray(ep.vectors["joints"]), np.asarray(ep.vectors["ee"]), ep.meta)
        with pytest.raises(SourceError, match="the bag is closed"):
            data.receive_ns  # noqa: B018 - the times went with the bag
        return result, on_disk

    held, held_on_disk = episode()
    monkeypatch.setattr(spill, "BUFFER_BYTES", 64)  # every few messages to the temporary file
    monkeypatch.setattr(spill, "ROWS_AT_ONCE", 5)
    spilled, spilled_on_disk = episode()
    assert not held_on_disk and spilled_on_disk
    for a, b in zip(held[:3], spilled[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    assert held[3] == spilled[3]
    assert held[3]["tf"]["ee"]["succeeded"] == len(held[0])
    np.testing.assert_allclose(spilled[1], [joint_positions(t + 0.05) for t in spilled[0]], atol=1e-9)


def _anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/self/status")
def test_the_free_heap_an_alignment_leaves_is_given_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Freed heap blocks below the top of glibc's heap stay resident until trimmed (#11: a long recording's
    alignment left ~20 MB of them for the rest of the conversion); reading an episode trims them."""
    from rdstd.formats.rosbag import heap, reader

    if heap._trim() is None:
        pytest.skip("needs glibc's malloc_trim")
    blocks = [bytearray(64 * 1024) for _ in range(480)]  # 30 MB of blocks below the mmap threshold: the heap
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touched: resident
    pin = bytearray(64 * 1024)  # above them: the heap's top cannot shrink past it
    del blocks
    gc.collect()
    before = _anon_kb()
    calls: list[int] = []

    def release() -> None:
        calls.append(1)
        heap.release_free_heap()

    monkeypatch.setattr(reader, "release_free_heap", release)
    source = RosbagSource(recording(tmp_path / "rec", "ros1", 2.0))
    try:
        source.read_episode(source.episode_refs()[0])
    finally:
        source.close()
    assert calls == [1]
    assert _anon_kb() < before - 15 * 1024, (before, _anon_kb())
    del pin


def test_aligning_a_longer_recording_holds_only_a_few_bytes_more_per_master_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #11 item 7: alignment runs over windows of master frames, reading per window only the stream times
    and transforms it uses; what grows with the recording is a few bytes per master frame (its time, kept or not,
    the kept frames' timestamps), not the messages of every stream nor every transform (windows and blocks made
    small so that 20 and 200 s of recording are many of them). The code before loaded every stream's times and
    every transform of the episode, and held the whole episode's poses and sample positions: ~840 bytes more per
    master frame here."""
    from rdstd.formats.rosbag import reader, spill

    monkeypatch.setattr(reader, "WINDOW_FRAMES", 64, raising=False)
    monkeypatch.setattr(spill, "ROWS_AT_ONCE", 256)
    monkeypatch.setattr(spill, "COLUMN_BUFFER_BYTES", 1024, raising=False)
    monkeypatch.setattr("rdstd.formats.rosbag.window.BLOCK", 256, raising=False)

    def aligning(seconds: float) -> tuple[int, int]:
        """(peak bytes allocated while one episode is aligned, its master frames)."""
        bag = with_plan(write_bag(tmp_path / f"run{seconds:g}.bag", seconds=seconds))
        with RosbagSource(bag) as source:
            ref = source.episode_refs()[0]  # the single pass and the clock checks: before
            gc.collect()
            tracemalloc.start()
            try:
                episode = source.read_episode(ref)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert len(np.asarray(episode.vectors["joints"])) == episode.length  # still readable, whole
        return peak, episode.meta["master_frames"]

    aligning(2.0)  # first use: type stores and caches
    short, frames_short = aligning(20.0)
    long, frames_long = aligning(200.0)
    per_frame = (long - short) / (frames_long - frames_short)
    # 10 master frames, 100 joint messages and 50 transforms a second: per master frame its time (8 bytes; the
    # master topic's times read and sorted: 24 while they are), kept mask and stamps (17), the kept frames' dt
    # when a report is built (16)
    assert per_frame < 100, f"{per_frame:.0f} bytes more per master frame while aligning"


def test_after_the_single_pass_a_ros1_bag_keeps_no_record_per_chunk_and_reads_again_the_same(tmp_path: Path) -> None:
    """rosbags' reader keeps a named tuple, a dict of message counts and a chunk header per chunk for as long as the
    bag is open (~3 MB of a 20-minute recording's ~8,700 chunks, held through the whole write): the pass drops
    them with the message index, and reading messages or asking whether chunks overlap reads them again."""
    bag = with_plan(write_chunked_ros1(tmp_path / "run.bag", seconds=3.0, chunk_bytes=8 * 1024))
    with RosbagSource(bag) as fresh:
        before = [(t, bytes(raw)) for t, raw in fresh.bag.messages("/joint_states")]
        overlap = fresh.bag.chunks_overlap
        chunks = len(fresh.bag.readers[0].chunk_infos)
    assert chunks > 10
    with RosbagSource(bag) as source:
        episode = source.read_episode(source.episode_refs()[0])
        reader = source.bag.readers[0]
        assert reader.chunk_infos == [] and reader.chunks == {}
        assert len(np.asarray(episode.vectors["joints"])) == episode.length  # values were kept by the pass
        assert source.bag.chunks_overlap == overlap
        assert [(t, bytes(raw)) for t, raw in source.bag.messages("/joint_states")] == before
        assert len(reader.chunk_infos) == chunks


def _peak_reading_ros1(bag: Path) -> tuple[int, int]:
    """(peak traced bytes while a ROS 1 bag is opened and all its messages read in time order, messages)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        reader = CompactRos1Reader(bag)
        reader.open()
        count = sum(1 for _ in reader.views())
        peak = tracemalloc.get_traced_memory()[1] - base
        reader.close()
    finally:
        tracemalloc.stop()
    return peak, count


def test_reading_a_ros1_bag_in_time_order_holds_the_chunks_it_is_in_not_the_whole_index(tmp_path: Path) -> None:
    """The index is one summary per chunk; a chunk's entries are read when the time order reaches it. Reading a
    recording five times as long holds only its chunks' summaries more (the whole index was 24 bytes a message as
    arrays, and rosbags' tuples while it was read)."""
    short = write_chunked_ros1(tmp_path / "short.bag", seconds=6.0, chunk_bytes=32 * 1024)
    long = write_chunked_ros1(tmp_path / "long.bag", seconds=30.0, chunk_bytes=32 * 1024)
    _peak_reading_ros1(short)  # first use: caches
    peak_short, n_short = _peak_reading_ros1(short)
    peak_long, n_long = _peak_reading_ros1(long)
    per_message = (peak_long - peak_short) / (n_long - n_short)
    # what grows is one summary per chunk (rosbags' chunk records and ours, ~1 KB; these 32 KiB chunks hold ~150
    # messages, a recorder's of 768 KiB thousands): 7 bytes a message here; the whole index held 190
    assert per_message < 12, f"{per_message:.1f} bytes held per message while reading ({peak_short} -> {peak_long})"
    reader = CompactRos1Reader(long)
    reader.open()
    try:
        spans = reader.spans
        assert len(spans) > 20 and sum(c.records for c in spans) >= len(spans)
        assert [c.first for c in spans] == sorted(c.first for c in spans)
    finally:
        reader.close()

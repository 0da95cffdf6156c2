"""Salvage (``rdstd convert BAG OUT --salvage``): the readable prefix of truncated copies of generated ROS 1 bags
and MCAP files becomes a partial episode, marked as such; a complete bag converts as before; what cannot be
salvaged is refused in one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rdstd
from rdstd.cli.app import main
from rdstd.convert.pipeline import convert
from rdstd.errors import CorruptSourceError, UnsupportedVersionError, UsageError
from rdstd.formats.rosbag import RosbagBackend, RosbagSource
from tests.conftest import sample
from tests.formats.rosbag_fixtures import _stores, messages, with_plan, write_bag

SECONDS = 4.0


def write_chunked_ros1(
    path: Path, compression: str = "none", seconds: float = SECONDS, chunk_bytes: int = 8 * 1024
) -> Path:
    """The fixture recording (4 s unless told) as a ROS 1 bag of many small chunks (8 KiB), so a cut keeps several."""
    from rosbags.rosbag1 import Writer

    ts = _stores(False)
    writer = Writer(path)
    writer.chunk_threshold = chunk_bytes
    if compression != "none":
        writer.set_compression(Writer.CompressionFormat[compression.upper()])
    writer.open()
    conns: dict[str, Any] = {}
    for topic, msgtype, t, msg in messages(ts, False, seconds=seconds):
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
        writer.write(conns[topic], t, ts.serialize_ros1(msg, msgtype))
    writer.close()
    return path


def lone_mcap(tmp_path: Path) -> Path:
    """The fixture recording as a lone MCAP file of many small chunks, copied out of its rosbag2 folder."""
    (file,) = mcap_folder(tmp_path).glob("*.mcap")
    return Path(shutil.copy(file, tmp_path / "run.mcap"))


def mcap_folder(tmp_path: Path) -> Path:
    """The fixture recording as a rosbag2 MCAP folder of many small chunks (rosbags closes a chunk at 1 MiB; here at
    8 KiB)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = _stores(True)
    folder = tmp_path / "ros2"
    writer = Writer(folder, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    storage = writer.storage
    assert storage is not None
    conns: dict[str, Any] = {}
    for topic, msgtype, t, msg in messages(ts, True, seconds=SECONDS):
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
        writer.write(conns[topic], t, ts.serialize_cdr(msg, msgtype))
        if storage.chunk.bio.tell() > 8 * 1024:  # type: ignore[attr-defined]
            storage.close_chunk()  # type: ignore[attr-defined]
    writer.close()
    return folder


def cut(path: Path, fraction: float) -> Path:
    """A copy of ``path`` keeping the first ``fraction`` of its bytes."""
    data = path.read_bytes()
    out = path.with_name("cut" + path.suffix)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def contents(source: RosbagSource) -> tuple[Any, list[bytes]]:
    """The episode (its vectors read into memory) and its camera's JPEG bytes, read while the bag is open."""
    episode = source.read_episode(source.episode_refs()[0])
    episode.vectors = {name: np.asarray(values) for name, values in episode.vectors.items()}
    return episode, [bytes(b) for b in episode.images["cam"].frames[0 : episode.length]]


def full_episode(bag: Path) -> tuple[Any, list[bytes]]:
    with RosbagSource(with_plan(bag)) as source:
        return contents(source)


@pytest.mark.parametrize("compression", ["none", "lz4", "bz2"])
def test_a_truncated_ros1_bag_salvages_its_complete_chunks(tmp_path: Path, compression: str) -> None:
    bag = write_chunked_ros1(tmp_path / "run.bag", compression)
    whole, whole_jpegs = full_episode(bag)
    truncated = with_plan(cut(bag, 0.6))
    with pytest.raises(CorruptSourceError) as refused:
        RosbagSource(truncated)  # without salvage: refused, as before, pointing at --salvage
    assert "--salvage" in (refused.value.hint or "")
    with RosbagSource(truncated, salvage=True) as source:
        (salvage,) = source.bag.salvaged
        episode, jpegs = contents(source)
        assert any("salvaged" in w and "partial" in w for w in source.info().extra["warnings"])
    assert salvage.chunks_stated is not None and 0 < salvage.chunks_recovered < salvage.chunks_stated
    assert salvage.bytes_recovered < salvage.file_bytes == truncated.stat().st_size
    partial = episode.meta["partial"]
    assert partial["complete"] is False and partial["bytes_lost"] == salvage.bytes_lost > 0
    assert partial["files"][0]["chunks_lost"] == salvage.chunks_stated - salvage.chunks_recovered
    # the recovered prefix is the same data as the whole bag's first frames, not something else
    n = episode.length
    assert 0 < n < whole.length
    np.testing.assert_array_equal(episode.vectors["joints"], whole.vectors["joints"][:n])
    np.testing.assert_array_equal(episode.timestamps_s, whole.timestamps_s[:n])
    assert jpegs == whole_jpegs[:n]


def test_a_truncated_lone_mcap_is_stream_scanned_without_its_summary(tmp_path: Path) -> None:
    mcap = lone_mcap(tmp_path)
    whole, whole_jpegs = full_episode(mcap)
    truncated = with_plan(cut(mcap, 0.7))
    with pytest.raises(CorruptSourceError):
        RosbagSource(truncated)
    with RosbagSource(truncated, salvage=True) as source:
        (salvage,) = source.bag.salvaged
        episode, jpegs = contents(source)
    assert salvage.container == "mcap" and salvage.chunks_stated is None
    assert episode.meta["partial"]["files"][0]["chunks_lost"] == "unknown"
    n = episode.length
    assert 0 < n < whole.length
    np.testing.assert_array_equal(episode.vectors["joints"], whole.vectors["joints"][:n])
    assert jpegs == whole_jpegs[:n]


def test_salvage_of_a_complete_bag_changes_nothing(tmp_path: Path) -> None:
    bag = with_plan(write_chunked_ros1(tmp_path / "run.bag"))
    with RosbagSource(bag, salvage=True) as source:
        assert source.bag.salvaged == []
        episode = source.read_episode(source.episode_refs()[0])
    assert "partial" not in episode.meta


def test_a_bag_cut_inside_its_first_chunk_cannot_be_salvaged_and_says_so(tmp_path: Path) -> None:
    bag = write_chunked_ros1(tmp_path / "run.bag")
    truncated = bag.with_name("head.bag")
    truncated.write_bytes(bag.read_bytes()[:5000])  # the 4096-byte bag header and part of the first chunk
    with_plan(truncated)
    with pytest.raises(CorruptSourceError) as caught:
        RosbagSource(truncated, salvage=True)
    assert "cannot be salvaged" in caught.value.message and str(truncated) in caught.value.message
    assert "\n" not in caught.value.message


def _cut_storage(folder: Path, fraction: float, *, drop_metadata: bool) -> Path:
    """A copy of a rosbag2 folder whose storage file keeps the first ``fraction`` of its bytes (the recorder killed:
    often with no metadata.yaml written)."""
    out = folder.with_name(folder.name + "_cut")
    shutil.copytree(folder, out)
    (file,) = [p for p in out.iterdir() if p.suffix in (".db3", ".mcap")]
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * fraction)])
    if drop_metadata:
        (out / "metadata.yaml").unlink()
    return out


@pytest.mark.parametrize("drop_metadata", [False, True])
def test_a_truncated_rosbag2_sqlite_folder_salvages_the_rows_before_the_first_failing_one(
    tmp_path: Path, drop_metadata: bool
) -> None:
    folder = write_bag(tmp_path / "ros2", "db3", seconds=SECONDS)
    whole, whole_jpegs = full_episode(folder)
    truncated = with_plan(_cut_storage(folder, 0.6, drop_metadata=drop_metadata))
    with pytest.raises(CorruptSourceError) as refused:
        _open_and_read(truncated)
    assert "--salvage" in (refused.value.hint or "") or "salvage" in refused.value.message
    assert RosbagBackend().detect(truncated)
    with RosbagSource(truncated, salvage=True) as source:
        (salvage,) = source.bag.salvaged
        episode, jpegs = contents(source)
        ledger = source.info().extra["ledger"]
        assert all(t["index"] == t["read"] == t["decoded"] for t in ledger.values())
        assert any("salvaged" in w and "partial" in w for w in source.info().extra["warnings"])
    assert salvage.container == "sqlite3" and "fails" in salvage.stopped
    assert salvage.messages_recovered > 0
    partial = episode.meta["partial"]
    assert partial["complete"] is False and partial["bytes_lost"] == "unknown"
    n = episode.length
    assert 0 < n < whole.length
    np.testing.assert_array_equal(episode.vectors["joints"], whole.vectors["joints"][:n])
    np.testing.assert_array_equal(episode.timestamps_s, whole.timestamps_s[:n])
    assert jpegs == whole_jpegs[:n]


def test_a_truncated_mcap_inside_a_rosbag2_folder_is_stream_scanned(tmp_path: Path) -> None:
    folder = mcap_folder(tmp_path)
    whole, whole_jpegs = full_episode(folder)
    truncated = with_plan(_cut_storage(folder, 0.7, drop_metadata=True))
    with RosbagSource(truncated, salvage=True) as source:
        (salvage,) = source.bag.salvaged
        episode, jpegs = contents(source)
    assert salvage.container == "mcap" and episode.meta["partial"]["complete"] is False
    n = episode.length
    assert 0 < n < whole.length
    np.testing.assert_array_equal(episode.vectors["joints"], whole.vectors["joints"][:n])
    assert jpegs == whole_jpegs[:n]


def test_salvage_of_a_whole_rosbag2_sqlite_folder_changes_nothing(tmp_path: Path) -> None:
    folder = with_plan(write_bag(tmp_path / "ros2", "db3"))
    whole, whole_jpegs = full_episode(folder)
    with RosbagSource(folder, salvage=True) as source:
        assert source.bag.salvaged == []
        episode, jpegs = contents(source)
    assert "partial" not in episode.meta and jpegs == whole_jpegs
    np.testing.assert_array_equal(episode.vectors["joints"], whole.vectors["joints"])


def _open_and_read(bag: Path) -> None:
    with RosbagSource(bag) as source:
        source.read_episode(source.episode_refs()[0])


def test_convert_salvage_writes_a_partial_episode_and_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truncated = with_plan(cut(write_chunked_ros1(tmp_path / "run.bag"), 0.5))
    out = tmp_path / "out"
    with pytest.raises(CorruptSourceError):
        convert(truncated, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    report = convert(truncated, out, salvage=True)
    assert any("the episode is partial" in w for w in report.warnings)
    meta = rdstd.open(out).episode(0).meta
    assert len(rdstd.open(out).episodes) == 1
    assert meta.source_meta["partial"]["complete"] is False
    assert meta.source_meta["partial"]["files"][0]["chunks_recovered"] > 0
    code = main(["convert", str(truncated), str(tmp_path / "cli"), "--salvage", "--format", "json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert any("partial" in w for w in printed["warnings"])


def test_salvage_is_refused_for_a_format_without_it(tmp_path: Path) -> None:
    from rdstd.testing.fixtures import make_zarr_replay_buffer

    source = tmp_path / "src.zarr"
    make_zarr_replay_buffer(source, [5, 7])
    with pytest.raises(UsageError) as caught:
        convert(source, tmp_path / "out", salvage=True)
    assert "--salvage" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_the_backend_opens_salvaged(tmp_path: Path) -> None:
    truncated = with_plan(cut(write_chunked_ros1(tmp_path / "run.bag"), 0.5))
    with RosbagBackend().open_salvaged(truncated) as source:
        assert source.bag.salvaged


def test_the_kuka_sample_cut_at_60_percent_salvages_its_first_chunk(tmp_path: Path) -> None:
    data = sample("ros/ipab-slmc__kuka_honeypot_demo/test.bag").read_bytes()
    bag = tmp_path / "kuka.bag"
    bag.write_bytes(data)
    with RosbagSource(bag) as source:
        plan = json.dumps(source.info().extra["alignment_draft"])
    with RosbagSource(with_plan(bag, plan)) as source:
        whole = np.asarray(source.read_episode(source.episode_refs()[0]).vectors["joint_states"])
    truncated = with_plan(cut(bag, 0.6), plan)
    with RosbagSource(truncated, salvage=True) as source:
        episode = source.read_episode(source.episode_refs()[0])
        joints = np.asarray(episode.vectors["joint_states"])
        (salvage,) = source.bag.salvaged
    assert (salvage.chunks_recovered, salvage.chunks_stated, salvage.messages_recovered) == (1, 2, 2071)
    assert episode.length == 2071 and len(whole) == 4101
    np.testing.assert_array_equal(joints, whole[:2071])


def _index_data(bag: bytes) -> Iterator[int]:
    """Where each index data record's entries start, walking the bag's records (u32 header length, header, u32 data
    length, data) from after its magic line."""
    pos = len(b"#ROSBAG V2.0\n")
    while pos < len(bag):
        data_at = pos + 4 + int.from_bytes(bag[pos : pos + 4], "little")
        if b"op=\x04" in bag[pos + 4 : data_at]:
            yield data_at + 4
        pos = data_at + 4 + int.from_bytes(bag[data_at : data_at + 4], "little")


def _first_index_data(bag: bytes) -> int:
    return next(_index_data(bag))


def test_an_index_entry_pointing_at_another_connections_message_is_refused_not_read_as_its_own(tmp_path: Path) -> None:
    """The first chunk's first two index records (two connections) with their first entries' offsets swapped: each
    points at a real message of the other connection. Reading one connection refuses it instead of decoding the
    other's message as its own (both offsets are inside the chunk: opening cannot tell)."""
    from rosbags.rosbag1 import ReaderError

    from rdstd.formats.rosbag.ros1 import CompactRos1Reader

    bag = write_chunked_ros1(tmp_path / "run.bag")
    data = bytearray(bag.read_bytes())
    first, second = list(_index_data(bytes(data)))[:2]
    a, b = bytes(data[first + 8 : first + 12]), bytes(data[second + 8 : second + 12])
    data[first + 8 : first + 12], data[second + 8 : second + 12] = b, a
    swapped = tmp_path / "swapped.bag"
    swapped.write_bytes(data)
    reader = CompactRos1Reader(swapped)
    reader.open()
    try:
        conn = reader.connections[0]
        with pytest.raises(ReaderError, match="the index points at a message of connection"):
            list(reader.views(connections=[conn]))
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("op", "is not an index record"),
        ("ver", "says ver=2: a 2.0 bag's are all 1"),
        ("count", "has no 'count' field"),
        ("size", "an index data record of 2 entries holds 12 bytes"),
        ("offset", "points at offset 4294967040 of a chunk of"),
    ],
)
def test_a_damaged_ros1_index_record_is_damage_named_with_the_file_and_salvage_reads_every_chunk(
    tmp_path: Path, damage: str, said: str
) -> None:
    """An index data record (after a chunk) with one field damaged: refused as a damaged bag, naming the file, not
    as a bag format rdstd does not read; --salvage rebuilds the index from the chunks and reads every frame."""
    bag = write_chunked_ros1(tmp_path / "run.bag")
    whole, whole_jpegs = full_episode(bag)
    data = bytearray(bag.read_bytes())
    op = data.index(b"op=\x04")  # the first chunk's first index data record
    if damage == "op":
        data[op + 3] = 0x09  # no record has op 9
    elif damage == "ver":
        data[data.index(b"ver=", op - 60) + 4] = 2
    elif damage == "count":
        data[data.index(b"count=", op - 60)] = ord("C")
    elif damage == "size":  # one more entry than the record's data holds
        data[data.index(b"count=", op - 60) + 6] += 1
    else:  # the first entry's offset (sec, nsec, offset: u32 each) far past the chunk
        entry = _first_index_data(bytes(data))
        data[entry + 8 : entry + 12] = (0xFFFFFF00).to_bytes(4, "little")
    damaged = with_plan(tmp_path / "damaged.bag")
    damaged.write_bytes(data)
    with pytest.raises(CorruptSourceError) as caught:
        RosbagSource(damaged)
    assert caught.value.message.startswith(f"{damaged}: ") and said in caught.value.message
    assert caught.value.situation == "bag-unreadable" and "--salvage" in caught.value.hint
    assert caught.value.message.count(str(damaged)) == 1 and "\n" not in caught.value.message
    with RosbagSource(damaged, salvage=True) as source:
        episode, jpegs = contents(source)
        (line,) = [w for w in source.warnings if str(damaged) in w]
    assert episode.length == whole.length and jpegs == whole_jpegs
    np.testing.assert_array_equal(episode.vectors["joints"], whole.vectors["joints"])
    # every chunk the header states was read: not marked partial, nothing said lost
    partial = episode.meta["partial"]
    assert partial["complete"] is True and partial["lost"].startswith("nothing")
    (file,) = partial["files"]
    assert file["chunks_recovered"] == file["chunks_stated"] == 15
    assert file["chunks_lost"] == file["messages_lost"] == 0 and said in file["notes"][0]
    assert episode.meta["notes"][0].startswith("salvaged: the bag's index was rebuilt from all its chunks")
    assert "nothing lost" in line and "partial" not in line


def test_a_ros1_bag_of_a_format_rosbags_does_not_read_is_unsupported_and_named(tmp_path: Path) -> None:
    bag = write_chunked_ros1(tmp_path / "run.bag")
    old = with_plan(tmp_path / "old.bag")
    old.write_bytes(b"#ROSBAG V1.2\n" + bag.read_bytes()[len(b"#ROSBAG V2.0\n") :])
    with pytest.raises(UnsupportedVersionError) as caught:
        RosbagSource(old)
    assert caught.value.message == f"{old}: Bag version 102 is not supported."  # rosbags' words, 1.2
    assert "format 2.0" in caught.value.hint and caught.value.situation == "bag-version-unsupported"

"""Every real sample bag opens with a ledger that matches the manifest's counts, or fails with a one-line error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rdstd.errors import CorruptSourceError, RdstdError
from rdstd.formats.rosbag import RosbagSource
from rdstd.formats.rosbag.bag import Definition, RawBag
from rdstd.formats.rosbag.ledger import build_ledger
from rdstd.formats.rosbag.types import TypeResolver
from tests.conftest import sample

#: Bags that must be refused, and what the message says.
REFUSED = {
    "cruise-automation__rosbag.js/empty-file.bag": "empty (0 bytes)",
    "ros2__rosbag2/mcap_wrong_rmw_test": "Serialization format {'wrong_format'} is not supported",
}
#: Topics whose messages do not decode, by bag, and the start of the error (the rest of the bag decodes).
UNDECODABLE = {
    "ros2__rosbag2/sqlite3_talker": {"/rosout": "SerdeError: CDR message size mismatch"},
    "ros2__rosbag2/mcap_bag_with_topics_and_service_events": {
        "/test_service1/_service_event": "its message definition does not parse",
        "/test_service2/_service_event": "its message definition does not parse",
    },
}


def _manifest() -> dict[str, dict[str, object]]:
    path = sample("ros/manifest.json")
    bags: dict[str, dict[str, object]] = json.loads(path.read_text())["bags"]
    return bags


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _bags() -> list[str]:
    try:
        return sorted(_manifest())
    except pytest.skip.Exception:
        return ["(samples absent)"]


@pytest.mark.parametrize("relative", _bags())
def test_every_sample_bag_opens_with_the_manifests_counts_or_fails_in_one_line(relative: str) -> None:
    root = sample("ros")
    before = _listing(root)
    entry = _manifest()[relative]
    if relative in REFUSED:
        with pytest.raises(RdstdError) as caught:
            RosbagSource(root / relative)
        assert REFUSED[relative] in caught.value.message and "\n" not in caught.value.message
        assert str(root / relative) in caught.value.message
        return
    with RosbagSource(root / relative) as source:
        ledger = source.info().extra["ledger"]
    topics = entry.get("topics") or {}
    assert isinstance(topics, dict)
    bad = UNDECODABLE.get(relative, {})
    for topic, expected in topics.items():
        got = ledger[topic]
        assert got["index"] == expected["count"], topic
        # rosbags' AnyReader read 0 of 20 on the talker bag (manifest "read"): the ledger reads them all
        assert got["read"] == expected["count"], topic
        if topic in bad:
            assert got["decoded"] == 0 and got["failed"] == got["read"] and got["error"].startswith(bad[topic])
        else:
            assert (got["decoded"], got["failed"], got["error"]) == (expected["count"], 0, ""), topic
    assert _listing(root) == before, "reading left files behind in the samples (sqlite WAL/SHM?)"


def test_the_service_event_bag_disables_only_its_service_topics() -> None:
    with RosbagSource(sample("ros/ros2__rosbag2/mcap_bag_with_topics_and_service_events")) as source:
        info = source.info()
    ledger = info.extra["ledger"]
    assert ledger["/test_topic1"]["decoded"] == 1 and ledger["/test_topic2"]["decoded"] == 1
    disabled = [w for w in info.extra["warnings"] if "disabled" in w]
    assert len(disabled) == 2 and all("_service_event" in w for w in disabled)


def test_the_talker_bag_reads_all_20_messages_where_anyreader_yields_none() -> None:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    path = sample("ros/ros2__rosbag2/sqlite3_talker")
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        assert sum(1 for _ in reader.messages()) == 0  # the trap this backend steps around
    with RosbagSource(path) as source:
        ledger = source.info().extra["ledger"]
    assert ledger["/topic"]["read"] + ledger["/rosout"]["read"] == 20
    assert ledger["/topic"]["decoded"] == 10


def test_an_index_that_promises_more_than_the_storage_holds_is_an_error(tmp_path: Path) -> None:
    bag = tmp_path / "talker"
    shutil.copytree(sample("ros/ros2__rosbag2/sqlite3_talker"), bag)
    meta = bag / "metadata.yaml"
    text = meta.read_text()
    assert text.count("message_count: 10") == 2
    meta.write_text(text.replace("message_count: 10", "message_count: 12", 1))
    with RosbagSource(bag) as source:
        info = source.info()
        assert any("the index holds 12 messages, 10 could be read" in w for w in info.extra["warnings"])
        with pytest.raises(CorruptSourceError, match="the index holds 12 messages, 10 could be read"):
            source.read_episode(source.episode_refs()[0])


def test_ros1_compression_and_unsorted_chunks_read_the_same_messages() -> None:
    ledgers = []
    for name in ("example.bag", "example-bz2.bag", "example-lz4.bag"):
        with RosbagSource(sample(f"ros/cruise-automation__rosbag.js/{name}")) as source:
            ledgers.append(
                {t: (v["read"], v["first_ns"], v["last_ns"]) for t, v in source.info().extra["ledger"].items()}
            )
    assert ledgers[0] == ledgers[1] == ledgers[2]
    with RosbagSource(sample("ros/cruise-automation__rosbag.js/example-unsorted-chunks.bag")) as source:
        times = [t for t, _ in source.bag.messages("foo")]
    assert times == sorted(times) and len(times) == 3


def test_a_truncated_bag_fails_with_one_line_naming_it(tmp_path: Path) -> None:
    data = sample("ros/ipab-slmc__kuka_honeypot_demo/test.bag").read_bytes()
    cut = tmp_path / "cut.bag"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(CorruptSourceError) as caught:
        RosbagSource(cut)
    assert str(cut) in caught.value.message and "\n" not in caught.value.message


def test_a_user_types_folder_decodes_a_topic_the_bag_has_no_definition_for(tmp_path: Path) -> None:
    raw = RawBag(sample("ros/ros2__rosbag2/sqlite3_cdr_test"))
    try:
        topic = raw.topics["/test_topic"]
        folder = tmp_path / "types" / "test_msgs" / "msg"
        folder.mkdir(parents=True)
        (folder / "BasicTypes.msg").write_text(topic.definition.text)
        for entry in raw.topics.values():  # as a pre-Iron bag: no definitions inside
            entry.definition = Definition("none", "")
        without, _ = build_ledger(raw, TypeResolver(True, None))
        with_types, _ = build_ledger(raw, TypeResolver(True, None, tmp_path / "types"))
    finally:
        raw.close()
    assert without["/test_topic"].decoded == 0
    assert "no definition of test_msgs/msg/BasicTypes" in without["/test_topic"].error
    assert with_types["/test_topic"].decoded == 3 and with_types["/test_topic"].definition == "user"
    assert with_types["/array_topic"].decoded == 0, "test_msgs/Arrays is in neither the bag nor the folder"
    assert "no definition of test_msgs/msg/Arrays" in with_types["/array_topic"].error


def test_a_broken_user_type_file_is_a_finding_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "msg").mkdir(parents=True)
    (tmp_path / "pkg" / "msg" / "Bad.msg").write_text("float64[ broken\n")
    resolver = TypeResolver(True, None, tmp_path)
    assert len(resolver.findings) == 1 and "Bad.msg: does not parse" in resolver.findings[0]


def test_a_ros1_bag_with_time_overlapping_chunks_is_read_topic_by_topic_with_the_same_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    string = ts.types["std_msgs/msg/String"]
    path = tmp_path / "topic_by_topic.bag"
    writer = Writer(path)
    writer.chunk_threshold = 256  # many small chunks
    writer.open()
    for topic in ("/a", "/b"):  # written topic after topic, as merged or filtered bags are: chunks overlap in time
        conn = writer.add_connection(topic, "std_msgs/msg/String", typestore=ts)
        for k in range(200):
            writer.write(conn, 10**9 + k * 10**6, ts.serialize_ros1(string(data=f"{topic} {k}"), "std_msgs/msg/String"))
    writer.close()
    raw = RawBag(path)
    try:
        assert raw.chunks_overlap
        by_topic, _ = build_ledger(raw, TypeResolver(False, None))
        monkeypatch.setattr(RawBag, "chunks_overlap", property(lambda self: False))
        one_pass, _ = build_ledger(raw, TypeResolver(False, None))
    finally:
        raw.close()
    for ledger in (by_topic, one_pass):
        assert {t: (v.index, v.read, v.decoded) for t, v in ledger.items()} == {
            "/a": (200, 200, 200),
            "/b": (200, 200, 200),
        }
    assert [v.as_dict() for v in by_topic.values()] == [v.as_dict() for v in one_pass.values()]

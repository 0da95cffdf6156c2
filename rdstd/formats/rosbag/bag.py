"""The three bag containers behind one raw-message interface: ROS 1 ``.bag`` (one file or a split set), a rosbag2
folder (``metadata.yaml`` + sqlite3 or MCAP storage files, split or not) and a lone ``.db3``/``.mcap`` file.

rosbags does the byte-level reading. What this module adds:

- rosbag2 folders are read **storage file by storage file**, matching connections by topic and type only.
  rosbags' ``DirectoryReader.messages`` also matches on the QoS profile, and when ``metadata.yaml`` and the storage
  disagree (rosbag2's own 2020 ``talker`` bag: ``sec: 0`` against ``sec: 2147483647``) it yields nothing and no
  error. The message counts the metadata states are kept as the *index* for the ledger, so any such loss shows.
- ROS 1 bags are read **topic by topic**: time-merged reading of time-overlapping chunks switches chunks once per
  message (measured 28× slower); per-topic reads then sort by time.
- Every container failure becomes a one-line :class:`~rdstd.errors.SourceError` naming the file.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdstd.errors import (
    CorruptSourceError,
    LfsPointerError,
    MissingDependencyError,
    SourceError,
    UnsupportedVersionError,
    UsageError,
)
from rdstd.lfs import raise_if_pointer

#: A message's serialized bytes: ``bytes``, or a view into a decompressed ROS 1 chunk (no copy).
Raw = bytes | memoryview
ROS1_SUFFIX = ".bag"
ROS2_SUFFIXES = (".db3", ".mcap")


@dataclass
class Definition:
    """A message definition as the bag carries it: ``msg`` or ``idl`` text, or ``none`` (the bag has none)."""

    format: str
    text: str


@dataclass
class TopicIndex:
    """What the container says about one topic before any message is read."""

    topic: str
    msgtype: str
    #: Messages the bag's index (ROS 1 index records, rosbag2 metadata.yaml, MCAP statistics) says it holds;
    #: None when the container states no count.
    index_count: int | None
    connections: int
    definition: Definition
    digest: str = ""
    #: The rosbags connections carrying the topic (one per callerid in ROS 1, one per storage file in rosbag2).
    handles: list[Any] = field(default_factory=list)


def _import_rosbags() -> Any:
    try:
        import rosbags.rosbag1
        import rosbags.rosbag2
    except ImportError as exc:
        raise MissingDependencyError("rosbags", "ros", purpose="read ROS bags") from exc
    return rosbags


def bag_files(path: Path, *, salvage: bool = False) -> tuple[str, list[Path]]:
    """The container kind (``ros1``, ``ros2``, ``ros2-file``) and its files, or a SourceError saying why not.

    A folder of rosbag2 storage files without ``metadata.yaml`` (the recorder was killed before writing it) is a
    rosbag2 folder only with ``salvage``.
    """
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return "ros2", [path]
        bags = sorted(p for p in path.iterdir() if p.suffix == ROS1_SUFFIX and p.is_file())
        if bags:
            return "ros1", bags
        if storage_files(path):
            if salvage:
                return "ros2", [path]
            raise CorruptSourceError(
                f"{path}: rosbag2 storage files without a metadata.yaml (the recording was not closed?)",
                hint="`rdstd convert --salvage` reads the storage files themselves and marks the episode partial",
                situation="rosbag2-metadata-missing",
            )
        raise SourceError(
            f"{path}: neither a rosbag2 folder (no metadata.yaml) nor a folder of ROS 1 .bag files",
            situation="not-a-bag",
        )
    if path.suffix == ROS1_SUFFIX:
        return "ros1", [path]
    if path.suffix in ROS2_SUFFIXES:
        return "ros2-file", [path]
    raise SourceError(f"{path}: not a .bag, .db3 or .mcap file, nor a rosbag2 folder", situation="not-a-bag")


def storage_files(folder: Path) -> list[Path]:
    """The rosbag2 storage files (``.db3``, ``.mcap``) in ``folder``, by name."""
    return sorted(p for p in folder.iterdir() if p.suffix in ROS2_SUFFIXES and p.is_file())


class RawBag:
    """An opened bag: per-topic index facts, and each topic's raw messages in receive-time order."""

    def __init__(self, path: Path, *, salvage: bool = False) -> None:
        self.path = path
        self.kind, self.files = bag_files(path, salvage=salvage)
        #: With ``salvage``, a file rosbags refuses (truncated: index or summary lost) is read by scanning its data
        #: (:mod:`.salvage`; a rosbag2 folder storage file by storage file, sqlite3 files row by row until the first
        #: failing row); what each such file recovered and lost is in ``salvaged``.
        self.salvage = salvage
        self.salvaged: list[Any] = []
        self.is_ros2 = self.kind != "ros1"
        self._stack = ExitStack()
        self.closed = False
        self.topics: dict[str, TopicIndex] = {}
        #: Facts about the container (storage, compression, distro) for ``rdstd info``.
        self.facts: dict[str, Any] = {"container": self.kind, "files": [str(f) for f in self.files]}
        for file in self.files if self.kind != "ros2" else []:
            if file.stat().st_size == 0:
                raise CorruptSourceError(
                    f"{file}: the bag file is empty (0 bytes)",
                    hint="check the copy that made it",
                    situation="bag-empty",
                )
            raise_if_pointer(file, file.parent)
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise

    # -- opening ---------------------------------------------------------------------------------------------
    def _open(self) -> None:
        rosbags = _import_rosbags()
        from rdstd.formats.rosbag.ros1 import CompactRos1Reader

        errors = (rosbags.rosbag1.ReaderError, rosbags.rosbag2.ReaderError, KeyError, ValueError, AssertionError)
        if self.kind == "ros1":
            self.readers: list[Any] = []
            for file in self.files:
                reader = self._open_or_salvage(CompactRos1Reader, file, errors)
                self.readers.append(reader)
                self.facts.setdefault("ros1_versions", []).append("2.0")
            self._index_ros1()
        elif self.kind == "ros2" and self.salvage:
            self._open_ros2_salvaged(errors)
        elif self.kind == "ros2":
            reader = rosbags.rosbag2.Reader(self.path)
            self._enter(reader, self.path, errors)
            directory = reader.storage
            self.readers = [directory]
            self.storages: list[Any] = list(directory.storages)
            self.compression = directory.metadata.compression_mode
            self.facts.update(
                storage=type(self.storages[0]).__name__ if self.storages else "none",
                storage_files=len(self.storages),
                compression_mode=directory.metadata.compression_mode or "none",
                compression_format=directory.metadata.compression_format or "none",
                ros_distro=directory.metadata.ros_distro or "unknown",
            )
            self._index_ros2(directory.connections)
        else:
            storage = self._open_storage(self.path, errors)
            self.storages = [storage]
            self.compression = None
            self.facts.update(storage=type(storage).__name__, storage_files=1)
            self._index_ros2([])

    def _open_storage(self, file: Path, errors: tuple[type[BaseException], ...]) -> Any:
        """One rosbag2 storage file opened (salvaged when it needs it and ``salvage`` is on)."""
        rosbags = _import_rosbags()
        if file.suffix == ".db3" and self.salvage:  # a damaged row can lie anywhere: always read row by row
            from rdstd.formats.rosbag.salvage import SalvageSqliteReader

            sqlite = SalvageSqliteReader(file)
            self._enter(sqlite, file, errors)
            if sqlite.lost_rows:
                self.salvaged.append(sqlite.salvage)
            return sqlite
        return self._open_or_salvage(rosbags.rosbag2.Reader.STORAGE_PLUGINS[file.suffix], file, errors)

    def _open_ros2_salvaged(self, errors: tuple[type[BaseException], ...]) -> None:
        """A rosbag2 folder read storage file by storage file, each salvaged as it needs (see :mod:`.salvage`);
        ``metadata.yaml`` only for the compression mode and the distro, and not needed."""
        import yaml

        info: dict[str, Any] = {}
        meta = self.path / "metadata.yaml"
        if meta.is_file():
            try:
                loaded = yaml.safe_load(meta.read_text(encoding="utf-8"))
                info = dict(loaded.get("rosbag2_bagfile_information") or {}) if isinstance(loaded, dict) else {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                self.facts["metadata_yaml"] = f"unreadable, not used ({_one_line(exc)})"
        else:
            self.facts["metadata_yaml"] = "missing (the recording was not closed?)"
        mode = str(info.get("compression_mode") or "").lower() or None
        if mode == "file" or any(p.suffix == ".zstd" for p in self.path.iterdir()):
            raise UsageError(
                f"{self.path}: --salvage cannot read file-compressed rosbag2 storage (.zstd files)",
                hint="decompress the storage files first (zstd -d), then salvage the folder",
                situation="salvage-compressed-storage",
            )
        files = storage_files(self.path)
        if not files:
            raise CorruptSourceError(
                f"{self.path}: no .db3 or .mcap storage file to salvage",
                hint="give the rosbag2 folder that holds the storage files (or one .mcap file)",
                situation="bag-storage-missing",
            )
        self.readers = self.storages = [self._open_storage(file, errors) for file in files]
        self.compression = "message" if mode == "message" else None
        self.facts.update(
            storage="salvaged: " + ", ".join(sorted({type(s).__name__ for s in self.storages})),
            storage_files=len(self.storages),
            compression_mode=mode or "none",
            ros_distro=str(info.get("ros_distro") or "unknown"),
        )
        self._index_ros2([])

    def _open_or_salvage(self, opener: Any, file: Path, errors: tuple[type[BaseException], ...]) -> Any:
        """``opener(file)`` opened; with ``salvage``, a file it refuses is opened by the salvaging reader instead."""
        try:
            reader = opener(file)
            self._enter(reader, file, errors)
            return reader
        except CorruptSourceError as refused:
            if not self.salvage or isinstance(refused, LfsPointerError):
                raise
            first = refused
        from rdstd.formats.rosbag.salvage import SalvageMcapReader, SalvageRos1Reader

        reader = (SalvageRos1Reader if file.suffix == ROS1_SUFFIX else SalvageMcapReader)(file)
        try:
            self._enter(reader, file, errors)
        except CorruptSourceError as exc:
            raise CorruptSourceError(
                f"{file}: cannot be salvaged: {exc.message} (opening it normally: {first.message})",
                hint="nothing readable was found before the damage",
                situation="bag-unsalvageable",
            ) from exc
        if not reader.salvage.messages_recovered:  # the reader is closed with the bag
            raise CorruptSourceError(
                f"{file}: cannot be salvaged: no complete chunk or message before the damage "
                f"({reader.salvage.stopped}); opening it normally: {first.message}",
                hint="the copy holds nothing readable; re-copy the bag",
                situation="bag-unsalvageable",
            )
        reader.salvage.notes.append(f"opening it normally failed: {first.message}")
        self.salvaged.append(reader.salvage)
        return reader

    def _enter(self, reader: Any, file: Path, errors: tuple[type[BaseException], ...]) -> None:
        try:
            reader.open()
        except errors as exc:
            if file.is_file():
                raise_if_pointer(file, file.parent)
            hint = _hint(exc, file)
            if not self.salvage and "damaged" in hint:
                hint += "; if it is truncated or its index is damaged, `rdstd convert --salvage` reads what is there"
            raise CorruptSourceError(f"{file}: {_one_line(exc)}", hint=hint, situation="bag-unreadable") from exc
        except OSError as exc:
            raise CorruptSourceError(f"{file}: cannot read ({exc})", situation="bag-unreadable") from exc
        except Exception as exc:  # rosbags' storage layers (apsw, zstd, lz4) raise their own types: one boundary
            raise CorruptSourceError(
                f"{file}: {type(exc).__name__}: {_one_line(exc)}", situation="bag-unreadable"
            ) from exc
        self._stack.callback(reader.close)

    def _index_ros1(self) -> None:
        for reader in self.readers:
            counts = {c.id: 0 for c in reader.connections}
            for chunk in reader.chunk_infos:
                for conn_id, n in chunk.connection_counts.items():
                    counts[conn_id] = counts.get(conn_id, 0) + n
            for conn in reader.connections:
                fmt = "msg" if conn.msgdef.data else "none"
                entry = self.topics.get(conn.topic)
                if entry is None:
                    entry = self.topics[conn.topic] = TopicIndex(
                        conn.topic, conn.msgtype, 0, 0, Definition(fmt, conn.msgdef.data), conn.digest
                    )
                if conn.msgtype != entry.msgtype:
                    entry.msgtype = f"{entry.msgtype}|{conn.msgtype}"
                entry.index_count = (entry.index_count or 0) + counts.get(conn.id, 0)
                entry.connections += 1
                entry.handles.append(conn)

    def _index_ros2(self, declared: list[Any]) -> None:
        by_topic: dict[str, TopicIndex] = {}
        for conn in declared:  # metadata.yaml: the index counts
            by_topic[conn.topic] = TopicIndex(
                conn.topic, conn.msgtype, int(conn.msgcount), 0, Definition("none", ""), conn.digest
            )
        for storage in self.storages:
            for conn in storage.connections:
                entry = by_topic.get(conn.topic)
                if entry is None:
                    count = int(conn.msgcount) if not declared else None
                    entry = by_topic[conn.topic] = TopicIndex(
                        conn.topic, conn.msgtype, count, 0, Definition("none", ""), conn.digest
                    )
                    if declared:
                        entry.index_count = 0  # present in storage, absent from metadata.yaml: the index says 0
                elif not declared:
                    entry.index_count = (entry.index_count or 0) + int(conn.msgcount)
                fmt = conn.msgdef.format.name.lower()
                if fmt != "none" and entry.definition.format == "none":
                    entry.definition = Definition(fmt, conn.msgdef.data)
                entry.digest = entry.digest or conn.digest
                entry.connections += 1
                entry.handles.append(conn)
        self.topics = by_topic

    # -- reading ---------------------------------------------------------------------------------------------
    def messages(self, topic: str, start: int | None = None, stop: int | None = None) -> Iterator[tuple[int, Raw]]:
        """``(receive time ns, raw bytes)`` of every message on ``topic`` (received in ``[start, stop)`` when
        given), streamed.

        Each file's messages come in time order from rosbags and are merged across files (split bags) by time;
        consumers that need strict order still sort (a damaged file could yield out of order).
        """
        entry = self.topics[topic]
        if not entry.handles:
            return
        try:
            streams = self._sources(entry, start, stop)
            if streams:
                yield from heapq.merge(*streams, key=lambda m: m[0]) if len(streams) > 1 else streams[0]
        except OSError as exc:
            raise CorruptSourceError(f"{self.path}: cannot read {topic} ({exc})", situation="bag-unreadable") from exc
        except Exception as exc:  # rosbags/apsw/lz4/zstd raise their own types mid-stream: one boundary
            raise CorruptSourceError(
                f"{self.path}: reading {topic} failed: {type(exc).__name__}: {_one_line(exc)}",
                hint="the bag is damaged or truncated",
                situation="bag-unreadable",
            ) from exc

    @property
    def chunks_overlap(self) -> bool:
        """Whether a ROS 1 file's chunks overlap in time (then reading all topics in time order thrashes chunks)."""
        if self.kind != "ros1":
            return False
        for reader in self.readers:
            reindex = getattr(reader, "reindex", None)
            if reindex is not None:
                reindex()  # its chunk records, if the single pass dropped them (CompactRos1Reader.release_index)
            spans = sorted((c.start_time, c.end_time) for c in reader.chunk_infos)
            if any(nxt[0] < prev[1] for prev, nxt in itertools.pairwise(spans)):
                return True
        return False

    def all_messages(self) -> Iterator[tuple[str, int, Raw]]:
        """``(topic, receive ns, raw)`` of every message in one pass over the files, merged by time."""
        try:
            streams: list[Iterator[tuple[str, int, Raw]]]
            if self.kind == "ros1":
                streams = [
                    ((c.topic, t, raw) for c, t, raw in r.views(connections=r.connections))
                    for r in self.readers
                    if r.connections
                ]
            else:
                streams = [self._storage_messages(storage) for storage in self.storages if storage.connections]
            yield from heapq.merge(*streams, key=lambda m: m[1]) if len(streams) != 1 else streams[0]
        except OSError as exc:
            raise CorruptSourceError(f"{self.path}: cannot read ({exc})", situation="bag-unreadable") from exc
        except Exception as exc:  # rosbags/apsw/lz4/zstd raise their own types mid-stream: one boundary
            raise CorruptSourceError(
                f"{self.path}: reading failed: {type(exc).__name__}: {_one_line(exc)}",
                hint="the bag is damaged or truncated",
                situation="bag-unreadable",
            ) from exc

    def _storage_messages(self, storage: Any) -> Iterator[tuple[str, int, Raw]]:
        decompress = _zstd_decompress() if self.compression == "message" else None
        known = {c.topic for c in storage.connections if c.topic in self.topics}
        conns = [c for c in storage.connections if c.topic in known]
        for conn, t, raw in storage.messages(conns, None, None):
            yield conn.topic, t, (decompress(raw) if decompress else bytes(raw))

    def _sources(self, entry: TopicIndex, start: int | None, stop: int | None) -> list[Iterator[tuple[int, Raw]]]:
        if self.kind == "ros1":
            return [
                ((t, raw) for _, t, raw in r.views(connections=conns, start=start, stop=stop))
                for r in self.readers
                if (conns := [c for c in entry.handles if c.owner is r])
            ]
        return [self._ros2_messages(entry, storage, start, stop) for storage in self.storages if _owns(storage, entry)]

    def _ros2_messages(
        self, entry: TopicIndex, storage: Any, start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[int, Raw]]:
        """One storage file's messages of the topic, read directly (see the module docs on QoS matching)."""
        decompress = _zstd_decompress() if self.compression == "message" else None
        conns = [c for c in entry.handles if c in storage.connections]
        for _, t, raw in storage.messages(conns, start, stop):
            yield t, (decompress(raw) if decompress else bytes(raw))

    def release_index(self) -> None:
        """Drop the ROS 1 message index after the single pass (read again if messages are asked for later);
        salvaged files keep theirs (rebuilding it means scanning the file again)."""
        if self.kind == "ros1" and not self.salvage:
            for reader in self.readers:
                reader.release_index()

    def close(self) -> None:
        """Close every file."""
        self.closed = True
        self._stack.close()


def _owns(storage: Any, entry: TopicIndex) -> bool:
    return any(c in storage.connections for c in entry.handles)


def _zstd_decompress() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from backports import zstd  # type: ignore[import-not-found,no-redef,unused-ignore]
    return zstd.decompress


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _hint(exc: BaseException, file: Path) -> str:
    """What to do about a bag its reader refused to open; a bag format rosbags does not read raises
    :class:`UnsupportedVersionError` instead (a record's own version field that is off is damage, not a format)."""
    text = str(exc)
    if "Serialization format" in text:
        return "rdstd reads CDR-serialized rosbag2 bags only"
    if found := re.match(r"(Bag|Rosbag2) version .* not supported", text):
        raise UnsupportedVersionError(
            f"{file}: {_one_line(exc)}",
            hint="rdstd reads ROS 1 bags of format 2.0 (ROS's `rosbag filter OLD.bag NEW.bag True` rewrites one)"
            if found[1] == "Bag"
            else "rdstd reads the rosbag2 metadata versions its rosbags dependency reads: a newer rosbags may read it",
            situation="bag-version-unsupported",
        ) from exc
    return "the bag is damaged, truncated or not a bag; check the copy"

"""Salvage: the readable prefix of a truncated ROS 1 bag, MCAP file or rosbag2 folder (``rdstd convert BAG OUT
--salvage``).

A bag cut short (a recorder killed, a copy interrupted) loses its index: ROS 1 keeps the connection and chunk-info
records at the end of the file (``index_pos`` in the bag header), MCAP its summary and footer. rosbags then refuses
the file. The readers here rebuild what the index would have said from the data itself:

- :class:`SalvageRos1Reader` scans the records from the start (``rosbag reindex``): every chunk whose bytes are all
  there and decompress is kept, its connection and message records indexed; the scan stops at the first record
  that is cut or damaged.
- :class:`SalvageMcapReader` stream-scans the data section without the summary, up to the last complete record.
- :class:`SalvageSqliteReader` reads a rosbag2 ``.db3``'s rows until the first that fails.

In a rosbag2 folder each storage file is salvaged on its own (``metadata.yaml``, often missing when the recorder
was killed, is not needed).

Both keep rosbags' reading interface (``connections``, ``messages()``), so the rest of the backend is unchanged.
:class:`Salvage` is what was recovered and what was lost, for the episode's ``source_meta["partial"]``.
"""

from __future__ import annotations

import os
import re
import struct
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag1,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)
from rosbags.rosbag1.reader import (
    Chunk,
    ChunkInfo,
    Header,
    IndexData,
    Reader,
    ReaderError,
    RecordType,
    decompressors,
    normalize,
    read_uint32,
)
from rosbags.rosbag2 import ReaderError as McapError
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.typesys.msg import normalize_msgtype

from rdstd.formats.rosbag.ros1 import CompactRos1Reader
from rdstd.formats.sniff import MCAP_MAGIC

#: MCAP opcodes that end the data section (data end, footer) or begin the summary (schema/channel repeats are
#: fine in the data section, so only these stop the scan).
_MCAP_DATA_END = 0x0F
_MCAP_FOOTER = 0x02
_MCAP_CHUNK = 0x06


#: Why a ROS 1 scan that met no damage stopped: the header's index position, or the index's first record.
_ROS1_END, _ROS1_INDEX = "end of the data", "reached the index"


@dataclass
class Salvage:
    """What a salvaging reader recovered from one file, and what it could not."""

    file: str
    container: str
    file_bytes: int
    #: Bytes from the start of the file that were read as complete records.
    bytes_recovered: int
    chunks_recovered: int
    #: Chunks the file's header says it holds (ROS 1 bags whose header was finalised), else None: unknown.
    chunks_stated: int | None = None
    messages_recovered: int = 0
    #: Why the scan stopped (the first record that was cut or damaged, or the end of the data).
    stopped: str = ""
    first_ns: int | None = None
    last_ns: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every message is known to be there: a ROS 1 bag whose scan read every chunk its finalised
        header states and ended at the index (a bag refused for a damaged index, not a cut one)."""
        return (
            self.container == "ros1"
            and self.chunks_stated is not None
            and self.chunks_recovered == self.chunks_stated
            and self.stopped in (_ROS1_END, _ROS1_INDEX)
        )

    @property
    def bytes_lost(self) -> int:
        """Bytes after the recovered prefix (index, summary, and any cut or damaged records)."""
        return self.file_bytes - self.bytes_recovered

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the lost bytes and what is known about lost messages."""
        data = asdict(self)
        data["bytes_lost"] = "unknown" if self.container == "sqlite3" else self.bytes_lost
        data["complete"] = self.complete
        if self.complete:
            data["chunks_lost"] = data["messages_lost"] = 0
        elif self.chunks_stated is not None:
            data["chunks_lost"] = max(self.chunks_stated - self.chunks_recovered, 0)
            data["messages_lost"] = "unknown (the per-chunk counts were in the lost index)"
        else:
            data["chunks_lost"] = "unknown"
            data["messages_lost"] = "unknown (the counts were in the lost index or summary)"
        return data

    def line(self) -> str:
        """One line for the convert report's warnings."""
        if self.container == "sqlite3":
            return (
                f"{self.file}: salvaged {self.messages_recovered} messages (rows read until the first that fails: "
                f"{self.stopped}); how many were lost is unknown: the episode is partial"
            )
        if self.complete:
            return (
                f"{self.file}: its index could not be read and was rebuilt from its chunks: {self.messages_recovered} "
                f"messages in all {self.chunks_recovered} chunks its header states, nothing lost"
            )
        chunks = (
            f"{self.chunks_recovered} of {self.chunks_stated} chunks"
            if self.chunks_stated is not None
            else f"{self.chunks_recovered} chunks (how many the file had is unknown)"
        )
        return (
            f"{self.file}: salvaged {self.messages_recovered} messages in {chunks}, "
            f"{self.bytes_recovered} of {self.file_bytes} bytes; {self.bytes_lost} bytes lost ({self.stopped}): "
            "the episode is partial"
        )


class SalvageRos1Reader(CompactRos1Reader):
    """A ROS 1 (v2.0) bag reader that rebuilds the index by scanning chunks from the start (see the module docs)."""

    salvage: Salvage

    def open(self) -> None:
        """Open the bag and index every complete chunk; never fails past a readable bag header."""
        if self.bio is not None:
            raise ReaderError("Reader is already open.")
        try:
            self.bio = self.path.open("rb")
        except OSError as err:
            raise ReaderError(f"Could not open file {str(self.path)!r}: {err.strerror}.") from err
        self._start_index()
        try:
            self._scan()
            self._finish_index()
        except BaseException:
            self.bio.close()
            self.bio = None
            raise

    def _scan(self) -> None:
        bio = self.bio
        assert bio is not None
        size = os.fstat(bio.fileno()).st_size
        magic = bio.readline().decode(errors="replace")
        if not re.match(r"#ROSBAG V2\.0\n", magic):
            raise ReaderError("not a ROS 1 bag of format 2.0 (the file magic is not #ROSBAG V2.0)")
        header = Header.read(bio, RecordType.BAGHEADER)
        stated = header.get_uint32("chunk_count") if "chunk_count" in header else None
        index_pos = header.get_uint64("index_pos") if "index_pos" in header else 0
        bio.seek(read_uint32(bio), os.SEEK_CUR)
        salvage = self.salvage = Salvage(
            str(self.path), "ros1", size, bio.tell(), 0, stated if index_pos else None, stopped=_ROS1_END
        )
        connections: dict[int, Connection] = {}
        while True:
            pos = bio.tell()
            if pos >= size or (index_pos and pos >= index_pos):
                break
            try:
                op, found = self._record(bio, pos, size, connections)
            except (ReaderError, struct.error, KeyError, ValueError, OSError, EOFError, RuntimeError) as exc:
                salvage.stopped = f"record at byte {pos} cut or damaged: {' '.join(str(exc).split())[:120]}"
                break
            if op in (RecordType.CONNECTION, RecordType.CHUNK_INFO):
                salvage.stopped = _ROS1_INDEX
                break
            salvage.bytes_recovered = bio.tell()
            if found is not None:
                self.chunk_infos.append(found)
        self.connections = [c for c in connections.values() if c.id in self._times]
        salvage.chunks_recovered = len(self.chunk_infos)
        salvage.messages_recovered = sum(len(v) for v in self._times.values())
        if self.chunk_infos:
            salvage.first_ns = min(c.start_time for c in self.chunk_infos)
            salvage.last_ns = max(c.end_time for c in self.chunk_infos) - 1

    def _record(
        self,
        bio: BinaryIO,
        pos: int,
        size: int,
        connections: dict[int, Connection],
    ) -> tuple[int, ChunkInfo | None]:
        """Read the record at ``pos``: a complete chunk is indexed (its ChunkInfo returned); index data skipped."""
        header = Header.read(bio)
        op = header.get_uint8("op")
        datasize = read_uint32(bio)
        datapos = bio.tell()
        if datapos + datasize > size:
            raise ReaderError(f"it needs {datasize} bytes, {size - datapos} remain")
        if op != RecordType.CHUNK:
            bio.seek(datasize, os.SEEK_CUR)
            return op, None
        compression = header.get_string("compression")
        if compression not in decompressors:
            raise ReaderError(f"compression {compression!r} is not supported")
        decompress = decompressors[compression]
        raw = decompress(bio.read(datasize))
        found: dict[int, list[IndexData]] = defaultdict(list)
        chunk = BytesIO(raw)
        while chunk.tell() < len(raw):
            offset = chunk.tell()
            inner = Header.read(chunk)
            kind = inner.get_uint8("op")
            if kind == RecordType.CONNECTION:
                conn_id = inner.get_uint32("conn")
                data = Header.read(chunk)
                if conn_id not in connections:
                    connections[conn_id] = _connection(conn_id, inner, data, self)
                continue
            length = read_uint32(chunk)
            if kind == RecordType.MSGDATA:
                conn_id = inner.get_uint32("conn")
                if conn_id not in connections:
                    raise ReaderError(f"a message of connection {conn_id} comes before its connection record")
                found[conn_id].append(IndexData(inner.get_time("time"), pos, offset))
            chunk.seek(length, os.SEEK_CUR)
        if chunk.tell() != len(raw):
            raise ReaderError("the chunk's records overrun its data")
        self.chunks[pos] = Chunk(datasize, datapos, decompress)
        for conn_id, entries in found.items():
            self._index(conn_id, entries)
        times = [e.time for entries in found.values() for e in entries]
        counts = {conn_id: len(entries) for conn_id, entries in found.items()}
        start, end = (min(times), max(times) + 1) if times else (2**63 - 1, 0)
        return op, ChunkInfo(pos, start, end, counts)


def _connection(conn_id: int, header: Header, data: Header, owner: Reader) -> Connection:
    callerid = data.get_string("callerid") if "callerid" in data else None
    latching_raw = data.get_string("latching") if "latching" in data else None
    return Connection(
        conn_id,
        normalize(header.get_string("topic")),
        normalize_msgtype(data.get_string("type")),
        MessageDefinition(MessageDefinitionFormat.MSG, data.get_string("message_definition")),
        data.get_string("md5sum"),
        0,
        ConnectionExtRosbag1(callerid, int(latching_raw) if latching_raw else None),
        owner,
    )


class SalvageMcapReader(McapReader):
    """An MCAP reader that stream-scans the data section up to the last complete record, without the summary."""

    salvage: Salvage

    def _open(self) -> None:
        bio = self.bio
        assert bio is not None
        size = os.fstat(bio.fileno()).st_size
        if bio.read(8) != MCAP_MAGIC:
            raise McapError("File magic is invalid.")
        op = bio.read(1)
        if op != b"\x01":
            raise McapError("Unexpected record.")
        (length,) = struct.unpack("<Q", _exact(bio, 8))
        profile = _exact(bio, length)
        if profile[4 : 4 + struct.unpack_from("<I", profile)[0]] != b"ros2":
            raise McapError("Profile is not ros2.")
        self.data_start = bio.tell()
        salvage = self.salvage = Salvage(str(self.path), "mcap", size, self.data_start, 0, stopped="end of the data")
        pos = self.data_start
        chunks = 0
        while pos < size:
            head = bio.read(9)
            if len(head) < 9:
                salvage.stopped = f"record at byte {pos} cut (its length is missing)"
                break
            op_, length = head[0], struct.unpack_from("<Q", head, 1)[0]
            if op_ in (_MCAP_DATA_END, _MCAP_FOOTER):
                salvage.stopped = "reached the end of the data section"
                break
            if pos + 9 + length > size:
                salvage.stopped = f"record at byte {pos} cut: it needs {length} bytes, {size - pos - 9} remain"
                break
            bio.seek(length, os.SEEK_CUR)
            pos = bio.tell()
            chunks += op_ == _MCAP_CHUNK
            salvage.bytes_recovered = pos
        self.data_end = salvage.bytes_recovered
        self.meta_scan()  # a damaged chunk (crc, zstd) raises: salvage stops at cuts, it does not repair damage
        stats = self.statistics
        assert stats is not None
        self.connections = [c._replace(msgcount=stats.channel_message_counts.get(c.id, 0)) for c in self.connections]
        salvage.chunks_recovered = chunks
        salvage.messages_recovered = stats.message_count
        if stats.message_count:
            salvage.first_ns, salvage.last_ns = stats.start_time, stats.end_time
        self.metadata = self.metadata._replace(
            duration=stats.end_time - stats.start_time + 1 if stats.message_count else 0,
            start_time=stats.start_time if stats.message_count else 2**63 - 1,
            end_time=stats.end_time + 1 if stats.message_count else 0,
            message_count=stats.message_count,
        )


def _exact(bio: BinaryIO, size: int) -> bytes:
    data = bio.read(size)
    if len(data) != size:
        raise McapError("the file ends inside its header record")
    return data


#: Rows fetched per query when a salvaged sqlite3 topic is read whole.
_SQLITE_BATCH = 2048


class SalvageSqliteReader:
    """A rosbag2 sqlite3 storage file read row by row until the first error (a truncated or damaged ``.db3``).

    The file is opened read-only and immutable with ``writable_schema`` on, which makes SQLite take the pages the
    file holds instead of refusing a file shorter than its header says (nothing is ever written). The ``topics``
    and ``message_definitions`` tables are read whole; ``messages`` is read in ``id`` (insertion) order until a row
    fails, and each topic's row ids and times are kept so windows are read by ``id`` range. The interface is
    rosbags' storage readers' (``connections``, ``messages()``).
    """

    def __init__(self, path: Any) -> None:
        self.path = path
        self.connections: list[Connection] = []
        self.salvage = Salvage(str(path), "sqlite3", 0, 0, 0, stopped="end of the messages table")
        self._db: Any = None
        self._ids: dict[int, Any] = {}
        self._times: dict[int, Any] = {}

    def open(self) -> None:
        """Read the tables up to the first error (see the class docs)."""
        import apsw
        import numpy as np

        size = Path(self.path).stat().st_size
        self.salvage.file_bytes = self.salvage.bytes_recovered = size
        self.salvage.notes.append(
            "sqlite3: rows read in id order until the first that fails; which bytes were lost is unknown "
            "(a damaged page can be anywhere in the file)"
        )
        try:
            db = self._db = apsw.Connection(
                f"file:{self.path}?immutable=1", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
            )
            db.execute("PRAGMA writable_schema=ON")
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"topics", "messages"} <= tables:
                raise McapError(f"not a rosbag2 sqlite3 file (tables: {', '.join(sorted(tables)) or 'none'})")
            definitions = self._definitions(db) if "message_definitions" in tables else {}
            columns = [row[1] for row in db.execute("PRAGMA table_info(topics)")]
            topics = [dict(zip(columns, row, strict=True)) for row in db.execute("SELECT * FROM topics")]
        except apsw.Error as exc:
            raise McapError(f"its tables cannot be read ({exc})") from exc
        ids: dict[int, list[int]] = defaultdict(list)
        times: dict[int, list[int]] = defaultdict(list)
        count = 0
        try:
            for row_id, topic_id, stamp, data in db.execute(
                "SELECT id, topic_id, timestamp, data FROM messages ORDER BY id"
            ):
                del data  # read to prove the row is whole; read again when asked for
                ids[topic_id].append(row_id)
                times[topic_id].append(stamp)
                count += 1
        except apsw.Error as exc:
            self.salvage.stopped = f"row {count + 1} of the messages table fails: {exc}"
        self._ids = {k: np.asarray(v, dtype=np.int64) for k, v in ids.items()}
        self._times = {k: np.asarray(v, dtype=np.int64) for k, v in times.items()}
        self.salvage.messages_recovered = count
        if count:
            self.salvage.first_ns = min(int(t.min()) for t in self._times.values())
            self.salvage.last_ns = max(int(t.max()) for t in self._times.values())
        for topic in topics:
            msgtype = str(topic["type"])
            fmt, text = definitions.get(msgtype, ("none", ""))
            self.connections.append(
                Connection(
                    int(topic["id"]),
                    str(topic["name"]),
                    msgtype,
                    MessageDefinition(MessageDefinitionFormat[fmt.upper()], text),
                    str(topic.get("type_description_hash") or ""),
                    len(self._ids.get(int(topic["id"]), ())),
                    ConnectionExtRosbag2(str(topic.get("serialization_format") or "cdr"), []),
                    self,
                )
            )

    @staticmethod
    def _definitions(db: Any) -> dict[str, tuple[str, str]]:
        formats = {"ros2msg": "msg", "ros2idl": "idl"}
        found = {}
        for msgtype, encoding, text in db.execute(
            "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
        ):
            if encoding in formats and text:
                found[str(msgtype)] = (formats[encoding], str(text))
        return found

    @property
    def lost_rows(self) -> bool:
        """Whether the scan stopped at a failing row (else every row was read)."""
        return self.salvage.stopped != "end of the messages table"

    def messages(
        self, connections: Any, start: int | None = None, stop: int | None = None
    ) -> Iterator[tuple[Connection, int, bytes]]:
        """``(connection, receive ns, raw)`` of the recovered rows of ``connections``, in id order (received in
        ``[start, stop)`` when given)."""
        import numpy as np

        by_id = {c.id: c for c in connections} if connections else {c.id: c for c in self.connections}
        wanted = [k for k in by_id if k in self._ids]
        if not wanted:
            return
        picked = []
        for k in wanted:
            ids, times = self._ids[k], self._times[k]
            keep = np.ones(len(ids), dtype=bool)
            if start is not None:
                keep &= times >= start
            if stop is not None:
                keep &= times < stop
            picked.append(ids[keep])
        rows = np.sort(np.concatenate(picked))
        marks = ",".join("?" * len(wanted))
        query = f"SELECT id, topic_id, timestamp, data FROM messages WHERE id BETWEEN ? AND ? AND topic_id IN ({marks})"
        for first in range(0, len(rows), _SQLITE_BATCH):
            batch = rows[first : first + _SQLITE_BATCH]
            lo, hi = int(batch[0]), int(batch[-1])
            got = []
            for row in self._db.execute(query + " ORDER BY id", (lo, hi, *wanted)):
                if (start is None or row[2] >= start) and (stop is None or row[2] < stop):
                    got.append(row)
                if row[0] == hi:  # stop here: stepping on would read the page after it, which may be the damage
                    break
            for _, topic_id, stamp, data in got:
                yield by_id[topic_id], int(stamp), bytes(data)

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None

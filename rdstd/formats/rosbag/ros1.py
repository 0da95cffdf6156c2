"""A ROS 1 bag reader whose message index is never held whole: one summary per chunk, each chunk's entries read when
the messages reach it.

rosbags' ``rosbag1.Reader`` reads every chunk's index records when it opens a bag and keeps, for as long as it is
open, an ``IndexData`` named tuple of three Python ints per message (about 150 bytes each): 130 MB for a
20-minute recording of 870,000 messages. Even as arrays (24 bytes a message, this module's earlier design) the
index grows with the recording: 113 MB for a 2-hour one of 4.7 million messages, the peak of its conversion.

:class:`CompactRos1Reader` reads the same index records when it opens the bag, with numpy (12 bytes an entry, no
object per message), and keeps only each chunk's summary (:class:`ChunkSpan`: where its index records are, its
earliest and latest message time as its records say, its connections). ``messages()`` then reads a chunk's records
again when the time order reaches the chunk's earliest message: entries are yielded up to the next chunk's earliest
time, so what is held is the entries of the chunks that overlap the current time (one or two for a recorder's bag),
and the order is exactly the whole index's: by time, ties by the connection's place in the request, then by index
order (chunk by chunk, record order), ``start``/``stop`` as in rosbags. A salvaged bag (:mod:`.salvage`) has no
index records to read again: its index, rebuilt by scanning the chunks, is held in arrays (``compact``).
"""

from __future__ import annotations

import struct
from array import array
from collections import defaultdict
from collections.abc import Collection, Generator, Iterator
from typing import BinaryIO, NamedTuple

import numpy as np
import numpy.typing as npt
from rosbags.interfaces import Connection
from rosbags.rosbag1.reader import Chunk, Header, IndexData, Reader, ReaderError, RecordType, read_bytes

I64 = npt.NDArray[np.int64]
#: Index entries merged by time at once when reading (see :meth:`CompactRos1Reader._entries`).
WINDOW_MESSAGES = 1 << 16


#: One index entry as a ROS 1 index data record stores it: the message's time (seconds, nanoseconds) and its offset
#: in the decompressed chunk.
_ENTRY = np.dtype([("sec", "<u4"), ("nsec", "<u4"), ("offset", "<u4")])
#: Entries of the chunks being merged: time, the connection's place in the request, the chunk's place in the bag's
#: chunk list, the entry's place in its chunk's records, the chunk's position, the message's offset.
_HELD = np.dtype(
    [("time", "<i8"), ("rank", "<i4"), ("chunk", "<i4"), ("seq", "<i4"), ("pos", "<i8"), ("offset", "<i8")]
)


class ChunkSpan(NamedTuple):
    """What is kept of a chunk's index while the bag is open (its entries are read again when needed)."""

    order: int  #: its place in the bag's chunk list
    pos: int  #: the chunk record's position (what the entries' chunk position is)
    index_at: int  #: where its index data records start
    records: int  #: how many there are (one per connection in the chunk)
    first: int  #: its earliest message time (ns), from its index records
    last: int  #: its latest
    connections: frozenset[int]


class CompactRos1Reader(Reader):
    """rosbags' ROS 1 reader with one summary per chunk for an index (see the module docs)."""

    def _start_index(self) -> None:
        self._times: dict[int, array[int]] = defaultdict(lambda: array("q"))
        self._chunk_pos: dict[int, array[int]] = defaultdict(lambda: array("q"))
        self._offsets: dict[int, array[int]] = defaultdict(lambda: array("q"))
        #: A salvaged bag's whole index, per connection: (times, chunk positions, offsets) in time order.
        self.compact: dict[int, tuple[I64, I64, I64]] = {}
        #: A bag read through its index: each chunk's summary, by earliest time (then place in the bag).
        self.spans: list[ChunkSpan] = []
        self._span: dict[int, list[int]] = {}  # chunk position -> [index_at, records, first, last] while opening
        self._span_connections: dict[int, set[int]] = defaultdict(set)
        self._counts: dict[int, int] = defaultdict(int)

    def _index(self, conn: int, entries: Collection[IndexData]) -> None:
        self._times[conn].extend(e.time for e in entries)
        self._chunk_pos[conn].extend(e.chunk_pos for e in entries)
        self._offsets[conn].extend(e.offset for e in entries)

    def open(self) -> None:
        """Open the bag and read its index into arrays."""
        self._start_index()
        super().open()
        self._finish_index()

    def read_chunk(self) -> Chunk:
        """rosbags' chunk record header read at the file's position; the size it states for its data decompressed is
        kept for the index records that follow it (their offsets must fall inside it)."""
        assert self.bio is not None
        at = self.bio.tell()
        header = Header.read(self.bio, RecordType.CHUNK)
        self._chunk_size = header.get_uint32("size") if "size" in header else None
        self.bio.seek(at)
        return super().read_chunk()

    def read_index_data(self, pos: int, indexes: dict[int, list[IndexData]]) -> None:
        """One index data record of the chunk at ``pos``, read at the file's position: counted into the chunk's
        summary, its entries not kept (``indexes`` stays empty). An entry pointing past the chunk's data is damage
        found here, when the bag is opened, rather than when the pass reaches it."""
        assert self.bio is not None
        at = self.bio.tell()
        conn, entries = _index_record(self.bio)
        if len(entries) and self._chunk_size is not None and int(entries["offset"].max()) >= self._chunk_size:
            raise ReaderError(
                f"the index data record at byte {at} points at offset {int(entries['offset'].max())} of a chunk "
                f"of {self._chunk_size} bytes"
            )
        span = self._span.get(pos)
        if span is None:
            span = self._span[pos] = [at, 0, 2**63 - 1, -1]
        span[1] += 1
        if len(entries):
            times = _times(entries)
            span[2], span[3] = min(span[2], int(times.min())), max(span[3], int(times.max()))
        self._span_connections[pos].add(conn)
        self._counts[conn] += len(entries)

    def _finish_index(self) -> None:
        """Order the chunks' summaries (or, for a salvaged bag, sort each connection's entries by time: stable, most
        are in order already) and set the connections' message counts."""
        if self._span:
            place = {c.pos: k for k, c in enumerate(self.chunk_infos)}
            self.spans = sorted(
                (
                    ChunkSpan(place[pos], pos, at, records, first, last, frozenset(self._span_connections[pos]))
                    for pos, (at, records, first, last) in self._span.items()
                    if last >= 0  # a chunk whose records hold no entry has nothing to read
                ),
                key=lambda c: (c.first, c.order),
            )
            self._span, self._span_connections = {}, defaultdict(set)
        for conn in list(self._times):
            times = np.frombuffer(self._times.pop(conn), dtype=np.int64)
            chunks = np.frombuffer(self._chunk_pos.pop(conn), dtype=np.int64)
            offsets = np.frombuffer(self._offsets.pop(conn), dtype=np.int64)
            if bool(np.all(times[1:] >= times[:-1])):  # as recorders write them: kept as read, no sorted copy
                self.compact[conn] = (times, chunks, offsets)
                continue
            order = np.argsort(times, kind="stable")
            self.compact[conn] = (times[order], chunks[order], offsets[order])
        self.indexes = {c.id: [] for c in self.connections}
        held = {conn: len(entries[0]) for conn, entries in self.compact.items()} or self._counts
        self.connections = [Connection(*c[0:5], held.get(c.id, 0), *c[6:]) for c in self.connections]

    def release_index(self) -> None:
        """Drop the chunks' summaries and rosbags' per-chunk records (a named tuple, a dict of counts and a chunk
        header per chunk: ~3 MB for a 20-minute recording) until messages or chunks are asked for again
        (:meth:`reindex`), which reads them again from the file (the bag's single pass is done: what conversion
        needs was kept)."""
        self.compact = {}
        self.spans = []
        self.chunk_infos = []
        self.chunks = {}
        self._released = True

    def reindex(self) -> None:
        """Read the index again if :meth:`release_index` dropped it (the same connections, with the same ids)."""
        if self._released:
            self._released = False
            super().close()
            self.open()

    def close(self) -> None:
        """Close the bag and drop the index."""
        super().close()
        self.compact = {}
        self.spans = []

    def _entries(self, ids: list[int], start: int | None, stop: int | None) -> Iterator[tuple[I64, I64, I64]]:
        """(times, chunk positions, offsets) of the connections' messages in ``[start, stop)``, merged by time
        (ties: earlier connection first, then index order, as ``heapq.merge`` in rosbags), a time window at a time:
        merging a long recording's whole index at once would hold about 40 bytes a message while it runs."""
        if not self.compact:
            yield from self._chunk_entries(ids, start, stop)
            return
        parts = [self.compact[i] for i in ids if i in self.compact]
        if not parts:
            return
        lo = [0 if start is None else int(np.searchsorted(p[0], start, side="left")) for p in parts]
        hi = [len(p[0]) if stop is None else int(np.searchsorted(p[0], stop, side="left")) for p in parts]
        if len(parts) == 1:
            times, chunks, offsets = parts[0]
            for a in range(lo[0], hi[0], WINDOW_MESSAGES):
                b = min(a + WINDOW_MESSAGES, hi[0])
                yield times[a:b], chunks[a:b], offsets[a:b]
            return
        total = sum(h - low for low, h in zip(lo, hi, strict=True))
        # window edges: times of the connection with the most messages, every WINDOW_MESSAGES / share of its
        # messages (so a window holds about WINDOW_MESSAGES of all connections)
        big = max(range(len(parts)), key=lambda k: hi[k] - lo[k])
        step = max(1, (hi[big] - lo[big]) * WINDOW_MESSAGES // max(total, 1))
        edges = parts[big][0][lo[big] + step : hi[big] : step].tolist()
        for window_start, window_stop in zip([None, *edges], [*edges, None], strict=True):
            slices = []
            for k, (times, chunks, offsets) in enumerate(parts):
                a = lo[k] if window_start is None else max(lo[k], int(np.searchsorted(times, window_start, "left")))
                b = hi[k] if window_stop is None else min(hi[k], int(np.searchsorted(times, window_stop, "left")))
                if b > a:
                    slices.append((times[a:b], chunks[a:b], offsets[a:b]))
            if not slices:
                continue
            merged = np.concatenate([t for t, _, _ in slices])
            order = np.argsort(merged, kind="stable")
            yield (
                merged[order],
                np.concatenate([c for _, c, _ in slices])[order],
                np.concatenate([o for _, _, o in slices])[order],
            )

    def _chunk_entries(self, ids: list[int], start: int | None, stop: int | None) -> Iterator[tuple[I64, I64, I64]]:
        """:meth:`_entries` from the chunks' summaries: a chunk's entries are read when the time order reaches its
        earliest message, and the entries held are yielded up to the next chunk's earliest time (no chunk not yet
        read can come before it)."""
        rank = {conn: k for k, conn in enumerate(ids)}
        spans = [
            c
            for c in self.spans
            if not c.connections.isdisjoint(rank)
            and (start is None or c.last >= start)
            and (stop is None or c.first < stop)
        ]
        held = np.zeros(0, dtype=_HELD)
        i = 0
        while i < len(spans) or len(held):
            if i < len(spans):
                first = spans[i].first
                read = [held]
                while i < len(spans) and spans[i].first == first:
                    read.append(self._span_entries(spans[i], rank))
                    i += 1
                held = np.concatenate(read)
            if i < len(spans):  # what comes before the next chunk's earliest message
                cut = held["time"] < spans[i].first
                ready, held = held[cut], held[~cut]
            else:
                ready, held = held, held[:0]
            if start is not None or stop is not None:
                ready = ready[(ready["time"] >= (start or 0)) & (ready["time"] < (2**63 - 1 if stop is None else stop))]
            ready = ready[np.lexsort((ready["seq"], ready["chunk"], ready["rank"], ready["time"]))]
            for a in range(0, len(ready), WINDOW_MESSAGES):
                part = ready[a : a + WINDOW_MESSAGES]
                yield part["time"], part["pos"], part["offset"]

    def _span_entries(self, span: ChunkSpan, rank: dict[int, int]) -> npt.NDArray[np.void]:
        """The entries of the chunk's index records for the connections in ``rank``."""
        assert self.bio is not None
        self.bio.seek(span.index_at)
        parts = []
        for _ in range(span.records):
            conn, entries = _index_record(self.bio)
            if conn in rank:
                held = np.empty(len(entries), dtype=_HELD)
                held["time"] = _times(entries)
                held["rank"], held["chunk"], held["pos"] = rank[conn], span.order, span.pos
                held["seq"] = np.arange(len(entries))
                held["offset"] = entries["offset"]
                parts.append(held)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=_HELD)

    def messages(
        self, connections: Collection[Connection] = (), start: int | None = None, stop: int | None = None
    ) -> Generator[tuple[Connection, int, bytes], None, None]:
        """``(connection, time ns, raw bytes)`` in time order, as rosbags' reader yields them."""
        for conn, t, view in self.views(connections, start, stop):
            yield conn, t, bytes(view)

    def views(
        self, connections: Collection[Connection] = (), start: int | None = None, stop: int | None = None
    ) -> Generator[tuple[Connection, int, memoryview], None, None]:
        """As :meth:`messages`, each message's bytes a view into its decompressed chunk (no copy)."""
        self._check_open()
        assert self.bio is not None
        if self._released:  # read the index again (same connections, same ids)
            ids = {c.id for c in connections}
            self.reindex()
            connections = [c for c in self.connections if c.id in ids]
        chosen = list(connections) or list(self.connections)
        connmap = {c.id: c for c in chosen}
        try:
            for times, chunks, offsets in self._entries([c.id for c in chosen], start, stop):
                for t, chunk_pos, offset in zip(times.tolist(), chunks.tolist(), offsets.tolist(), strict=True):
                    conn, data = message_record(self._chunk_at(chunk_pos), offset)
                    if (connection := connmap.get(conn)) is None:  # an entry points at another connection's message
                        raise ReaderError(
                            f"the index points at a message of connection {conn} (offset {offset} of the chunk at "
                            f"byte {chunk_pos}) where it lists one of connections {sorted(connmap)}"
                        )
                    yield connection, t, data
        finally:  # the decompressed chunk is not kept between reads (up to the chunk size, often 1 MB or more)
            self._chunk = (-1, b"")

    def _chunk_at(self, chunk_pos: int) -> bytes:
        if self._chunk[0] != chunk_pos:
            assert self.bio is not None
            self._chunk = (-1, b"")
            chunk = self.chunks[chunk_pos]
            self.bio.seek(chunk.datapos)
            self._chunk = (chunk_pos, chunk.decompressor(read_bytes(self.bio, chunk.datasize)))
        return self._chunk[1]

    _chunk: tuple[int, bytes] = (-1, b"")
    _chunk_size: int | None = None
    _released = False


_U32 = struct.Struct("<I")


def message_record(chunk: bytes, pos: int) -> tuple[int, memoryview]:
    """(connection id, data) of the message data record at ``pos`` in a decompressed chunk, stepping over the
    connection records that may precede it (what rosbags' reader does, without a dict per record header). The data
    is a view into the chunk (no copy; it keeps the chunk alive while it is held)."""
    unpack = _U32.unpack_from
    try:
        while True:
            end = pos + 4 + unpack(chunk, pos)[0]
            op, conn, field = -1, -1, pos + 4
            while field < end:  # the header's fields: u32 length, then name=value
                size = unpack(chunk, field)[0]
                name_end = chunk.find(b"=", field + 4, field + 4 + size)
                name = chunk[field + 4 : name_end]
                if name == b"op":
                    op = chunk[name_end + 1]
                elif name == b"conn":
                    conn = unpack(chunk, name_end + 1)[0]
                field += 4 + size
            length = unpack(chunk, end)[0]
            if op != RecordType.CONNECTION:
                break
            pos = end + 4 + length
    except (struct.error, IndexError) as exc:
        raise ReaderError(f"a record at offset {pos} of a chunk is cut or damaged") from exc
    if op != RecordType.MSGDATA:
        raise ReaderError(f"the record at offset {pos} of a chunk is not message data (op {op})")
    if end + 4 + length > len(chunk):
        raise ReaderError(f"the message at offset {pos} of a chunk runs past the chunk's end")
    return conn, memoryview(chunk)[end + 4 : end + 4 + length]


def _times(entries: npt.NDArray[np.void]) -> I64:
    """Index entries' times in nanoseconds."""
    return entries["sec"].astype(np.int64) * 1_000_000_000 + entries["nsec"].astype(np.int64)


def _index_record(bio: BinaryIO) -> tuple[int, npt.NDArray[np.void]]:
    """The index data record at the file's position (version 1): its connection and its entries (:data:`_ENTRY`)."""
    try:
        (size,) = _U32.unpack(read_bytes(bio, 4))
        header = read_bytes(bio, size)
        fields: dict[bytes, bytes] = {}
        at = 0
        while at < size:
            (length,) = _U32.unpack_from(header, at)
            name, _, value = header[at + 4 : at + 4 + length].partition(b"=")
            fields[name] = value
            at += 4 + length
        at_byte = bio.tell() - size - 4
        if fields.get(b"op") != bytes([RecordType.IDXDATA]):
            raise ReaderError(f"the record at byte {at_byte}, where a chunk's index should be, is not an index record")
        if (ver := _U32.unpack(fields[b"ver"])[0]) != 1:  # a 2.0 bag's index records are all version 1
            raise ReaderError(f"the index data record at byte {at_byte} says ver={ver}: a 2.0 bag's are all 1")
        (conn,) = _U32.unpack(fields[b"conn"])
        (count,) = _U32.unpack(fields[b"count"])
        (data_size,) = _U32.unpack(read_bytes(bio, 4))
        if data_size != count * _ENTRY.itemsize:
            raise ReaderError(f"an index data record of {count} entries holds {data_size} bytes")
        return conn, np.frombuffer(read_bytes(bio, data_size), dtype=_ENTRY)
    except KeyError as exc:  # a field name of the header: bytes
        raise ReaderError(f"an index data record has no '{exc.args[0].decode('ascii', 'replace')}' field") from exc
    except struct.error as exc:
        raise ReaderError(f"an index data record is cut or damaged ({exc})") from exc

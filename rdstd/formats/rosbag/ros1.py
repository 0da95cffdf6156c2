"""A ROS 1 bag reader whose message index is compact: numpy arrays per connection, not a tuple per message.

rosbags' ``rosbag1.Reader`` keeps, for the whole time the bag is open, an ``IndexData`` named tuple of three Python
ints per message (about 150 bytes each): 130 MB for a 20-minute recording of 870,000 messages, the largest part of
rdstd's memory on long bags. :class:`CompactRos1Reader` reads the same index records into ``array`` buffers (20
bytes a message) and serves ``messages()`` from them with the same results: per connection in time order (ties
keep their index order), merged across connections by time, ``start``/``stop`` by binary search.
"""

from __future__ import annotations

import struct
from array import array
from collections import defaultdict
from collections.abc import Collection, Generator, Iterator

import numpy as np
import numpy.typing as npt
from rosbags.interfaces import Connection
from rosbags.rosbag1.reader import IndexData, Reader, ReaderError, RecordType, read_bytes

I64 = npt.NDArray[np.int64]
#: Index entries merged by time at once when reading (see :meth:`CompactRos1Reader._entries`).
WINDOW_MESSAGES = 1 << 16


class CompactRos1Reader(Reader):
    """rosbags' ROS 1 reader with the message index in arrays (see the module docs)."""

    def _start_index(self) -> None:
        self._times: dict[int, array[int]] = defaultdict(lambda: array("q"))
        self._chunk_pos: dict[int, array[int]] = defaultdict(lambda: array("q"))
        self._offsets: dict[int, array[int]] = defaultdict(lambda: array("q"))
        self.compact: dict[int, tuple[I64, I64, I64]] = {}

    def _index(self, conn: int, entries: Collection[IndexData]) -> None:
        self._times[conn].extend(e.time for e in entries)
        self._chunk_pos[conn].extend(e.chunk_pos for e in entries)
        self._offsets[conn].extend(e.offset for e in entries)

    def open(self) -> None:
        """Open the bag and read its index into arrays."""
        self._start_index()
        super().open()
        self._finish_index()

    def read_index_data(self, pos: int, indexes: dict[int, list[IndexData]]) -> None:
        """One index data record, kept in the arrays (``indexes`` stays empty)."""
        found: dict[int, list[IndexData]] = defaultdict(list)
        super().read_index_data(pos, found)
        for conn, entries in found.items():
            self._index(conn, entries)

    def _finish_index(self) -> None:
        """Sort each connection's entries by time (stable; most are in order already) and set the connections'
        message counts."""
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
        self.connections = [
            Connection(*c[0:5], len(self.compact[c.id][0]) if c.id in self.compact else 0, *c[6:])
            for c in self.connections
        ]

    def release_index(self) -> None:
        """Drop the message index (24 bytes a message) and rosbags' per-chunk records (a named tuple, a dict of
        counts and a chunk header per chunk: ~3 MB for a 20-minute recording) until messages or chunks are asked
        for again (:meth:`reindex`), which reads them again from the file (the bag's single pass is done: what
        conversion needs was kept)."""
        self.compact = {}
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

    def _entries(self, ids: list[int], start: int | None, stop: int | None) -> Iterator[tuple[I64, I64, I64]]:
        """(times, chunk positions, offsets) of the connections' messages in ``[start, stop)``, merged by time
        (ties: earlier connection first, then index order, as ``heapq.merge`` in rosbags), a time window at a time:
        merging a long recording's whole index at once would hold about 40 bytes a message while it runs."""
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
        connmap = {c.id: c for c in self.connections}
        try:
            for times, chunks, offsets in self._entries([c.id for c in chosen], start, stop):
                for t, chunk_pos, offset in zip(times.tolist(), chunks.tolist(), offsets.tolist(), strict=True):
                    conn, data = message_record(self._chunk_at(chunk_pos), offset)
                    yield connmap[conn], t, data
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
    if op != RecordType.MSGDATA or end + 4 + length > len(chunk):
        raise ReaderError("Expected to find message data.")
    return conn, memoryview(chunk)[end + 4 : end + 4 + length]

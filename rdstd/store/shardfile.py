"""A frame shard's Parquet file, written one row group at a time with memory that does not grow with its row groups.

``pyarrow.parquet.ParquetWriter`` keeps every written row group's metadata as C++ Thrift objects until the file is
closed (about 7 KB a row group of the canonical frame schema), and copies all of them again to build the footer
(as much again, at close). A shard of many episodes is bounded by ``shard_bytes`` / ``ROW_GROUP_MIN_BYTES`` row
groups, but one episode cannot span shards: a 20-minute recording (36,000 frames, 1,637 row groups) held ~12 MB
of metadata while it was written and ~23 MB while its shard closed, where a 2-minute one (450) held ~3 and ~6 MB,
so peak RSS grew with the recording's length (issue #11).

:class:`ShardFile` writes the shard as *segments*, each of :data:`SEGMENT_WRITES` ``write_table`` calls at most
and each with a ``ParquetWriter`` of its own appending to the same file: a segment's magic bytes go over the last
four bytes of the previous segment's row groups (put back afterwards), and its footer is cut off once its row
groups' metadata are taken from it. Of each row group only that metadata is kept, as serialized Thrift with its
offsets moved to where the row group is in the shard and its ordinal renumbered (~0.8 KB); :meth:`~ShardFile.close`
writes one footer of them all. Row groups, pages and checksums are the bytes a single writer would have written (a
row group does not depend on where it sits in the file), and so is the footer: the shard is byte for byte what one
``ParquetWriter`` given the same ``write_table`` calls writes (``tests/store/test_shardfile.py``). Options that make
the writer add data at close (a page index, bloom filters, encryption) are refused.

Memory: one segment's Thrift objects (~0.5 MB). The row groups' serialized metadata (~0.8 KB a row group: 1.3 MB
for the 20-minute recording's 1,637 row groups) is kept in memory up to :data:`ENTRIES_IN_MEMORY` bytes and in an
anonymous temporary file beside the shard beyond, read back in pieces when the footer is written. CPU: ~0.1 ms a
row group to copy its metadata (a pure-Python Thrift scan).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rdstd.errors import InternalError
from rdstd.store import thrift

MAGIC = b"PAR1"
#: ``write_table`` calls (row groups, as the canonical writer calls it) given to one ParquetWriter before its footer
#: is taken apart (it holds their metadata until then).
SEGMENT_WRITES = 64
#: Bytes of row groups' metadata held in memory; a shard's beyond go to a temporary file (a long episode's shard).
ENTRIES_IN_MEMORY = 256 * 1024
#: Bytes of row groups' metadata read back per write of the footer.
_FOOTER_PIECE = 1 << 20
#: FileMetaData's field ids (parquet.thrift): the row count that sums the row groups', and the row groups.
_NUM_ROWS, _ROW_GROUPS = 3, 4
#: RowGroup's: its column chunks, its row count, its file offset, its ordinal.
_RG_COLUMNS, _RG_NUM_ROWS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 3, 5, 7
#: ColumnChunk's: its (deprecated) file offset, its ColumnMetaData, and the page index offsets.
_CC_OFFSETS = frozenset({2, 4, 6})
_CC_META = 3
#: ColumnMetaData's offsets: data page, index page, dictionary page, bloom filter.
_CM_DATA_PAGE, _CM_DICTIONARY_PAGE = 9, 11
_CM_OFFSETS = frozenset({_CM_DATA_PAGE, 10, _CM_DICTIONARY_PAGE, 14})
#: Writer options that make pyarrow write more than row groups and a footer (refused).
_REFUSED = ("write_page_index", "encryption_properties", "bloom_filter_options")


class ShardFile:
    """Write a Parquet file at ``path`` (created or truncated) with the bytes ``pq.ParquetWriter(path, schema,
    **options)`` would write, keeping only each row group's serialized metadata in memory (see the module doc)."""

    def __init__(self, path: Path, schema: pa.Schema, options: Mapping[str, Any]) -> None:
        refused = [name for name in _REFUSED if options.get(name)]
        if refused:
            raise _fault(f"ShardFile cannot write {refused}: they add data at close")
        self.path = Path(path)
        self.schema = schema
        self._options = dict(options)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        self._end = 0  # where the finished segments' row groups end
        #: Each row group's RowGroup struct, serialized as in the shard, one after another; past ENTRIES_IN_MEMORY in
        #: an anonymous file beside the shard (its disk is the one the output needs room on, not TMPDIR's).
        self._entries = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=ENTRIES_IN_MEMORY, prefix="rdstd-footer-", dir=str(self.path.parent)
        )
        self._groups = 0  # row groups written (their entries)
        self._rows = 0
        self._head: bytes | None = None  # FileMetaData's bytes before its row count (from the first footer) ...
        self._tail: bytes | None = None  # ... and after its row groups
        self._segment: pq.ParquetWriter | None = None
        self._sink: pa.NativeFile | None = None  # the open segment's file (appending)
        self._segment_writes = 0
        self._kept = b""  # the 4 bytes the open segment's magic went over
        self._failed = False

    def write_table(self, table: pa.Table, row_group_size: int | None = None) -> None:
        """Write ``table`` as ``ParquetWriter.write_table`` does (row groups of at most ``row_group_size`` rows).

        After a failure (a full disk, say) the file is incomplete: :meth:`close` then only closes it, raising
        :class:`OSError` (its caller discards the file)."""
        fd = self._require_open()
        try:
            if self._segment is None:
                self._open_segment(fd)
            assert self._segment is not None
            self._segment.write_table(table, row_group_size=row_group_size)
            self._segment_writes += 1
            if self._segment_writes >= SEGMENT_WRITES:
                self._finish_segment(fd)
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        """Write the footer and close the file (a no-op once closed)."""
        if self._fd is None:
            return
        fd = self._fd
        try:
            if self._failed:
                self._drop_segment()
                raise OSError(f"{self.path}: a write failed, the file is incomplete")
            self._finish_segment(fd)
            if not self._groups:  # nothing written: the file a writer given no rows writes
                os.ftruncate(fd, 0)
                pq.ParquetWriter(self.path, self.schema, **self._options).close()
                return
            at = self._end
            for part in self._footer_parts():  # in pieces: no copy of the whole footer in memory
                at = _pwrite_all(fd, part, at)
            os.ftruncate(fd, at)
        except BaseException:
            self._failed = True
            raise
        finally:
            self._fd = None
            os.close(fd)
            self._entries.close()

    def _open_segment(self, fd: int) -> None:
        if self._end:  # the segment's magic goes over the last 4 bytes, put back when it is finished
            self._kept = os.pread(fd, len(MAGIC), self._end - len(MAGIC))
            os.ftruncate(fd, self._end - len(MAGIC))
        # appending, from a descriptor at offset 0: the writer sees position 0 (it refuses any other) and then
        # the file's own positions, so its offsets are where its row groups are (checked in _add_groups)
        self._sink = pa.OSFile(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC), mode="w")
        self._segment = pq.ParquetWriter(self._sink, self.schema, **self._options)

    def _drop_segment(self) -> None:
        """Close a failed segment's writer and file without caring what they say (the file is incomplete)."""
        segment, sink, self._segment, self._sink = self._segment, self._sink, None, None
        for done in (segment, sink):
            if done is not None:
                with contextlib.suppress(OSError, pa.ArrowException):
                    done.close()

    def _require_open(self) -> int:
        if self._fd is None:
            raise _fault(f"{self.path}: the shard file is closed")
        return self._fd

    def _finish_segment(self, fd: int) -> None:
        """Close the open segment's writer, take its row groups from its footer and cut the footer off."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        segment.close()
        assert self._sink is not None
        sink, self._sink = self._sink, None
        sink.close()
        self._segment_writes = 0
        size = os.fstat(fd).st_size
        tail = os.pread(fd, 8, size - 8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != MAGIC or length > size - 8:
            raise _fault(f"{self.path}: the file does not end in a Parquet footer after a write")
        footer_at = size - 8 - length
        footer = os.pread(fd, length, footer_at)
        os.ftruncate(fd, footer_at)
        if self._kept:
            os.pwrite(fd, self._kept, self._end - len(MAGIC))
        try:
            self._add_groups(footer, data_at=max(self._end, len(MAGIC)))
        except IndexError as exc:
            raise _fault(f"{self.path}: a Parquet footer ends in the middle of a value") from exc
        self._end = footer_at

    def _add_groups(self, footer: bytes, *, data_at: int) -> None:
        """Keep the row groups of a segment's footer, moved to where their bytes are in the shard (its first row
        group starts at ``data_at``, after its magic)."""
        if self._head is None:
            self._head, self._tail = _head_and_tail(footer)
        head, tail = self._head, self._tail
        assert tail is not None
        if not footer.startswith(head) or not footer.endswith(tail):
            raise _fault(f"{self.path}: two writers of one shard wrote different schemas or metadata")
        field_id, kind, pos = thrift.read_field(footer, len(head), _NUM_ROWS - 1)
        if (field_id, kind) != (_NUM_ROWS, thrift.I64):
            raise _fault(f"{self.path}: a Parquet footer without its row count where expected")
        pos = thrift.skip(footer, pos, kind)
        field_id, kind, pos = thrift.read_field(footer, pos, _NUM_ROWS)
        if (field_id, kind) != (_ROW_GROUPS, thrift.LIST):
            raise _fault(f"{self.path}: a Parquet footer without its row groups where expected")
        _, count, pos = thrift.read_list_header(footer, pos)
        shift = 0
        for i in range(count):
            if i == 0:  # the writer's offsets count from its own start, or from the file's (its sink's position)
                first = _Moved(footer, pos, 0).first_page
                if first not in (data_at, len(MAGIC)):
                    raise _fault(f"{self.path}: a row group's offsets are not where it was written ({data_at})")
                shift = data_at - first
            moved = _Moved(footer, pos, shift)
            self._entries.write(moved.row_group(self._groups))
            self._groups += 1
            self._rows += moved.rows
            pos = moved.end
        if pos != len(footer) - len(tail):
            raise _fault(f"{self.path}: a Parquet footer with more after its row groups than the first")

    def _footer_parts(self) -> Iterator[bytes]:
        """The footer, in pieces: FileMetaData (the first segment's fields, the row count of all row groups, every
        row group), its length and the magic."""
        assert self._head is not None and self._tail is not None
        out = bytearray(self._head)
        thrift.write_field_header(out, _NUM_ROWS, thrift.I64, _NUM_ROWS - 1)
        thrift.write_integer(out, self._rows)
        thrift.write_field_header(out, _ROW_GROUPS, thrift.LIST, _NUM_ROWS)
        thrift.write_list_header(out, thrift.STRUCT, self._groups)
        yield bytes(out)
        entries = self._entries.tell()
        self._entries.seek(0)
        while piece := self._entries.read(_FOOTER_PIECE):
            yield piece
        if self._entries.tell() != entries:
            raise OSError(errno.EIO, f"{self.path}: the row groups' metadata kept aside could not be read back whole")
        yield self._tail
        length = len(out) + entries + len(self._tail)
        yield length.to_bytes(4, "little") + MAGIC


def _pwrite_all(fd: int, data: bytes, at: int) -> int:
    """Write all of ``data`` at ``at``; the position after it."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, at)
        if not n:  # (regular files raise instead, ENOSPC; a write that makes no progress would loop forever)
            raise OSError(errno.EIO, "the footer write wrote nothing")
        at += n
        view = view[n:]
    return at


def _head_and_tail(footer: bytes) -> tuple[bytes, bytes]:
    """FileMetaData's bytes before its row count (its fields 1 and 2), and after its row groups (the later fields
    and the struct's end)."""
    head_end = tail_at = -1
    pos = last = 0
    while True:
        at = pos
        field_id, kind, pos = thrift.read_field(footer, pos, last)
        if kind == thrift.STOP:
            break
        if field_id == _NUM_ROWS and last == _NUM_ROWS - 1:
            head_end = at
        pos = thrift.skip(footer, pos, kind)
        if field_id == _ROW_GROUPS and last == _NUM_ROWS:
            tail_at = pos
        last = field_id
    if head_end < 0 or tail_at < 0:
        raise _fault("a Parquet footer without its row count and row groups in the usual place")
    return footer[:head_end], footer[tail_at:]


class _Moved:
    """The RowGroup struct encoded at ``at``, with every file offset moved by ``shift`` (an offset of 0 is "not set":
    never a position, the magic is there), copied field by field; :meth:`row_group` gives it with the ordinal
    set. ``first_page`` is where the row group starts as written (its first column's dictionary or first data
    page), ``rows`` its row count, ``end`` where its encoding ends."""

    def __init__(self, data: bytes, at: int, shift: int) -> None:
        self.data, self.shift = data, shift
        self.out = bytearray()
        self.copied = at
        self.rows = 0
        self.first_page = -1
        self._ordinal_at = -1  # where the ordinal's value goes in ``out``
        pos = at
        last = 0
        while True:
            field_id, kind, pos = thrift.read_field(data, pos, last)
            if kind == thrift.STOP:
                break
            if field_id == _RG_COLUMNS and kind == thrift.LIST:
                _, size, pos = thrift.read_list_header(data, pos)
                for column in range(size):
                    pos = self._chunk(pos, first=column == 0)
            elif field_id == _RG_FILE_OFFSET and kind == thrift.I64:
                pos, _ = self._move(pos)
            elif field_id == _RG_NUM_ROWS and kind == thrift.I64:
                self.rows, pos = thrift.read_integer(data, pos)
            elif field_id == _RG_ORDINAL and kind == thrift.I16:
                self.out += data[self.copied : pos]
                self._ordinal_at = len(self.out)
                pos = self.copied = thrift.skip(data, pos, kind)
            else:
                pos = thrift.skip(data, pos, kind)
            last = field_id
        self.out += data[self.copied : pos]
        self.end = pos
        if self.first_page < 0:
            raise _fault("a Parquet row group without page offsets")

    def row_group(self, ordinal: int) -> bytes:
        """The moved struct's bytes, its ordinal (if it has one) set to ``ordinal``."""
        if self._ordinal_at < 0:
            return bytes(self.out)
        value = bytearray()
        thrift.write_integer(value, ordinal)
        at = self._ordinal_at
        return bytes(self.out[:at] + value + self.out[at:])

    def _move(self, pos: int) -> tuple[int, int]:
        """Copy up to the integer at ``pos``, write it moved; (the position after it, its value as written)."""
        self.out += self.data[self.copied : pos]
        value, pos = thrift.read_integer(self.data, pos)
        thrift.write_integer(self.out, value + self.shift if value else value)
        self.copied = pos
        return pos, value

    def _chunk(self, pos: int, *, first: bool) -> int:
        data, last = self.data, 0
        while True:
            field_id, kind, pos = thrift.read_field(data, pos, last)
            if kind == thrift.STOP:
                return pos
            if field_id in _CC_OFFSETS and kind == thrift.I64:
                pos, _ = self._move(pos)
            elif field_id == _CC_META and kind == thrift.STRUCT:
                pos = self._column_meta(pos, first=first)
            else:
                pos = thrift.skip(data, pos, kind)
            last = field_id

    def _column_meta(self, pos: int, *, first: bool) -> int:
        data, last = self.data, 0
        while True:
            field_id, kind, pos = thrift.read_field(data, pos, last)
            if kind == thrift.STOP:
                return pos
            if field_id in _CM_OFFSETS and kind == thrift.I64:
                pos, value = self._move(pos)
                if first and value and field_id in (_CM_DATA_PAGE, _CM_DICTIONARY_PAGE):
                    self.first_page = value if self.first_page < 0 else min(self.first_page, value)
            else:
                pos = thrift.skip(data, pos, kind)
            last = field_id


def _fault(message: str) -> InternalError:
    return InternalError(
        message,
        hint="a bug in rdstd or an unexpected pyarrow version: re-run with --debug and report the traceback",
        situation="shard-footer",
    )

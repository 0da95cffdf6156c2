"""Just enough of Thrift's compact protocol for Parquet's metadata: :mod:`rdstd.store.shardfile` copies a footer's
structs with a few integers changed (it moves row groups' metadata, ``RowGroup``, from one writer's footer into
another), and :mod:`rdstd.store.pages` reads page headers.

The reading functions walk encoded bytes without building values (a struct's fields, a value's extent), read
integers, or read a whole struct as a dict; an index past the end raises ``IndexError``, which the caller turns
into its own error. The writing functions encode integers, field headers and list headers the way Apache Thrift's
C++ ``TCompactProtocol`` (Parquet's writer) does: minimal varints, a field id as a delta when it is 1-15 above the
previous one, a list's size in its header byte below 15. Bytes that are not changed are copied as they were, so a
struct copied with its integers unchanged is the same bytes (``tests/store/test_shardfile.py``). Maps do not
occur in Parquet's metadata and are refused.
"""

from __future__ import annotations

from typing import Any

from rdstd.errors import InternalError

#: What the reading functions take: the bytes of a footer or a page, or a view of them.
Buffer = bytes | bytearray | memoryview

STOP, TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)


def read_varint(data: Buffer, pos: int) -> tuple[int, int]:
    """An unsigned varint at ``pos``, and the position after it."""
    out = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        out |= (byte & 0x7F) << shift
        if byte < 0x80:
            return out, pos
        shift += 7


def read_integer(data: Buffer, pos: int) -> tuple[int, int]:
    """A zigzag-encoded i16, i32 or i64 at ``pos``, and the position after it."""
    n, pos = read_varint(data, pos)
    return (n >> 1) ^ -(n & 1), pos


def read_field(data: Buffer, pos: int, last: int) -> tuple[int, int, int]:
    """The field header at ``pos`` of a struct whose previous field was ``last``: (field id, compact type, the
    position after it); type STOP at the struct's end."""
    head = data[pos]
    kind = head & 15
    if kind == STOP:
        return 0, STOP, pos + 1
    if head >> 4:
        return last + (head >> 4), kind, pos + 1
    field_id, pos = read_integer(data, pos + 1)
    return field_id, kind, pos


def read_list_header(data: Buffer, pos: int) -> tuple[int, int, int]:
    """The list header at ``pos``: (element type, size, the position after it)."""
    head = data[pos]
    if head >> 4 != 15:
        return head & 15, head >> 4, pos + 1
    size, pos = read_varint(data, pos + 1)
    return head & 15, size, pos


def read_value(data: Buffer, pos: int, kind: int) -> tuple[Any, int]:
    """The value of compact type ``kind`` at ``pos`` (integers as ``int``, binaries and doubles as the bytes,
    lists as lists, structs as ``{field id: value}``), and the position after it. Raises :class:`ValueError` for
    a map or an unknown type, :class:`IndexError` past the end."""
    if kind in (TRUE, FALSE):  # a boolean field's value is in its type
        return kind == TRUE, pos
    if kind == BYTE:
        return data[pos], pos + 1
    if kind in (I16, I32, I64):
        return read_integer(data, pos)
    if kind in (DOUBLE, BINARY):
        n, pos = (8, pos) if kind == DOUBLE else read_varint(data, pos)
        if pos + n > len(data):
            raise IndexError("a value runs past the end")
        return data[pos : pos + n], pos + n
    if kind in (LIST, SET):
        element, size, pos = read_list_header(data, pos)
        element = BYTE if element in (TRUE, FALSE) else element  # a list's booleans are a byte each
        items = []
        for _ in range(size):
            item, pos = read_value(data, pos, element)
            items.append(item)
        return items, pos
    if kind == STRUCT:
        return read_struct(data, pos)
    raise ValueError(f"Thrift compact type {kind} is not part of Parquet's metadata")


def read_struct(data: Buffer, pos: int) -> tuple[dict[int, Any], int]:
    """The struct at ``pos`` as ``{field id: value}`` (see :func:`read_value`), and the position after it."""
    fields: dict[int, Any] = {}
    last = 0
    while True:
        field_id, kind, pos = read_field(data, pos, last)
        if kind == STOP:
            return fields, pos
        fields[field_id], pos = read_value(data, pos, kind)
        last = field_id


def skip(data: bytes, pos: int, kind: int) -> int:
    """The position after the value of compact type ``kind`` at ``pos``."""
    if kind == STRUCT:
        return _skip_struct(data, pos)
    if kind in (I16, I32, I64):
        while data[pos] >= 0x80:
            pos += 1
        return pos + 1
    if kind == BINARY:
        n, pos = read_varint(data, pos)
        return pos + n
    if kind in (TRUE, FALSE):
        return pos  # a boolean field's value is in its type
    if kind == BYTE:
        return pos + 1
    if kind == DOUBLE:
        return pos + 8
    if kind in (LIST, SET):
        element, size, pos = read_list_header(data, pos)
        if element in (TRUE, FALSE, BYTE):  # a list's booleans are a byte each
            return pos + size
        if element == DOUBLE:
            return pos + 8 * size
        for _ in range(size):
            pos = skip(data, pos, element)
        return pos
    raise _fault(f"Thrift compact type {kind} is not part of Parquet's metadata")


def _skip_struct(data: bytes, pos: int) -> int:
    """:func:`skip` of a struct, the usual kinds of field inline (field ids are not needed to skip)."""
    while True:
        head = data[pos]
        pos += 1
        kind = head & 15
        if kind == STOP:
            return pos
        if not head >> 4:  # the field id follows as a varint
            while data[pos] >= 0x80:
                pos += 1
            pos += 1
        if kind in (I16, I32, I64):
            while data[pos] >= 0x80:
                pos += 1
            pos += 1
        elif kind == BINARY:
            n = shift = 0
            while True:
                byte = data[pos]
                pos += 1
                n |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            pos += n
        elif kind not in (TRUE, FALSE):
            pos = skip(data, pos, kind)


def write_varint(out: bytearray, n: int) -> None:
    """Append an unsigned varint."""
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_integer(out: bytearray, n: int) -> None:
    """Append a zigzag-encoded i16, i32 or i64."""
    write_varint(out, (n << 1) ^ (n >> 63))


def write_field_header(out: bytearray, field_id: int, kind: int, last: int) -> None:
    """Append a field header (a delta from ``last``, the previous field's id, when that fits in 4 bits)."""
    if 0 < field_id - last <= 15:
        out.append((field_id - last) << 4 | kind)
    else:
        out.append(kind)
        write_integer(out, field_id)


def write_list_header(out: bytearray, element: int, size: int) -> None:
    """Append a list header of ``size`` elements of compact type ``element``."""
    if size < 15:
        out.append(size << 4 | element)
    else:
        out.append(0xF0 | element)
        write_varint(out, size)


def _fault(message: str) -> InternalError:
    """The footers read here are the ones pyarrow has just written: one that does not parse is a bug."""
    return InternalError(
        f"{message} (a footer pyarrow has just written)",
        hint="a bug in rdstd or an unexpected pyarrow version: re-run with --debug and report the traceback",
        situation="shard-footer",
    )

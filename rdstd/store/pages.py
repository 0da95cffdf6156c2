"""Where each row's value sits in an image column chunk of a shard, so one frame is read without its row group.

The writer stores image columns uncompressed, PLAIN-encoded, without a dictionary: a data page is its header
(Thrift compact protocol), the definition levels, then each value as a 4-byte length and its bytes. Parsing the
page headers once gives every row's (file offset, length); a frame is then one ``pread`` of its own bytes instead
of pyarrow reading and building the whole row group (8 frames of 640×480 JPEG: ~0.2 ms a frame, a fifth of the
decode). Page checksums (CRC-32 of each page's bytes) are verified while the spans are built, so a process
checks a page the first time it reads it, as the pyarrow path does.

:func:`column_spans` returns None for any layout it does not know (compressed or dictionary-encoded chunks,
nested columns, nulls, other encodings): the reader then reads through pyarrow, which also reports damage that
is not a checksum mismatch (a header that does not parse, counts that disagree) in its own words.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rdstd.store import thrift

_PLAIN, _RLE = 0, 3
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
#: Longest page header accepted (statistics are off for image columns: headers are a few dozen bytes).
_MAX_HEADER = 4096


class ChecksumMismatchError(Exception):
    """A page's bytes do not match the CRC-32 in its header (damage on disk)."""


class _UnsupportedLayoutError(Exception):
    """The chunk is not in the simple layout (the caller reads it through pyarrow)."""


@dataclass(frozen=True)
class Spans:
    """File offset and length of each row's value in one column chunk (row order)."""

    offsets: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]


def direct(chunk: Any, max_repetition_level: int) -> bool:
    """Whether a column chunk (pyarrow ``ColumnChunkMetaData``) may be in the layout :func:`column_spans` reads."""
    return (
        chunk.physical_type == "BYTE_ARRAY"
        and chunk.compression == "UNCOMPRESSED"
        and not chunk.has_dictionary_page
        and max_repetition_level == 0
        and set(chunk.encodings) <= {"PLAIN", "RLE"}
    )


def column_spans(fd: int, chunk: Any, rows: int, max_definition_level: int, *, verify: bool) -> Spans | None:
    """Every row's value span in a chunk (see the module doc), pages checksummed when ``verify``; None when the
    chunk is not in the simple layout. Raises :class:`ChecksumMismatchError` for a page whose CRC-32 does not match."""
    start, size = int(chunk.data_page_offset), int(chunk.total_compressed_size)
    data = os.pread(fd, size, start)
    if len(data) != size:
        return None
    try:
        return _spans(memoryview(data), start, rows, max_definition_level, verify)
    except (_UnsupportedLayoutError, IndexError, ValueError, RecursionError):  # RecursionError: garbage nesting structs
        return None


def _spans(data: memoryview, base: int, rows: int, max_def: int, verify: bool) -> Spans:
    offsets = np.empty(rows, dtype=np.int64)
    lengths = np.empty(rows, dtype=np.int64)
    row, pos = 0, 0
    while row < rows:
        header, read = thrift.read_struct(data[pos : pos + _MAX_HEADER], 0)
        body = pos + read
        kind, raw_size, size = header.get(1), header.get(2), header.get(3)
        if not isinstance(size, int) or raw_size != size or size < 0 or body + size > len(data):
            raise _UnsupportedLayoutError
        page = data[body : body + size]
        crc = header.get(4)
        if verify and isinstance(crc, int) and zlib.crc32(page) != crc & 0xFFFFFFFF:
            raise ChecksumMismatchError(f"page at byte {base + pos}: checksum mismatch")
        if kind == _DATA_PAGE:
            values = _v1_values(header.get(5), page, max_def)
        elif kind == _DATA_PAGE_V2:
            values = _v2_values(header.get(8), page)
        else:
            raise _UnsupportedLayoutError
        count, at = values
        if row + count > rows:
            raise _UnsupportedLayoutError
        for _ in range(count):
            n = int.from_bytes(page[at : at + 4], "little")
            if at + 4 + n > size:
                raise _UnsupportedLayoutError
            offsets[row], lengths[row] = base + body + at + 4, n
            at, row = at + 4 + n, row + 1
        pos = body + size
    return Spans(offsets, lengths)


def _v1_values(header: Any, page: memoryview, max_def: int) -> tuple[int, int]:
    """(values, where they start) of a v1 data page without nulls."""
    if not isinstance(header, dict) or header.get(2) != _PLAIN:
        raise _UnsupportedLayoutError
    count = header.get(1)
    if not isinstance(count, int):
        raise _UnsupportedLayoutError
    if max_def == 0:
        return count, 0
    if max_def != 1 or header.get(3) != _RLE:
        raise _UnsupportedLayoutError
    levels = int.from_bytes(page[:4], "little")
    _all_defined(page[4 : 4 + levels], count)
    return count, 4 + levels


def _v2_values(header: Any, page: memoryview) -> tuple[int, int]:
    """(values, where they start) of a v2 data page without nulls (levels are stored before the values)."""
    if not isinstance(header, dict) or header.get(4) != _PLAIN or header.get(2) != 0:
        raise _UnsupportedLayoutError
    count, def_len, rep_len = header.get(1), header.get(5), header.get(6)
    if not all(isinstance(v, int) for v in (count, def_len, rep_len)):
        raise _UnsupportedLayoutError
    return int(count), int(def_len) + int(rep_len)  # type: ignore[arg-type]


def _all_defined(levels: memoryview, count: int) -> None:
    """Definition levels (bit width 1, RLE/bit-packed hybrid) must all be 1: no nulls (else pyarrow reads it)."""
    seen = pos = 0
    while seen < count:
        head, pos = thrift.read_varint(levels, pos)
        if head & 1:  # bit-packed: groups of 8 values, one byte each at bit width 1
            groups = head >> 1
            if pos + groups > len(levels):
                raise _UnsupportedLayoutError
            bits = np.unpackbits(np.frombuffer(levels[pos : pos + groups], np.uint8), bitorder="little")
            if not bits[: count - seen].all():
                raise _UnsupportedLayoutError
            seen, pos = seen + 8 * groups, pos + groups
        else:
            run, value, pos = head >> 1, levels[pos], pos + 1
            if value != 1 or run == 0:
                raise _UnsupportedLayoutError
            seen += run

"""TFRecord framing with CRC-32C checks, read without TensorFlow.

A TFRecord file is a run of records, each::

    u64le length | u32le masked_crc(length bytes) | data[length] | u32le masked_crc(data)

where ``masked_crc(x) = ((c >> 15 | c << 17) + 0xA282EAD8) mod 2**32`` and ``c`` is CRC-32C (Castagnoli) of ``x``.
The CRC comes from ``google-crc32c`` (Apache-2.0, C). A bad data CRC spoils one record (the next one still starts
where the length says); a bad length CRC or a short read spoils the rest of the file, because the length can no
longer be trusted. Errors name the file, the record number and the byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rdstd.errors import CorruptSourceError, MissingDependencyError
from rdstd.formats.files import unreadable

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def _crc32c() -> Callable[[bytes], int]:
    try:
        import google_crc32c
    except ImportError as exc:
        raise MissingDependencyError("google-crc32c", "rlds", purpose="check TFRecord checksums") from exc
    value: Callable[[bytes], int] = google_crc32c.value
    return value


def masked_crc32c(data: bytes, crc: Callable[[bytes], int] | None = None) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    c = (crc or _crc32c())(data)
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One record framed as TFRecord (used by writers of fixtures and by tests)."""
    crc = _crc32c()
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length, crc)) + data + struct.pack("<I", masked_crc32c(data, crc))


@dataclass(frozen=True)
class Record:
    """One record's payload and where it was found."""

    index: int
    offset: int
    data: bytes


class RecordCorruptError(CorruptSourceError):
    """One record is damaged but the file goes on (its data CRC does not match); the next record is readable."""


class TFRecordReader:
    """Reads one TFRecord file sequentially or by record number, checking CRCs.

    ``next_record()`` keeps its place after a :class:`RecordCorruptError` error, so a caller can skip one bad record;
    after a framing error (bad length CRC, truncated file) the rest of the file is unreadable and iteration ends.
    Offsets of records seen so far are remembered, so reading record ``n`` after record ``n-1`` costs no scan.
    """

    def __init__(self, path: Path, *, check_crc: bool = True) -> None:
        self.path = path
        self.check_crc = check_crc
        self._crc = _crc32c() if check_crc else None
        try:
            self._file: BinaryIO = path.open("rb")
            self._size = path.stat().st_size
        except OSError as exc:
            raise unreadable(path, exc) from exc
        self._offsets: list[int] = [0]  # offsets[i] = start of record i, as far as scanned
        self._next = 0  # index of the record next_record() returns
        self._broken: tuple[int, CorruptSourceError] | None = None

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> TFRecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _where(self, index: int, offset: int) -> str:
        return f"{self.path}: record {index} (byte {offset})"

    def _read_header(self, index: int, offset: int) -> int | None:
        """The record length at ``offset``, or ``None`` at a clean end of file."""
        self._file.seek(offset)
        head = self._file.read(_HEADER.size)
        if not head:
            return None
        if len(head) < _HEADER.size:
            raise CorruptSourceError(
                f"{self._where(index, offset)}: shard is truncated inside a record header "
                f"({len(head)} of {_HEADER.size} bytes)",
                hint="the file was cut short; re-copy it, or pass --on-error skip to keep the records before it",
                situation="shard-truncated",
            )
        length, length_crc = _HEADER.unpack(head)
        if self._crc is not None and masked_crc32c(head[:8], self._crc) != length_crc:
            raise CorruptSourceError(
                f"{self._where(index, offset)}: length CRC mismatch, the rest of the shard cannot be framed",
                hint="the file is damaged; re-copy it, or pass --on-error skip to keep the records before it",
                situation="record-crc-mismatch",
            )
        end = offset + _HEADER.size + length + _FOOTER.size
        if end > self._size:
            raise CorruptSourceError(
                f"{self._where(index, offset)}: shard is truncated (record needs {end - offset} bytes, "
                f"{self._size - offset} left)",
                hint="the file was cut short; re-copy it, or pass --on-error skip to keep the records before it",
                situation="shard-truncated",
            )
        return int(length)

    def _read_body(self, index: int, offset: int, length: int) -> bytes:
        self._file.seek(offset + _HEADER.size)
        data = self._file.read(length)  # the record's bytes as read (no slice copy of a large record)
        if self._crc is not None:
            (data_crc,) = _FOOTER.unpack(self._file.read(_FOOTER.size))
            if masked_crc32c(data, self._crc) != data_crc:
                raise RecordCorruptError(
                    f"{self._where(index, offset)}: data CRC mismatch ({length} bytes)",
                    hint="the record is damaged; pass --on-error skip to go on with the next record",
                    situation="record-crc-mismatch",
                )
        return data

    def _fail(self, index: int, exc: CorruptSourceError) -> CorruptSourceError:
        self._broken = (index, exc)
        return exc

    def _offset_of(self, index: int) -> int | None:
        """Start of record ``index`` (scanning headers forward as needed), or ``None`` past the end."""
        if self._broken is not None and index >= self._broken[0]:
            at, exc = self._broken
            if index == at:
                raise exc
            raise CorruptSourceError(
                f"{self.path}: record {index} is unreachable, framing broke at record {at}: {exc.message}",
                hint=exc.hint,
                situation="record-unreachable",
            )
        while len(self._offsets) <= index:
            i = len(self._offsets) - 1
            start = self._offsets[i]
            if start >= self._size:
                return None
            try:
                length = self._read_header(i, start)
            except CorruptSourceError as exc:
                raise self._fail(i, exc) from None
            if length is None:
                return None
            self._offsets.append(start + _HEADER.size + length + _FOOTER.size)
        offset = self._offsets[index]
        return None if offset >= self._size else offset

    def read(self, index: int) -> Record:
        """Record ``index`` (0-based); raises :class:`~rdstd.errors.CorruptSourceError` when it is not there."""
        offset = self._offset_of(index)
        if offset is None:
            raise CorruptSourceError(
                f"{self.path}: record {index} does not exist (the shard holds {self.count()} records)",
                hint="dataset_info.json shardLengths disagree with the file; the shard may be truncated",
                situation="record-not-found",
            )
        try:
            length = self._read_header(index, offset)
        except CorruptSourceError as exc:
            raise self._fail(index, exc) from None
        if length is None:  # pragma: no cover - offset < size
            raise CorruptSourceError(
                f"{self.path}: record {index} vanished while reading", situation="record-not-found"
            )
        return Record(index, offset, self._read_body(index, offset, length))

    def next_record(self) -> Record | None:
        """The next record in file order, or ``None`` at the end (and after a framing error was raised once)."""
        index = self._next
        if self._broken is not None and index > self._broken[0]:
            return None
        self._next = index + 1
        if self._offset_of(index) is None:
            self._next = index
            return None
        return self.read(index)

    def __iter__(self) -> Iterator[Record]:
        while (record := self.next_record()) is not None:
            yield record

    def count(self) -> int:
        """Number of records (scans the headers; raises on a framing error)."""
        i = len(self._offsets) - 1
        while self._offset_of(i) is not None:
            i += 1
        return i

    def readable(self) -> tuple[int, CorruptSourceError | None]:
        """Records that frame cleanly from the start (headers and lengths only, no payload read), and the
        framing error that ends them (``None`` when the file ends cleanly after the last record)."""
        try:
            return self.count(), None
        except CorruptSourceError as exc:
            at = self._broken[0] if self._broken is not None else len(self._offsets) - 1
            return at, exc


def scan(path: Path, *, check_crc: bool = True) -> tuple[int, int]:
    """Read every record of ``path`` with CRC checks (no parsing): (records, payload bytes). For benchmarks."""
    crc = _crc32c() if check_crc else None
    records = total = 0
    try:
        f = path.open("rb")
    except OSError as exc:
        raise unreadable(path, exc) from exc
    with f:
        offset = 0
        while head := f.read(_HEADER.size):
            if len(head) < _HEADER.size:
                raise CorruptSourceError(
                    f"{path}: record {records} (byte {offset}): truncated header", situation="shard-truncated"
                )
            length, length_crc = _HEADER.unpack(head)
            body = f.read(length + _FOOTER.size)
            if len(body) < length + _FOOTER.size:
                raise CorruptSourceError(
                    f"{path}: record {records} (byte {offset}): truncated", situation="shard-truncated"
                )
            if crc is not None:
                (data_crc,) = _FOOTER.unpack(body[length:])
                if masked_crc32c(head[:8], crc) != length_crc or masked_crc32c(body[:length], crc) != data_crc:
                    raise CorruptSourceError(
                        f"{path}: record {records} (byte {offset}): CRC mismatch", situation="record-crc-mismatch"
                    )
            records += 1
            total += length
            offset += _HEADER.size + length + _FOOTER.size
    return records, total

"""One reader interface over the two shard formats tfds writes: TFRecord and ArrayRecord.

Both hold the same serialized ``tf.train.Example`` payloads. TFRecord is read by our own framing code
(:mod:`rdstd.formats.rlds.tfrecord`, CRCs checked); ArrayRecord (a Riegeli container with a record index) is read
with Google's ``array_record`` package (Apache-2.0), which checks its own chunk hashes.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

from rdstd.errors import CorruptSourceError, MissingDependencyError
from rdstd.formats.files import check_readable
from rdstd.formats.rlds.tfrecord import Record, TFRecordReader


class ShardReader(Protocol):
    """Sequential and random access to one shard's records."""

    path: Path

    def read(self, index: int) -> Record:
        """Record ``index``; raises :class:`~rdstd.errors.CorruptSourceError` naming the shard and record."""
        ...

    def next_record(self) -> Record | None:
        """The next record in file order, ``None`` at the end. Keeps its place after a one-record error."""
        ...

    def count(self) -> int:
        """Number of records in the shard."""
        ...

    def readable(self) -> tuple[int, CorruptSourceError | None]:
        """Records readable from the start, and the error that ends them early (``None``: all are there)."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class ArrayRecordShard:
    """An ArrayRecord shard (random access through its index)."""

    def __init__(self, path: Path) -> None:
        try:
            module: Any = importlib.import_module("array_record.python.array_record_module")
        except ImportError as exc:
            raise MissingDependencyError("array_record", "rlds", purpose="read ArrayRecord shards") from exc
        self.path = path
        try:
            self._reader: Any = module.ArrayRecordReader(str(path))
            self._count = int(self._reader.num_records())
        except RuntimeError as exc:
            raise CorruptSourceError(
                f"{path}: not a readable ArrayRecord file ({exc})", situation="array-record-unreadable"
            ) from exc
        self._next = 0

    def read(self, index: int) -> Record:
        """Record ``index``."""
        if not 0 <= index < self._count:
            raise CorruptSourceError(
                f"{self.path}: record {index} does not exist (the shard holds {self._count})",
                situation="record-not-found",
            )
        try:
            (data,) = self._reader.read([index])
        except RuntimeError as exc:
            raise CorruptSourceError(
                f"{self.path}: record {index}: cannot be read ({exc})", situation="record-unreadable"
            ) from exc
        return Record(index, -1, bytes(data))

    def next_record(self) -> Record | None:
        """The next record, or ``None`` at the end."""
        if self._next >= self._count:
            return None
        self._next += 1
        return self.read(self._next - 1)

    def count(self) -> int:
        """Number of records (from the file's index)."""
        return self._count

    def readable(self) -> tuple[int, CorruptSourceError | None]:
        """Every record the index lists (chunk damage shows when a record is read)."""
        return self._count, None

    def close(self) -> None:
        """Close the file."""
        self._reader.close()


def open_shard(path: Path, file_format: str, *, check_crc: bool = True, root: Path | None = None) -> ShardReader:
    """A reader for one shard of ``file_format`` (``tfrecord`` or ``array_record``).

    The file is checked first: one that cannot be read, or a Git LFS pointer in its place (``root`` is the
    dataset folder, for the fetch command), raises its own clear error rather than a framing error.
    """
    check_readable(path, root)
    if file_format == "array_record":
        return ArrayRecordShard(path)
    return TFRecordReader(path, check_crc=check_crc)

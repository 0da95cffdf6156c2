"""Canonical datasets in object storage: ``rdstd.open("s3://bucket/ds")`` (any fsspec URL).

Files are read through fsspec with a persistent local block cache (:class:`BlockFile`): a read fetches the whole
``BLOCK_SIZE`` blocks it touches (read-ahead; consecutive missing blocks in one request) and keeps each as a file
on local disk, so a second epoch, another DataLoader worker or a later run reads the same bytes without the network.
Blocks are filed under the remote file's version (its metadata: ETag, size, modification time), so a dataset
rewritten at the same URL is never served from stale blocks. Blocks are written to a temporary name and renamed, so
processes share the cache without locks. Video files are fetched whole into the cache (PyAV seeks in them).

fsspec (and s3fs for ``s3://``: ``pip install 'rdstd[cloud]'``) are imported only when a URL is opened.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rdstd.errors import CorruptDatasetError, MissingDependencyError, SchemaError, SourceNotFoundError

#: ``scheme://`` at the start of a string marks a URL (a Windows drive ``C:\\`` has no ``//``).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: Bytes fetched per request and cached per block: large enough to read ahead a row group, small enough to skip.
BLOCK_SIZE = 8 * 2**20


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a location in a filesystem other than the local one (``s3://``, ``gs://``, ...)."""
    return isinstance(path, str) and bool(_URL.match(path)) and not path.startswith("file://")


def cache_root() -> Path:
    """Where remote blocks are cached: ``$RDSTD_CACHE/remote``, else ``~/.cache/rdstd/remote``."""
    base = os.environ.get("RDSTD_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "rdstd") / "remote"


@dataclass(frozen=True)
class RemotePath:
    """A file or folder in object storage, with the few ``pathlib`` operations the reader uses.

    Picklable (fsspec filesystems pickle by their arguments), so datasets opened from a URL go to DataLoader
    workers like local ones; each process opens its own handles and shares the on-disk block cache. A forked
    process makes its own filesystem object (s3fs's event loop does not survive a fork).
    """

    _fs: Any  # fsspec.AbstractFileSystem of the URL, made in process _pid
    protocol: str
    key: str  # the path inside the filesystem, no scheme
    cache: Path
    _pid: int = field(default_factory=os.getpid)

    @property
    def fs(self) -> Any:
        """The filesystem, made anew in a process other than the one that made it (fsspec then clears its
        instance cache, so the new object has its own connections)."""
        if self._pid != os.getpid():
            fs = type(self._fs)(*self._fs.storage_args, **self._fs.storage_options)
            object.__setattr__(self, "_fs", fs)
            object.__setattr__(self, "_pid", os.getpid())
        return self._fs

    @classmethod
    def from_url(cls, url: str, storage_options: dict[str, Any] | None = None) -> RemotePath:
        """The dataset at ``url``; its blocks are cached under :func:`cache_root` (a folder per URL)."""
        try:
            import fsspec
        except ImportError as exc:
            raise MissingDependencyError("fsspec", "cloud", purpose=f"read {url}") from exc
        protocol = url.split("://", 1)[0]
        try:
            target, key = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except ImportError as exc:  # fsspec knows the protocol but its package (s3fs, gcsfs, ...) is missing
            raise MissingDependencyError(protocol, "cloud", purpose=f"read {url} ({exc})") from exc
        except ValueError as exc:
            raise SourceNotFoundError(
                f"{url}: unknown storage protocol {protocol!r} ({exc})",
                hint="check the URL",
                situation="protocol-unknown",
            ) from exc
        key = key.rstrip("/")
        target.invalidate_cache()  # listings cached by an earlier open may describe files since rewritten
        cache = cache_root() / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
        return cls(target, protocol, key, cache)

    def __truediv__(self, rel: str) -> RemotePath:
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise SchemaError(
                f"{self}: {rel!r} points outside the dataset",
                hint="the dataset is corrupt; rebuild it",
                situation="path-outside-dataset",
            )
        return RemotePath(self.fs, self.protocol, "/".join([self.key, *parts]), self.cache)

    def __str__(self) -> str:
        return f"{self.protocol}://{self.key}"

    @property
    def name(self) -> str:
        """The last component (as ``Path.name``)."""
        return self.key.rsplit("/", 1)[-1]

    def exists(self) -> bool:
        """Whether a file or folder is there (a prefix with objects under it counts as a folder)."""
        return bool(self.fs.exists(self.key))

    def is_file(self) -> bool:
        """Whether a file (object) is there."""
        return bool(self.fs.isfile(self.key))

    def open(self) -> IO[bytes]:
        """The file opened for reading through the local block cache (memory:// and file:// directly)."""
        if _is_local(self.fs):
            return self.fs.open(self.key, "rb")  # type: ignore[no-any-return]
        return io.BufferedReader(BlockFile(self.fs, self.key, self.cache / "blocks"), buffer_size=2**16)

    def read_bytes(self) -> bytes:
        """The whole file."""
        with self.open() as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        """The whole file as text."""
        return self.read_bytes().decode(encoding)

    def local(self) -> Path:
        """The whole file in the local cache (fetched once; fetched again when the remote file changed)."""
        file = self.cache / "files" / file_version(self.fs, self.key) / self.name
        if not file.is_file():
            file.parent.mkdir(parents=True, exist_ok=True)
            part = file.with_name(f".{file.name}.{os.getpid()}.part")
            self.fs.get_file(self.key, str(part))
            part.replace(file)
        return file

    def join_ref(self, rel: str) -> Path:
        """A video frame reference (relative to the dataset) as a local file: fetched whole into the cache."""
        return (self / rel).local()


def _is_local(fs: Any) -> bool:
    """Whether ``fs`` keeps its files in this process or on this machine already (nothing to cache)."""
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    return isinstance(fs, LocalFileSystem | MemoryFileSystem)


def file_version(fs: Any, key: str, info: dict[str, Any] | None = None) -> str:
    """A name for the current version of a remote file: a digest of its metadata (ETag, size, mtime ...)."""
    info = fs.info(key) if info is None else info
    text = json.dumps({k: v for k, v in info.items() if k != "name"}, sort_keys=True, default=str)
    return hashlib.sha256(f"{key}\0{text}".encode()).hexdigest()[:32]


class BlockFile(io.RawIOBase):
    """A remote file read in ``BLOCK_SIZE`` blocks kept as files under ``cache/<version>/`` (see the module)."""

    def __init__(self, fs: Any, key: str, cache: Path, block_size: int = BLOCK_SIZE) -> None:
        super().__init__()
        self.fs, self.key, self.block_size = fs, key, block_size
        info = fs.info(key)
        self.size = int(info["size"])
        self.folder = cache / file_version(fs, key, info)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self.pos + len(view), self.size)
        if end <= self.pos:
            return 0
        first, last = self.pos // self.block_size, (end - 1) // self.block_size
        blocks = self._blocks(first, last)
        data = blocks[0] if first == last else b"".join(blocks)
        start = self.pos - first * self.block_size
        n = end - self.pos
        view[:n] = data[start : start + n]
        self.pos = end
        return n

    def _blocks(self, first: int, last: int) -> list[bytes]:
        """Blocks ``first..last``: from disk, the missing ones fetched in one request per run and stored."""
        found: dict[int, bytes] = {}
        for i in range(first, last + 1):
            file = self.folder / str(i)
            if file.is_file():
                found[i] = file.read_bytes()
        missing = [i for i in range(first, last + 1) if i not in found]
        while missing:
            run = [missing[0]]
            while len(run) < len(missing) and missing[len(run)] == run[-1] + 1:
                run.append(missing[len(run)])
            start, stop = run[0] * self.block_size, min((run[-1] + 1) * self.block_size, self.size)
            data = self.fs.cat_file(self.key, start=start, end=stop)
            if len(data) != stop - start:
                raise CorruptDatasetError(
                    f"{self.fs.unstrip_protocol(self.key)}: the file is shorter than its listing says "
                    f"({start + len(data)} of {self.size} bytes); it changed while it was read",
                    hint="open the dataset again",
                    situation="remote-file-short",
                )
            self.folder.mkdir(parents=True, exist_ok=True)
            for k, i in enumerate(run):
                block = data[k * self.block_size : (k + 1) * self.block_size]
                part = self.folder / f".{i}.{os.getpid()}.part"
                part.write_bytes(block)
                part.replace(self.folder / str(i))
                found[i] = block
            missing = missing[len(run) :]
        return [found[i] for i in range(first, last + 1)]

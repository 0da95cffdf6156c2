"""Canonical datasets in object storage: ``rdstd.open("s3://bucket/ds")`` (any fsspec URL).

Files are read through fsspec with a persistent local block cache (``blockcache``): the first read of a byte range
fetches whole blocks (``block_size``, read-ahead) and keeps them on local disk, so a second epoch, a second process
or a second run reads the same shards without touching the network. Each file's remote identity (ETag / mtime) is
checked when it is opened (``check_files``), so a dataset rewritten at the same URL is never served from stale
blocks. Video files are fetched whole into the cache (PyAV seeks in them).

fsspec (and s3fs for ``s3://``: ``pip install 'rdstd[cloud]'``) are imported only when a URL is opened.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rdstd.errors import MissingDependencyError, SchemaError, SourceNotFoundError

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
    workers like local ones; each process opens its own handles and shares the on-disk block cache.
    """

    fs: Any  # fsspec.AbstractFileSystem (the caching one)
    protocol: str
    key: str  # the path inside the filesystem, no scheme
    cache: Path

    @classmethod
    def from_url(cls, url: str, storage_options: dict[str, Any] | None = None) -> RemotePath:
        """The dataset at ``url``, read through a block cache under :func:`cache_root` (per URL)."""
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
                f"{url}: unknown storage protocol {protocol!r} ({exc})", hint="check the URL"
            ) from exc
        key = key.rstrip("/")
        target.invalidate_cache()  # listings cached by an earlier open may describe files since rewritten
        cache = cache_root() / hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
        cache.mkdir(parents=True, exist_ok=True)
        if isinstance(target, _uncached()):  # already local (memory://, file://): nothing to cache
            return cls(target, protocol, key, cache)
        fs = fsspec.filesystem(
            "blockcache", fs=target, cache_storage=str(cache), check_files=True, cache_mapper=_VersionMapper(target)
        )
        return cls(fs, protocol, key, cache)

    def __truediv__(self, rel: str) -> RemotePath:
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise SchemaError(f"{self}: {rel!r} points outside the dataset", hint="the dataset is corrupt; rebuild it")
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
        """The file opened for reading through the block cache (reads fetch and keep ``BLOCK_SIZE`` blocks)."""
        return self.fs.open(self.key, "rb", block_size=BLOCK_SIZE)  # type: ignore[no-any-return]

    def read_bytes(self) -> bytes:
        """The whole file."""
        with self.open() as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        """The whole file as text."""
        return self.read_bytes().decode(encoding)

    def local(self) -> Path:
        """The whole file in the local cache (fetched once; refetched when the remote file changed)."""
        file = self.cache / "files" / self.key.replace("/", "%2F")
        stamp = file.with_name(file.name + ".version")
        remote = getattr(self.fs, "fs", self.fs)  # the filesystem under the block cache
        version = str(remote.ukey(self.key))
        if not (file.is_file() and stamp.is_file() and stamp.read_text() == version):
            file.parent.mkdir(parents=True, exist_ok=True)
            part = file.with_name(file.name + f".{os.getpid()}.part")
            remote.get_file(self.key, str(part))
            part.replace(file)
            stamp.write_text(version)
        return file

    def join_ref(self, rel: str) -> Path:
        """A video frame reference (relative to the dataset) as a local file: fetched whole into the cache."""
        return (self / rel).local()


def _uncached() -> tuple[type, ...]:
    from fsspec.implementations.local import LocalFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    return (LocalFileSystem, MemoryFileSystem)


class _VersionMapper:
    """Cache file names from the remote path *and* its version (ETag / mtime): a file rewritten at the same URL gets
    a new sparse file instead of the old one's blocks (fsspec reuses the old file, which then fails to map)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def __call__(self, path: str) -> str:
        return hashlib.sha256(f"{path}\0{self.target.ukey(path)}".encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _VersionMapper) and other.target is self.target

    def __hash__(self) -> int:
        return id(self.target)

"""Where a batch job keeps its files: a local folder, or a prefix in object storage (any fsspec URL).

Local folders get atomic writes (temporary name, fsync, rename); in object storage every file is one object put
whole (a multipart upload for large ones), which readers see only once complete. Workers on a cluster reach the
same staging area and output through the URL; credentials and endpoints come from the environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` … for ``s3://``), as for ``rdstd.open``.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

from rdstd.io import atomic
from rdstd.io.remote import RemotePath, is_url

#: What a hard link fails with where a copy still works (another file system, no link support, too many links).
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


class Place:
    """A folder (local path or URL) with the few operations a batch job needs, by path relative to it."""

    def __init__(self, location: str) -> None:
        self.location = location.rstrip("/") if is_url(location) else location
        self._remote: RemotePath | None = RemotePath.from_url(self.location) if is_url(location) else None

    @property
    def remote(self) -> bool:
        """Whether the place is in object storage."""
        return self._remote is not None

    def __str__(self) -> str:
        return self.location

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"])  # type: ignore[misc]  # each process makes its own connections

    def path(self, rel: str) -> Path:
        """The local path of ``rel`` (local places only)."""
        assert self._remote is None
        return Path(self.location) / rel

    def _key(self, rel: str) -> str:
        assert self._remote is not None
        return f"{self._remote.key}/{rel}" if rel else self._remote.key

    @property
    def _fs(self) -> Any:
        assert self._remote is not None
        return self._remote.fs

    def url(self, rel: str) -> str:
        """``rel`` as a path or URL (for messages and scripts)."""
        return f"{self.location}/{rel}"

    def exists(self, rel: str) -> bool:
        """Whether a file is at ``rel``."""
        if self._remote is None:
            return self.path(rel).exists()
        return bool(self._fs.exists(self._key(rel)))

    def read_bytes(self, rel: str) -> bytes:
        """The file at ``rel``."""
        if self._remote is None:
            return self.path(rel).read_bytes()
        return bytes(self._fs.cat_file(self._key(rel)))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``rel`` whole (locally: atomically)."""
        if self._remote is None:
            self.path(rel).parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(self.path(rel), data)
        else:
            self._fs.pipe_file(self._key(rel), data)

    def put_file(self, local: Path, rel: str) -> None:
        """Copy the local file ``local`` to ``rel`` (locally: atomically)."""
        if self._remote is None:
            target = self.path(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic.atomic_path(target) as tmp:
                shutil.copyfile(local, tmp)
        else:
            self._fs.put_file(str(local), self._key(rel))

    def put_tree(self, local: Path, rel: str) -> None:
        """Copy every file under ``local`` to the folder ``rel``."""
        for file in sorted(p for p in local.rglob("*") if p.is_file()):
            self.put_file(file, f"{rel}/{file.relative_to(local).as_posix()}")

    def fetch(self, rel: str, scratch: Path) -> Path:
        """A local file holding ``rel``: the file itself when local, else a copy in ``scratch``."""
        if self._remote is None:
            return self.path(rel)
        target = scratch / rel.replace("/", "__")
        self._fs.get_file(self._key(rel), str(target))
        return target

    def copy_to(self, rel: str, other: Place, other_rel: str) -> None:
        """Copy ``rel`` to ``other_rel`` in ``other`` (a hard link when both are local; server-side in one store)."""
        if self._remote is None and other._remote is None:
            target = other.path(other_rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            try:
                target.hardlink_to(self.path(rel))
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                other.put_file(self.path(rel), other_rel)  # a file system without hard links: a copy
        elif self._remote is not None and other._remote is not None and self._remote.protocol == other._remote.protocol:
            self._fs.copy(self._key(rel), other._key(other_rel))
        else:
            with self._fs.open(self._key(rel), "rb") if self._remote is not None else self.path(rel).open("rb") as f:
                other.write_bytes(other_rel, f.read())

    def remove(self, rel: str = "") -> None:
        """Remove ``rel`` (a file or a folder), or the whole place."""
        if self._remote is None:
            target = self.path(rel) if rel else Path(self.location)
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        elif self._fs.exists(self._key(rel)):
            self._fs.rm(self._key(rel), recursive=True)

"""Sources in object storage: a local mirror each machine keeps in its cache, read by the backends as files.

The backends read files with their own libraries (h5py, zarr, TFRecord and bag readers), so a source at an
fsspec URL (``s3://bucket/bridge``) is mirrored into ``$RDSTD_CACHE/sources/<digest of the URL>/<name>`` (default
``~/.cache/rdstd``) and converted from there. Each file is fetched once per version (its ETag, size and
modification time): a rerun, a resumed run or another worker process on the same machine fetches nothing again,
and a file rewritten at the same URL is fetched anew. Files are fetched to a temporary name and renamed; one
process at a time mirrors a given URL (a lock file), so a machine's workers share one copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from rdstd.errors import SourceNotFoundError
from rdstd.formats.base import UNIT_EPISODES, EpisodeRef, SourceDataset, SourceEpisode, SourceInfo, WorkUnit
from rdstd.io import atomic
from rdstd.io.remote import RemotePath, cache_root, file_version

#: The mirror's record of the version of every file it holds (relative path -> version).
VERSIONS = ".rdstd-mirror.json"


def mirror_root(url: str) -> Path:
    """Where the source at ``url`` is mirrored on this machine."""
    url = url.rstrip("/")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_root().parent / "sources" / digest / url.rsplit("/", 1)[-1]


def mirror_source(url: str) -> Path:
    """The source at ``url`` as a local folder (or file), fetched into the cache where it is missing or stale."""
    remote = RemotePath.from_url(url)
    fs = remote.fs
    root = mirror_root(url)
    root.parent.mkdir(parents=True, exist_ok=True)
    with _locked(root.parent / ".lock"):
        if fs.isfile(remote.key):  # a single-file source (a bag, an HDF5 file)
            files = {"": fs.info(remote.key)}
        else:
            files = {_rel(remote.key, name): info for name, info in fs.find(remote.key, detail=True).items()}
            if not files:
                raise SourceNotFoundError(
                    f"{url}: nothing is there",
                    hint="check the URL and the credentials (AWS_* variables, AWS_ENDPOINT_URL)",
                    situation="source-url-empty",
                )
        record = root.parent / VERSIONS
        held: dict[str, str] = json.loads(record.read_text()) if record.is_file() else {}
        for rel, info in sorted(files.items()):
            version = file_version(fs, info["name"], info)
            target = root / rel if rel else root
            if held.get(rel) == version and target.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic.atomic_path(target) as tmp:
                fs.get_file(info["name"], str(tmp))
            held[rel] = version
        for rel in set(held) - set(files):  # gone from the source: gone from the mirror
            (root / rel if rel else root).unlink(missing_ok=True)
            del held[rel]
        atomic.write_bytes(record, json.dumps(held, sort_keys=True).encode())
    return root


def _rel(key: str, name: str) -> str:
    return name[len(key) :].lstrip("/")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[Any]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class MirroredSource(SourceDataset):
    """A source opened from its local mirror, whose episodes are named by the URL: a file path under the mirror in
    an :class:`EpisodeRef` (what the work units, the job and the canonical ``source_path`` hold) is the URL plus the
    path inside the source, so the output and the staged job never hold one machine's cache path; reading maps it
    back to this machine's mirror."""

    format: ClassVar[str] = "mirrored"

    def __init__(self, inner: SourceDataset, url: str, root: Path) -> None:
        super().__init__(root)
        self.inner, self.url, self.root = inner, url.rstrip("/"), str(root)

    def _to_url(self, ref: EpisodeRef) -> EpisodeRef:
        if ref.path == self.root or ref.path.startswith(self.root + "/"):
            return dataclasses.replace(ref, path=self.url + ref.path[len(self.root) :])
        return ref

    def _to_local(self, ref: EpisodeRef) -> EpisodeRef:
        if ref.path == self.url or ref.path.startswith(self.url + "/"):
            return dataclasses.replace(ref, path=self.root + ref.path[len(self.url) :])
        return ref

    def _named(self, value: Any) -> Any:
        """``value`` with every path under the mirror (in text, lists, dicts) named by the URL."""
        if isinstance(value, str):
            return value.replace(self.root, self.url) if self.root in value else value
        if isinstance(value, dict):
            return {k: self._named(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._named(v) for v in value)
        return value

    def info(self) -> SourceInfo:
        """The source's description (its path, and paths the backend reports: named by the URL)."""
        info = self.inner.info()
        return dataclasses.replace(info, path=self.url, extra=self._named(info.extra))

    def episode_refs(self) -> Sequence[EpisodeRef]:
        """The source's episodes, named by the URL."""
        return [self._to_url(r) for r in self.inner.episode_refs()]

    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """The episode read from the mirror; its ref named by the URL."""
        episode = self.inner.read_episode(self._to_local(ref))
        episode.ref = ref
        episode.meta = self._named(episode.meta)
        return episode

    def work_units(self, refs: Sequence[EpisodeRef] | None = None, max_episodes: int = UNIT_EPISODES) -> list[WorkUnit]:
        """The source's own units (as the backend cuts them), named by the URL."""
        local = None if refs is None else [self._to_local(r) for r in refs]
        units = self.inner.work_units(local, max_episodes)
        return [dataclasses.replace(u, refs=tuple(self._to_url(r) for r in u.refs)) for u in units]

    def configure(self, options: Mapping[str, Any], origin: str) -> None:
        """The backend's options."""
        self.inner.configure(options, origin)

    def close(self) -> None:
        """Close the backend's files."""
        self.inner.close()


def open_mirrored(url: str, opener: Callable[[Path], SourceDataset]) -> SourceDataset:
    """The source at ``url`` opened (by ``opener``) from this machine's mirror of it, named by the URL."""
    root = mirror_source(url)
    return MirroredSource(opener(root), url, root)

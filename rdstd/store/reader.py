"""Reading canonical datasets: ``rdstd.open(path)`` returns a :class:`Dataset`.

Random access by global frame index goes episode table -> shard -> row group (from the Parquet footer) ->
row; the last few row groups read are cached so sequential reads touch each once. Images are returned
decoded; :meth:`Dataset.episode` decodes them only when asked. Shard handles are opened per process, so a
Dataset can be handed to worker processes (torch DataLoader, multiprocessing) after fork or pickling.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import unquote, urlsplit

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from rdstd.errors import (
    CorruptDatasetError,
    CorruptSourceError,
    IncompleteDatasetError,
    SchemaError,
    SourceNotFoundError,
    UsageError,
)
from rdstd.io.parquet import PARQUET_ERRORS
from rdstd.media import images, video
from rdstd.media.lru import LruCache
from rdstd.schema.episode import EpisodeMeta
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.manifest import Manifest
from rdstd.schema.validation import first_problem
from rdstd.schema.vocabulary import ImageCodec
from rdstd.store import layout, merged, output, pages

if TYPE_CHECKING:
    from rdstd.io.remote import RemotePath

_ROW_GROUP_CACHE = 4
#: Column chunks whose value spans stay known (a few hundred bytes each: 16k chunks of 8 frames are ~5 MB).
_SPANS_CACHE = 16384
#: Shards whose low-dimensional columns stay in memory (each at most 100k frames of vectors).
_SHARD_CACHE = 8
#: Prefix of the cached validity of a vector column with nulls (a merged dataset's absent features).
_VALID = "\0valid:"


def read_manifest(path: Path | RemotePath) -> Manifest:
    """Load and validate ``rdstd.json`` of the dataset at ``path`` (clear errors for every failure)."""
    state = output.write_state(path) if isinstance(path, Path) else None  # writer locks are local
    if state is not None:
        raise IncompleteDatasetError(f"{path}: {state[0]}", hint=state[1], situation="write-unfinished")
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such dataset", hint="check the path", situation="dataset-missing")
    file = path / layout.MANIFEST
    marker = path / layout.WRITING_MARKER
    if marker.exists():
        raise IncompleteDatasetError(
            f"{path}: the write of this dataset did not finish ({layout.WRITING_MARKER} is still there)",
            hint="this is the temporary folder of a write that did not finish; run the conversion again",
            situation="write-unfinished",
        )
    if not file.is_file():
        raise SchemaError(
            f"{path}: not a canonical rdstd dataset (no {layout.MANIFEST})",
            hint="convert the source first: rdstd convert SRC OUT",
            situation="not-a-dataset",
        )
    text = file.read_bytes()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{file}: corrupt manifest, not JSON ({exc})",
            hint="rebuild with rdstd convert",
            situation="manifest-not-json",
        ) from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        where, problem = first_problem(exc)
        hint = (
            "upgrade rdstd to read it"
            if where == "schema_version"
            else "the dataset is corrupt or from another rdstd version; rebuild it with rdstd convert"
        )
        raise SchemaError(
            f"{file}: invalid manifest at {where} ({version=}): {problem}", hint=hint, situation="manifest-invalid"
        ) from exc


@dataclass
class EpisodeData:
    """One episode read back: metadata, timestamps, vectors, and lazily decoded images."""

    index: int
    meta: EpisodeMeta
    timestamps: npt.NDArray[np.float64]
    vectors: dict[str, npt.NDArray[Any]]
    images: dict[str, LazyImages]

    @property
    def length(self) -> int:
        """Number of frames."""
        return int(self.timestamps.shape[0])


class LazyImages(Sequence[npt.NDArray[Any]]):
    """A camera's frames in an episode: ``[i]`` decodes frame i, ``.encoded[i]`` gives the stored bytes.

    For a camera kept as video (``root`` given) the column holds frame references, and ``[i]`` decodes the
    frame from the video file by its timestamp.
    """

    def __init__(
        self, encoded: pa.Array, feature: ImageFeature, root: Path | RemotePath | None = None, *, where: str = ""
    ) -> None:
        self._encoded = encoded
        self._feature = feature
        self._root = root
        self._where = where  # "<shard file>, episode N" for errors

    def __len__(self) -> int:
        return len(self._encoded)

    @overload
    def __getitem__(self, i: int) -> npt.NDArray[Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[npt.NDArray[Any]]: ...
    def __getitem__(self, i: int | slice) -> npt.NDArray[Any] | list[npt.NDArray[Any]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if self._root is not None:
            ref = self._encoded[i].as_py()
            return video.DECODERS.get(video_file(self._root, ref["path"])).frame_at(ref["timestamp_s"])
        return _decode_stored(self._encoded[i].as_buffer(), self._feature, f"{self._where}, frame {i}")

    @property
    def encoded(self) -> list[bytes]:
        """The stored bytes of every frame, exactly as written (cameras kept as video have none: see ``refs``)."""
        if self._root is not None:
            raise UsageError(
                "this camera is stored as video; its frames have no bytes of their own (see .refs)",
                situation="video-has-no-bytes",
            )
        return [b.as_py() for b in self._encoded]

    @property
    def stored(self) -> pa.Array:
        """The stored column as Arrow, zero-copy: binary frame bytes, or for a camera kept as video its references."""
        return self._encoded

    @property
    def refs(self) -> list[dict[str, Any]]:
        """For a camera kept as video: each frame's ``{path, timestamp_s}`` (path relative to the dataset)."""
        return [] if self._root is None else list(self._encoded.to_pylist())

    def decode_all(self) -> npt.NDArray[Any]:
        """Every frame decoded, stacked (T, H, W, C)."""
        return np.stack([self[i] for i in range(len(self))])


def video_file(root: Path | RemotePath, rel: str) -> Path:
    """The local file of a video frame reference (a dataset in object storage fetches it into its cache)."""
    return video.resolve_ref(root, rel) if isinstance(root, Path) else root.join_ref(rel)


def _decode_stored(data: pa.Buffer, feature: ImageFeature, where: str) -> npt.NDArray[Any]:
    """Decode a stored frame; bytes that do not decode are damage to the dataset, named by file, episode, frame."""
    try:
        return images.decode_as(data, feature)
    except CorruptSourceError as exc:
        raise CorruptDatasetError(
            f"{where}: stored image is corrupt ({exc.message})", hint=_REBUILD, situation="image-corrupt"
        ) from exc


def _source(file: Path | RemotePath) -> Any:
    """What pyarrow reads: a local path as it is, a file in object storage opened through its cache (kept open)."""
    return file if isinstance(file, Path) else file.open()


def _whole(file: Path | RemotePath) -> Path | bytes:
    """What polars reads for a small table: a local path as it is, a file in object storage read whole."""
    return file if isinstance(file, Path) else file.read_bytes()


_REBUILD = "the dataset is damaged; rebuild it with rdstd convert (or restore it from a copy)"


class Dataset:
    """A canonical dataset (or a selection of its episodes).

    ``len(ds)`` is the number of frames; ``ds.frame(i)`` reads frame i (global over the selection);
    ``ds.episode(i)`` reads episode i of the selection; ``ds.select(expr)`` filters episodes with a polars
    expression over :attr:`episodes`.

    Every shard is checked against the manifest when it is first opened (column types), and Parquet page
    checksums are verified on every read (:attr:`verify_checksums`): damage is an error naming the shard and
    row group, never a wrong value.
    """

    #: Verify Parquet page checksums when reading (rdstd writes them; turned off only to measure their cost).
    verify_checksums = True

    def __init__(
        self,
        path: Path | RemotePath,
        manifest: Manifest,
        episodes: pl.DataFrame,
        stats: dict[str, Any] | None = None,
    ) -> None:
        #: Where the dataset is: a local folder, or a folder in object storage (opened from a URL).
        self.location = path
        self.manifest = manifest
        self.episodes = episodes
        self._stats = stats
        self._starts = np.concatenate([[0], np.cumsum(episodes["length"].to_numpy())]).astype(np.int64)
        self._ep_index = episodes["episode_index"].to_numpy()
        self._ep_shard = episodes["shard"].to_numpy()
        self._ep_shard_row = episodes["shard_row"].to_numpy()
        self._ep_frame_start = episodes["frame_start"].to_numpy()
        self._lengths = episodes["length"].to_numpy()
        self._files: dict[int, pq.ParquetFile] = {}
        self._fast: dict[int, pq.ParquetFile] = {}  # the same shards without checksum verification
        #: (shard, row group) whose image pages passed their checksums; (shard, row group, column) for one column.
        self._verified: set[tuple[Any, ...]] = set()
        self._rg_starts: dict[int, npt.NDArray[np.int64]] = {}
        self._cache: LruCache[tuple[Any, ...], pa.Table] = LruCache(_ROW_GROUP_CACHE)
        self._small: LruCache[int, dict[str, Any]] = LruCache(_SHARD_CACHE)
        #: Local shards opened for single-value reads, and each image column chunk's value spans (or None).
        self._raw: dict[int, Any] = {}
        self._spans: LruCache[tuple[int, int, str], pages.Spans | None] = LruCache(_SPANS_CACHE)
        self._pid = os.getpid()
        self._columns = [*layout.INDEX_COLUMNS, *manifest.features]
        self._image_columns = [
            k for k, f in manifest.features.items() if isinstance(f, ImageFeature) and f.codec != ImageCodec.VIDEO
        ]
        self._small_columns = ["timestamp", *(k for k in manifest.features if k not in self._image_columns)]

    # -- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None) -> Dataset:
        """Open the dataset at ``path`` (checks the manifest and the shard files).

        ``path`` may be a URL (``s3://bucket/ds``, any fsspec protocol): files are then read through fsspec with
        read-ahead and a local block cache (:mod:`rdstd.io.remote`); ``storage_options`` go to the filesystem.
        """
        root: Path | RemotePath = Path(path)
        if isinstance(path, str) and "://" in path:
            from rdstd.io import remote

            if remote.is_url(path):
                root = remote.RemotePath.from_url(path, storage_options)
            else:  # file:///abs/path (RFC 8089) is the local folder it names
                root = Path(unquote(urlsplit(path).path))
        manifest = read_manifest(root)
        episodes_file = root / layout.EPISODES
        try:
            episodes = pl.read_parquet(_whole(episodes_file))
        except (OSError, pl.exceptions.ComputeError) as exc:
            raise SchemaError(
                f"{episodes_file}: unreadable episode table ({exc})",
                hint="rebuild with rdstd convert",
                situation="episode-table-unreadable",
            ) from exc
        for shard in range(manifest.counts.shards):
            if not (root / layout.shard_name(shard)).is_file():
                raise SchemaError(
                    f"{root / layout.shard_name(shard)}: data shard is missing",
                    hint="rebuild with rdstd convert",
                    situation="shard-missing",
                )
        if len(episodes) != manifest.counts.episodes or int(episodes["length"].sum() or 0) != manifest.counts.frames:
            raise SchemaError(
                f"{root}: episode table and manifest disagree on counts",
                hint="rebuild with rdstd convert",
                situation="counts-disagree",
            )
        return cls(root, manifest, episodes)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_files={}, _fast={}, _verified=set(), _rg_starts={}, _raw={})
        state.update(_cache=LruCache(_ROW_GROUP_CACHE), _small=LruCache(_SHARD_CACHE), _spans=LruCache(_SPANS_CACHE))
        return state

    @property
    def path(self) -> Path:
        """The dataset's local folder (a dataset opened from a URL has none: see :attr:`location`)."""
        if not isinstance(self.location, Path):
            raise UsageError(
                f"{self.location}: this dataset is in object storage; this operation needs a local copy",
                hint="copy it first (for example: aws s3 sync URL DIR) and open the folder",
                situation="needs-local-copy",
            )
        return self.location

    # -- overview --------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def num_episodes(self) -> int:
        """Number of episodes in this selection."""
        return len(self.episodes)

    @property
    def stats(self) -> dict[str, Any]:
        """Per-feature, per-dimension statistics of the whole dataset (``stats.json``)."""
        if self._stats is None:
            file = self.location / layout.STATS
            try:
                self._stats = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise SchemaError(
                    f"{file}: unreadable stats ({exc})", hint="rebuild with rdstd convert", situation="stats-unreadable"
                ) from exc
        return self._stats

    @property
    def tasks(self) -> pl.DataFrame:
        """Task index -> text."""
        return pl.read_parquet(_whole(self.location / layout.TASKS))

    def select(self, predicate: pl.Expr) -> Dataset:
        """The episodes for which ``predicate`` (a polars expression over :attr:`episodes`) holds."""
        return Dataset(self.location, self.manifest, self.episodes.filter(predicate), self._stats)

    def with_features(self, keys: Iterable[str]) -> Dataset:
        """This selection reading only the features ``keys`` (e.g. those a merged dataset's episodes have values for:
        :func:`rdstd.store.merged.episode_features`)."""
        wanted = set(keys)
        features = {k: f for k, f in self.manifest.features.items() if k in wanted}
        manifest = self.manifest.model_copy(update={"features": features})
        return Dataset(self.location, manifest, self.episodes, self._stats)

    def __repr__(self) -> str:
        return f"Dataset({str(self.location)!r}, episodes={self.num_episodes}, frames={len(self)})"

    # -- reading ---------------------------------------------------------------------------------------------

    def _file(self, shard: int) -> pq.ParquetFile:
        if self._pid != os.getpid():
            self._files, self._fast, self._verified, self._rg_starts = {}, {}, set(), {}
            self._cache, self._small = LruCache(_ROW_GROUP_CACHE), LruCache(_SHARD_CACHE)
            self._raw, self._spans = {}, LruCache(_SPANS_CACHE)
            self._pid = os.getpid()
        handle = self._files.get(shard)
        if handle is None:
            try:
                handle = pq.ParquetFile(
                    _source(self.location / layout.shard_name(shard)),
                    memory_map=False,
                    page_checksum_verification=self.verify_checksums,
                )
            except PARQUET_ERRORS as exc:
                raise self._shard_error(shard, exc) from exc
            self._check_schema(shard, handle.schema_arrow)
            meta = handle.metadata
            sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            self._check_rows(shard, meta.num_rows, sum(sizes))
            self._rg_starts[shard] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            self._files[shard] = handle
        return handle

    def _check_rows(self, shard: int, rows: int, in_groups: int) -> None:
        """The footer's row counts must hold every row the episode table places in this shard (a damaged footer
        would otherwise send reads past the end of the data)."""
        mask = self._ep_shard == shard
        need = int((self._ep_shard_row[mask] + self._lengths[mask]).max()) if mask.any() else 0
        if rows != in_groups or rows < need:
            raise CorruptDatasetError(
                f"{self.location / layout.shard_name(shard)}: the footer counts {rows} rows ({in_groups} in its row "
                f"groups), the episode table needs {need}: the shard is damaged",
                hint=_REBUILD,
                situation="shard-footer-mismatch",
            )

    def _unverified(self, shard: int) -> pq.ParquetFile:
        """A second handle on a shard that skips checksums, for row groups this process has verified already."""
        handle = self._fast.get(shard)
        if handle is None:
            try:
                handle = pq.ParquetFile(_source(self.location / layout.shard_name(shard)), memory_map=False)
            except PARQUET_ERRORS as exc:
                raise self._shard_error(shard, exc) from exc
            self._fast[shard] = handle
        return handle

    def _check_schema(self, shard: int, found: pa.Schema) -> None:
        """The shard's columns must have the types the manifest's features give (else values would be misread)."""
        file = self.location / layout.shard_name(shard)
        for want in layout.frame_schema(self.manifest.features):
            index = found.get_field_index(want.name)
            if index < 0:
                raise SchemaError(
                    f"{file}: data shard has no column {want.name!r}", hint=_REBUILD, situation="column-missing"
                )
            have = found.field(index).type
            if have != want.type:
                raise SchemaError(
                    f"{file}: column {want.name!r} is {have} in the shard but the manifest says {want.type}",
                    hint="the manifest and the data disagree (edited by hand?); rebuild with rdstd convert",
                    situation="column-type-mismatch",
                )

    def _shard_error(self, shard: int, exc: Exception, group: int | None = None) -> SchemaError:
        file = self.location / layout.shard_name(shard)
        where = f", row group {group}" if group is not None else ""
        if "checksum" in str(exc).lower():
            return CorruptDatasetError(
                f"{file}{where}: page checksum mismatch, the data is damaged",
                hint=_REBUILD,
                situation="page-checksum-mismatch",
            )
        return CorruptDatasetError(
            f"{file}{where}: unreadable data shard ({exc})", hint=_REBUILD, situation="shard-unreadable"
        )

    def _damage(self, shard: int, exc: Exception, columns: list[str]) -> SchemaError:
        """The error for a failed read of several row groups: find the first damaged one to name it."""
        handle = self._files.get(shard)
        if handle is not None:
            for group in range(handle.metadata.num_row_groups):
                try:
                    handle.read_row_group(group, columns=columns)
                except PARQUET_ERRORS as found:
                    return self._shard_error(shard, found, group)
        return self._shard_error(shard, exc)

    def _small_table(self, shard: int) -> dict[str, Any]:
        """The low-dimensional columns of a whole shard, in memory (bounded: shards hold at most 100k frames).

        Vectors come back as (rows, size) numpy arrays, other columns (video frame references) as Arrow arrays.
        """

        def load() -> dict[str, Any]:
            handle = self._file(shard)
            try:
                table = handle.read(columns=self._small_columns)
            except PARQUET_ERRORS as exc:
                raise self._damage(shard, exc, self._small_columns) from exc
            if len(table) != int(self._rg_starts[shard][-1]):
                raise self._shard_error(shard, ValueError(f"{len(table)} rows where the footer says more"))
            cached = {}
            for key in self._small_columns:
                column = table.column(key).combine_chunks()
                feature = self.manifest.features.get(key)
                if isinstance(feature, VectorFeature):
                    cached[key] = column.values.to_numpy(zero_copy_only=False).reshape(len(table), feature.size)
                    if column.null_count:  # a merged dataset's episodes from an input without this feature
                        cached[_VALID + key] = column.is_valid().to_numpy(zero_copy_only=False)
                elif key == "timestamp":
                    cached[key] = column.to_numpy()
                else:
                    cached[key] = column
            return cached

        return self._small.get(shard, load)

    def _row_group(self, shard: int, group: int) -> pa.Table:
        """The image columns of one row group (a few cached, so sequential reads touch each once)."""
        return self._group(shard, group, tuple(self._image_columns))

    def _group(self, shard: int, group: int, columns: tuple[str, ...]) -> pa.Table:
        """``columns`` of one row group, cached; row counts checked against the footer.

        Page checksums are verified the first time this process reads a column of a row group; later reads of it
        (random access revisits row groups, once per epoch) skip them: the check is for damage on disk, not in
        memory.
        """

        def load() -> pa.Table:
            handle = self._file(shard)
            if all((shard, group, c) in self._verified for c in columns):
                handle = self._unverified(shard)
            try:
                table = handle.read_row_group(group, columns=list(columns))
            except PARQUET_ERRORS as exc:
                raise self._shard_error(shard, exc, group) from exc
            starts = self._rg_starts[shard]
            if len(table) != int(starts[group + 1] - starts[group]):
                raise self._shard_error(shard, ValueError(f"{len(table)} rows where the footer says more"), group)
            self._verified.update((shard, group, c) for c in columns)
            return table

        return self._cache.get((shard, group, columns), load)

    def _value_spans(self, shard: int, group: int, column: str) -> tuple[Any, pages.Spans] | None:
        """(open shard file, each row's value span) of an image column chunk of a local shard, so a frame is read
        alone (:mod:`rdstd.store.pages`); None when the shard is remote or the chunk is in another layout (read
        through pyarrow then). Pages are checksummed when the spans are built, the first time this process (or
        after the span cache dropped them) reads the chunk."""
        root = self.location
        if not isinstance(root, Path):
            return None

        def load() -> pages.Spans | None:
            meta = self._file(shard).metadata
            leaf = next((j for j in range(meta.num_columns) if meta.schema.column(j).path == column), None)
            if leaf is None:
                return None
            chunk = meta.row_group(group).column(leaf)
            schema = meta.schema.column(leaf)
            if not pages.direct(chunk, schema.max_repetition_level):
                return None
            raw = self._raw.get(shard)
            if raw is None:
                raw = self._raw[shard] = (root / layout.shard_name(shard)).open(
                    "rb", buffering=0
                )  # kept open, like pyarrow's
            verify = self.verify_checksums and (shard, group, column) not in self._verified
            try:
                spans = pages.column_spans(
                    raw.fileno(), chunk, meta.row_group(group).num_rows, schema.max_definition_level, verify=verify
                )
            except (pages.ChecksumMismatchError, OSError) as exc:
                raise self._shard_error(shard, exc, group) from exc
            if spans is not None:
                self._verified.add((shard, group, column))
            return spans

        spans = self._spans.get((shard, group, column), load)
        return None if spans is None else (self._raw[shard], spans)

    def _locate(self, i: int) -> tuple[int, int]:
        """(position of the episode in this selection, frame index within it) of global frame ``i``."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"frame {i} is out of range for {n} frames")
        pos = int(np.searchsorted(self._starts, i, side="right")) - 1
        return pos, i - int(self._starts[pos])

    def frame(self, i: int, *, decode_images: bool = True) -> dict[str, Any]:
        """Frame ``i`` as a dict: index columns, vectors (numpy), images (decoded HWC arrays, or bytes)."""
        pos, offset = self._locate(i)
        shard = int(self._ep_shard[pos])
        shard_row = int(self._ep_shard_row[pos]) + offset
        small = self._small_table(shard)
        out: dict[str, Any] = {
            "episode_index": int(self._ep_index[pos]),
            "frame_index": offset,
            "index": int(self._ep_frame_start[pos]) + offset,
            "timestamp": float(small["timestamp"][shard_row]),
        }
        table: pa.Table | None = None
        r = 0
        if self._image_columns:
            starts = self._rg_starts[shard]
            group = int(np.searchsorted(starts, shard_row, side="right")) - 1
            table = self._row_group(shard, group)
            r = shard_row - int(starts[group])
        for key, feature in self.manifest.features.items():
            if isinstance(feature, VectorFeature):
                out[key] = small[key][shard_row].reshape(feature.shape).copy()
            elif feature.codec == ImageCodec.VIDEO:
                ref = small[key][shard_row].as_py()
                out[key] = (
                    video.DECODERS.get(video_file(self.location, ref["path"])).frame_at(ref["timestamp_s"])
                    if decode_images and ref is not None
                    else ref
                )
            else:
                assert table is not None
                data = table.column(key)[r].as_buffer()
                if data is None:  # a merged dataset's episode from an input without this camera
                    out[key] = None
                    continue
                file = self.location / layout.shard_name(shard)
                where = f"{file}, episode {out['episode_index']}, {key}, frame {offset}"
                out[key] = _decode_stored(data, feature, where) if decode_images else data.to_pybytes()
        return out

    # -- batched reads (the training loader) -------------------------------------------------------------------

    def positions(self, indices: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(shard, row within the shard) of each global frame index of the selection (negative counts from the end)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx[(idx < 0) | (idx >= n)][0])
            raise IndexError(f"frame {bad} is out of range for {n} frames")
        pos = np.searchsorted(self._starts, idx, side="right") - 1
        rows = self._ep_shard_row[pos] + (idx - self._starts[pos])
        return self._ep_shard[pos].astype(np.int64), rows.astype(np.int64)

    def vectors(self, key: str, indices: npt.ArrayLike) -> npt.NDArray[Any]:
        """Vector feature ``key`` at each global frame index, stacked ``(N, *shape)`` (a new array)."""
        return self.vectors_present(key, indices)[0]

    def vectors_present(
        self, key: str, indices: npt.ArrayLike
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None]:
        """:meth:`vectors`, and whether each frame has a value (None when every one has: the usual case; False in
        the episodes of a merged dataset whose input lacked ``key``, where the values are placeholders)."""
        feature = self.manifest.features[key]
        assert isinstance(feature, VectorFeature)
        shards, rows = self.positions(indices)
        out = np.empty((len(rows), feature.size), dtype=np.dtype(feature.dtype))
        present: npt.NDArray[np.bool_] | None = None
        for shard in np.unique(shards):
            mask = shards == shard
            table = self._small_table(int(shard))
            out[mask] = table[key][rows[mask]]
            valid = table.get(_VALID + key)
            if valid is not None:
                present = np.ones(len(rows), dtype=bool) if present is None else present
                present[mask] = valid[rows[mask]]
        return out.reshape(len(rows), *feature.shape), present

    @property
    def partial_features(self) -> frozenset[str]:
        """Features that some episodes lack: in a merged dataset, those an input did not have
        (``extra.merge.inputs[].features`` names what each input fills); their frames there are null."""
        return merged.partial_features(self.manifest.extra, list(self.manifest.features))

    def present(self, key: str, indices: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether vector feature ``key`` has a value at each global frame index (see :meth:`vectors_present`)."""
        values, present = self.vectors_present(key, indices)
        return np.ones(len(values), dtype=bool) if present is None else present

    def timestamps(self, indices: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The timestamp (s from the episode start) of each global frame index."""
        shards, rows = self.positions(indices)
        out = np.empty(len(rows), dtype=np.float64)
        for shard in np.unique(shards):
            mask = shards == shard
            out[mask] = self._small_table(int(shard))["timestamp"][rows[mask]]
        return out

    def stored(self, key: str, indices: npt.ArrayLike) -> list[Any]:
        """Camera ``key`` at each global frame index, undecoded: the stored bytes (a bytes-like buffer: ``bytes``
        read alone from a local shard, a zero-copy ``pa.Buffer`` otherwise), or for a camera kept as video its
        ``{path, timestamp_s}`` reference. Only this column is read: from a local shard each frame's own bytes
        (:mod:`rdstd.store.pages`), else each row group once; pages are checksummed the first time this process
        reads them."""
        feature = self.manifest.features[key]
        assert isinstance(feature, ImageFeature)
        shards, rows = self.positions(indices)
        out: list[Any] = [None] * len(rows)
        if feature.codec == ImageCodec.VIDEO:
            for shard in np.unique(shards):
                where = np.flatnonzero(shards == shard)
                refs = self._small_table(int(shard))[key].take(pa.array(rows[where])).to_pylist()
                for i, ref in zip(where, refs, strict=True):
                    out[i] = ref
            return out
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            self._file(int(shard))
            starts = self._rg_starts[int(shard)]
            groups = np.searchsorted(starts, rows[where], side="right") - 1
            for group in np.unique(groups):
                direct = self._value_spans(int(shard), int(group), key)
                if direct is not None:  # each frame's own bytes, not its row group
                    raw, spans = direct
                    for i in where[groups == group]:
                        r = int(rows[i] - starts[group])
                        out[i] = os.pread(raw.fileno(), int(spans.lengths[r]), int(spans.offsets[r]))
                    continue
                table = self._group(int(shard), int(group), (key,)).column(0)
                for i in where[groups == group]:
                    out[i] = table[int(rows[i] - starts[group])].as_buffer()
        return out

    def episode(self, i: int) -> EpisodeData:
        """Episode ``i`` of this selection: vectors as numpy arrays, images decoded on access."""
        if not -self.num_episodes <= i < self.num_episodes:
            raise IndexError(f"episode {i} is out of range for {self.num_episodes} episodes")
        row = self.episodes.row(i, named=True)
        table = self._episode_table(row)
        where = f"{self.location / layout.shard_name(int(row['shard']))}, episode {row['episode_index']}"
        vectors: dict[str, npt.NDArray[Any]] = {}
        cams: dict[str, LazyImages] = {}
        for key, feature in self.manifest.features.items():
            column = table.column(key).combine_chunks()
            if len(column) and column.null_count == len(column):
                continue  # a merged dataset's episode from an input without this feature: it has none
            if isinstance(feature, VectorFeature):
                flat = column.values.to_numpy(zero_copy_only=False)
                vectors[key] = flat.reshape(len(table), *feature.shape)
            else:
                root = self.location if feature.codec == ImageCodec.VIDEO else None
                cams[key] = LazyImages(column, feature, root, where=f"{where}, {key}")
        meta = EpisodeMeta(
            episode_id=row["episode_id"],
            task=row["task"] or "",
            split=row["split"] or "",
            success=row["success"],
            embodiment=row["embodiment"] or "",
            source_path=row["source_path"] or "",
            source_key=row["source_key"] or "",
            source_checksum=row["source_checksum"] or "",
            source_meta=json.loads(row["source_meta"] or "{}"),
            instructions=row.get("instructions") or [],
            language=json.loads(row.get("language") or "[]"),
            cameras=json.loads(row.get("cameras") or "{}"),
        )
        timestamps = table.column("timestamp").to_numpy()
        return EpisodeData(int(row["episode_index"]), meta, timestamps, vectors, cams)

    def _episode_table(self, row: dict[str, Any]) -> pa.Table:
        shard, first, length = int(row["shard"]), int(row["shard_row"]), int(row["length"])
        handle = self._file(shard)
        starts = self._rg_starts[shard]
        g0 = int(np.searchsorted(starts, first, side="right")) - 1
        g1 = int(np.searchsorted(starts, first + length - 1, side="right")) - 1 if length else g0
        try:
            table = handle.read_row_groups(list(range(g0, g1 + 1)), columns=self._columns)
        except PARQUET_ERRORS as exc:
            raise self._damage(shard, exc, self._columns) from exc
        return table.slice(first - int(starts[g0]), length)

    def iter_episodes(self) -> Iterator[EpisodeData]:
        """Every episode of the selection, in order, one at a time."""
        for i in range(self.num_episodes):
            yield self.episode(i)

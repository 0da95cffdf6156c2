"""The RLDS backend: tfds builder directories (TFRecord or ArrayRecord shards) read without TensorFlow.

One record is one episode. Episodes stream shard by shard, one record in memory at a time, and every shard can
be read on its own (:meth:`RldsDataset.shard_episodes`), so a batch pipeline splits work by shard. Episode
handles carry the shard and the record number in their key (``train/shard-00003/rec-12``).

tfds shuffles episodes when it writes (by a hash of the example key), so the order on disk is not the order
the episodes were recorded in. The episode id is therefore derived from the episode itself, never from its
position: ``<split>:<metadata>@<sha12>`` where ``<metadata>`` joins the builder's identifying fields
(``episode_metadata/file_path``, ``episode_id`` … see :data:`ID_FIELDS`) with ``#`` and ``<sha12>`` is the first
12 hex digits of the record's SHA-256. The metadata part makes the id readable and traceable to the raw
recording; the hash keeps it unique when builders reuse metadata (several episodes per source file) and is the
same on every machine and after any re-sharding. Byte-identical records in one split get the same id: they are
true duplicates, which the writer refuses. ``meta["checksum"]`` is the full SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from rdstd.errors import CorruptSourceError, SourceError, UsageError
from rdstd.formats.base import EpisodeRef, FormatBackend, SourceDataset, SourceEpisode, SourceInfo, SourceKey
from rdstd.formats.rlds.builder import (
    FEATURES_FILE,
    BuilderInfo,
    Shard,
    find_builder_dirs,
    read_builder_info,
    resolve_builder_dir,
)
from rdstd.formats.rlds.example import DecodedExample, ExampleMismatchError, decode_example
from rdstd.formats.rlds.features import FeatureTree, Leaf, load_features
from rdstd.formats.rlds.quirks import episode_notes
from rdstd.formats.rlds.shards import ShardReader, open_shard
from rdstd.formats.rlds.tfrecord import Record, RecordCorruptError
from rdstd.schema.episode import EncodedFrames
from rdstd.schema.vocabulary import ImageCodec

#: Episode-level fields that identify an episode, by leaf name, most specific first (their values, joined,
#: make the episode id; Open X-Embodiment builders store ``episode_metadata/file_path`` and often an id).
ID_FIELDS: tuple[str, ...] = (
    "file_path", "recording_folderpath", "episode_path", "episode_name", "episode_id", "episode_index", "traj_index",
)  # fmt: skip

#: Step text leaves taken as the task, by leaf name, in order of preference.
LANGUAGE_FIELDS: tuple[str, ...] = ("language_instruction", "natural_language_instruction", "instruction")

OnError = Literal["fail", "skip"]


def _native(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _codec(leaf: Leaf, frames: list[bytes]) -> ImageCodec:
    fmt = (leaf.image_format or "").lower()
    if fmt in ("jpeg", "jpg"):
        return ImageCodec.JPEG
    if fmt == "png":
        return ImageCodec.PNG
    first = frames[0] if frames else b""
    return ImageCodec.JPEG if first[:2] == b"\xff\xd8" else ImageCodec.PNG


class RldsDataset(SourceDataset):
    """An opened tfds RLDS builder directory (all splits unless ``splits`` names some)."""

    format: ClassVar[str] = "rlds"

    def __init__(self, path: Path, *, splits: Sequence[str] | None = None, check_crc: bool = True) -> None:
        super().__init__(path)
        self.root = resolve_builder_dir(path)
        self.builder: BuilderInfo = read_builder_info(self.root)
        self.tree: FeatureTree = load_features(self.root / FEATURES_FILE)
        self.check_crc = check_crc
        if splits is not None:
            unknown = sorted(set(splits) - set(self.builder.splits))
            if unknown:
                raise UsageError(
                    f"{self.root}: no split {', '.join(unknown)}",
                    hint=f"splits: {', '.join(self.builder.splits)}",
                    situation="split-unknown",
                )
        self._shards = [s for s in self.builder.shards if splits is None or s.split in splits]
        self._by_label = {s.label: s for s in self._shards}
        self._open: tuple[Path, ShardReader] | None = None
        self._step_leaves = {leaf.key: leaf for leaf in self.tree.step_leaves()}
        #: Records skipped by ``shard_episodes(on_error="skip")``: one error per record, naming shard and record.
        self.skipped: list[SourceError] = []
        #: Dataset-level observations made while reading (e.g. shardLengths that disagree with a file).
        self.notes: list[str] = []
        #: Per shard file: records that frame cleanly from the start, and the framing error ending them early.
        self._scans: dict[Path, tuple[int, SourceError | None]] = {}

    # -- description -------------------------------------------------------------------------------------
    def info(self) -> SourceInfo:
        """Format, builder name/version, splits and per-step keys from dataset_info.json + features.json.

        Reads one record (the first) to show what the data says about itself in ``extra["first_episode_notes"]``.
        """
        keys = [self._source_key(leaf) for leaf in self.tree.step_leaves() if not leaf.ragged or leaf.kind != "tensor"]
        ragged = [leaf.key for leaf in self.tree.step_leaves() if leaf.ragged and leaf.kind == "tensor"]
        splits: dict[str, dict[str, int]] = {}
        for shard in self._shards:
            entry = splits.setdefault(shard.split, {"episodes": 0, "shards": 0})
            entry["episodes"] += self._ref_count(shard)
            entry["shards"] += 1
            if shard.records is not None:
                entry["stated_episodes"] = entry.get("stated_episodes", 0) + shard.records
        for name, entry in splits.items():
            entry["num_bytes"] = self.builder.num_bytes.get(name, 0)
        episode_keys = {
            leaf.key: {"class": leaf.class_name, "dtype": leaf.dtype, "shape": [d or -1 for d in leaf.shape]}
            for leaf in self.tree.episode_leaves()
        }
        from rdstd.formats.rlds.proto import protobuf_backend

        return SourceInfo(
            format="rlds",
            version=f"tfds {self.builder.file_format} builder {self.builder.name} {self.builder.version}",
            path=str(self.root),
            episodes=sum(self._ref_count(s) for s in self._shards),
            frames=None,
            keys=keys,
            rate_hz=None,
            extra={
                "builder_dir": str(self.root),
                "name": self.builder.name,
                "version": self.builder.version,
                "file_format": self.builder.file_format,
                "splits": splits,
                "episode_keys": episode_keys,
                "ragged_keys": ragged,
                "unread_keys": self._unread_keys(),
                "warnings": self.warnings(),
                "description": self.builder.description,
                "citation": self.builder.citation,
                "protobuf": protobuf_backend(),
                "first_episode_notes": self._first_notes(),
            },
        )

    def _first_notes(self) -> list[str]:
        """The notes on the first episode (one record read), so ``rdstd info`` shows the data's quirks."""
        if not self._shards:
            return []
        shard = self._shards[0]
        try:
            reader = open_shard(shard.path, self.builder.file_format, check_crc=self.check_crc, root=self.root)
            try:
                record = reader.next_record()
            finally:
                reader.close()
            if record is None:
                return [f"{shard.path}: holds no records"]
            notes: list[str] = self._episode(shard, record, 0).meta["notes"]
        except SourceError as exc:
            return [exc.message]
        return notes

    @staticmethod
    def _source_key(leaf: Leaf) -> SourceKey:
        shape = tuple(-1 if d is None else d for d in leaf.shape)
        doc = leaf.description
        if leaf.kind == "image":
            note = f"{leaf.image_format or 'encoded'} bytes, passed through"
            codec = _codec(leaf, [])
            return SourceKey(leaf.key, "image", shape, leaf.dtype, note=f"{note}; {doc}" if doc else note, codec=codec)
        if leaf.kind == "text":
            return SourceKey(leaf.key, "text", (), "str", note=doc)
        return SourceKey(leaf.key, "vector", shape, leaf.dtype, note=doc)

    # -- shards and handles ------------------------------------------------------------------------------
    def shards(self) -> list[Shard]:
        """The shards, split by split in file-name order: the unit of parallel work."""
        return list(self._shards)

    def _reader(self, shard: Shard) -> ShardReader:
        if self._open is not None and self._open[0] == shard.path:
            return self._open[1]
        self.close()
        reader = open_shard(shard.path, self.builder.file_format, check_crc=self.check_crc, root=self.root)
        self._open = (shard.path, reader)
        return reader

    def _scan(self, shard: Shard) -> tuple[int, SourceError | None]:
        """What the shard file really holds (record framing only, no payload parsed), cached; notes the
        disagreement with ``dataset_info.json`` when the file holds more records than it says."""
        if shard.path not in self._scans:
            error: SourceError | None
            try:
                readable, error = self._reader(shard).readable()
            except SourceError as exc:  # cannot be opened at all (pointer, permission, not ArrayRecord)
                readable, error = 0, exc
                if exc.message not in self.notes:
                    self.notes.append(exc.message)
            self._scans[shard.path] = (readable, error)
            for note in self._shard_notes(shard):
                if note not in self.notes:
                    self.notes.append(note)
        return self._scans[shard.path]

    def _shard_notes(self, shard: Shard) -> list[str]:
        readable, error = self._scans[shard.path]
        stated = shard.records
        if stated is None or error is not None:
            return []
        if readable > stated:
            return [
                f"{shard.path}: holds {readable} records, dataset_info.json shardLengths says {stated}; "
                f"all {readable} are read"
            ]
        if readable < stated:
            return [
                f"{shard.path}: holds {readable} records, dataset_info.json shardLengths says {stated}; "
                f"records {readable}..{stated - 1} are missing (the file looks cut short)"
            ]
        return []

    def _ref_count(self, shard: Shard) -> int:
        """Handles for one shard: every record in the file, plus one per record that is stated or broken but
        cannot be read (those raise when read, so a broken download is an error, or skipped and listed)."""
        readable, error = self._scan(shard)
        stated = shard.records or 0
        if error is not None:
            return max(readable + 1, stated)
        return max(readable, stated)

    def warnings(self) -> list[str]:
        """Dataset-level disagreements found so far between the files and ``dataset_info.json``."""
        for shard in self._shards:
            self._scan(shard)
        return list(self.notes)

    def _unread_keys(self) -> dict[str, str]:
        """Per-step keys of the source that are not per-step vectors, images or texts, and why."""
        return {
            leaf.key: "a ragged step tensor (varying size per step): kept per episode in source_meta['ragged']"
            for leaf in self.tree.step_leaves()
            if leaf.ragged and leaf.kind == "tensor"
        } | dict(self.tree.unread)

    def episode_refs(self) -> Sequence[EpisodeRef]:
        """One handle per record, in file order (split, shard, record).

        Counts come from the shard files themselves (TFRecord framing, the ArrayRecord index), never from
        ``dataset_info.json`` alone: a shard holding more records than ``shardLengths`` says is read whole (and
        the disagreement is a note); a shard holding fewer, or whose framing breaks, gets handles for the
        records it lacks, which raise a :class:`CorruptSourceError` naming the shard when read.
        """
        refs: list[EpisodeRef] = []
        for shard in self._shards:
            for r in range(self._ref_count(shard)):
                refs.append(EpisodeRef(index=len(refs), key=f"{shard.label}/rec-{r}", path=str(shard.path)))
        return refs

    def _locate(self, ref: EpisodeRef) -> tuple[Shard, int]:
        label, _, rec = ref.key.rpartition("/rec-")
        shard = self._by_label.get(label)
        if shard is None or not rec.isdigit():
            raise UsageError(
                f"{self.root}: {ref.key!r} is not an episode of this dataset", situation="episode-not-found"
            )
        return shard, int(rec)

    # -- reading -----------------------------------------------------------------------------------------
    def read_episode(self, ref: EpisodeRef) -> SourceEpisode:
        """Read the record ``ref`` points at; errors name the shard file and the record number."""
        shard, number = self._locate(ref)
        readable, error = self._scan(shard)
        if error is None and number >= readable:
            if number >= (shard.records or 0):
                raise UsageError(
                    f"{shard.path}: record {number} does not exist (the shard holds {readable} records)",
                    situation="record-not-found",
                )
            raise self._missing(shard, number, readable)
        record = self._reader(shard).read(number)
        return self._episode(shard, record, ref.index)

    @staticmethod
    def _missing(shard: Shard, first: int, readable: int) -> CorruptSourceError:
        """The error for records ``first..`` that ``dataset_info.json`` states but the shard does not hold."""
        stated = shard.records or 0
        which = f"record {first}" if stated - first == 1 else f"records {first}..{stated - 1}"
        return CorruptSourceError(
            f"{shard.path}: {which} missing: the shard holds {readable} records, "
            f"dataset_info.json shardLengths says {stated}",
            hint="the file looks cut short (a broken download): re-download it, "
            "or pass --on-error skip to convert the other episodes",
            situation="shard-short",
        )

    def episodes(self) -> Iterator[SourceEpisode]:
        """Stream every episode, shard after shard (one record in memory at a time)."""
        index = 0
        for shard in self._shards:
            for episode in self.shard_episodes(shard, first_index=index):
                index = episode.ref.index + 1
                yield episode

    def shard_episodes(
        self, shard: Shard, *, on_error: OnError = "fail", first_index: int = 0
    ) -> Iterator[SourceEpisode]:
        """Stream one shard's episodes in file order. With ``on_error="skip"`` a bad record is recorded in
        :attr:`skipped` and reading goes on with the next one (after a framing error, the rest of the shard is
        unreadable and is recorded as one error)."""
        try:
            reader = open_shard(shard.path, self.builder.file_format, check_crc=self.check_crc, root=self.root)
        except SourceError as exc:
            if on_error != "skip":
                raise
            self.skipped.append(exc)
            return
        count = 0
        try:
            while True:
                try:
                    record = reader.next_record()
                    if record is None:
                        break
                    count += 1
                    yield self._episode(shard, record, first_index + record.index)
                except (RecordCorruptError, CorruptSourceError) as exc:
                    if on_error != "skip":
                        raise
                    count += 1
                    self.skipped.append(exc)
        finally:
            reader.close()
        if shard.records is not None and count < shard.records:
            missing = self._missing(shard, count, count)
            if on_error != "skip":
                raise missing
            self.skipped.append(missing)
        elif shard.records is not None and count > shard.records:
            note = (
                f"{shard.path}: holds {count} records, dataset_info.json shardLengths says {shard.records}; "
                f"all {count} are read"
            )
            if note not in self.notes:
                self.notes.append(note)

    def _episode(self, shard: Shard, record: Record, index: int) -> SourceEpisode:
        where = f"{shard.path}: record {record.index}"
        try:
            decoded = decode_example(record.data, self.tree)
        except ExampleMismatchError as exc:
            raise CorruptSourceError(
                f"{where}: does not match features.json: {exc}",
                hint="pass --on-error skip to go on with the next record",
                situation="record-mismatch",
            ) from exc
        checksum = hashlib.sha256(record.data).hexdigest()
        key = f"{shard.label}/rec-{record.index}"
        ref = EpisodeRef(index=index, key=key, path=str(shard.path), length=decoded.length)
        return self._source_episode(shard, ref, record, decoded, checksum)

    def _source_episode(
        self, shard: Shard, ref: EpisodeRef, record: Record, decoded: DecodedExample, checksum: str
    ) -> SourceEpisode:
        images = {
            key: EncodedFrames(codec=_codec(self._step_leaves[key], frames), frames=frames)
            for key, frames in decoded.images.items()
        }
        metadata = {key: _native(value) for key, value in decoded.episode.items()}
        task = None
        for name in LANGUAGE_FIELDS:
            for key, texts in decoded.texts.items():
                if self._step_leaves[key].path[-1] == name and texts and all(t == texts[0] for t in texts):
                    task = texts[0]
                    break
            if task is not None:
                break
        meta: dict[str, Any] = {
            "episode_id": self._episode_id(shard, decoded, checksum),
            "split": shard.split,
            "source_path": str(shard.path),
            "source_key": ref.key,
            "checksum": f"sha256:{checksum}",
            "record": {
                "shard": shard.path.name,
                "index": record.index,
                "offset": record.offset,
                "bytes": len(record.data),
            },
            "episode_metadata": metadata,
            "notes": episode_notes(decoded, self.tree),
        }
        if record.index == 0 and shard.path in self._scans:
            meta["notes"] = [*self._shard_notes(shard), *meta["notes"]]
        if decoded.ragged:
            meta["ragged"] = decoded.ragged
        return SourceEpisode(
            ref=ref,
            length=decoded.length,
            vectors=decoded.vectors,
            images=dict(images),
            texts=decoded.texts,
            timestamps_s=None,
            task=task,
            meta=meta,
        )

    def _episode_id(self, shard: Shard, decoded: DecodedExample, checksum: str) -> str:
        by_name: dict[str, str] = {}
        for leaf in self.tree.episode_leaves():
            value = decoded.episode.get(leaf.key)
            name = leaf.path[-1]
            if name in ID_FIELDS and isinstance(value, (str, np.integer, int)) and name not in by_name:
                by_name[name] = str(_native(value))
        parts = [by_name[name] for name in ID_FIELDS if name in by_name]
        return f"{shard.split}:{'#'.join(parts)}@{checksum[:12]}"

    def close(self) -> None:
        """Close the shard file kept open for random access."""
        if self._open is not None:
            self._open[1].close()
            self._open = None


class RldsBackend(FormatBackend):
    """tfds RLDS builder directories (Open X-Embodiment and any ``tfds`` RLDS dataset), no TensorFlow."""

    name: ClassVar[str] = "rlds"
    extra: ClassVar[str | None] = "rlds"
    priority: ClassVar[int] = 20

    def detect(self, path: Path) -> bool:
        """A directory that is (or holds exactly one) builder dir: dataset_info.json beside features.json or shards."""
        try:
            return len(find_builder_dirs(path)) == 1
        except OSError:
            return False

    def open(self, path: Path) -> RldsDataset:
        """Open the builder directory at or below ``path``."""
        return RldsDataset(path)

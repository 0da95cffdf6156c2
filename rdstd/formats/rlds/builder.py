"""A tfds builder directory: find it, read ``dataset_info.json``, list its splits and shards.

Layout (tfds ``core/naming.py``): ``<data_dir>/<name>[/<config>]/<version>/`` holding ``dataset_info.json``
(proto3 JSON of ``DatasetInfo``: camelCase keys, int64 as strings), ``features.json`` and shards named by
``splits[].filepathTemplate``, by default ``{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}``, e.g.
``bridge_dataset-train.tfrecord-00000-of-00001``. ``fileFormat`` is ``tfrecord`` (the default when absent) or
``array_record``; both hold the same serialized Examples.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdstd.errors import CorruptSourceError, SourceError, UnsupportedVersionError, UsageError
from rdstd.formats.files import read_bytes
from rdstd.paths import inside

INFO_FILE = "dataset_info.json"
FEATURES_FILE = "features.json"
SUPPORTED_FILE_FORMATS = ("tfrecord", "array_record")
_DEFAULT_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
_SHARD_RE = re.compile(r"\.(tfrecord|array_record)-\d{5,}-of-\d{5,}$")


@dataclass(frozen=True)
class Shard:
    """One shard file of one split; ``records`` is what dataset_info.json says it holds (``None`` if unsaid)."""

    split: str
    index: int
    count: int
    path: Path
    records: int | None

    @property
    def label(self) -> str:
        """Short, stable name used in episode keys: ``train/shard-00003``."""
        return f"{self.split}/shard-{self.index:05d}"


@dataclass(frozen=True)
class BuilderInfo:
    """What ``dataset_info.json`` says, plus the shard files it names."""

    root: Path
    name: str
    version: str
    file_format: str
    shards: tuple[Shard, ...]
    splits: tuple[str, ...]
    description: str
    citation: str
    num_bytes: dict[str, int]
    raw: dict[str, Any]


def _is_builder_dir(path: Path) -> bool:
    if not (path / INFO_FILE).is_file():
        return False
    if (path / FEATURES_FILE).is_file():
        return True
    return any(_SHARD_RE.search(p.name) for p in path.iterdir())


def find_builder_dirs(path: Path) -> list[Path]:
    """Builder directories at ``path`` or up to two levels below it (``<name>/<version>``). Never raises."""
    try:
        if not path.is_dir():
            return []
        if _is_builder_dir(path):
            return [path]
        found: list[Path] = []
        for child in sorted(path.iterdir()):
            if not child.is_dir():
                continue
            if _is_builder_dir(child):
                found.append(child)
                continue
            found.extend(g for g in sorted(child.iterdir()) if g.is_dir() and _is_builder_dir(g))
        return found
    except OSError:
        return []


def resolve_builder_dir(path: Path) -> Path:
    """The one builder directory at or below ``path``; raises when there is none or several."""
    found = find_builder_dirs(path)
    if not found:
        raise SourceError(
            f"{path}: no tfds builder directory (dataset_info.json + features.json) at or below it",
            hint="point at <data_dir>/<name>/<version>/",
            situation="builder-not-found",
        )
    if len(found) > 1:
        listing = ", ".join(str(p) for p in found[:6])
        raise UsageError(
            f"{path}: holds {len(found)} builder directories ({listing})",
            hint="point at one of them",
            situation="several-builders",
        )
    return found[0]


def _plain_name(value: str, what: str, info_path: Path) -> str:
    """A builder or split name from metadata, refused when it could name a path (``/``, ``\\``, ``..``)."""
    if not value or "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
        raise CorruptSourceError(
            f"{info_path}: {what} {value!r} is not a plain name (it would point at other folders)",
            hint="fix the dataset's metadata; rdstd reads nothing outside the dataset folder",
            situation="metadata-name-unsafe",
        )
    return value


def _split_shards(root: Path, name: str, file_format: str, split: dict[str, Any]) -> list[Shard]:
    info_path = root / INFO_FILE
    split_name = _plain_name(str(split.get("name", "")), "split name", info_path)
    lengths = [int(n) for n in split.get("shardLengths", [])]
    template = str(split.get("filepathTemplate") or _DEFAULT_TEMPLATE)
    if lengths:
        count = len(lengths)
        shards = []
        for i, n in enumerate(lengths):
            if n < 0:
                raise CorruptSourceError(
                    f"{info_path}: split {split_name!r} shard {i} has length {n}", situation="dataset-info-invalid"
                )
            filename = (
                template.replace("{DATASET}", name)
                .replace("{SPLIT}", split_name)
                .replace("{FILEFORMAT}", file_format)
                .replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{count:05d}")
                .replace("{SHARD_INDEX}", f"{i:05d}")
                .replace("{NUM_SHARDS}", f"{count:05d}")
            )
            what = f"{INFO_FILE} split {split_name!r} shard {i} (filepathTemplate {template!r})"
            shards.append(Shard(split_name, i, count, inside(root, filename, what), n))
        return shards
    # Old or hand-made dirs without shardLengths: take the files that are there, in name order.
    files = sorted(p for p in root.glob(f"{name}-{split_name}.{file_format}-*-of-*") if p.is_file())
    return [Shard(split_name, i, len(files), p, None) for i, p in enumerate(files)]


def read_builder_info(root: Path) -> BuilderInfo:
    """Parse ``dataset_info.json`` of the builder directory ``root`` and locate its shards."""
    info_path = root / INFO_FILE
    if not info_path.is_file():
        raise CorruptSourceError(
            f"{info_path}: missing", hint="copy the builder directory completely", situation="dataset-info-missing"
        )
    try:
        raw = json.loads(read_bytes(info_path, root).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptSourceError(
            f"{info_path}: not readable JSON ({exc})", hint="the file is damaged", situation="dataset-info-invalid"
        ) from exc
    if not isinstance(raw, dict):
        raise CorruptSourceError(f"{info_path}: not a JSON object", situation="dataset-info-invalid")
    if not raw.get("splits"):
        state = "is empty ({})" if not raw else "names no splits"
        raise CorruptSourceError(
            f"{info_path}: {state}, so no shard can be found",
            hint="the file is damaged or was never written; copy dataset_info.json from the original builder",
            situation="dataset-info-invalid",
        )
    name = _plain_name(str(raw.get("name") or root.parent.name), "builder name", info_path)
    file_format = str(raw.get("fileFormat") or "tfrecord")
    if file_format not in SUPPORTED_FILE_FORMATS:
        raise UnsupportedVersionError(
            f"{info_path}: fileFormat {file_format!r} is not supported (rdstd reads tfrecord and array_record)",
            hint="convert the builder with `tfds convert_format` to tfrecord or array_record",
            situation="file-format-unsupported",
        )
    shards: list[Shard] = []
    splits: list[str] = []
    num_bytes: dict[str, int] = {}
    try:
        for split in raw.get("splits", []):
            if not isinstance(split, dict):
                raise TypeError(f"split entry {split!r} is not an object")
            splits.append(str(split["name"]))
            num_bytes[str(split["name"])] = int(split.get("numBytes", 0))
            shards.extend(_split_shards(root, name, file_format, split))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptSourceError(
            f"{info_path}: malformed splits entry ({exc})", situation="dataset-info-invalid"
        ) from exc
    missing = [s.path.name for s in shards if not s.path.is_file()]
    if missing:
        raise CorruptSourceError(
            f"{root}: {len(missing)} shard file(s) named by dataset_info.json are missing ({', '.join(missing[:3])})",
            hint="copy the builder directory completely",
            situation="shard-files-missing",
        )
    return BuilderInfo(
        root=root,
        name=name,
        version=str(raw.get("version", "")),
        file_format=file_format,
        shards=tuple(shards),
        splits=tuple(splits),
        description=str(raw.get("description", "")),
        citation=str(raw.get("citation", "")),
        num_bytes=num_bytes,
        raw=raw,
    )

"""File names of the canonical dataset on disk, and the Arrow schema of its tables."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from rdstd.media.video import VIDEO_REF_TYPE
from rdstd.schema.features import ImageFeature, VectorFeature
from rdstd.schema.vocabulary import ImageCodec

MANIFEST = "rdstd.json"
EPISODES = "episodes.parquet"
TASKS = "tasks.parquet"
STATS = "stats.json"
DATA_DIR = "data"
VIDEOS_DIR = "videos"
#: Present while a writer owns the directory; a dataset that still has it did not finish.
WRITING_MARKER = ".rdstd-writing"
#: Manifests larger than this are not read whole to decide whether a folder is a dataset.
_MAX_SNIFF = 64 * 1024 * 1024


#: Columns every frame row has, before the features.
INDEX_COLUMNS = ("episode_index", "frame_index", "index", "timestamp")


def shard_name(number: int) -> str:
    """Relative path of data shard ``number``."""
    return f"{DATA_DIR}/shard-{number:05d}.parquet"


def is_dataset(path: Path) -> bool:
    """Whether ``path`` is a canonical dataset: a folder whose ``rdstd.json`` is a JSON object with a
    ``schema_version`` (or, from older rdstd, an unfinished one whose ``.rdstd-writing`` marker names its pid).

    This decides what ``--overwrite`` may replace, so a folder merely holding a file of that name is not one.
    """
    if not path.is_dir():
        return False
    for name, key in ((MANIFEST, "schema_version"), (WRITING_MARKER, "pid")):
        try:
            raw = json.loads((path / name).read_bytes()[:_MAX_SNIFF])
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict) and key in raw:
            return True
    return False


def arrow_type(feature: VectorFeature | ImageFeature) -> pa.DataType:
    """The Arrow type a feature's column has in a shard."""
    if isinstance(feature, ImageFeature):
        return VIDEO_REF_TYPE if feature.codec == ImageCodec.VIDEO else pa.binary()
    value = pa.bool_() if feature.dtype == "bool" else pa.from_numpy_dtype(feature.dtype)
    return pa.list_(value, feature.size)


def frame_schema(manifest_features: dict[str, VectorFeature | ImageFeature]) -> pa.Schema:
    """The Arrow schema of a data shard for these features."""
    fields = [
        pa.field("episode_index", pa.int64(), nullable=False),
        pa.field("frame_index", pa.int64(), nullable=False),
        pa.field("index", pa.int64(), nullable=False),
        pa.field("timestamp", pa.float64(), nullable=False),
    ]
    fields += [pa.field(key, arrow_type(f)) for key, f in manifest_features.items()]
    return pa.schema(fields)


#: One row per episode. ``instructions`` (other phrasings of the task), ``language`` (time-segmented annotations,
#: JSON) and ``cameras`` (per-episode calibration, JSON) came with schema 1.1; 1.0 tables lack them.
EPISODES_SCHEMA = pa.schema(
    [
        pa.field("episode_index", pa.int64(), nullable=False),
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("embodiment", pa.string()),
        pa.field("task_index", pa.int64()),
        pa.field("task", pa.string()),
        pa.field("split", pa.string()),
        pa.field("length", pa.int64(), nullable=False),
        pa.field("duration_s", pa.float64()),
        pa.field("success", pa.bool_()),
        pa.field("source_path", pa.string()),
        pa.field("source_key", pa.string()),
        pa.field("source_checksum", pa.string()),
        pa.field("source_meta", pa.string()),
        pa.field("instructions", pa.list_(pa.string())),
        pa.field("language", pa.string()),
        pa.field("cameras", pa.string()),
        pa.field("shard", pa.int32(), nullable=False),
        pa.field("shard_row", pa.int64(), nullable=False),
        pa.field("frame_start", pa.int64(), nullable=False),
    ]
)

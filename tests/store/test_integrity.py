"""Damage to a canonical dataset is an error naming where it is, never a wrong value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import rdstd
from rdstd.errors import CorruptDatasetError, SchemaError
from rdstd.schema import EncodedFrames, ImageCodec
from rdstd.store import DatasetWriter, layout
from rdstd.store import writer as writer_module
from tests.store.helpers import FEATURES, PROVENANCE, make_episode

CAM = "observation.images.cam"


@pytest.fixture(autouse=True)
def small_row_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Row groups of exactly 4 frames (tiny frames would otherwise share one row group of at least 512 KiB)."""
    monkeypatch.setattr(writer_module, "ROW_GROUP_MIN_BYTES", 0)


def write(path: Path, **kwargs: object) -> Path:
    with DatasetWriter(path, FEATURES, PROVENANCE, row_group_frames=4, **kwargs) as writer:  # type: ignore[arg-type]
        for i in range(3):
            writer.add(make_episode(i, 10))
    return path


def flip(file: Path, offset: int) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= 0x5A
    file.write_bytes(bytes(data))


def test_a_flipped_byte_in_an_image_names_the_shard_and_row_group(tmp_path: Path) -> None:
    out = write(tmp_path / "ds")
    shard = out / layout.shard_name(0)
    stored = rdstd.open(out).frame(5, decode_images=False)[CAM]  # row group 1 (4 frames per group)
    flip(shard, shard.read_bytes().index(stored) + len(stored) // 2)
    ds = rdstd.open(out)
    with pytest.raises(CorruptDatasetError, match=r"shard-00000\.parquet, row group 1: page checksum mismatch"):
        ds.frame(5)
    assert ds.frame(0)[CAM].shape == (24, 32, 3), "the rest of the shard still reads"


def test_a_flipped_byte_in_a_vector_column_names_the_shard_and_row_group(tmp_path: Path) -> None:
    out = write(tmp_path / "ds")
    shard = out / layout.shard_name(0)
    meta = pq.ParquetFile(shard).metadata
    names = [meta.schema.column(j).path for j in range(meta.num_columns)]
    column = meta.row_group(2).column(names.index("action.list.element"))
    flip(shard, column.data_page_offset + column.total_compressed_size - 3)
    with pytest.raises(CorruptDatasetError, match=r"shard-00000\.parquet, row group 2: "):
        rdstd.open(out).episode(1)


def test_without_checksums_the_same_flip_goes_unnoticed_which_is_why_they_are_on(tmp_path: Path) -> None:
    out = write(tmp_path / "ds", page_checksums=False)
    shard = out / layout.shard_name(0)
    stored = rdstd.open(out).frame(5, decode_images=False)[CAM]
    flip(shard, shard.read_bytes().index(stored) + len(stored) // 2)
    assert rdstd.open(out).frame(5, decode_images=False)[CAM] != stored


def test_an_image_that_does_not_decode_names_the_file_episode_camera_and_frame(tmp_path: Path) -> None:
    episode = make_episode(0, 4)
    frames = episode.images[CAM]
    assert isinstance(frames, EncodedFrames)
    episode.images[CAM] = EncodedFrames(ImageCodec.JPEG, [*frames.frames[:2], b"\xff\xd8 not a jpeg", frames.frames[3]])
    with DatasetWriter(tmp_path / "ds", FEATURES, PROVENANCE) as writer:
        writer.add(episode)
    ds = rdstd.open(tmp_path / "ds")
    where = r"shard-00000\.parquet, episode 0, observation\.images\.cam, frame 2: stored image is corrupt"
    with pytest.raises(CorruptDatasetError, match=where):
        ds.frame(2)
    with pytest.raises(CorruptDatasetError, match=where):
        ds.episode(0).images[CAM][2]


@pytest.mark.parametrize(
    ("feature", "change", "types"),
    [
        ("action", {"dtype": "int64"}, "fixed_size_list<element: double>[4] in the shard but the manifest says "),
        ("observation.state", {"shape": [4], "dims": [{"name": f"j{i}"} for i in range(4)]}, "[3] in the shard"),
    ],
)
def test_a_manifest_that_disagrees_with_the_shards_is_refused_naming_both_types(
    tmp_path: Path, feature: str, change: dict[str, object], types: str
) -> None:
    out = write(tmp_path / "ds")
    manifest = json.loads((out / layout.MANIFEST).read_text())
    manifest["features"][feature].update(change)
    (out / layout.MANIFEST).write_text(json.dumps(manifest))
    ds = rdstd.open(out)
    with pytest.raises(SchemaError, match=rf"shard-00000\.parquet: column '{feature}' is ") as err:
        ds.frame(0)
    assert types in err.value.message


def test_a_checksummed_dataset_reads_back_exactly(tmp_path: Path) -> None:
    out = write(tmp_path / "ds")
    ds = rdstd.open(out)
    np.testing.assert_array_equal(ds.episode(2).vectors["action"], make_episode(2, 10).vectors["action"])
